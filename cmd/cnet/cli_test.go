package main

// Tier 3 for the command: the real cnet and echo-server binaries, run as
// separate processes inside the test sandbox.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/testenv"
)

var bin struct{ cnet, echo string }

func TestMain(m *testing.M) {
	if testenv.InSandbox() {
		dir, err := os.MkdirTemp("", "cnet-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Chmod(dir, 0o755) // the not-root test runs it as nobody
		bin.cnet, bin.echo = filepath.Join(dir, "cnet"), filepath.Join(dir, "echo-server")
		for _, b := range [][2]string{{bin.cnet, "."}, {bin.echo, "../echo-server"}} {
			if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b[1], err, out)
				os.Exit(1)
			}
		}
		testenv.Main(cleanup{m, dir})
		return
	}
	testenv.Main(m)
}

// cleanup removes the binaries once the tests have run.
type cleanup struct {
	m   *testing.M
	dir string
}

func (c cleanup) Run() int {
	defer os.RemoveAll(c.dir)
	return c.m.Run()
}

// result is one finished cnet process.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs cnet against a test's root.
type cli struct {
	t    *testing.T
	root string
	env  []string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	testenv.RequirePrivileged(t)
	c := &cli{t: t, root: t.TempDir()}
	before := testenv.Snapshot(t)
	t.Cleanup(func() {
		c.env = nil
		var cs []struct{ Name string }
		if r := c.run("ls", "--json"); r.code == 0 {
			json.Unmarshal([]byte(r.stdout), &cs)
		}
		for _, ct := range cs {
			c.run("rm", "-f", "--grace", "1s", ct.Name)
		}
		var ns []struct{ Name string }
		if r := c.run("network", "ls", "--json"); r.code == 0 {
			json.Unmarshal([]byte(r.stdout), &ns)
		}
		for _, n := range ns {
			c.run("network", "rm", "--force", n.Name)
		}
		testenv.WaitSnapshot(t, before)
	})
	return c
}

func (c *cli) run(args ...string) result {
	return c.runWith(nil, args...)
}

