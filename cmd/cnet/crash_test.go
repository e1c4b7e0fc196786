package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/testenv"
)

// action is one command of a scenario: a cnet command line, a CNI call
// made as a runtime makes it, or a plain command (ip netns add).
type action struct {
	args []string
	cni  *cniCall
	sh   []string
}

func cmd(args ...string) action { return action{args: args} }

func sh(args ...string) action { return action{sh: args} }

func cniAct(verb, id, conf string) action {
	call := cniCall{verb: verb, conf: conf}
	if id != "" {
		call.id, call.netns, call.ifname = id, "/run/netns/"+id, "eth0"
	}
	return action{cni: &call}
}

func (a action) String() string {
	switch {
	case a.cni != nil:
		return "CNI " + a.cni.verb + " " + a.cni.id
	case a.sh != nil:
		return strings.Join(a.sh, " ")
	}
	return "cnet " + strings.Join(a.args, " ")
}

// act runs a with extra environment; a death by signal N exits 128+N.
// "{root}" in an argument stands for c's root directory.
func (c *cli) act(a action, env ...string) result {
	c.t.Helper()
	a.args, a.sh = rooted(a.args, c.root), rooted(a.sh, c.root)
	switch {
	case a.sh != nil:
		out, err := testenv.Try(a.sh[0], a.sh[1:]...)
		if err != nil {
			return result{code: 1, stderr: out}
		}
		return result{stdout: out}
	case a.cni != nil:
		full := []string{"CNI_COMMAND=" + a.cni.verb, "CNI_PATH=/usr/lib/cni", "CNET_ROOT=" + c.root}
		if a.cni.id != "" {
			full = append(full, "CNI_CONTAINERID="+a.cni.id, "CNI_NETNS="+a.cni.netns, "CNI_IFNAME="+a.cni.ifname)
		}
		if a.cni.args != "" {
			full = append(full, "CNI_ARGS="+a.cni.args)
		}
		return runProc(c.t, bin.cnet, nil, append(full, env...), a.cni.conf)
	}
	return runProc(c.t, bin.cnet, append([]string{"--root", c.root}, a.args...), append(os.Environ(), env...), "")
}

func rooted(args []string, root string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "{root}", root)
	}
	return out
}

// labFile is an action that writes a lab file into the root directory
// ({root}/NAME.yaml), and the action that applies it.
func labFile(name, yaml string) (write, apply action) {
	path := "{root}/" + name + ".yaml"
	return sh("sh", "-c", "cat > "+path+" <<'EOF'\n"+yaml+"EOF\n"), cmd("apply", "-f", path)
}

// The direct links, their removal and static routes come from lab files:
// two containers joined by a link (and, in the third, a route over it).
var (
	writeBare, applyBare     = labFile("bare", "lab: crash\ncontainers:\n  a: {}\n  b: {}\n")
	writeLinked, applyLinked = labFile("linked", "lab: crash\ncontainers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, ip: 10.77.0.1/30}\n    b: {container: b, ip: 10.77.0.2/30}\n")
	writeRouted, applyRouted = labFile("routed", "lab: crash\ncontainers:\n  a:\n    routes: [{to: 10.78.0.0/24, via: 10.77.0.2}]\n  b: {}\nlinks:\n  - a: {container: a, ip: 10.77.0.1/30}\n    b: {container: b, ip: 10.77.0.2/30}\n")
)

// must runs a and fails the test unless it succeeds.
func (c *cli) must(a action) {
	c.t.Helper()
	if r := c.act(a); r.code != 0 {
		c.t.Fatalf("%s: exit %d\n%s%s", a, r.code, r.stdout, r.stderr)
	}
}

func runProc(t testing.TB, path string, args, env []string, stdin string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("%s %s: %v", path, strings.Join(args, " "), err)
	}
	return r
}

// full is the whole observable state of c's cnet: the sandbox's kernel
// objects and files (testenv.Snapshot), the state database and what the
// name server serves.
func (c *cli) full() string {
	c.t.Helper()
	return testenv.Full(c.t, c.root, filepath.Join(c.root, "run"))
}

// settled is full once no veth of a deleted namespace is still going.
func (c *cli) settled() string {
	c.t.Helper()
	testenv.Settled(c.t)
	return c.full()
}

