package explain

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/firewall"
)

// want checks a result: verdict, cause, words in the reason, a fix that
// contains fix (when set), and the namespaces crossed.
type want struct {
	verdict, cause string
	reason         []string
	fix            string
	hops           []string
	steps          []string // words that must appear in some step
}

func check(t *testing.T, r *Result, err error, w want) {
	t.Helper()
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	dump := render(r)
	if r.Verdict != w.verdict || r.Cause != w.cause {
		t.Fatalf("got %s/%s, want %s/%s\n%s", r.Verdict, r.Cause, w.verdict, w.cause, dump)
	}
	for _, s := range w.reason {
		if !strings.Contains(r.Reason, s) {
			t.Errorf("reason lacks %q\n%s", s, dump)
		}
	}
	if w.fix != "" && !strings.Contains(strings.Join(r.Fix, "\n"), w.fix) {
		t.Errorf("fix lacks %q\n%s", w.fix, dump)
	}
	if w.hops != nil {
		var got []string
		for _, h := range r.Hops {
			got = append(got, h.Namespace)
		}
		if strings.Join(got, " ") != strings.Join(w.hops, " ") {
			t.Errorf("hops %v, want %v\n%s", got, w.hops, dump)
		}
	}
	all := ""
	for _, h := range r.Hops {
		for _, s := range h.Steps {
			all += s.Kind + ": " + s.Text + "\n"
		}
	}
	for _, s := range w.steps {
		if !strings.Contains(all, s) {
			t.Errorf("no step mentions %q\n%s", s, dump)
		}
	}
}

func render(r *Result) string {
	var b strings.Builder
	for i, h := range r.Hops {
		b.WriteString(strings.Repeat(" ", 0))
		b.WriteString(string(rune('1'+i)) + ". " + h.Kind + " " + h.Namespace + " in=" + h.In + "\n")
		for _, s := range h.Steps {
			b.WriteString("   " + s.Kind + ": " + s.Text + "\n")
		}
	}
	b.WriteString(r.Verdict + " [" + r.Cause + "] " + r.Reason + "\n")
	for _, f := range r.Fix {
		b.WriteString("fix: " + f + "\n")
	}
	return b.String()
}

// twoNets is the usual lab: networks a (10.1.0.0/24) and b (10.2.0.0/24),
// c1 on a, c2 on b serving tcp 8000, and an uplink.
func twoNets() *lab {
	l := newLab()
	l.network("a", "10.1.0.0/24", false)
	l.network("b", "10.2.0.0/24", false)
	l.container("c1", 2, "a")
	l.container("c2", 2, "b")
	l.listen("c2", "tcp", "0.0.0.0", 8000, "echo-server (pid 7)")
	l.uplink()
	return l
}

func TestSameNetwork(t *testing.T) {
	l := twoNets()
	l.container("c3", 3, "a")
	l.listen("c3", "tcp", "0.0.0.0", 8000, "echo-server (pid 8)")
	r, err := l.explain("c1", "c3:8000")
	check(t, r, err, want{verdict: Reachable, reason: []string{"echo-server (pid 8)"}, hops: []string{"c1", "c3"},
		steps: []string{"10.1.0.3 dev eth0 src 10.1.0.2", "bridge br-a (network a): veth1 -> veth3"}})
	if r.Address.String() != "10.1.0.3" || r.Hops[1].In != "eth0" || r.Hops[0].Src.String() != "10.1.0.2" {
		t.Errorf("address %s, in %s, src %s", r.Address, r.Hops[1].In, r.Hops[0].Src)
	}
	// Without a port: the address answers.
	r, err = l.explain("c1", "c3")
	check(t, r, err, want{verdict: Reachable, reason: []string{"10.1.0.3 is an address of container c3"}})
}