func (c *cli) runWith(attr *syscall.SysProcAttr, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.cnet, append([]string{"--root", c.root}, args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.SysProcAttr = attr
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
		c.t.Fatalf("cnet %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs cnet and fails the test unless it exits 0.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("cnet %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (c *cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("cnet %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestSeedWalkthrough is the seed's scenario, command by command.
func TestSeedWalkthrough(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "seed", "--subnet", "172.18.0.0/24", "--bridge", "cont-br0")
	var c1 cnet.Container
	c.json(&c1, "create", "container-1", "--network", "seed")
	if got := c1.Endpoints[0].Address.String(); got != "172.18.0.2/24" {
		t.Fatalf("container-1 got %s, want 172.18.0.2/24", got)
	}
	pid := strings.TrimSpace(c.ok("run", "-d", "--name", "container-2", "--network", "seed", "--", bin.echo))
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := testenv.Try("curl", "-sf", "--max-time", "1", "http://172.18.0.3:8000/echo")
		return err
	})
	for _, p := range [][]string{
		{"exec", "container-1", "--", "ping", "-c1", "-W2", "172.18.0.3"},
		{"exec", "container-2", "--", "ping", "-c1", "-W2", "172.18.0.2"},
		{"exec", "container-1", "--", "ping", "-c1", "-W2", "172.18.0.1"},
	} {
		c.ok(p...)
	}
	testenv.Run(t, "ping", "-c1", "-W2", "172.18.0.2")
	testenv.Run(t, "ping", "-c1", "-W2", "172.18.0.3")

	var echo struct {
		Header map[string][]string `json:"header"`
		Body   string              `json:"body"`
	}
	out := c.ok("exec", "container-1", "--", "curl", "-s", "--max-time", "5", "http://172.18.0.3:8000/echo")
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo.Body != "Echo response" || len(echo.Header["User-Agent"]) == 0 {
		t.Errorf("GET /echo from container-1: %v %q", err, out)
	}
	out = testenv.Run(t, "curl", "-s", "--max-time", "5", "-d", "hello", "http://172.18.0.3:8000/echo")
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo.Body != "hello" {
		t.Errorf("POST /echo from the host: %v %q", err, out)
	}
	// cnet's name server on the gateway, the network's search domain first.
	want := nsfiles.Resolv(fmt.Sprintf("# generated by cnet (%s); edits are overwritten", instanceOf(c.root)), nil,
		nsfiles.Local{Servers: []netip.Addr{netip.MustParseAddr("172.18.0.1")}, Search: []string{"seed.cnet"}},
		nsfiles.ReadUpstream(nsfiles.HostResolv, nsfiles.SystemdResolv))
	if got := c.ok("exec", "container-1", "--", "cat", "/etc/resolv.conf"); got != want {
		t.Errorf("resolv.conf inside container-1:\n%s\nwant:\n%s", got, want)
	}
	if got := c.ok("exec", "container-1", "--", "ls", "/sys/class/net"); got != "eth0\nlo\n" {
		t.Errorf("/sys/class/net inside: %q, want eth0 and lo", got)
	}
	if logs := c.ok("logs", "container-2"); !strings.Contains(logs, `level=INFO msg="web server is running" listenAddr=:8000`) {
		t.Errorf("logs: %q", logs)
	}
	var insp cnet.Container
	c.json(&insp, "inspect", "container-2")
	if fmt.Sprint(insp.PIDs) != "["+pid+"]" {
		t.Errorf("inspect pids = %v, want [%s]", insp.PIDs, pid)
	}
	if len(insp.Interfaces) != 2 || insp.Interfaces[1].MAC != "02:63:ac:12:00:03" {
		t.Errorf("inspect interfaces = %+v", insp.Interfaces)
	}
	table := c.ok("ls")
	for _, w := range []string{"container-1", "172.18.0.2/24", "container-2", pid} {
		if !strings.Contains(table, w) {
			t.Errorf("ls lacks %q:\n%s", w, table)
		}
	}
	var nets []cnet.Network
	c.json(&nets, "network", "ls")
	if len(nets) != 1 || nets[0].Bridge != "cont-br0" || len(nets[0].Containers) != 2 {
		t.Errorf("network ls = %+v", nets)
	}
	if r := c.run("rm", "container-2"); r.code != exitBusy || !strings.Contains(r.stderr, pid) {
		t.Errorf("rm with a process inside: exit %d %q, want %d naming pid %s", r.code, r.stderr, exitBusy, pid)
	}
	c.ok("rm", "-f", "container-1", "container-2")
	c.ok("network", "rm", "seed")
}

func instanceOf(root string) string {
	e, _ := cnet.Open(cnet.Root(root))
	return e.Instance()
}

// TestRefusals: every refusal exits with its code, names the bad value,
// and changes nothing.
func TestRefusals(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "base", "--subnet", "172.29.0.0/16")
	c.ok("create", "c1", "--network", "base")
	c.ok("run", "-d", "--name", "busy", "--network", "base", "--", "sleep", "300")
	before := testenv.Snapshot(t)
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"create", "a/b"}, exitInvalid, `"a/b"`},
		{[]string{"create", "x", "--ip", "999.1.1.1"}, exitInvalid, "999.1.1.1"},
		{[]string{"create", "x", "--dns", "nameserver"}, exitInvalid, "nameserver"},
		{[]string{"network", "create", "n", "--subnet", "bogus"}, exitInvalid, "bogus"},
		{[]string{"network", "create", "n", "--mtu", "10"}, exitInvalid, "68 to 65535"},
		{[]string{"network", "create", "n", "--gateway", "10.0.0.1"}, exitInvalid, "needs --subnet"},
		{[]string{"network", "create", "n", "--bridge", "this-name-is-too-long"}, exitInvalid, "at most 15 bytes"},
		{[]string{"create"}, exitInvalid, "accepts 1 arg"},
		{[]string{"create", "x", "--bogus"}, exitInvalid, "--bogus"},
		{[]string{"exec", "c1"}, exitInvalid, "requires at least 2 arg"},
		{[]string{"exec", "c1", "--"}, exitInvalid, "missing the command"},
		{[]string{"exec", "ghost", "--", "true"}, exitNotFound, `"ghost"`},
		{[]string{"rm", "c1", "ghost"}, exitNotFound, "nothing was removed"},
		{[]string{"network", "rm", "ghost"}, exitNotFound, `"ghost"`},
		{[]string{"logs", "c1"}, exitNotFound, "cnet run -d"},
		{[]string{"create", "c1", "--network", "base"}, exitExists, `"c1"`},
		{[]string{"network", "create", "base"}, exitExists, `"base"`},
		{[]string{"network", "create", "n", "--subnet", "172.29.5.0/24"}, exitConflict, "network base"},
		{[]string{"create", "x", "--network", "base", "--ip", "172.29.0.2"}, exitConflict, "container c1"},
		{[]string{"network", "rm", "base"}, exitBusy, "--force"},
		{[]string{"network", "create", "n", "--subnet", "10.0.0.0/30", "--gateway", "10.0.0.3"}, exitInvalid, "10.0.0.1 to 10.0.0.2"},
		{[]string{"rm", "busy"}, exitBusy, "-f"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := c.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.says) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.says)
			}
			if after := testenv.Snapshot(t); after != before {
				t.Errorf("refusal changed the sandbox:\n%s\nwant:\n%s", after, before)
			}
		})
	}
	t.Run("pool exhausted", func(t *testing.T) {
		// A host route over the whole pool leaves no free /24.
		testenv.Run(t, "ip", "route", "add", "10.89.0.0/16", "dev", "lo")
		defer testenv.Run(t, "ip", "route", "del", "10.89.0.0/16", "dev", "lo")
		snap := testenv.Snapshot(t)
		r := c.run("network", "create", "auto")
		if r.code != exitConflict || !strings.Contains(r.stderr, "10.89.0.0/16") || !strings.Contains(r.stderr, "--subnet") {
			t.Errorf("exit %d %q, want %d naming the pool and suggesting --subnet", r.code, r.stderr, exitConflict)
		}
		if after := testenv.Snapshot(t); after != snap {
			t.Errorf("refusal changed the sandbox")
		}
	})
	t.Run("not root", func(t *testing.T) {
		r := c.runWith(&syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "network", "create", "n")
		if r.code != exitNotPermit || !strings.Contains(r.stderr, "sudo") {
			t.Errorf("exit %d %q, want %d suggesting sudo", r.code, r.stderr, exitNotPermit)
		}
	})
}

