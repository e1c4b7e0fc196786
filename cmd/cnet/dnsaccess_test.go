package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestDNSAnswersOnlyItsContainers: the name server answers a query only
// when it comes from a container's endpoint on the network whose gateway
// it asked (through that network's bridge), or from the host itself.
// A LAN neighbour with a route to the subnets, a container of another
// network routed through the host, and a container forging another's
// address get no answer, and nothing is forwarded upstream for them:
// the server is no open resolver, and the names of an internal network
// never leave it.
func TestDNSAnswersOnlyItsContainers(t *testing.T) {
	c := newCLI(t)
	up := fakeUpstream(t)
	hostResolv(t, "nameserver 198.51.100.1\n")
	lan(t)
	testenv.Run(t, "ip", "-n", "lan", "route", "add", "172.30.0.0/16", "via", "192.168.77.1")
	c.ok("network", "create", "front", "--subnet", "172.30.1.0/24")
	c.ok("network", "create", "back", "--subnet", "172.30.2.0/24")
	c.ok("network", "create", "intra", "--subnet", "172.30.3.0/24", "--internal")
	c.ok("create", "web", "--network", "front")
	c.ok("create", "peer", "--network", "front")
	c.ok("create", "other", "--network", "back")
	c.ok("create", "secret", "--network", "intra")

	// The probes are sensitive: these are answered, and an outside name
	// reaches the upstream.
	for _, tc := range []struct{ ns, server, name, want string }{
		{"web", "172.30.1.1", "peer.", "172.30.1.3"},
		{"other", "172.30.2.1", "other.", "172.30.2.2"},
		{"secret", "172.30.3.1", "secret.", "172.30.3.2"},
		{"", "172.30.1.1", "web.", "172.30.1.2"},    // the host, on any gateway
		{"", "172.30.3.1", "secret.", "172.30.3.2"}, // internal ones too: the host is on them
	} {
		for _, proto := range []string{"udp", "tcp"} {
			m, err := tryDNS(tc.ns, tc.server, tc.name, mdns.TypeA, proto)
			if err != nil || answers(m) != tc.want {
				t.Errorf("%s asks %s for %s over %s: %v %v, want %s", tc.ns, tc.server, tc.name, proto, m, err, tc.want)
			}
		}
	}
	before := up.queries.Load()
	if m, err := tryDNS("web", "172.30.1.1", "example.test.", mdns.TypeA, "udp"); err != nil || answers(m) != "192.0.2.80" {
		t.Fatalf("web asks for example.test: %v %v", m, err)
	}
	if got := up.queries.Load(); got != before+1 {
		t.Fatalf("the upstream counted %d queries for web's one", got-before)
	}

	refused := []struct{ who, ns, server, name string }{
		{"LAN neighbour", "lan", "172.30.1.1", "web."},
		{"LAN neighbour", "lan", "172.30.1.1", "example.test."},
		{"LAN neighbour", "lan", "172.30.3.1", "secret."},
		{"LAN neighbour", "lan", "172.30.3.1", "secret.intra.cnet."},
		{"container of another network, routed", "other", "172.30.1.1", "web."},
		{"container of another network, routed", "other", "172.30.1.1", "example.test."},
		{"container of another network, routed", "web", "172.30.3.1", "secret."},
		{"container of another network, routed", "web", "172.30.2.1", "example.test."},
	}
	for _, tc := range refused {
		t.Run(tc.who+" asks "+tc.server+" for "+tc.name, func(t *testing.T) {
			before := up.queries.Load()
			for _, proto := range []string{"udp", "tcp"} {
				m, err := tryDNS(tc.ns, tc.server, tc.name, mdns.TypeA, proto)
				if err == nil && m.Rcode != mdns.RcodeRefused {
					t.Errorf("over %s: answered %s %q, want no answer or REFUSED", proto, mdns.RcodeToString[m.Rcode], answers(m))
				}
			}
			if got := up.queries.Load(); got != before {
				t.Errorf("%d queries were forwarded upstream for it", got-before)
			}
		})
	}
	// Internal names stay inside: web resolves no name of intra, even by
	// its full name on its own gateway.
	if m, err := tryDNS("web", "172.30.1.1", "secret.intra.cnet.", mdns.TypeA, "udp"); err != nil || m.Rcode != mdns.RcodeNameError {
		t.Errorf("web asks its gateway for secret.intra.cnet: %v %v, want NXDOMAIN", m, err)
	}

	t.Run("a container forging another's address", func(t *testing.T) {
		// peer (on front) takes other's address (on back) as a second one
		// and asks front's gateway from it; the answer comes back to peer
		// over front's bridge, where the query came in.
		testenv.Run(t, "ip", "-n", "peer", "addr", "add", "172.30.2.2/32", "dev", "eth0")
		defer testenv.Run(t, "ip", "-n", "peer", "addr", "del", "172.30.2.2/32", "dev", "eth0")
		spoof := func(name, proto string) (*mdns.Msg, error) {
			q := new(mdns.Msg)
			q.SetQuestion(name, mdns.TypeA)
			var local net.Addr = &net.UDPAddr{IP: net.IPv4(172, 30, 2, 2)}
			if proto == "tcp" {
				local = &net.TCPAddr{IP: net.IPv4(172, 30, 2, 2)}
			}
			cl := &mdns.Client{Net: proto, Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: local, Timeout: time.Second}}
			var in *mdns.Msg
			err := netns.Do("/run/netns/peer", func() (err error) {
				in, _, err = cl.Exchange(q, "172.30.1.1:53")
				return err
			})
			return in, err
		}
		before := up.queries.Load()
		// The bridge drops the forged frames (table bridge cnet).
		if m, err := spoof("web.", "udp"); err == nil {
			t.Errorf("a forged query got through the bridge: %v", m)
		}
		// Without the bridge table they reach the server, which sees them
		// arrive on front's bridge from an address of back: refused.
		testenv.Run(t, "nft", "delete", "table", "bridge", "cnet")
		defer c.ok("gc")
		for _, name := range []string{"web.", "example.test."} {
			// The host's neighbour entry for the forged address failed
			// while the bridge dropped peer's ARP: the first may be lost.
			var m *mdns.Msg
			testenv.Eventually(t, 5*time.Second, func() (err error) {
				m, err = spoof(name, "udp")
				return err
			})
			if m.Rcode != mdns.RcodeRefused || len(m.Answer) != 0 {
				t.Errorf("forged query for %s: %s %q, want REFUSED", name, mdns.RcodeToString[m.Rcode], answers(m))
			}
			if m, err := spoof(name, "tcp"); err == nil && m.Rcode != mdns.RcodeRefused {
				t.Errorf("forged query for %s over TCP: %s %q, want no answer", name, mdns.RcodeToString[m.Rcode], answers(m))
			}
		}
		if got := up.queries.Load(); got != before {
			t.Errorf("%d forged queries were forwarded upstream", got-before)
		}
	})
}

