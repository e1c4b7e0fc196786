package main

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// TestReadsLeaveInterruptedWork: commands that only read, run over an
// operation a crash interrupted, change neither the machine nor the state
// database, and each says once what is pending; the next change resolves
// it.
func TestReadsLeaveInterruptedWork(t *testing.T) {
	testenv.RequirePrivileged(t)
	c := newCLI(t)
	c.ok("network", "create", "seed", "--subnet", "172.18.0.0/24")
	c.ok("create", "web", "--network", "seed", "-p", "8080:80")
	c.env = []string{"CNET_TEST_CRASH_AFTER=create:2"}
	if r := c.run("create", "half", "--network", "seed"); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("crash injection: exit %d, want %d", r.code, 128+int(syscall.SIGKILL))
	}
	c.env = nil
	if _, err := os.Stat("/run/netns/half"); err != nil {
		t.Fatalf("the crash left no namespace half to recover: %v", err)
	}
	before, sum := testenv.Snapshot(t), stateSum(t, c.root)
	for _, args := range [][]string{{"ls"}, {"inspect", "web"}, {"network", "ls"}, {"network", "inspect", "seed"},
		{"port", "web"}, {"graph"}, {"resolve", "web"}, {"gc", "--dry-run"}} {
		name := "cnet " + strings.Join(args, " ")
		r := c.run(args...)
		if r.code != 0 {
			t.Fatalf("%s over an interrupted operation: exit %d %s", name, r.code, r.stderr)
		}
		if want := map[string]string{"port": "8080", "gc": "would do"}[args[0]]; want == "" && !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, want) {
			t.Errorf("%s does not show what is committed:\n%s", name, r.stdout)
		}
		if args[0] == "ls" && strings.Contains(r.stdout, "half") {
			t.Errorf("%s shows the uncommitted container half:\n%s", name, r.stdout)
		}
		const notice = "an interrupted operation (create half by pid "
		if args[0] != "gc" && (strings.Count(r.stderr, notice) != 1 || !strings.Contains(r.stderr, "the next change or `cnet gc` undoes it")) {
			t.Errorf("%s: stderr %q, want the pending create named once", name, r.stderr)
		}
		if after := testenv.Snapshot(t); after != before {
			t.Fatalf("%s recovered something:\n%s\nwant:\n%s", name, after, before)
		}
		if stateSum(t, c.root) != sum {
			t.Fatalf("%s changed the state database", name)
		}
	}
	// The next change undoes it first.
	if out := c.run("network", "create", "other", "--subnet", "172.18.1.0/24"); out.code != 0 || !strings.Contains(out.stderr, `undid "create"`) {
		t.Errorf("the next change: exit %d %q, want it to undo the interrupted create", out.code, out.stderr)
	}
	if _, err := os.Stat("/run/netns/half"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the interrupted container's namespace is still there: %v", err)
	}
}
