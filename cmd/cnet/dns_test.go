package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// upstream is the fake upstream name server: it counts the queries it
// gets.
type upstream struct{ queries atomic.Int64 }

// fakeUpstream runs a name server at 198.51.100.1 in a namespace
// "internet" wired to the sandbox host. It knows example.test and
// big.example.test (40 addresses: too big for a plain UDP answer), and
// never answers names under blackhole.test (a dead upstream). It counts
// every query it gets.
func fakeUpstream(t *testing.T) *upstream {
	t.Helper()
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "up0")
		testenv.Try("ip", "netns", "del", "internet")
	})
	for _, args := range [][]string{
		{"netns", "add", "internet"},
		{"link", "add", "up0", "type", "veth", "peer", "name", "wan0", "netns", "internet"},
		{"addr", "add", "198.51.100.254/24", "dev", "up0"},
		{"link", "set", "up0", "up"},
		{"-n", "internet", "addr", "add", "198.51.100.1/24", "dev", "wan0"},
		{"-n", "internet", "link", "set", "wan0", "up"},
		{"-n", "internet", "link", "set", "lo", "up"},
	} {
		testenv.Run(t, "ip", args...)
	}
	up := &upstream{}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		up.queries.Add(1)
		if strings.HasSuffix(r.Question[0].Name, ".blackhole.test.") {
			return
		}
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "example.test." && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 80)})
		case q.Name == "big.example.test." && q.Qtype == mdns.TypeA:
			for i := 1; i <= 40; i++ {
				m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, byte(i))})
			}
		default:
			m.Rcode = mdns.RcodeNameError
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(512)
		}
		if err := w.WriteMsg(m); err != nil {
			t.Errorf("upstream answer: %v", err)
		}
	})
	var pc net.PacketConn
	var ln net.Listener
	err := netns.Do("/run/netns/internet", func() error {
		var err error
		if pc, err = net.ListenPacket("udp", "198.51.100.1:53"); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "198.51.100.1:53")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	udp, tcp := &mdns.Server{PacketConn: pc, Handler: h}, &mdns.Server{Listener: ln, Handler: h}
	for _, srv := range []*mdns.Server{udp, tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("upstream server: %v", err)
			}
		}()
		t.Cleanup(func() { testenv.Logged(t, "upstream shutdown", srv.Shutdown()) })
	}
	return up
}

// hostResolv makes the sandbox host's /etc/resolv.conf say content, for
// this test only (the mount namespace is the test's own).
func hostResolv(t *testing.T, content string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(f, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over /etc/resolv.conf: %v", f, err)
	}
	t.Cleanup(func() {
		testenv.Logged(t, `unix.Unmount("/etc/resolv.conf", unix.MNT_DETACH)`, unix.Unmount("/etc/resolv.conf", unix.MNT_DETACH))
	})
}

// ask sends one query from a namespace ("" for the host).
func askDNS(t *testing.T, ns, server, name string, qtype uint16, proto string) (*mdns.Msg, time.Duration) {
	t.Helper()
	q := new(mdns.Msg)
	q.SetQuestion(name, qtype)
	c := &mdns.Client{Net: proto, Timeout: 5 * time.Second}
	var in *mdns.Msg
	start := time.Now()
	exchange := func() error {
		var err error
		in, _, err = c.Exchange(q, server+":53")
		return err
	}
	var err error
	if ns == "" {
		err = exchange()
	} else {
		err = netns.Do("/run/netns/"+ns, exchange)
	}
	if err != nil {
		t.Fatalf("%s asks %s for %s: %v", ns, server, name, err)
	}
	return in, time.Since(start)
}

func answers(m *mdns.Msg) string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.PTR:
			out = append(out, v.Ptr)
		}
	}
	return strings.Join(out, " ")
}

