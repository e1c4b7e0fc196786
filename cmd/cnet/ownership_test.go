package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// sleepIn starts `ip netns exec NS sleep 300` and waits until the sleep
// runs inside the namespace. The returned channel closes when it exits;
// cleanup kills it by its PID.
func sleepIn(t *testing.T, ns string) (pid int, exited <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // a sleep of 300 s ends killed, by the test or by cnet: its exit status is the signal
		close(done)
	}()
	t.Cleanup(func() {
		// The process this test started, by PID; one that is gone already was killed.
		if err := cmd.Process.Kill(); !errors.Is(err, os.ErrProcessDone) {
			testenv.Logged(t, "kill sleep", err)
		}
		<-done
	})
	var want unix.Stat_t
	if err := unix.Stat("/run/netns/"+ns, &want); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), &st); err != nil {
			return err
		}
		if st.Ino != want.Ino {
			return fmt.Errorf("pid %d is not in %s yet", cmd.Process.Pid, ns)
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); !strings.HasSuffix(exe, "/sleep") {
			return fmt.Errorf("pid %d is still %s", cmd.Process.Pid, exe)
		}
		return nil
	})
	return cmd.Process.Pid, done
}

// TestRmAdoptedLeavesProcesses: a namespace made by `ip netns add` and
// adopted by `cnet connect` is not cnet's. `cnet rm`, with -f or without,
// takes cnet's endpoint out of it and leaves the namespace and the
// process running in it alone, and says so.
func TestRmAdoptedLeavesProcesses(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "base", "--subnet", "172.29.0.0/24")
	testenv.Run(t, "ip", "netns", "add", "adopted")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "adopted") })
	pid, exited := sleepIn(t, "adopted")
	for _, args := range [][]string{{"rm", "adopted"}, {"rm", "-f", "--grace", "1s", "adopted"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			c.ok("connect", "base", "adopted")
			if links := testenv.Run(t, "ip", "-n", "adopted", "-o", "link", "show"); !strings.Contains(links, "eth0") {
				t.Fatalf("connect gave the namespace no eth0:\n%s", links)
			}
			r := c.run(args...)
			if r.code != 0 {
				t.Fatalf("cnet %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			for _, s := range []string{"adopted", "made outside cnet", fmt.Sprint(pid), "running"} {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q does not mention %q", r.stderr, s)
				}
			}
			select {
			case <-exited:
				t.Fatalf("cnet %s stopped pid %d, which it never started, in a namespace it did not create", strings.Join(args, " "), pid)
			default:
			}
			if err := unix.Kill(pid, 0); err != nil {
				t.Fatalf("pid %d: %v", pid, err)
			}
			if _, err := os.Stat("/run/netns/adopted"); err != nil {
				t.Fatalf("the adopted namespace is gone: %v", err)
			}
			if links := testenv.Run(t, "ip", "-n", "adopted", "-o", "link", "show"); strings.Contains(links, "eth0") {
				t.Errorf("cnet's endpoint is still in the namespace:\n%s", links)
			}
			if veths := testenv.Run(t, "ip", "-o", "link", "show", "type", "veth"); veths != "" {
				t.Errorf("host veths left:\n%s", veths)
			}
			var cs []cnet.Container
			c.json(&cs, "ls")
			if len(cs) != 0 {
				t.Errorf("state still lists %+v", cs)
			}
			if out := c.ok("gc", "--dry-run"); strings.Contains(out, "adopted") {
				t.Errorf("gc finds something to do about the namespace:\n%s", out)
			}
		})
	}
}

// loAlias returns the alias of lo in a namespace.
func loAlias(t *testing.T, ns string) string {
	t.Helper()
	var links []struct {
		Alias string `json:"ifalias"`
	}
	out := testenv.Run(t, "ip", "-n", ns, "-j", "link", "show", "lo")
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -n %s -j link show lo: %v\n%s", ns, err, out)
	}
	return links[0].Alias
}

// TestRmIgnoresRewrittenMark: the mark on a container's lo is an alias
// any process inside may rewrite. A container that rewrites it is still
// removed (state and the namespace's identity recorded at create say it
// is cnet's), and one that writes another container's mark there never
// gets cnet to act on the other one.
func TestRmIgnoresRewrittenMark(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "base", "--subnet", "172.29.0.0/24")
	for _, name := range []string{"rewrites", "victim", "impostor"} {
		c.ok("create", name, "--network", "base")
	}
	testenv.Run(t, "ip", "netns", "exec", "rewrites", "ip", "link", "set", "lo", "alias", "not-cnet-any-more")
	c.ok("rm", "rewrites")
	if _, err := os.Stat("/run/netns/rewrites"); err == nil {
		t.Error("/run/netns/rewrites is still there")
	}

	victimMark := loAlias(t, "victim")
	if !strings.HasPrefix(victimMark, "cnet/") {
		t.Fatalf("victim's lo carries %q, not a cnet mark", victimMark)
	}
	testenv.Run(t, "ip", "netns", "exec", "impostor", "ip", "link", "set", "lo", "alias", victimMark)
	c.ok("rm", "impostor")
	c.ok("gc")
	if got := loAlias(t, "victim"); got != victimMark {
		t.Errorf("victim's mark is now %q, want %q", got, victimMark)
	}
	var v cnet.Container
	c.json(&v, "inspect", "victim")
	if len(v.Interfaces) < 2 {
		t.Errorf("victim lost its interfaces: %+v", v.Interfaces)
	}
	var cs []cnet.Container
	c.json(&cs, "ls")
	if len(cs) != 1 || cs[0].Name != "victim" {
		t.Errorf("containers = %+v, want victim alone", cs)
	}
	c.ok("rm", "victim")
}
