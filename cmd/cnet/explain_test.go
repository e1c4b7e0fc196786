package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/state"
	"github.com/cnetdev/cnet/internal/testenv"
)

// explain runs `cnet explain SRC DST --json` and checks its exit status
// agrees with the verdict (1 when dropped, 0 otherwise).
func (c *cli) explain(src, dst string) cnet.Explanation {
	c.t.Helper()
	r := c.run("explain", src, dst, "--json")
	var e cnet.Explanation
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		c.t.Fatalf("cnet explain %s %s: exit %d, %v\n%s%s", src, dst, r.code, err, r.stdout, r.stderr)
	}
	if want := map[string]int{cnet.Dropped: exitDropped}[e.Verdict]; r.code != want {
		c.t.Errorf("cnet explain %s %s: verdict %s, exit %d, want exit %d", src, dst, e.Verdict, r.code, want)
	}
	return e
}

// expect checks a verdict and its cause, that the reason says each of
// says, and returns the first fix.
func expect(t *testing.T, e cnet.Explanation, verdict, cause string, says ...string) string {
	t.Helper()
	text, _ := json.MarshalIndent(e, "", "  ")
	if e.Verdict != verdict || e.Cause != cause {
		t.Fatalf("%s -> %s: %s (%s), want %s (%s)\n%s", e.Src, e.Dst, e.Verdict, e.Cause, verdict, cause, text)
	}
	for _, s := range says {
		if !strings.Contains(e.Reason, s) {
			t.Errorf("%s -> %s: reason %q lacks %q", e.Src, e.Dst, e.Reason, s)
		}
	}
	if verdict == cnet.Dropped && len(e.Fix) == 0 {
		t.Errorf("%s -> %s: dropped without a fix\n%s", e.Src, e.Dst, text)
	}
	if len(e.Fix) > 0 {
		return e.Fix[0]
	}
	return ""
}

// applyFix runs a suggested fix as given: cnet commands through this
// test's cnet, anything else through sh.
func (c *cli) applyFix(fix string) {
	c.t.Helper()
	if !strings.HasPrefix(fix, "cnet ") {
		testenv.Run(c.t, "sh", "-c", fix)
		return
	}
	for _, cmd := range strings.Split(fix, " && ") {
		c.ok(strings.Fields(strings.TrimPrefix(cmd, "cnet "))...)
	}
}

// listening waits until a socket listens on tcp port in a namespace, read
// with ss independently of cnet.
func listening(t *testing.T, ns string, port int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		out, err := testenv.Try("ip", "netns", "exec", ns, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if err != nil || strings.TrimSpace(out) == "" {
			return fmt.Errorf("nothing listens on %d in %s yet: %v %s", port, ns, err, out)
		}
		return nil
	})
}

// serve runs echo-server (with args) inside a container through
// `cnet exec`, and stops it by PID when the test ends.
func (c *cli) serve(container string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(bin.cnet, append([]string{"--root", c.root, "exec", container, "--", bin.echo}, args...)...)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		// A process the test started: stopped, as asked, then reaped.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
}

// serveIn runs echo-server in a namespace that is not a container.
func serveIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin.echo}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A process the test started: killed, as asked, then reaped.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// TestExplainIsolation: two networks share nothing; the named fix
// (connect) makes the connection work.
func TestExplainIsolation(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("network", "create", "b", "--subnet", "172.19.0.0/24")
	c.ok("create", "c1", "--network", "a")
	c.ok("run", "-d", "--name", "c2", "--network", "b", "--", bin.echo)
	listening(t, "c2", 8000)

	fix := expect(t, c.explain("c1", "c2:8000"), cnet.Dropped, "isolation", "c1 (on a)", "172.19.0.2 on b", "isolated")
	if fix != "cnet connect b c1" {
		t.Errorf("fix %q, want cnet connect b c1", fix)
	}
	blocked(t, "c1 to c2 across networks", "c1", "172.19.0.2:8000")
	c.applyFix(fix)
	e := c.explain("c1", "c2:8000")
	expect(t, e, cnet.Reachable, "", "echo-server")
	if e.Address.String() != "172.19.0.2" || len(e.Hops) != 2 || e.Hops[0].Out != "eth1" {
		t.Errorf("after connect: address %s, %d hops, out %s; want 172.19.0.2 straight through eth1", e.Address, len(e.Hops), e.Hops[0].Out)
	}
	reach(t, "c1 to c2 on their shared network", "c1", "172.19.0.2:8000")
}

