package testenv

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// TestStopLeftovers: a process a test leaves in the sandbox (a daemon in
// its own session, as cnet's name server is) is stopped by the sweep
// that runs after the tests.
func TestStopLeftovers(t *testing.T) {
	RequirePrivileged(t)
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopLeftovers()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("sleep ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		Logged(t, "kill sleep", cmd.Process.Kill())
		t.Fatal("stopLeftovers left the sleep running")
	}
}