// TestExec: exit status, command not found, signals, and run --rm.
func TestExec(t *testing.T) {
	c := newCLI(t)
	c.ok("create", "box")
	if r := c.run("exec", "box", "--", "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("exit status: got %d, want 3", r.code)
	}
	if r := c.run("exec", "box", "--", "no-such-command"); r.code != exitCmdNotFound {
		t.Errorf("missing command: got %d, want %d", r.code, exitCmdNotFound)
	}
	if r := c.run("exec", "box", "--", "sh", "-c", "echo out; echo err >&2"); r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("stdio: got %q %q", r.stdout, r.stderr)
	}
	// A SIGTERM sent to cnet reaches the command.
	cmd := exec.Command(bin.cnet, "--root", c.root, "exec", "box", "--", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var ct cnet.Container
		if r := c.run("inspect", "box"); r.code == 0 && json.Unmarshal([]byte(r.stdout), &ct) == nil && len(ct.PIDs) > 0 {
			return nil
		}
		return errors.New("sleep not running inside yet")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Errorf("after SIGTERM: %v, want exit %d", err, 128+int(syscall.SIGTERM))
	}
	// rm -f: SIGTERM, then SIGKILL after the grace period for a process
	// that ignores SIGTERM.
	c.ok("run", "-d", "--name", "stubborn", "--", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")
	testenv.Eventually(t, 10*time.Second, func() error {
		if r := c.run("logs", "stubborn"); !strings.Contains(r.stdout, "ready") {
			return errors.New("the shell has not set its trap yet")
		}
		return nil
	})
	start := time.Now()
	c.ok("rm", "-f", "--grace", "500ms", "stubborn")
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("rm -f returned after %s, before the grace period ended", d)
	}
	if r := c.run("inspect", "stubborn"); r.code != exitNotFound {
		t.Errorf("stubborn container survived rm -f: exit %d", r.code)
	}
	// run --rm removes the container when the command ends.
	if r := c.run("run", "--rm", "--name", "once", "--", "sh", "-c", "exit 5"); r.code != 5 {
		t.Errorf("run --rm exit: got %d (%s), want 5", r.code, r.stderr)
	}
	if r := c.run("inspect", "once"); r.code != exitNotFound {
		t.Errorf("run --rm left the container: exit %d", r.code)
	}
}