// TestExplainInternal: nothing is routed into or out of an internal
// network; connecting to it is the fix.
func TestExplainInternal(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("network", "create", "vault", "--subnet", "172.20.0.0/24", "--internal")
	c.ok("create", "c1", "--network", "a")
	c.ok("run", "-d", "--name", "v", "--network", "vault", "--", bin.echo)
	listening(t, "v", 8000)

	expect(t, c.explain("v", "c1"), cnet.Dropped, "internal", "only on internal network vault")
	fix := expect(t, c.explain("c1", "v:8000"), cnet.Dropped, "internal", "network vault is internal")
	if fix != "cnet connect vault c1" {
		t.Errorf("fix %q, want cnet connect vault c1", fix)
	}
	blocked(t, "c1 into the internal network", "c1", "172.20.0.2:8000")
	expect(t, c.explain("host", "v:8000"), cnet.Reachable, "")
	reach(t, "the host to an internal network", "", "172.20.0.2:8000")
	c.applyFix(fix)
	expect(t, c.explain("c1", "v:8000"), cnet.Reachable, "", "echo-server")
	reach(t, "c1 connected to vault", "c1", "172.20.0.2:8000")
}

// TestExplainForwardingAndRoutes: ip_forward off, then no route beyond
// the host; each fixed as told, and the far namespace reached.
func TestExplainForwardingAndRoutes(t *testing.T) {
	c := newCLI(t)
	lan(t)
	serveIn(t, "lan", "-listen", ":8000")
	listening(t, "lan", 8000)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("create", "c1", "--network", "a")
	t.Cleanup(func() {
		testenv.Logged(t, `os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)`, os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644))
	})
	testenv.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")

	fix := expect(t, c.explain("c1", "192.168.77.2:8000"), cnet.Dropped, "ip_forward", "net.ipv4.ip_forward is off in the host")
	blocked(t, "c1 out with forwarding off", "c1", "192.168.77.2:8000")
	c.applyFix(fix)
	e := c.explain("c1", "192.168.77.2:8000")
	expect(t, e, cnet.Reachable, "", "echo-server")
	if got := hops(e); got != "c1 host lan" {
		t.Errorf("hops %s, want c1 host lan", got)
	}
	if !hasStep(e, "snat", "masqueraded to 192.168.77.1") {
		t.Errorf("no masquerade step:\n%s", steps(e))
	}
	reach(t, "c1 out with forwarding on", "c1", "192.168.77.2:8000")

	// 203.0.113.9 lives in lan, but the host has no route to it.
	testenv.Run(t, "ip", "-n", "lan", "addr", "add", "203.0.113.9/32", "dev", "lo")
	fix = expect(t, c.explain("c1", "203.0.113.9:8000"), cnet.Dropped, "no_route", "the host has no route to 203.0.113.9")
	if !strings.HasPrefix(fix, "add a route: ip route add 203.0.113.9 via") {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "c1 with no route on the host", "c1", "203.0.113.9:8000")
	testenv.Run(t, "ip", "route", "add", "203.0.113.9", "via", "192.168.77.2")
	t.Cleanup(func() { testenv.Try("ip", "route", "del", "203.0.113.9") })
	expect(t, c.explain("c1", "203.0.113.9:8000"), cnet.Reachable, "", "echo-server")
	reach(t, "c1 with the route added", "c1", "203.0.113.9:8000")
}