func TestIsolation(t *testing.T) {
	l := twoNets()
	r, err := l.explain("c1", "c2:8000")
	check(t, r, err, want{verdict: Dropped, cause: CauseIsolation, reason: []string{"c1 (on a)", "c2 (10.2.0.2 on b)", "isolated"},
		fix: "cnet connect b c1", hops: []string{"c1", "host"}, steps: []string{"iifname @bridges oifname @bridges drop"}})
	// The fix: c1 joins b, and reaches c2 there directly.
	l.connect("b", "c1", 3)
	r, err = l.explain("c1", "c2:8000")
	check(t, r, err, want{verdict: Reachable, hops: []string{"c1", "c2"}})
}

func TestInternal(t *testing.T) {
	l := twoNets()
	l.network("vault", "10.9.0.0/24", true)
	l.container("v", 2, "vault")
	l.listen("v", "tcp", "0.0.0.0", 5432, "postgres (pid 9)")
	// From inside: no default route on an internal network.
	r, err := l.explain("v", "c2:8000")
	check(t, r, err, want{verdict: Dropped, cause: CauseInternal, reason: []string{"only on internal network vault"}, fix: "cnet connect b v"})
	// From outside: routed in, dropped by oifname @internal.
	r, err = l.explain("c1", "v:5432")
	check(t, r, err, want{verdict: Dropped, cause: CauseInternal, reason: []string{"network vault is internal"}, fix: "cnet connect vault c1",
		steps: []string{`oifname @internal drop`}})
	// With a default route added by hand, leaving is dropped too.
	l.f.ns["v"].routes = append(l.f.ns["v"].routes, fakeRoute{dst: pfx("0.0.0.0/0"), dev: "eth0", gw: ip("10.9.0.1")})
	r, err = l.explain("v", "203.0.113.7:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseInternal, reason: []string{"nothing from it is routed out"}, steps: []string{"iifname @internal drop"}})
	// The host reaches it: no forwarding involved.
	r, err = l.explain("host", "v:5432")
	check(t, r, err, want{verdict: Reachable, hops: []string{"host", "v"}})
	// Fixed as suggested.
	l.connect("vault", "c1", 3)
	r, err = l.explain("c1", "v:5432")
	check(t, r, err, want{verdict: Reachable, hops: []string{"c1", "v"}})
}

func TestIPForward(t *testing.T) {
	l := twoNets()
	l.f.ns[Host].sysctl["net/ipv4/ip_forward"] = "0"
	r, err := l.explain("c1", "203.0.113.7:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseIPForward, reason: []string{"net.ipv4.ip_forward is off in the host"},
		fix: "sysctl -w net.ipv4.ip_forward=1", steps: []string{"net.ipv4.ip_forward = 0"}})
	l.f.ns[Host].sysctl["net/ipv4/ip_forward"] = "1"
	r, err = l.explain("c1", "203.0.113.7:80")
	check(t, r, err, want{verdict: Leaves, reason: []string{"leaves the host through up0 via 198.51.100.1"},
		steps: []string{"source 10.1.0.2 masqueraded to 198.51.100.254"}})
}

func TestForwardingOffOnOneInterface(t *testing.T) {
	l := twoNets()
	l.f.ns[Host].sysctl["net/ipv4/conf/br-a/forwarding"] = "0"
	r, err := l.explain("c1", "203.0.113.7:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseIPForward, reason: []string{"forwarding is off on br-a in the host"},
		fix: "sysctl -w net.ipv4.conf.br-a.forwarding=1"})
}

func TestNoNetwork(t *testing.T) {
	l := twoNets()
	l.container("lonely", 2)
	for _, c := range [][2]string{{"c1", "lonely:80"}, {"lonely", "host:80"}} {
		r, err := l.explain(c[0], c[1])
		check(t, r, err, want{verdict: Dropped, cause: CauseNoNetwork, reason: []string{"container lonely is attached to no network"},
			fix: "cnet connect NETWORK lonely"})
	}
}

