package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// envNested names the script a nested sandbox runs (see RunNested).
const envNested = "CNET_TEST_NESTED_SCRIPT"

// nestedMark separates what the script printed from the snapshot.
const nestedMark = "--- cnet nested sandbox snapshot ---\n"

// A test binary re-executed by RunNested runs the script and exits here,
// before TestMain, so no package's test set-up runs twice.
func init() {
	if path := os.Getenv(envNested); path != "" {
		os.Exit(nested(path))
	}
}

// RunNested runs script with `sh -e` in a sandbox of its own, nested in
// the test's: fresh network and mount namespaces (the test binary
// re-executed with CLONE_NEWNET|CLONE_NEWNS), made like the test sandbox
// (/ private, tmpfs on /run/netns and /etc/netns, lo up, ip_forward on).
// It returns what the script printed and the Snapshot of that sandbox
// once the script is done; the sandbox vanishes when the script ends, so
// the script must leave no process behind. t fails if the script does.
func RunNested(t testing.TB, script string) (stdout, snap string) {
	t.Helper()
	RequirePrivileged(t)
	path := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), envNested+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("nested sandbox: %v\n%s\nscript:\n%s", err, errb.String(), script)
	}
	stdout, snap, ok := strings.Cut(out.String(), nestedMark)
	if !ok {
		t.Fatalf("nested sandbox printed no snapshot:\n%s\n%s", out.String(), errb.String())
	}
	return stdout, snap
}

// nested is the re-executed test binary inside its new namespaces.
func nested(path string) int {
	// Never run a script in the machine's own network namespace: only
	// from within the test sandbox, and only in a namespace of its own.
	parent, _ := strconv.ParseUint(os.Getenv(envSandbox), 10, 64)
	self, err := netnsInode("/proc/self/ns/net")
	if !InSandbox() || err != nil || self == parent {
		fmt.Fprintf(os.Stderr, "testenv: refusing to run %s outside a nested sandbox\n", path)
		return 1
	}
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: nested sandbox setup: %v\n", err)
		return 1
	}
	cmd := exec.Command("sh", "-e", path)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: sh -e %s: %v\n", path, err)
		return 1
	}
	var failed error
	snap := snapshot(func(format string, args ...any) { failed = fmt.Errorf(format, args...) })
	if failed != nil {
		fmt.Fprintf(os.Stderr, "testenv: snapshot: %v\n", failed)
		return 1
	}
	fmt.Print(nestedMark + snap)
	return 0
}
