package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const envIsolated = "CNET_TEST_ISOLATED"

// InIsolation reports whether this process is the sandbox of its own that
// Isolate started for the test named name (a t.Name()).
func InIsolation(name string) bool { return os.Getenv(envIsolated) == name }

// Isolated is one test run by Isolate in a sandbox of its own.
type Isolated struct {
	Name   string
	Passed bool
	Err    error
	Output []string
	// Values are what the test logged with Report.
	Values map[string]string
}

// Isolate runs each of the named (sub)tests in a sandbox of its own (a
// child test process in fresh network and mount namespaces, set up like
// the first), at most parallel at a time, and returns how each went. Tests
// whose snapshots cover the whole sandbox use it to run side by side
// without seeing each other; in the child, InIsolation(name) is true and
// the test body runs. Each child is bounded at 10 minutes.
func Isolate(t testing.TB, names []string, parallel int) []*Isolated {
	t.Helper()
	RequirePrivileged(t)
	out := make([]*Isolated, len(names))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = isolate(name)
		}()
	}
	wg.Wait()
	return out
}

func isolate(name string) *Isolated {
	r := &Isolated{Name: name, Values: map[string]string{}}
	var pattern []string
	for _, part := range strings.Split(name, "/") {
		pattern = append(pattern, "^"+regexp.QuoteMeta(part)+"$")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run="+strings.Join(pattern, "/"), "-test.v", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), envIsolated+"="+name)
	runtime.LockOSThread() // Pdeathsig follows the thread that forked
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		r.Err = err
		return r
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		r.Err = err
		return r
	}
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reported.FindStringSubmatch(line); m != nil {
			r.Values[m[1]] = m[2]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--- PASS: "+name+" ") {
			r.Passed = true
		}
		r.Output = append(r.Output, line)
	}
	if err := cmd.Wait(); err != nil {
		r.Err, r.Passed = fmt.Errorf("isolated run of %s: %w", name, err), false
	}
	return r
}

var reported = regexp.MustCompile(`report ([\w.-]+): (.*)$`)

// Report logs KEY: VALUE so that Isolate hands it to the parent test.
func Report(t testing.TB, key string, value any) {
	t.Helper()
	t.Logf("report %s: %v", key, value)
}