func TestMartian(t *testing.T) {
	l := twoNets()
	l.f.ns[Host].sysctl["martian br-a"] = "1"
	r, err := l.explain("c1", "203.0.113.7:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseMartian, reason: []string{"reverse-path filter", "10.1.0.2 on br-a"}, fix: "rp_filter=2"})
}

func TestForwardPolicyDrop(t *testing.T) {
	l := twoNets()
	l.f.ns[Host].chains = []firewall.ForeignChain{{Name: "ip filter chain FORWARD", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: firewall.Drop,
		Rules: []firewall.ForeignRule{{Opaque: true}}}}
	r, err := l.explain("c1", "203.0.113.7:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseForwardPolicy,
		reason: []string{"policy drop of ip filter chain FORWARD", "Docker", "unless one of its 1 rule(s)"},
		fix:    `nft insert rule ip filter FORWARD iifname "br-a" accept`})
	// The suggested rule is understood, and lets it through.
	l.f.ns[Host].chains[0].Rules = append([]firewall.ForeignRule{{Conds: []firewall.IfCond{{Key: "iifname", Name: "br-a"}}, Verdict: firewall.Accept}},
		l.f.ns[Host].chains[0].Rules...)
	r, err = l.explain("c1", "203.0.113.7:80")
	check(t, r, err, want{verdict: Leaves, steps: []string{"accepted by rule 1 of ip filter chain FORWARD"}})
}

func TestForwardPolicyDropBridged(t *testing.T) {
	l := twoNets()
	l.container("c3", 3, "a")
	l.listen("c3", "tcp", "0.0.0.0", 8000, "echo-server (pid 8)")
	l.f.ns[Host].chains = []firewall.ForeignChain{{Name: "ip filter chain FORWARD", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: firewall.Drop}}
	// Without br_netfilter, switching inside a bridge never meets it.
	r, err := l.explain("c1", "c3:8000")
	check(t, r, err, want{verdict: Reachable})
	l.f.ns[Host].sysctl["net/bridge/bridge-nf-call-iptables"] = "1"
	r, err = l.explain("c1", "c3:8000")
	check(t, r, err, want{verdict: Dropped, cause: CauseForwardPolicy, reason: []string{"bridge-nf-call-iptables=1", "switched inside bridge br-a"},
		fix: "net.bridge.bridge-nf-call-iptables=0", steps: []string{"accepted by `iifname . oifname @samebr accept`"}})
}

func TestNoRoute(t *testing.T) {
	l := twoNets()
	l.f.ns[Host].routes = nil // no default route on the host
	r, err := l.explain("c1", "203.0.113.9:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseNoRoute, reason: []string{"the host has no route to 203.0.113.9"},
		fix: "ip route add 203.0.113.9 via GATEWAY", hops: []string{"c1", "host"}})
	l.f.ns[Host].routes = []fakeRoute{{dst: pfx("203.0.113.0/24"), kind: "unreachable"}}
	r, err = l.explain("host", "203.0.113.9:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseNoRoute, reason: []string{"unreachable route"}})
	// A container whose default route went missing: gc restores it.
	l.f.ns["c1"].routes = nil
	r, err = l.explain("c1", "10.2.0.2:8000")
	check(t, r, err, want{verdict: Dropped, cause: CauseNoRoute, reason: []string{"default route via 10.1.0.1 is missing"}, fix: "cnet gc"})
}

