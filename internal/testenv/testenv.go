// Package testenv runs privileged tests inside a sandbox that can never
// touch the machine's own network.
//
// Main, called from a package's TestMain, re-executes the test binary in
// fresh network and mount namespaces when running as root. Every thread of
// the child is born inside the sandbox, so no test ever switches a thread's
// namespace. The child makes / recursively private, mounts tmpfs over
// /run/netns and /etc/netns, brings lo up and enables ip_forward (both per
// namespace), then runs the tests. When not root, tests that need the
// sandbox skip with a message saying how to run them.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const envSandbox = "CNET_TEST_SANDBOX_PARENT_NETNS"

// Runner is what TestMain passes: a *testing.M, or a wrapper around one.
type Runner interface{ Run() int }

// Main is the body of TestMain for packages with privileged tests.
func Main(m Runner) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	if os.Getenv(envSandbox) == "" {
		os.Exit(reexec())
	}
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: sandbox setup: %v\n", err)
		os.Exit(1)
	}
	// Only the sandbox's first process sweeps: the processes it starts
	// from the same binary (fuzzing workers) share the sandbox and must
	// not stop the others.
	sweeper := os.Getenv(envSweeper) == ""
	if sweeper {
		if err := os.Setenv(envSweeper, strconv.Itoa(os.Getpid())); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if sweeper {
		stopLeftovers()
	}
	os.Exit(code)
}

// envSweeper holds the PID of the sandbox's first process, the one that
// stops what the tests left running.
const envSweeper = "CNET_TESTENV_SWEEPER"

// stopLeftovers stops every process still in the sandbox's network
// namespace once the tests are done, and names each: a daemon a test
// left running (a name server whose root is gone, say) would otherwise
// outlive the sandbox, which it keeps alive. The namespace is this
// binary's own, so everything in it was started by these tests. The
// test that leaked it is the one to fix; this keeps the machine clean
// meanwhile.
func stopLeftovers() {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || ns != self {
			continue // gone, or not in the sandbox
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)) // for the message only
		fmt.Fprintf(os.Stderr, "testenv: stopping pid %d, left running by a test: %s\n", pid, bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '}))
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			fmt.Fprintf(os.Stderr, "testenv: kill %d: %v\n", pid, err)
		}
	}
}

func reexec() int {
	ino, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	runtime.LockOSThread() // Pdeathsig follows the thread that forked
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envSandbox+"="+strconv.FormatUint(ino, 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: re-exec into sandbox: %v\n", err)
		return 1
	}
	return 0
}

func setup() error {
	// Nothing mounted from here on may propagate to the real mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	for _, d := range []string{"/run/netns", "/etc/netns"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", d, err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
}

// InSandbox reports whether this process runs inside the test sandbox.
func InSandbox() bool { return os.Geteuid() == 0 && os.Getenv(envSandbox) != "" }

// RequirePrivileged skips t unless it runs as root inside the sandbox, and
// fails it if the sandbox is somehow the machine's own network namespace.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if !InSandbox() {
		t.Skip("needs root: run sudo go test ./... (tests run in a private network namespace)")
	}
	parent, _ := strconv.ParseUint(os.Getenv(envSandbox), 10, 64)
	self, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if self == parent {
		t.Fatalf("refusing to run: this test is in the machine's own network namespace (inode %d)", self)
	}
}

func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// Run runs a command (ip, nft, ping...) and fails t if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Try(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command with a 30 s bound and returns its combined output.
// A program that is not installed fails with the package to install.
func Try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), explainMissing(name, err)
}

// Eventually polls cond every 10 ms until it returns nil or the deadline
// passes, then fails t with the last error.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TryIn is Try with stdin.
func TryIn(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), explainMissing(name, err)
}

// Close closes c, for a test's defer or cleanup. A failed close does not
// decide any test here (what is closed was only read, or is torn down at
// the end); it is logged, so it is seen and not silently dropped.
func Close(t testing.TB, what string, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Logf("close %s: %v", what, err)
	}
}

// Logged logs err, the result of a test's cleanup step what, when it is
// not nil: cleanups tear down what a test made in its own sandbox, so
// one that fails decides nothing, but it is seen.
func Logged(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Logf("cleanup %s: %v", what, err)
	}
}