// waitFull polls until the full state equals one of want, and returns it.
func (c *cli) waitFull(want ...string) string {
	c.t.Helper()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = c.full()
		for _, w := range want {
			if got == w {
				return got
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for i, w := range want {
				fmt.Fprintf(&b, "\nagainst expected state %d (+ got, - want):\n%s", i, testenv.Diff(got, w))
			}
			c.t.Fatalf("the machine is in none of the expected states%s", b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// podConf is a CNI configuration for network podnet, with a published port.
func podConf(verb string, extra string) string {
	conf := bridgeConf("1.1.0", "podnet", "10.66.0.0/24", "")
	conf = strings.TrimSuffix(strings.TrimSpace(conf), "}")
	if verb == "ADD" || verb == "DEL" {
		conf += `,"runtimeConfig":{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}],"aliases":{"podnet":["webby"]}}`
	}
	return conf + extra + "}"
}

// crashScenarios are every mutating operation, with what sets the stage,
// the operation, and what takes its result back to the stage.
var crashScenarios = []struct {
	name  string
	op    string // the operation's name as the engine's hook reports it
	setup []action
	do    action
	inv   []action
}{
	{"network-create", "network create", nil,
		cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), []action{cmd("network", "rm", "n1")}},
	{"network-create-internal", "network create", []action{cmd("network", "create", "n3", "--subnet", "172.20.0.0/24")},
		cmd("network", "create", "n1", "--subnet", "172.18.0.0/24", "--internal"), []action{cmd("network", "rm", "n1")}},
	{"create", "create", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24")},
		cmd("create", "a", "--network", "n1", "--alias", "web"), []action{cmd("rm", "a")}},
	{"create-default-network", "create", nil,
		cmd("create", "a"), []action{cmd("rm", "a"), cmd("network", "rm", "cnet")}},
	{"create-published", "create", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24")},
		cmd("create", "a", "--network", "n1", "-p", "8080:80", "-p", "127.0.0.1:8081:81/udp"), []action{cmd("rm", "a")}},
	{"connect", "connect", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("network", "create", "n2", "--subnet", "172.19.0.0/24"), cmd("create", "a", "--network", "n1")},
		cmd("connect", "n2", "a"), []action{cmd("disconnect", "n2", "a")}},
	{"disconnect", "disconnect", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("network", "create", "n2", "--subnet", "172.19.0.0/24"), cmd("create", "a", "--network", "n1"), cmd("connect", "n2", "a")},
		cmd("disconnect", "n2", "a"), []action{cmd("connect", "n2", "a")}},
	{"publish", "publish", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("create", "a", "--network", "n1"), cmd("publish", "a", "9090:90")},
		cmd("publish", "a", "8080:80", "127.0.0.1:8081:81/udp"), []action{cmd("unpublish", "a", "8080:80", "127.0.0.1:8081:81/udp")}},
	{"unpublish", "unpublish", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("create", "a", "--network", "n1", "-p", "9090:90"), cmd("publish", "a", "8080:80", "127.0.0.1:8081:81/udp")},
		cmd("unpublish", "a", "8080:80", "127.0.0.1:8081:81/udp"), []action{cmd("publish", "a", "8080:80", "127.0.0.1:8081:81/udp")}},
	{"rm", "rm", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("create", "a", "--network", "n1", "-p", "8080:80")},
		cmd("rm", "a"), []action{cmd("create", "a", "--network", "n1", "-p", "8080:80")}},
	{"rm-two", "rm", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("create", "a", "--network", "n1"), cmd("create", "b", "--network", "n1")},
		cmd("rm", "a", "b"), []action{cmd("create", "a", "--network", "n1"), cmd("create", "b", "--network", "n1")}},
	{"network-rm", "network rm", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24")},
		cmd("network", "rm", "n1"), []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24")}},
	{"network-rm-force", "network rm", []action{cmd("network", "create", "n1", "--subnet", "172.18.0.0/24"), cmd("network", "create", "n2", "--subnet", "172.19.0.0/24"), cmd("create", "a", "--network", "n1"), cmd("connect", "n2", "a")},
		cmd("network", "rm", "--force", "n2"), []action{cmd("network", "create", "n2", "--subnet", "172.19.0.0/24"), cmd("connect", "n2", "a")}},
	{"cni-add-new-network", "cni add", []action{sh("ip", "netns", "add", "pod1")},
		cniAct("ADD", "pod1", podConf("ADD", "")), []action{cniAct("DEL", "pod1", podConf("DEL", "")), cmd("network", "rm", "podnet")}},
	{"cni-add", "cni add", []action{sh("ip", "netns", "add", "pod0"), sh("ip", "netns", "add", "pod1"), cniAct("ADD", "pod0", podConf("", ""))},
		cniAct("ADD", "pod1", podConf("ADD", "")), []action{cniAct("DEL", "pod1", podConf("DEL", ""))}},
	{"cni-del", "cni del", []action{sh("ip", "netns", "add", "pod1"), cniAct("ADD", "pod1", podConf("ADD", ""))},
		cniAct("DEL", "pod1", podConf("DEL", "")), []action{cniAct("ADD", "pod1", podConf("ADD", ""))}},
	{"link", "link", []action{writeBare, writeLinked, applyBare},
		applyLinked, []action{applyBare}},
	{"unlink", "unlink", []action{writeBare, writeLinked, applyLinked},
		applyBare, []action{applyLinked}},
	{"route", "route", []action{writeLinked, writeRouted, applyLinked},
		applyRouted, []action{applyLinked}},
	{"cni-gc", "cni gc", []action{sh("ip", "netns", "add", "pod1"), sh("ip", "netns", "add", "pod2"), cniAct("ADD", "pod1", podConf("", "")), cniAct("ADD", "pod2", podConf("ADD", ""))},
		cniAct("GC", "", podConf("GC", `,"cni.dev/valid-attachments":[{"containerID":"pod1","ifname":"eth0"}]`)), []action{cniAct("ADD", "pod2", podConf("ADD", ""))}},
}