func TestNotPublished(t *testing.T) {
	l := twoNets()
	r, err := l.explain("host", "host:8080")
	check(t, r, err, want{verdict: Dropped, cause: CauseNotPublished, reason: []string{"no container publishes tcp port 8080", "127.0.0.1:8080"},
		fix: "cnet publish CONTAINER 8080:CONTAINERPORT"})
	r, err = l.explain("c1", "host:8080/udp")
	check(t, r, err, want{verdict: Dropped, cause: CauseNotPublished, reason: []string{"udp port 8080", "10.1.0.1:8080", "ICMP port unreachable"},
		fix: "8080:CONTAINERPORT/udp", hops: []string{"c1", "host"}})

	l.publish("c2", "0.0.0.0", 8080, 8000, "tcp")
	r, err = l.explain("host", "host:8080")
	check(t, r, err, want{verdict: Reachable, hops: []string{"host", "c2"}, reason: []string{"echo-server (pid 7)"},
		steps: []string{"127.0.0.1:8080 -> 10.2.0.2:8000: published port 0.0.0.0:8080/tcp of c2", "chain output",
			"masqueraded to 10.2.0.1 by `oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade`"}})
	if h := r.Hops; h[0].Src.String() != "127.0.0.1" || h[1].Src.String() != "10.2.0.1" || h[1].Dst.String() != "10.2.0.2" || h[1].Port != 8000 {
		t.Errorf("packet per hop: %+v then %+v", h[0], h[1])
	}
	// From a container on another network: DNAT, then accepted as published.
	r, err = l.explain("c1", "host:8080")
	check(t, r, err, want{verdict: Reachable, hops: []string{"c1", "host", "c2"},
		steps: []string{"chain prerouting", "accepted by `oifname @bridges ct status dnat accept`", "masqueraded to 10.2.0.1"}})
	// From outside through the host's address: DNAT too.
	r, err = l.explain("c1", "198.51.100.254:8080")
	check(t, r, err, want{verdict: Reachable, hops: []string{"c1", "host", "c2"}})
}

func TestPublishedOnLoopbackOnly(t *testing.T) {
	l := twoNets()
	l.publish("c2", "127.0.0.1", 8080, 8000, "tcp")
	r, err := l.explain("host", "host:8080")
	check(t, r, err, want{verdict: Reachable})
	r, err = l.explain("c1", "host:8080")
	check(t, r, err, want{verdict: Dropped, cause: CauseNotPublished, reason: []string{"c2 publishes tcp port 8080 only on 127.0.0.1", "only from the host itself"},
		fix: "cnet unpublish c2 127.0.0.1:8080:8000 && cnet publish c2 8080:8000"})
}

// TestFromOutside: a namespace beyond the host (the LAN) reaches a
// container only through a published port.
func TestFromOutside(t *testing.T) {
	l := twoNets()
	l.f.ns[Host].links["up0"] = &Link{Name: "up0", Kind: "veth", Up: true, Peer: &Ref{NS: "lan", Name: "wan0"}, Addrs: []netip.Prefix{pfx("198.51.100.254/24")}}
	lan := l.f.space("lan")
	l.w.Spaces = append(l.w.Spaces, "lan")
	lan.links["wan0"] = &Link{Name: "wan0", Kind: "veth", Up: true, Peer: &Ref{NS: Host, Name: "up0"}, Addrs: []netip.Prefix{pfx("198.51.100.1/24")}}
	lan.routes = []fakeRoute{{dst: pfx("10.0.0.0/8"), dev: "wan0", gw: ip("198.51.100.254")}}
	r, err := l.explain("lan", "c2:8000")
	check(t, r, err, want{verdict: Dropped, cause: CauseNotPublished, reason: []string{"c2 (10.2.0.2 on b) is not published"},
		fix: "cnet publish c2 8000:8000", hops: []string{"lan", "host"}, steps: []string{"oifname @bridges drop"}})
	r, err = l.explain("lan", "198.51.100.254:8080")
	check(t, r, err, want{verdict: Dropped, cause: CauseNotPublished, reason: []string{"no container publishes tcp port 8080"}})
	l.publish("c2", "0.0.0.0", 8080, 8000, "tcp")
	r, err = l.explain("lan", "198.51.100.254:8080")
	check(t, r, err, want{verdict: Reachable, hops: []string{"lan", "host", "c2"}})
	// Packets for 127.0.0.1 from outside never reach the host's
	// loopback (here from a namespace whose own lo is down, so it routes
	// 127.0.0.1 out).
	lan.links["lo"].Up = false
	lan.routes = append(lan.routes, fakeRoute{dst: pfx("127.0.0.0/8"), dev: "wan0", gw: ip("198.51.100.254")})
	r, err = l.explain("lan", "127.0.0.1:8080")
	check(t, r, err, want{verdict: Dropped, cause: CauseLoopback, hops: []string{"lan", "host"}, steps: []string{`iifname != "lo" ip daddr 127.0.0.0/8 drop`}})
}