// TestDNSInternalForwardsNothing: a container on --internal networks only
// has no way out, and the name server is none either: a name outside
// cnet gets REFUSED without recursion (as Docker's embedded server
// answers), and nothing reaches the upstream. A container on an
// internal network and another one still gets names forwarded, as in
// Docker: it can reach out anyway.
func TestDNSInternalForwardsNothing(t *testing.T) {
	c := newCLI(t)
	up := fakeUpstream(t)
	hostResolv(t, "nameserver 198.51.100.1\n")
	c.ok("network", "create", "intra", "--subnet", "172.30.3.0/24", "--internal")
	c.ok("network", "create", "front", "--subnet", "172.30.1.0/24")
	c.ok("create", "secret", "--network", "intra")
	c.ok("create", "buddy", "--network", "intra")
	c.ok("create", "gate", "--network", "intra")
	c.ok("connect", "front", "gate")

	for _, proto := range []string{"udp", "tcp"} {
		before := up.queries.Load()
		m, err := tryDNS("secret", "172.30.3.1", "secret.attacker.example.", mdns.TypeA, proto)
		if err != nil || m.Rcode != mdns.RcodeRefused || m.RecursionAvailable {
			t.Errorf("over %s, secret asks for secret.attacker.example: %v %v, want REFUSED without recursion", proto, m, err)
		}
		if got := up.queries.Load(); got != before {
			t.Errorf("over %s: %d queries for secret.attacker.example reached the upstream", proto, got-before)
		}
		if m, err := tryDNS("secret", "172.30.3.1", "buddy.", mdns.TypeA, proto); err != nil || answers(m) != "172.30.3.3" {
			t.Errorf("over %s, secret asks for buddy: %v %v", proto, m, err)
		}
	}
	before := up.queries.Load()
	if m, err := tryDNS("gate", "172.30.3.1", "example.test.", mdns.TypeA, "udp"); err != nil || answers(m) != "192.0.2.80" {
		t.Errorf("gate (on intra and front) asks intra's gateway for example.test: %v %v, want it forwarded", m, err)
	}
	if up.queries.Load() == before {
		t.Error("nothing reached the upstream for gate")
	}
	// Once gate leaves front it is shut in too.
	c.ok("disconnect", "front", "gate")
	before = up.queries.Load()
	if m, err := tryDNS("gate", "172.30.3.1", "example.test.", mdns.TypeA, "udp"); err != nil || m.Rcode != mdns.RcodeRefused {
		t.Errorf("gate, on intra only, asks for example.test: %v %v, want REFUSED", m, err)
	}
	if got := up.queries.Load(); got != before {
		t.Errorf("%d queries of gate reached the upstream after it left front", got-before)
	}
}