// TestExplainForwardPolicy: another tool's forward chain with policy
// drop (Docker's FORWARD DROP) drops even traffic inside one network when
// br_netfilter shows it to the forward hook; the rules explain suggests
// let it through.
func TestExplainForwardPolicy(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("create", "c1", "--network", "a")
	c.ok("run", "-d", "--name", "c3", "--network", "a", "--", bin.echo)
	listening(t, "c3", 8000)
	if v, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); strings.TrimSpace(string(v)) != "1" {
		t.Skip("this kernel does not show bridged packets to the forward hook (br_netfilter off): the bridged case cannot arise")
	}
	testenv.Run(t, "nft", "add", "table", "ip", "filter")
	t.Cleanup(func() { testenv.Try("nft", "delete", "table", "ip", "filter") })
	testenv.Run(t, "nft", "add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")

	fix := expect(t, c.explain("c1", "c3:8000"), cnet.Dropped, "forward_policy",
		"policy drop of ip filter chain FORWARD", "bridge-nf-call-iptables=1")
	if fix != `nft insert rule ip filter FORWARD iifname "cnet-a" accept && nft insert rule ip filter FORWARD oifname "cnet-a" accept` {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "inside one network under FORWARD DROP", "c1", "172.18.0.3:8000")
	c.applyFix(fix)
	e := c.explain("c1", "c3:8000")
	expect(t, e, cnet.Reachable, "", "echo-server")
	if !hasStep(e, "filter", "accepted by rule 1 of ip filter chain FORWARD") {
		t.Errorf("no step names the accepting rule:\n%s", steps(e))
	}
	reach(t, "inside one network with the accept rules", "c1", "172.18.0.3:8000")
}