// TestCrashAtEveryStep kills cnet with SIGKILL after each step of each
// mutating operation, and then inside the steps, after each kernel change
// (no deferred code runs: what a power cut or an OOM kill leaves), then
// lets the next command resolve what it left: `cnet
// gc` after even steps, an unrelated command that is refused (`cnet rm
// ghost`) after odd ones. The machine must then be exactly as before or as
// after the operation: links, addresses, routes, namespaces, /etc/netns,
// the whole nftables ruleset, what the name server serves, and every
// bucket of the state database. A second `cnet gc` must find nothing to do.
// Each scenario runs in a sandbox of its own, two at a time.
func TestCrashAtEveryStep(t *testing.T) {
	testenv.RequirePrivileged(t)
	var runs map[string]*testenv.Isolated
	if !testenv.InIsolation(t.Name() + "/" + isolatedName(t)) {
		var names []string
		for _, s := range crashScenarios {
			names = append(names, t.Name()+"/"+s.name)
		}
		runs = map[string]*testenv.Isolated{}
		for _, r := range testenv.Isolate(t, names, 4) {
			runs[r.Name] = r
		}
	}
	total := 0
	for _, s := range crashScenarios {
		t.Run(s.name, func(t *testing.T) {
			if r := runs[t.Name()]; r != nil {
				for _, l := range r.Output {
					t.Log(l)
				}
				if !r.Passed {
					t.Fatalf("%v", r.Err)
				}
				n, err := strconv.Atoi(r.Values["points"])
				if err != nil || n == 0 {
					t.Fatalf("the scenario reported no crash points: %q", r.Values["points"])
				}
				total += n
				return
			}
			c := newCLI(t)
			t.Cleanup(func() {
				for _, a := range s.setup {
					if a.sh != nil && a.sh[0] == "ip" {
						testenv.Try("ip", "netns", "del", a.sh[3])
					}
				}
			})
			// The state database exists from the first command on.
			c.ok("network", "create", "n0", "--subnet", "172.17.0.0/24")
			c.ok("network", "rm", "n0")
			for _, a := range s.setup {
				c.must(a)
			}
			before := c.settled()
			undo := func() {
				for _, a := range s.inv {
					c.must(a)
				}
				c.waitFull(before)
			}
			c.must(s.do)
			after := c.settled()
			if after == before {
				t.Fatalf("%s changed nothing", s.do)
			}
			undo()
			// Between steps, then inside them: after every kernel change.
			points := 0
			for _, env := range []string{"CNET_TEST_CRASH_AFTER", "CNET_TEST_CRASH_WITHIN"} {
				first := 0
				if env == "CNET_TEST_CRASH_WITHIN" {
					first = 1
				}
				for k := first; ; k++ {
					r := c.act(s.do, fmt.Sprintf("%s=%s:%d", env, s.op, k))
					if r.code == 0 {
						undo() // past the last step: the operation simply completed
						break
					}
					if r.code != 128+int(syscall.SIGKILL) {
						t.Fatalf("%s=%d: exit %d, want death by SIGKILL\n%s%s", env, k, r.code, r.stdout, r.stderr)
					}
					points++
					if k%2 == 0 {
						c.ok("gc")
					} else if r := c.run("rm", "ghost"); r.code != exitNotFound {
						t.Fatalf("%s=%d: cnet rm ghost: exit %d %s", env, k, r.code, r.stderr)
					} else if strings.Contains(r.stderr, "could not finish") {
						t.Fatalf("%s=%d: the interrupted operation was not resolved:\n%s", env, k, r.stderr)
					}
					got := c.waitFull(before, after)
					if again := c.ok("gc"); !strings.Contains(again, "nothing to do") {
						t.Errorf("%s=%d: gc still acts after recovery:\n%s", env, k, again)
					}
					if got == after {
						undo()
					}
				}
			}
			testenv.Report(t, "points", points)
		})
	}
	if runs != nil {
		t.Logf("crash injection points covered: %d in %d scenarios", total, len(crashScenarios))
	}
}

// isolatedName is the subtest this process runs in isolation, if any.
func isolatedName(t *testing.T) string {
	name, _ := strings.CutPrefix(os.Getenv("CNET_TEST_ISOLATED"), t.Name()+"/")
	return name
}