func TestDNS(t *testing.T) {
	c := newCLI(t)
	fakeUpstream(t)
	hostResolv(t, "nameserver 198.51.100.1\n")

	t.Run("port 53 taken", func(t *testing.T) {
		held, err := net.ListenPacket("udp", "0.0.0.0:53")
		if err != nil {
			t.Fatal(err)
		}
		defer testenv.Close(t, "held", held)
		before := testenv.Snapshot(t)
		r := c.run("network", "create", "blocked", "--subnet", "172.31.9.0/24")
		if r.code != exitConflict || !strings.Contains(r.stderr, "port 53/udp on 172.31.9.1") || !strings.Contains(r.stderr, "--no-dns") ||
			!strings.Contains(r.stderr, fmt.Sprintf("(pid %d): free the port", os.Getpid())) {
			t.Errorf("exit %d %q; want %d naming the port and what holds it", r.code, r.stderr, exitConflict)
		}
		if after := testenv.Snapshot(t); after != before {
			t.Errorf("the refused network left something:\n%s\nwant:\n%s", after, before)
		}
	})

	if r := c.run("network", "create", "front", "--subnet", "172.31.1.0/24"); r.code != 0 {
		t.Fatalf("network create front: %d %s", r.code, r.stderr)
	}
	c.ok("network", "create", "back", "--subnet", "172.31.2.0/24")
	c.ok("create", "web", "--network", "front")
	c.ok("create", "api", "--network", "front", "--alias", "api-alias")
	c.ok("connect", "back", "api", "--alias", "backend")
	c.ok("create", "db", "--network", "back")

	if rc := c.ok("exec", "web", "--", "cat", "/etc/resolv.conf"); !strings.Contains(rc, "nameserver 172.31.1.1\n") || !strings.Contains(rc, "search front.cnet\n") {
		t.Errorf("web's resolv.conf:\n%s", rc)
	}
	// Through each container's own resolver (glibc, its resolv.conf).
	getent := func(who, name string) string {
		r := c.run("exec", who, "--", "getent", "hosts", name)
		if r.code != 0 {
			return ""
		}
		return strings.Fields(r.stdout)[0]
	}
	for _, tc := range []struct{ who, name, want string }{
		{"web", "api", "172.31.1.3"},
		{"web", "api-alias", "172.31.1.3"},
		{"web", "api.front.cnet", "172.31.1.3"},
		{"web", "db", ""},
		{"web", "db.back.cnet", ""},
		{"web", "backend", ""},
		{"api", "db", "172.31.2.3"},
		{"api", "backend", "172.31.2.2"},
		{"db", "api", "172.31.2.2"},
		{"db", "web", ""},
		{"web", "example.test", "192.0.2.80"},
	} {
		if got := getent(tc.who, tc.name); got != tc.want {
			t.Errorf("%s resolves %s to %q, want %q", tc.who, tc.name, got, tc.want)
		}
	}
	// Record by record.
	if m, _ := askDNS(t, "web", "172.31.1.1", "api.", mdns.TypeAAAA, "udp"); m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA api: %s with %d answers, want NODATA", mdns.RcodeToString[m.Rcode], len(m.Answer))
	}
	if m, _ := askDNS(t, "web", "172.31.1.1", "3.1.31.172.in-addr.arpa.", mdns.TypePTR, "udp"); answers(m) != "api.front.cnet." {
		t.Errorf("PTR 172.31.1.3: %q", answers(m))
	}
	if m, _ := askDNS(t, "", "172.31.2.1", "db.", mdns.TypeA, "udp"); answers(m) != "172.31.2.3" {
		t.Errorf("the host asks back's gateway for db: %q", answers(m))
	}
	if m, _ := askDNS(t, "", "172.31.1.1", "db.back.cnet.", mdns.TypeA, "tcp"); m.Rcode != mdns.RcodeNameError {
		t.Errorf("front's gateway answers for back: %s %q", mdns.RcodeToString[m.Rcode], answers(m))
	}
	// Truncation and TCP fallback, also through the forwarder.
	if m, _ := askDNS(t, "web", "172.31.1.1", "big.example.test.", mdns.TypeA, "udp"); !m.Truncated {
		t.Errorf("a 40-record answer over plain UDP is not truncated: %d answers", len(m.Answer))
	}
	if m, _ := askDNS(t, "web", "172.31.1.1", "big.example.test.", mdns.TypeA, "tcp"); len(m.Answer) != 40 {
		t.Errorf("over TCP: %d answers, want 40", len(m.Answer))
	}
	if ips := c.ok("resolve", "backend"); ips != "172.31.2.2\tapi\tback\n" {
		t.Errorf("cnet resolve backend = %q", ips)
	}

	t.Run("a new record answers at once", func(t *testing.T) {
		c.ok("create", "newcomer", "--network", "front")
		if m, _ := askDNS(t, "web", "172.31.1.1", "newcomer.", mdns.TypeA, "udp"); answers(m) != "172.31.1.4" {
			t.Errorf("right after create: %q %s", answers(m), mdns.RcodeToString[m.Rcode])
		}
		c.ok("rm", "newcomer")
		if m, _ := askDNS(t, "web", "172.31.1.1", "newcomer.front.cnet.", mdns.TypeA, "udp"); m.Rcode != mdns.RcodeNameError {
			t.Errorf("right after rm: %q %s", answers(m), mdns.RcodeToString[m.Rcode])
		}
	})

	t.Run("killed and restarted", func(t *testing.T) {
		kill := func() {
			pid, err := dns.Client{Dir: filepath.Join(c.root, "run", "dns")}.Ping()
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if _, err := (dns.Client{Dir: filepath.Join(c.root, "run", "dns")}).Ping(); err == nil {
					return os.ErrExist
				}
				return nil
			})
		}
		kill()
		// Commands that only read leave it down, and say so once each.
		for _, args := range [][]string{{"ls"}, {"inspect", "web"}, {"network", "ls"}, {"network", "inspect", "front"},
			{"port", "web"}, {"graph"}, {"resolve", "api"}, {"gc", "--dry-run"}} {
			r := c.run(args...)
			if r.code != 0 {
				t.Fatalf("cnet %s with the name server down: exit %d %s", strings.Join(args, " "), r.code, r.stderr)
			}
			if pid, err := (dns.Client{Dir: filepath.Join(c.root, "run", "dns")}).Ping(); err == nil {
				t.Fatalf("cnet %s restarted the name server (pid %d)", strings.Join(args, " "), pid)
			}
			const notice = "the name server is not running: the next change or `cnet gc` restarts it"
			if args[0] != "gc" && strings.Count(r.stderr, notice) != 1 {
				t.Errorf("cnet %s: stderr %q, want the notice %q once", strings.Join(args, " "), r.stderr, notice)
			}
		}
		// The next change brings it back, with every record.
		c.ok("network", "create", "spare", "--subnet", "172.31.7.0/24", "--no-dns")
		c.ok("network", "rm", "spare")
		if m, _ := askDNS(t, "web", "172.31.1.1", "api.", mdns.TypeA, "udp"); answers(m) != "172.31.1.3" {
			t.Errorf("after a restart by the next change: %q", answers(m))
		}
		kill()
		if out := c.ok("gc"); !strings.Contains(out, "restarted the dns server") {
			t.Errorf("gc does not report the restart:\n%s", out)
		}
		if m, _ := askDNS(t, "db", "172.31.2.1", "api.", mdns.TypeA, "udp"); answers(m) != "172.31.2.2" {
			t.Errorf("after a restart by gc: %q", answers(m))
		}
	})

	t.Run("upstream down", func(t *testing.T) {
		// The upstream's address goes away without a word back: only a timeout tells.
		testenv.Run(t, "ip", "-n", "internet", "addr", "del", "198.51.100.1/24", "dev", "wan0")
		m, took := askDNS(t, "web", "172.31.1.1", "example.test.", mdns.TypeA, "udp")
		if m.Rcode != mdns.RcodeServerFailure || took > 2*time.Second {
			t.Errorf("got %s after %s, want SERVFAIL within 2 s", mdns.RcodeToString[m.Rcode], took)
		}
		if m, _ := askDNS(t, "web", "172.31.1.1", "api.", mdns.TypeA, "udp"); answers(m) != "172.31.1.3" {
			t.Errorf("container names stop answering when the upstream is down: %q", answers(m))
		}
	})

	t.Run("--no-dns", func(t *testing.T) {
		c.ok("network", "create", "plain", "--subnet", "172.31.3.0/24", "--no-dns")
		c.ok("create", "loner", "--network", "plain")
		if rc := c.ok("exec", "loner", "--", "cat", "/etc/resolv.conf"); !strings.Contains(rc, "nameserver 198.51.100.1\n") || strings.Contains(rc, "cnet") && strings.Contains(rc, "search") {
			t.Errorf("resolv.conf on a --no-dns network:\n%s", rc)
		}
		if conn, err := net.DialTimeout("tcp", "172.31.3.1:53", time.Second); err == nil {
			testenv.Close(t, "conn", conn)
			t.Error("something answers on a --no-dns network's gateway")
		}
	})

	// Removing the last DNS-enabled network stops the server.
	c.ok("rm", "web", "api", "db", "loner")
	c.ok("network", "rm", "front")
	if _, err := (dns.Client{Dir: filepath.Join(c.root, "run", "dns")}).Ping(); err != nil {
		t.Errorf("the server stopped with a DNS network left: %v", err)
	}
	c.ok("network", "rm", "back")
	if pid, err := (dns.Client{Dir: filepath.Join(c.root, "run", "dns")}).Ping(); err == nil {
		t.Errorf("the server (pid %d) still runs with no DNS network left", pid)
	}
}

// tryDNS sends one query from a namespace ("" for the host) and waits at
// most a second: the error is what a client sees when nothing answers
// (ICMP port unreachable, a reset, or silence).
func tryDNS(ns, server, name string, qtype uint16, proto string) (*mdns.Msg, error) {
	q := new(mdns.Msg)
	q.SetQuestion(name, qtype)
	c := &mdns.Client{Net: proto, Timeout: time.Second}
	var in *mdns.Msg
	exchange := func() error {
		var err error
		in, _, err = c.Exchange(q, server+":53")
		return err
	}
	if ns == "" {
		return in, exchange()
	}
	return in, netns.Do("/run/netns/"+ns, exchange)
}