// TestDNSGCFindsDeadAndStaleServers: `cnet gc --dry-run` says that it
// would restart a name server that died, and changes nothing; a name
// server that lost its control socket still holds port 53, and the
// command that then cannot start a new one says that `cnet gc` fixes it
// (not "free the port"), naming its PID; the dry run reports it, and gc
// stops it and serves names again.
func TestDNSGCFindsDeadAndStaleServers(t *testing.T) {
	c := newCLI(t)
	hostResolv(t, "nameserver 198.51.100.1\n")
	dir := filepath.Join(c.root, "run", "dns")
	client := dns.Client{Dir: dir}
	c.ok("network", "create", "front", "--subnet", "172.31.1.0/24")
	c.ok("create", "web", "--network", "front")

	t.Run("dead", func(t *testing.T) {
		pid, err := client.Ping()
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill the name server (pid %d): %v", pid, err)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if client.Listening() {
				return fmt.Errorf("pid %d still listens", pid)
			}
			return nil
		})
		out := c.ok("gc", "--dry-run")
		if !strings.Contains(out, "dns server") || !strings.Contains(out, "not running") || !strings.Contains(out, "would do") {
			t.Errorf("gc --dry-run does not say it would restart the dead name server:\n%s", out)
		}
		if client.Listening() {
			t.Error("gc --dry-run started a name server")
		}
		if out := c.ok("gc"); !strings.Contains(out, "restarted the dns server") {
			t.Errorf("gc does not restart the name server:\n%s", out)
		}
	})

	t.Run("bridge re-created", func(t *testing.T) {
		// The listeners are bound to the bridge by its index: the one gc
		// makes anew has another, and gc has the server listen again.
		testenv.Run(t, "ip", "link", "del", "cnet-front")
		c.ok("gc")
		testenv.Eventually(t, 5*time.Second, func() error {
			m, err := tryDNS("web", "172.31.1.1", "web.", mdns.TypeA, "udp")
			if err != nil || answers(m) != "172.31.1.2" {
				return fmt.Errorf("web asks for itself after gc re-created its bridge: %v %v", m, err)
			}
			return nil
		})
	})

	t.Run("stale", func(t *testing.T) {
		stale, err := client.Ping()
		if err != nil {
			t.Fatal(err)
		}
		// The server loses its control socket and goes on holding port 53.
		if err := os.Remove(filepath.Join(dir, dns.SocketFile)); err != nil {
			t.Fatal(err)
		}
		r := c.run("create", "other", "--network", "front")
		if r.code == 0 || !strings.Contains(r.stderr, "cnet gc") || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", stale)) || strings.Contains(r.stderr, "free the port") {
			t.Errorf("create beside a stale name server: exit %d %q; want a refusal that names pid %d and says to run `cnet gc`", r.code, r.stderr, stale)
		}
		out := c.ok("gc", "--dry-run")
		if !strings.Contains(out, fmt.Sprintf("dns server (pid %d)", stale)) || !strings.Contains(out, "lost its control socket") {
			t.Errorf("gc --dry-run does not report the stale name server %d:\n%s", stale, out)
		}
		if !alive(stale) {
			t.Fatal("gc --dry-run stopped the stale name server")
		}
		out = c.ok("gc")
		if !strings.Contains(out, fmt.Sprintf("dns server (pid %d)", stale)) {
			t.Errorf("gc does not report stopping the stale name server %d:\n%s", stale, out)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if alive(stale) {
				return fmt.Errorf("the stale name server %d still runs", stale)
			}
			return nil
		})
		if pid, err := client.Ping(); err != nil || pid == stale {
			t.Errorf("after gc the control socket is answered by %d (%v), want a new server", pid, err)
		}
		if m, err := tryDNS("web", "172.31.1.1", "web.", mdns.TypeA, "udp"); err != nil || answers(m) != "172.31.1.2" {
			t.Errorf("after gc, web asks for itself: %v %v", m, err)
		}
		c.ok("create", "other", "--network", "front")
		if out := c.ok("gc", "--dry-run"); !strings.Contains(out, "nothing to do") {
			t.Errorf("a second gc finds more to do:\n%s", out)
		}
	})
}