func TestListeners(t *testing.T) {
	l := twoNets()
	l.container("c3", 3, "a")
	l.listen("c3", "tcp", "127.0.0.1", 8000, "echo-server (pid 8)")
	r, err := l.explain("c1", "c3:8000")
	check(t, r, err, want{verdict: Dropped, cause: CauseLoopbackOnly, reason: []string{"echo-server (pid 8) in container c3 listens on 127.0.0.1:8000 only"},
		fix: "listen on 0.0.0.0:8000 (or 10.1.0.3:8000)"})
	// From inside the container itself, 127.0.0.1 works.
	r, err = l.explain("c3", "127.0.0.1:8000")
	check(t, r, err, want{verdict: Reachable, hops: []string{"c3"}})
	r, err = l.explain("c1", "c3:9000")
	check(t, r, err, want{verdict: Dropped, cause: CauseNotListening, reason: []string{"nothing listens on tcp port 9000 in container c3", "refused"},
		fix: "cnet exec c3 -- SERVER"})
	l.listen("c3", "udp", "10.1.0.99", 53, "dnsmasq (pid 3)")
	r, err = l.explain("c1", "c3:53/udp")
	check(t, r, err, want{verdict: Dropped, cause: CauseBoundElsewhere, reason: []string{"10.1.0.99:53 only"}})
	l.listen("c3", "udp", "10.1.0.3", 53, "dnsmasq (pid 4)")
	r, err = l.explain("c1", "c3:53/udp")
	check(t, r, err, want{verdict: Reachable, reason: []string{"dnsmasq (pid 4)"}})
}

func TestHairpin(t *testing.T) {
	l := twoNets()
	l.publish("c2", "0.0.0.0", 8080, 8000, "tcp")
	r, err := l.explain("c2", "host:8080")
	check(t, r, err, want{verdict: Dropped, cause: CauseHairpin, fix: "bridge link set dev veth2 hairpin on", hops: []string{"c2", "host"}})
	l.f.ns[Host].sysctl["hairpin "+l.ct("c2").Endpoint("b").HostIf] = "1"
	r, err = l.explain("c2", "host:8080")
	check(t, r, err, want{verdict: Reachable, hops: []string{"c2", "host", "c2"}, steps: []string{"`oifname @bridges ct status dnat ip saddr @masq masquerade`"}})
}

func TestLinkDownAndNoNeighbour(t *testing.T) {
	l := twoNets()
	l.container("c3", 3, "a")
	l.hostVeth("c3", "a").Up = false
	r, err := l.explain("c1", "c3")
	check(t, r, err, want{verdict: Dropped, cause: CauseLinkDown, reason: []string{"veth3 in the host is down"}, fix: "cnet gc"})
	r, err = l.explain("c1", "10.1.0.99")
	check(t, r, err, want{verdict: Dropped, cause: CauseNoNeighbour, reason: []string{"nothing on bridge br-a (network a) has 10.1.0.99"}})
}

// TestRouterNamespace: a container with a direct link to a namespace
// routes for it; the walk follows the next hop into each namespace.
func TestRouterNamespace(t *testing.T) {
	l := twoNets()
	l.container("r", 9, "a")
	l.f.space("lan")
	l.w.Spaces = append(l.w.Spaces, "lan")
	l.veth("r", "eth1", "10.5.0.1/24", "lan", "eth0", "10.5.0.2/24")
	l.f.ns["lan"].routes = []fakeRoute{{dst: pfx("0.0.0.0/0"), dev: "eth0", gw: ip("10.5.0.1")}}
	l.listen("c1", "tcp", "0.0.0.0", 80, "nginx (pid 5)")
	r, err := l.explain("lan", "c1:80")
	check(t, r, err, want{verdict: Dropped, cause: CauseIPForward, fix: "ip netns exec r sysctl -w net.ipv4.ip_forward=1", hops: []string{"lan", "r"}})
	l.f.ns["r"].sysctl["net/ipv4/ip_forward"] = "1"
	r, err = l.explain("lan", "c1:80")
	check(t, r, err, want{verdict: Reachable, hops: []string{"lan", "r", "c1"}, steps: []string{"eth0 -> eth1 in container r"}})
	if r.Hops[1].In != "eth1" || r.Hops[1].Out != "eth0" || r.Hops[2].Src.String() != "10.5.0.2" {
		t.Errorf("router hop %+v, last %+v", r.Hops[1], r.Hops[2])
	}
}