// TestExplainPublished: host:PORT with nothing published, published on
// 127.0.0.1 only, then on every address; from the host, a container and
// the LAN, each checked with a real connection.
func TestExplainPublished(t *testing.T) {
	c := newCLI(t)
	lan(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("network", "create", "b", "--subnet", "172.19.0.0/24")
	c.ok("create", "c1", "--network", "a")
	c.ok("run", "-d", "--name", "c2", "--network", "b", "--", bin.echo)
	listening(t, "c2", 8000)

	fix := expect(t, c.explain("host", "host:8080"), cnet.Dropped, "not_published", "no container publishes tcp port 8080", "127.0.0.1:8080")
	if fix != "cnet publish CONTAINER 8080:CONTAINERPORT" {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "host to an unpublished port", "", "127.0.0.1:8080")
	expect(t, c.explain("c1", "host:8080"), cnet.Dropped, "not_published", "172.18.0.1:8080")
	expect(t, c.explain("lan", "192.168.77.1:8080"), cnet.Dropped, "not_published", "no container publishes")
	expect(t, c.explain("lan", "c2:8000"), cnet.Dropped, "no_route", "namespace lan has no route to 172.19.0.2")
	testenv.Run(t, "ip", "-n", "lan", "route", "add", "172.19.0.0/24", "via", "192.168.77.1")
	fix = expect(t, c.explain("lan", "c2:8000"), cnet.Dropped, "not_published", "c2 (172.19.0.2 on b) is not published")
	if fix != "cnet publish c2 8000:8000, then connect to the host's address on port 8000" {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "the LAN to an unpublished container, routed", "lan", "172.19.0.2:8000")

	c.ok("publish", "c2", "127.0.0.1:8080:8000")
	expect(t, c.explain("host", "host:8080"), cnet.Reachable, "", "echo-server")
	reach(t, "host to 127.0.0.1:8080", "", "127.0.0.1:8080")
	fix = expect(t, c.explain("c1", "host:8080"), cnet.Dropped, "not_published", "c2 publishes tcp port 8080 only on 127.0.0.1")
	if fix != "cnet unpublish c2 127.0.0.1:8080:8000 && cnet publish c2 8080:8000" {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "c1 to a port published on 127.0.0.1", "c1", "172.18.0.1:8080")

	c.applyFix(fix)
	e := c.explain("c1", "host:8080")
	expect(t, e, cnet.Reachable, "", "echo-server")
	if hops(e) != "c1 host c2" || !hasStep(e, "dnat", "172.18.0.1:8080 -> 172.19.0.2:8000") {
		t.Errorf("hops %s, want c1 host c2 with the DNAT:\n%s", hops(e), steps(e))
	}
	reach(t, "c1 through the published port", "c1", "172.18.0.1:8080")
	expect(t, c.explain("lan", "192.168.77.1:8080"), cnet.Reachable, "", "echo-server")
	reach(t, "the LAN through the published port", "lan", "192.168.77.1:8080")
	expect(t, c.explain("c2", "host:8080"), cnet.Reachable, "") // hairpin: its own published port
	reach(t, "c2 to its own published port", "c2", "172.19.0.1:8080")
}

// TestExplainListeners: a service bound to 127.0.0.1 and a port nobody
// listens on, each named, then served properly.
func TestExplainListeners(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("create", "c1", "--network", "a")
	pid := strings.TrimSpace(c.ok("run", "-d", "--name", "c3", "--network", "a", "--", bin.echo, "-listen", "127.0.0.1:8000"))
	listening(t, "c3", 8000)

	fix := expect(t, c.explain("c1", "c3:8000"), cnet.Dropped, "loopback_only",
		"echo-server (pid "+pid+") in container c3 listens on 127.0.0.1:8000 only")
	if !strings.Contains(fix, "listen on 0.0.0.0:8000 (or 172.18.0.3:8000)") {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "a 127.0.0.1 binding from another container", "c1", "172.18.0.3:8000")
	expect(t, c.explain("c3", "127.0.0.1:8000"), cnet.Reachable, "")

	fix = expect(t, c.explain("c1", "c3:9000"), cnet.Dropped, "nothing_listening", "nothing listens on tcp port 9000 in container c3")
	if !strings.Contains(fix, "cnet exec c3 -- SERVER") {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "a port nothing listens on", "c1", "172.18.0.3:9000")
	c.serve("c3", "-listen", ":9000")
	listening(t, "c3", 9000)
	expect(t, c.explain("c1", "c3:9000"), cnet.Reachable, "", "echo-server", "0.0.0.0:9000")
	reach(t, "after the server started", "c1", "172.18.0.3:9000")

	// UDP: nothing bound, then the echo server's datagram side.
	expect(t, c.explain("c1", "c3:5300/udp"), cnet.Dropped, "nothing_listening", "udp port 5300", "ICMP port unreachable")
	c.serve("c3", "-listen", ":9001", "-udp", ":5300")
	listening(t, "c3", 9001)
	expect(t, c.explain("c1", "c3:5300/udp"), cnet.Reachable, "", "echo-server")
	conn := udpSocket(t, "c1", 40000, "172.18.0.3:5300")
	if got, err := ask(conn, "ping"); err != nil || got != "ping via :5300" {
		t.Errorf("udp to c3:5300: %q %v", got, err)
	}
}

// TestExplainRefusals: bad SRC, DST, port or protocol is refused with a
// message naming it, and explain changes nothing even when it answers.
func TestExplainRefusals(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("create", "c1", "--network", "a")
	before := testenv.Snapshot(t)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"explain", "c1"}, exitInvalid, "accepts 2 arg"},
		{[]string{"explain", "ghost", "c1"}, exitNotFound, `source "ghost" not found`},
		{[]string{"explain", "c1", "ghost:80"}, exitNotFound, `container "ghost" not found`},
		{[]string{"explain", "a/b", "c1"}, exitInvalid, `invalid source "a/b"`},
		{[]string{"explain", "c1", "c1:0"}, exitInvalid, `invalid port "0": want a number from 1 to 65535`},
		{[]string{"explain", "c1", "c1:65536"}, exitInvalid, `invalid port "65536"`},
		{[]string{"explain", "c1", "c1:http"}, exitInvalid, `invalid port "http"`},
		{[]string{"explain", "c1", "c1:53/sctp"}, exitInvalid, `invalid protocol "sctp": want tcp or udp`},
		{[]string{"explain", "c1", "c1/udp"}, exitInvalid, "a protocol needs a port"},
		{[]string{"explain", "c1", "host"}, exitInvalid, "host needs a port"},
		{[]string{"explain", "c1", "fe80::1"}, exitInvalid, "IPv4 only"},
		{[]string{"explain", "c1", "0.0.0.0:80"}, exitInvalid, "unspecified"},
		{[]string{"explain", "c1", "c1", "--bogus"}, exitInvalid, "--bogus"},
	} {
		r := c.run(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit %d mentioning %q", strings.Join(tc.args, " "), r.code, r.stderr, r.stdout, tc.code, tc.says)
		}
	}
	r := c.runWith(&syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "explain", "c1", "host:80")
	if r.code != exitNotPermit || !strings.Contains(r.stderr, "sudo") {
		t.Errorf("not root: exit %d %q, want %d suggesting sudo", r.code, r.stderr, exitNotPermit)
	}
	c.explain("c1", "172.18.0.1:53")
	c.explain("host", "c1:80")
	if after := testenv.Snapshot(t); after != before {
		t.Errorf("explain changed the sandbox:\n%s\nwant:\n%s", after, before)
	}
}