// TestParallelCreates: 50 cnet processes at once all succeed, with
// distinct addresses and no lost records.
func TestParallelCreates(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "par", "--subnet", "10.77.0.0/24")
	const n = 50
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.run("create", fmt.Sprintf("p%02d", i), "--network", "par")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("create p%02d: exit %d %s", i, r.code, r.stderr)
		}
	}
	var cs []cnet.Container
	c.json(&cs, "ls")
	seen := map[string]string{}
	for _, ct := range cs {
		a := ct.Endpoints[0].IP().String()
		if other, dup := seen[a]; dup {
			t.Errorf("%s and %s share %s", ct.Name, other, a)
		}
		seen[a] = ct.Name
	}
	if len(cs) != n {
		t.Errorf("ls shows %d containers, want %d", len(cs), n)
	}
	if out := testenv.Run(t, "ip", "netns", "list"); strings.Count(out, "\n") != n {
		t.Errorf("kernel has %d namespaces, want %d", strings.Count(out, "\n"), n)
	}
}

// TestCrashAtEveryStep kills cnet with SIGKILL after each step of each
// operation (no deferred code runs), then runs `cnet gc`: the sandbox must
// be exactly in the state before or after the operation.
func TestCrashAtEveryStep(t *testing.T) {
	ops := []struct {
		op    string // operation name as the engine reports it
		setup [][]string
		do    []string
		inv   [][]string // what takes the after state back to the before state
	}{
		{"network create", nil, []string{"network", "create", "n1", "--subnet", "172.18.0.0/24"}, [][]string{{"network", "rm", "n1"}}},
		{"create", [][]string{{"network", "create", "n1", "--subnet", "172.18.0.0/24"}},
			[]string{"create", "a", "--network", "n1"}, [][]string{{"rm", "a"}}},
		{"create", nil, []string{"create", "a"}, [][]string{{"rm", "a"}, {"network", "rm", "cnet"}}}, // with the default network
		{"connect", [][]string{{"network", "create", "n1", "--subnet", "172.18.0.0/24"}, {"network", "create", "n2", "--subnet", "172.19.0.0/24"}, {"create", "a", "--network", "n1"}},
			[]string{"connect", "n2", "a"}, [][]string{{"disconnect", "n2", "a"}}},
		{"disconnect", [][]string{{"network", "create", "n1", "--subnet", "172.18.0.0/24"}, {"network", "create", "n2", "--subnet", "172.19.0.0/24"}, {"create", "a", "--network", "n1"}, {"connect", "n2", "a"}},
			[]string{"disconnect", "n2", "a"}, [][]string{{"connect", "n2", "a"}}},
		{"rm", [][]string{{"network", "create", "n1", "--subnet", "172.18.0.0/24"}, {"create", "a", "--network", "n1"}},
			[]string{"rm", "a"}, [][]string{{"create", "a", "--network", "n1"}}},
		{"network rm", [][]string{{"network", "create", "n1", "--subnet", "172.18.0.0/24"}},
			[]string{"network", "rm", "n1"}, [][]string{{"network", "create", "n1", "--subnet", "172.18.0.0/24"}}},
	}
	points := 0
	for _, o := range ops {
		t.Run(strings.Join(o.do, " "), func(t *testing.T) {
			c := newCLI(t)
			for _, s := range o.setup {
				c.ok(s...)
			}
			before := testenv.Settled(t)
			undo := func() {
				for _, cmd := range o.inv {
					c.ok(cmd...)
				}
				testenv.WaitSnapshot(t, before)
			}
			c.ok(o.do...)
			after := testenv.Settled(t)
			undo()
			for k := 0; ; k++ {
				c.env = []string{fmt.Sprintf("CNET_TEST_CRASH_AFTER=%s:%d", o.op, k)}
				r := c.run(o.do...)
				c.env = nil
				if r.code == 0 {
					undo() // past the last step: the operation simply completed
					break
				}
				if r.code != 128+int(syscall.SIGKILL) {
					t.Fatalf("step %d: exit %d, want death by SIGKILL\n%s", k, r.code, r.stderr)
				}
				points++
				c.ok("gc")
				got := waitEither(t, before, after)
				if got == after {
					undo()
				}
				if again := c.ok("gc"); !strings.Contains(again, "nothing to do") {
					t.Errorf("step %d: second gc still acts:\n%s", k, again)
				}
			}
		})
	}
	t.Logf("crash points covered: %d", points)
}