func TestHopLimit(t *testing.T) {
	l := newLab()
	for _, n := range []string{"x", "y"} {
		l.f.space(n).sysctl["net/ipv4/ip_forward"] = "1"
		l.w.Spaces = append(l.w.Spaces, n)
	}
	l.veth("x", "e0", "10.7.0.1/30", "y", "e0", "10.7.0.2/30")
	l.f.ns["x"].routes = []fakeRoute{{dst: pfx("0.0.0.0/0"), dev: "e0", gw: ip("10.7.0.2")}}
	l.f.ns["y"].routes = []fakeRoute{{dst: pfx("0.0.0.0/0"), dev: "e0", gw: ip("10.7.0.1")}}
	r, err := l.explain("x", "192.0.2.1")
	check(t, r, err, want{verdict: Dropped, cause: CauseHopLimit})
	if len(r.Hops) != MaxHops {
		t.Errorf("%d hops, want %d", len(r.Hops), MaxHops)
	}
}

func TestRefusals(t *testing.T) {
	l := twoNets()
	l.w.Firewall = firewall.FromState(l.w.Networks, nil)
	for _, tt := range []struct {
		src, dst string
		kind     error
		says     string
	}{
		{"ghost", "c2", errs.ErrNotFound, `source "ghost"`},
		{"c1", "ghost:80", errs.ErrNotFound, `container "ghost"`},
		{"a/b", "c2", errs.ErrInvalid, `"a/b"`},
	} {
		tg, err := ParseTarget(tt.dst)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Explain(l.f, l.w, tt.src, tg)
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s -> %s: %v, want %v mentioning %s", tt.src, tt.dst, err, tt.kind, tt.says)
		}
	}
	l.w.Spaces = append(l.w.Spaces, "lan")
	l.f.space("lan")
	if _, err := Explain(l.f, l.w, "lan", Target{Host: true, Port: 80, Proto: "tcp"}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("host:PORT from a namespace: %v, want ErrInvalid", err)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Target
	}{
		{"web", Target{Name: "web", Proto: "tcp"}},
		{"web:80", Target{Name: "web", Port: 80, Proto: "tcp"}},
		{"web:53/udp", Target{Name: "web", Port: 53, Proto: "udp"}},
		{"web:53/UDP", Target{Name: "web", Port: 53, Proto: "udp"}},
		{"10.1.0.2:8000", Target{Addr: ip("10.1.0.2"), Port: 8000, Proto: "tcp"}},
		{"10.1.0.2", Target{Addr: ip("10.1.0.2"), Proto: "tcp"}},
		{"host:8080", Target{Host: true, Port: 8080, Proto: "tcp"}},
		{"host:8080/tcp", Target{Host: true, Port: 8080, Proto: "tcp"}},
	} {
		got, err := ParseTarget(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != strings.Replace(strings.ToLower(tt.in), "/tcp", "", 1) {
			t.Errorf("%q renders as %q", tt.in, got.String())
		}
	}
	for _, tt := range []struct{ in, says string }{
		{"", "want a container"},
		{"web:0", `port "0"`},
		{"web:65536", `port "65536"`},
		{"web:http", `port "http"`},
		{"web:80/sctp", `protocol "sctp"`},
		{"web/udp", "a protocol needs a port"},
		{"host", "host needs a port"},
		{"::1", "IPv4 only"},
		{"[::1]:80", "IPv4 only"},
		{"0.0.0.0:80", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"-web", "want a container name"},
		{"web:", `port ""`},
	} {
		_, err := ParseTarget(tt.in)
		if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("ParseTarget(%q) = %v, want ErrInvalid mentioning %q", tt.in, err, tt.says)
		}
	}
}