// TestExplainSharedLock: explain needs only the shared lock, so it runs
// while another reader holds it (an exclusive lock would wait forever).
func TestExplainSharedLock(t *testing.T) {
	c := newCLI(t)
	c.ok("create", "c1")
	lock, err := state.Lock(c.root+"/run", false)
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "lock", lock)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin.cnet, "--root", c.root, "explain", "c1", "host:53/udp").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("explain waited for the lock another reader shares: %s", out)
	}
	if !strings.Contains(string(out), "reachable") {
		t.Errorf("explain c1 host:53/udp (the name server on the gateway): %v\n%s", err, out)
	}
}

// TestExplainText: the human form shows the packet, numbered hops with
// their steps, the verdict, and each fix.
func TestExplainText(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("network", "create", "b", "--subnet", "172.19.0.0/24")
	c.ok("create", "c1", "--network", "a")
	c.ok("create", "c2", "--network", "b")
	r := c.run("explain", "c1", "c2:5432")
	for _, want := range []string{
		"tcp c1 -> c2:5432 (172.19.0.2)\n",
		" 1  container c1\n",
		"route  172.19.0.2 via 172.18.0.1 dev eth0 src 172.18.0.2",
		" 2  host, in through cnet-a\n",
		"filter  dropped by `iifname @bridges oifname @bridges drop` (table inet cnet, chain forward)",
		"dropped (isolation): c1 (on a) and c2 (172.19.0.2 on b) share no network",
		"fix: cnet connect b c1\n or: cnet connect a c2\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != exitDropped {
		t.Errorf("exit %d, want %d", r.code, exitDropped)
	}
	out, err := exec.Command(bin.cnet, "explain", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ip -n NS route get DST") || !strings.Contains(string(out), "cnet explain web db:5432") {
		t.Errorf("explain --help does not teach: %v\n%s", err, out)
	}
}

func hops(e cnet.Explanation) string {
	var names []string
	for _, h := range e.Hops {
		names = append(names, h.Namespace)
	}
	return strings.Join(names, " ")
}

func hasStep(e cnet.Explanation, kind, text string) bool {
	for _, h := range e.Hops {
		for _, s := range h.Steps {
			if s.Kind == kind && strings.Contains(s.Text, text) {
				return true
			}
		}
	}
	return false
}

func steps(e cnet.Explanation) string {
	var b strings.Builder
	for _, h := range e.Hops {
		fmt.Fprintf(&b, "%s %s (in %s)\n", h.Kind, h.Namespace, h.In)
		for _, s := range h.Steps {
			fmt.Fprintf(&b, "  %s: %s\n", s.Kind, s.Text)
		}
	}
	return b.String()
}

// TestExplainThroughRouter: a container with a direct veth to another
// namespace routes for it. The walk follows the next hop through the
// router's namespace, where forwarding is off until the fix turns it on.
func TestExplainThroughRouter(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("run", "-d", "--name", "c1", "--network", "a", "--", bin.echo)
	// r is a router (forwarding: true), so cnet's anti-spoofing lets the
	// packets it forwards through; its forwarding is then switched off by
	// hand, which explain must find.
	lab := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(lab, []byte("lab: r\ncontainers:\n  r: {networks: [{network: a, ip: 172.18.0.3}], forwarding: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("apply", "-f", lab)
	testenv.Run(t, "ip", "netns", "exec", "r", "sysctl", "-qw", "net.ipv4.ip_forward=0")
	listening(t, "c1", 8000)
	testenv.Run(t, "ip", "netns", "add", "far")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "far") })
	for _, args := range [][]string{
		{"-n", "r", "link", "add", "rlink", "type", "veth", "peer", "name", "eth0", "netns", "far"},
		{"-n", "r", "addr", "add", "10.5.0.1/24", "dev", "rlink"},
		{"-n", "r", "link", "set", "rlink", "up"},
		{"-n", "far", "addr", "add", "10.5.0.2/24", "dev", "eth0"},
		{"-n", "far", "link", "set", "eth0", "up"},
		{"-n", "far", "link", "set", "lo", "up"},
		{"-n", "far", "route", "add", "default", "via", "10.5.0.1"},
		{"-n", "c1", "route", "add", "10.5.0.0/24", "via", "172.18.0.3"},
	} {
		testenv.Run(t, "ip", args...)
	}
	fix := expect(t, c.explain("far", "c1:8000"), cnet.Dropped, "ip_forward", "net.ipv4.ip_forward is off in container r")
	if fix != "ip netns exec r sysctl -w net.ipv4.ip_forward=1" {
		t.Errorf("fix %q", fix)
	}
	blocked(t, "through r with forwarding off", "far", "172.18.0.2:8000")
	c.applyFix(fix)
	e := c.explain("far", "c1:8000")
	expect(t, e, cnet.Reachable, "", "echo-server")
	if hops(e) != "far r c1" || e.Hops[1].In != "rlink" || e.Hops[1].Out != "eth0" || e.Hops[2].Src.String() != "10.5.0.2" {
		t.Errorf("want far -> r (in rlink, out eth0) -> c1 from 10.5.0.2:\n%s", steps(e))
	}
	if !hasStep(e, "link", "eth0 -> rlink in container r") {
		t.Errorf("the direct link is not shown:\n%s", steps(e))
	}
	reach(t, "through r", "far", "172.18.0.2:8000")
}

