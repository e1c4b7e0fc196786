package netns

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// threadNetns is the inode of the calling thread's network namespace.
func threadNetns(t *testing.T) ID {
	t.Helper()
	id, err := IDOf("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDoFd runs a function inside another namespace and checks the rule
// Do, `cnet exec` and the bench rely on: the function sees the target
// namespace, its error comes back unchanged, and once DoFd returns no
// thread of the process is left in the target; a descriptor that is no
// namespace is refused with its name, without running the function.
func TestDoFd(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	// Create makes dir a mount point of its own (as /run/netns is).
	t.Cleanup(func() { testenv.Logged(t, "unmount "+dir, unix.Unmount(dir, unix.MNT_DETACH)) })
	ns, err := Create(dir, "dofd", func(*nl.SocketHandle) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer func() { testenv.Logged(t, "remove dofd", Remove(dir, "dofd")) }()
	target, err := IDOf(dir + "/dofd")
	if err != nil {
		t.Fatal(err)
	}
	if threadNetns(t) == target {
		t.Fatal("the test already runs in the target namespace")
	}

	sentinel := errors.New("from inside")
	for range 20 { // enough rounds to reuse threads a switch back left behind
		var inside ID
		err := DoFd(ns.Fd(), "dofd", func() error {
			inside = threadNetns(t)
			return sentinel
		})
		if !errors.Is(err, sentinel) {
			t.Fatalf("DoFd: got %v, want the function's own error", err)
		}
		if inside != target {
			t.Fatalf("the function ran in namespace %d, want the target %d", inside, target)
		}
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			id, err := IDOf("/proc/self/task/" + task.Name() + "/ns/net")
			if err != nil {
				continue // the thread ended meanwhile
			}
			if id == target {
				t.Fatalf("thread %s is still in the target namespace after DoFd returned", task.Name())
			}
		}
	}

	// A descriptor that is no namespace: setns fails, fn never runs.
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "dir", f)
	ran := false
	err = DoFd(int(f.Fd()), "not-a-netns", func() error { ran = true; return nil })
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "setns not-a-netns") {
		t.Errorf("DoFd on a directory: got %v, want setns not-a-netns: EINVAL", err)
	}
	if ran {
		t.Error("the function ran although the switch failed")
	}
}