// waitEither polls until the sandbox equals one of the two states.
func waitEither(t *testing.T, a, b string) string {
	t.Helper()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got = testenv.Snapshot(t); got == a || got == b {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after gc the sandbox is neither before nor after\ngot:\n%s\nbefore:\n%s\nafter:\n%s", got, a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForwardDropWarning: a FORWARD chain with policy drop in another
// table (what Docker sets) is reported, because it drops container traffic
// whatever cnet allows.
func TestForwardDropWarning(t *testing.T) {
	c := newCLI(t)
	testenv.Run(t, "nft", "add", "table", "ip", "filter")
	t.Cleanup(func() { testenv.Try("nft", "delete", "table", "ip", "filter") })
	testenv.Run(t, "nft", "add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")
	r := c.run("network", "create", "n1", "--subnet", "172.18.0.0/24")
	if r.code != 0 || !strings.Contains(r.stderr, "ip filter chain FORWARD has policy drop") {
		t.Errorf("network create: exit %d, stderr %q; want a warning about ip filter FORWARD", r.code, r.stderr)
	}
	if r := c.run("gc"); !strings.Contains(r.stderr, "policy drop") {
		t.Errorf("gc did not warn: %q", r.stderr)
	}
	testenv.Run(t, "nft", "delete", "table", "ip", "filter")
	if r := c.run("gc"); strings.Contains(r.stderr, "policy drop") {
		t.Errorf("gc warns with no drop policy left: %q", r.stderr)
	}
}

// TestMTU: the network's MTU reaches the bridge and both ends of a veth.
func TestMTU(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "jumbo", "--subnet", "172.18.0.0/24", "--mtu", "9000")
	var ct cnet.Container
	c.json(&ct, "create", "big", "--network", "jumbo")
	for _, args := range [][]string{
		{"link", "show", "cnet-jumbo"},
		{"link", "show", ct.Endpoints[0].HostInterface},
		{"-n", "big", "link", "show", "eth0"},
	} {
		if out := testenv.Run(t, "ip", args...); !strings.Contains(out, "mtu 9000") {
			t.Errorf("ip %s: want mtu 9000\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestHelp: every command explains itself.
func TestHelp(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, args := range [][]string{{}, {"network"}, {"network", "create"}, {"network", "ls"}, {"network", "rm"}, {"network", "inspect"},
		{"create"}, {"connect"}, {"disconnect"}, {"ls"}, {"inspect"}, {"rm"}, {"exec"}, {"run"}, {"logs"}, {"gc"}, {"explain"}} {
		out, err := exec.Command(bin.cnet, append(args, "--help")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Errorf("cnet %s --help: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