// TestExplainSpoofed: a container that routes without being declared a
// router puts packets with other sources on its bridge, which cnet's
// anti-spoofing drops: explain says so and names the fix, and a real
// connection is indeed dropped.
func TestExplainSpoofed(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "a", "--subnet", "172.18.0.0/24")
	c.ok("run", "-d", "--name", "c1", "--network", "a", "--", bin.echo)
	c.ok("create", "r", "--network", "a")
	listening(t, "c1", 8000)
	testenv.Run(t, "ip", "netns", "add", "far")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "far") })
	for _, args := range [][]string{
		{"-n", "r", "link", "add", "rlink", "type", "veth", "peer", "name", "eth0", "netns", "far"},
		{"-n", "r", "addr", "add", "10.5.0.1/24", "dev", "rlink"},
		{"-n", "r", "link", "set", "rlink", "up"},
		{"-n", "far", "addr", "add", "10.5.0.2/24", "dev", "eth0"},
		{"-n", "far", "link", "set", "eth0", "up"},
		{"-n", "far", "route", "add", "default", "via", "10.5.0.1"},
		{"-n", "c1", "route", "add", "10.5.0.0/24", "via", "172.18.0.3"},
	} {
		testenv.Run(t, "ip", args...)
	}
	testenv.Run(t, "ip", "netns", "exec", "r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	fix := expect(t, c.explain("far", "c1:8000"), cnet.Dropped, "spoofed", "container r sends the packet from 10.5.0.2 into bridge cnet-a")
	if !strings.Contains(fix, "forwarding: true") {
		t.Errorf("fix %q does not say how to declare r a router", fix)
	}
	blocked(t, "through r, not a declared router", "far", "172.18.0.2:8000")
	// From its own address r is not spoofing.
	if e := c.explain("r", "c1:8000"); e.Verdict != cnet.Reachable {
		t.Errorf("r to c1 from its own address: %s %s", e.Verdict, e.Reason)
	}
}

// TestExplainLab: in the router example, paths through the router and
// over its direct link are explained hop by hop, and a container on no
// network is found at its direct link's address.
func TestExplainLab(t *testing.T) {
	c := labCLI(t)
	file := filepath.Join("..", "..", "examples", "router.yaml")
	c.ok("apply", "-f", file)
	t.Cleanup(func() { c.run("destroy", "-f", file) })
	listening(t, "left-host", 8000)

	e := c.explain("left-host", "edge")
	expect(t, e, cnet.Reachable, "", "edge")
	if hops(e) != "left-host router edge" || e.Hops[2].In != "uplink" {
		t.Errorf("want left-host -> router -> edge (in uplink):\n%s", steps(e))
	}
	if !slices.ContainsFunc(e.Notes, func(n string) bool { return strings.Contains(n, "direct link uplink") }) {
		t.Errorf("no note that edge is reached over its direct link: %q", e.Notes)
	}
	c.reaches("left-host", "ping", "-c1", "-W2", "10.255.0.2")

	e = c.explain("edge", "left-host:8000")
	expect(t, e, cnet.Reachable, "", "echo-server")
	if hops(e) != "edge router left-host" || !hasStep(e, "link", "uplink -> to-edge in container router") {
		t.Errorf("want edge -> router over the direct link -> left-host:\n%s", steps(e))
	}
	reach(t, "edge to left-host over the direct link", "edge", "172.31.1.10:8000")
}
