package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// secCase is one row of the security matrix: a real connection attempt
// from a place to an address, and whether it must get through.
type secCase struct {
	from, to, proto string
	open            bool
	why             string
	// setup changes the source before the attempt (and returns the undo).
	setup func(t *testing.T) func()
	// probe, if set, is the attempt: nil if it got through.
	probe func(t *testing.T) error
}

func (s secCase) outcome() string {
	if s.open {
		return "reachable"
	}
	return "blocked"
}

// TestSecurityMatrix sets up a LAN neighbour that routes the container
// subnets through the host, "the internet" behind the host, two networks,
// an internal one, and ports published on 0.0.0.0, on one host address
// and on 127.0.0.1, then makes a real connection for every case of the
// matrix in docs/security.md, which it generates (CNET_UPDATE_DOCS=1
// rewrites it; otherwise the file must match).
func TestSecurityMatrix(t *testing.T) {
	c := newCLI(t)
	lan(t) // host 192.168.77.1 and .10 on lan0, neighbour 192.168.77.2
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "uplink")
		testenv.Try("ip", "netns", "del", "inet")
	})
	for _, args := range [][]string{
		{"netns", "add", "inet"},
		{"link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", "inet"},
		{"addr", "add", "198.51.100.254/24", "dev", "uplink"},
		{"link", "set", "uplink", "up"},
		{"-n", "inet", "addr", "add", "198.51.100.1/24", "dev", "eth0"},
		{"-n", "inet", "link", "set", "eth0", "up"},
		{"-n", "inet", "link", "set", "lo", "up"},
		{"-n", "lan", "route", "add", "172.30.0.0/16", "via", "192.168.77.1"},
	} {
		testenv.Run(t, "ip", args...)
	}
	internet := execCommand(t.Context(), "ip", "netns", "exec", "inet", bin.echo, "-listen", ":80")
	if err := internet.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = internet.Process.Kill(); _ = internet.Wait() }) // a process the test started: killed, as asked, then reaped
	hostService(t, "127.0.0.1:9999")
	hostService(t, "0.0.0.0:9998")
	hostService(t, "192.168.77.1:9997")

	c.ok("network", "create", "front", "--subnet", "172.30.1.0/24")
	c.ok("network", "create", "back", "--subnet", "172.30.2.0/24")
	c.ok("network", "create", "intra", "--subnet", "172.30.3.0/24", "--internal")
	c.ok("run", "-d", "--name", "web", "--network", "front",
		"-p", "8080:80", "-p", "192.168.77.1:8081:80", "-p", "127.0.0.1:8082:80", "-p", "5300:5300/udp",
		"--", bin.echo, "-listen", ":80", "-udp", ":5300")
	for _, ct := range [][2]string{{"peer", "front"}, {"other", "back"}, {"secret", "intra"}, {"buddy", "intra"}} {
		c.ok("run", "-d", "--name", ct[0], "--network", ct[1], "--", bin.echo, "-listen", ":80")
	}
	// A container that routes, from a lab file: lefty reaches righty only
	// through router, which forwards between networks left and right.
	lab := filepath.Join(t.TempDir(), "sec.yaml")
	if err := os.WriteFile(lab, []byte(`lab: sec
networks:
  left: {subnet: 172.30.4.0/24}
  right: {subnet: 172.30.5.0/24}
containers:
  router:
    networks: [{network: left, ip: 172.30.4.254}, {network: right, ip: 172.30.5.254}]
    forwarding: true
  lefty:
    networks: [{network: left, ip: 172.30.4.10}]
    routes: [{to: 172.30.5.0/24, via: 172.30.4.254}]
  righty:
    networks: [{network: right, ip: 172.30.5.10}]
    routes: [{to: 172.30.4.0/24, via: 172.30.5.254}]
    command: [`+bin.echo+`, -listen, ":80"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("apply", "-f", lab)
	for _, a := range []string{"172.30.1.2:80", "172.30.1.3:80", "172.30.2.2:80", "172.30.3.2:80", "172.30.3.3:80", "172.30.5.10:80"} {
		testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", a) })
	}
	testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("inet", "198.51.100.1:80") })

	loopbackRoute := func(t *testing.T) func() {
		// The container sends to the host's loopback through its gateway,
		// as a compromised process could: it accepts 127/8 on its eth0
		// and routes 127.0.0.99 via the gateway.
		testenv.Run(t, "ip", "netns", "exec", "peer", "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
		testenv.Run(t, "ip", "-n", "peer", "route", "add", "127.0.0.99/32", "via", "172.30.1.1", "dev", "eth0")
		return func() { testenv.Run(t, "ip", "-n", "peer", "route", "del", "127.0.0.99/32") }
	}
	readdress := func(t *testing.T, addr string) {
		testenv.Run(t, "ip", "-n", "peer", "-4", "addr", "flush", "dev", "eth0") // its IPv6 link-local stays
		testenv.Run(t, "ip", "-n", "peer", "addr", "add", addr, "dev", "eth0")
		testenv.Run(t, "ip", "-n", "peer", "route", "add", "default", "via", "172.30.1.1")
	}
	spoofIP := func(t *testing.T) func() {
		readdress(t, "172.30.1.99/24")
		return func() { readdress(t, "172.30.1.3/24") }
	}
	spoofMAC := func(t *testing.T) func() {
		testenv.Run(t, "ip", "-n", "peer", "link", "set", "eth0", "address", "02:63:de:ad:be:ef")
		return func() { testenv.Run(t, "ip", "-n", "peer", "link", "set", "eth0", "address", "02:63:ac:1e:01:03") }
	}
	spoofRouterMAC := func(t *testing.T) func() {
		testenv.Run(t, "ip", "-n", "router", "link", "set", "eth1", "address", "02:63:de:ad:be:ee")
		return func() { testenv.Run(t, "ip", "-n", "router", "link", "set", "eth1", "address", "02:63:ac:1e:05:fe") }
	}
	// hostInput is the rule docs/security.md suggests to keep containers
	// from the host's own services, in a table of the user's.
	hostInput := func(t *testing.T) func() {
		if out, err := testenv.TryIn(hostInputTable, "nft", "-f", "-"); err != nil {
			t.Fatalf("nft -f the user's input table: %v\n%s", err, out)
		}
		return func() { testenv.Run(t, "nft", "delete", "table", "inet", "hostinput") }
	}
	internalRoute := func(t *testing.T) func() {
		testenv.Run(t, "ip", "-n", "secret", "route", "add", "192.168.77.0/24", "via", "172.30.3.1")
		return func() { testenv.Run(t, "ip", "-n", "secret", "route", "del", "192.168.77.0/24") }
	}
	nameServer := func(t *testing.T) error {
		q := new(mdns.Msg)
		q.SetQuestion("web.front.cnet.", mdns.TypeA)
		var in *mdns.Msg
		err := netns.Do("/run/netns/peer", func() error {
			var err error
			in, _, err = (&mdns.Client{Net: "udp", Timeout: time.Second}).Exchange(q, "172.30.1.1:53")
			return err
		})
		if err != nil {
			return err
		}
		if len(in.Answer) != 1 || !strings.Contains(in.Answer[0].String(), "172.30.1.2") {
			return fmt.Errorf("web.front.cnet: got %v, want 172.30.1.2", in.Answer)
		}
		return nil
	}
	spoofBoth := func(t *testing.T) func() {
		undoMAC := spoofMAC(t)
		undoIP := spoofIP(t)
		return func() { undoIP(); undoMAC() }
	}

	// Raw frames from peer (frames_test.go): a UDP datagram to a listener
	// on web, and a forged ARP reply to the host, with and without VLAN
	// tags, and IPv6 to web's link-local address.
	toWeb := netip.MustParseAddrPort("172.30.1.2:5301")
	datagram := func(tags []vlanTag, src string) func(t *testing.T) error {
		return func(t *testing.T) error {
			return spoofedDatagram(t, "peer", "web", tags, netip.MustParseAddrPort(src), toWeb)
		}
	}
	forgeARP := func(tags []vlanTag) func(t *testing.T) error {
		return func(t *testing.T) error {
			return poisonARP(t, "peer", "cnet-front", tags, netip.MustParseAddr("172.30.1.2"), "172.30.1.2:80")
		}
	}
	webIPv6 := func(t *testing.T) error {
		return httpFrom("peer", "["+linkLocal(hwAddr(t, "web", "eth0")).String()+"%25eth0]:80")
	}
	const webARP = "the host's ARP entry for 172.30.1.2"

	cases := []secCase{
		{"LAN", "192.168.77.1:8080", "tcp", true, "published on 0.0.0.0: every host address", nil, nil},
		{"LAN", "192.168.77.10:8080", "tcp", true, "published on 0.0.0.0: every host address", nil, nil},
		{"LAN", "192.168.77.1:5300", "udp", true, "published on 0.0.0.0, UDP", nil, nil},
		{"LAN", "192.168.77.1:8081", "tcp", true, "published on 192.168.77.1", nil, nil},
		{"LAN", "192.168.77.10:8081", "tcp", false, "published on 192.168.77.1 only, not on the host's other address", nil, nil},
		{"LAN", "192.168.77.1:8082", "tcp", false, "published on 127.0.0.1: the host only", nil, nil},
		{"LAN", "172.30.1.2:80", "tcp", false, "unpublished container port, even with a route to the subnet through the host", nil, nil},
		{"LAN", "172.30.2.2:80", "tcp", false, "unpublished container port on another network, routed", nil, nil},
		{"LAN", "172.30.3.2:80", "tcp", false, "internal network: no ingress, routed", nil, nil},
		{"internet", "198.51.100.254:8080", "tcp", true, "published on 0.0.0.0: the uplink address too", nil, nil},
		{"internet", "198.51.100.254:8081", "tcp", false, "published on 192.168.77.1 only", nil, nil},
		{"host", "127.0.0.1:8082", "tcp", true, "published on 127.0.0.1", nil, nil},
		{"host", "127.0.0.1:8080", "tcp", true, "published on 0.0.0.0 includes the host's loopback", nil, nil},
		{"host", "192.168.77.1:8081", "tcp", true, "published on 192.168.77.1", nil, nil},
		{"host", "172.30.1.2:80", "tcp", true, "the host holds every gateway: it reaches containers directly", nil, nil},
		{"host", "172.30.3.2:80", "tcp", true, "the host is on internal networks too (their gateway)", nil, nil},
		{"web", "172.30.1.3:80", "tcp", true, "same network: switched by the bridge", nil, nil},
		{"web", "172.30.2.2:80", "tcp", false, "another network: isolated", nil, nil},
		{"other", "172.30.1.2:80", "tcp", false, "another network: isolated, the other way", nil, nil},
		{"other", "192.168.77.1:8080", "tcp", true, "a published port is public, from containers too", nil, nil},
		{"other", "192.168.77.1:8082", "tcp", false, "published on 127.0.0.1: the host only", nil, nil},
		{"web", "192.168.77.1:8080", "tcp", true, "hairpin: a container reaches its own published port", nil, nil},
		{"web", "198.51.100.1:80", "tcp", true, "egress, masqueraded", nil, nil},
		{"other", "198.51.100.1:80", "tcp", true, "egress, masqueraded", nil, nil},
		{"secret", "198.51.100.1:80", "tcp", false, "internal network: no egress", nil, nil},
		{"secret", "172.30.1.2:80", "tcp", false, "internal network: no path to other networks", nil, nil},
		{"web", "172.30.3.2:80", "tcp", false, "internal network: no ingress from other networks", nil, nil},
		{"secret", "172.30.3.3:80", "tcp", true, "internal network: its own containers reach each other", nil, nil},
		{"secret", "192.168.77.1:8080", "tcp", false, "internal network: not even the host's published ports", nil, nil},
		{"peer", "127.0.0.99:9999", "tcp", false, "a host service on 127.0.0.1, through the gateway with a forged route (CVE-2020-8558)", loopbackRoute, nil},
		{"peer", "172.30.1.1:9999", "tcp", false, "a host service on 127.0.0.1 is not on the gateway address", nil, nil},
		{"peer", "172.30.1.1:9998", "tcp", true, "a host service on 0.0.0.0 listens on the gateway too: cnet does not filter the host's input", nil, nil},
		{"peer", "192.168.77.1:9997", "tcp", true, "a host service bound to the host's LAN address: a container reaches every host address through its gateway, as with Docker and Podman", nil, nil},
		{"secret", "192.168.77.1:9997", "tcp", false, "the same from an internal network: it has no route beyond its subnet", nil, nil},
		{"secret", "192.168.77.1:9997", "tcp", true, "the same, the container adding a route via its gateway: internal stops forwarding, not the host's input", internalRoute, nil},
		{"peer", "192.168.77.1:9997", "tcp", false, "the same with the input rule of \"What cnet does not do\" below, in a table of the user's", hostInput, nil},
		{"peer", "192.168.77.1:8080", "tcp", true, "with that rule, published ports still work: DNAT sends them to forward, not input", hostInput, nil},
		{"peer", "172.30.1.1:53", "udp", true, "with that rule, cnet's name server still answers (web.front.cnet)", hostInput, nameServer},
		{"peer", "172.30.1.2:80", "tcp", false, "the container changed its own IP to 172.30.1.99: frames with a source address not its own are dropped at the bridge port", spoofIP, nil},
		{"peer", "172.30.1.2:80", "tcp", false, "the container changed its own MAC: frames with a source MAC not its own are dropped at the bridge port", spoofMAC, nil},
		{"peer", "172.30.1.2:80", "tcp", false, "the container changed its IP and MAC", spoofBoth, nil},
		{"peer", "172.30.1.2:80", "tcp", true, "the same container, its address and MAC as cnet gave them", nil, nil},
		{"lefty", "172.30.5.10:80", "tcp", true, "through router, a container that routes (forwarding on): the packets it forwards carry other sources and pass its bridge port", nil, nil},
		{"lefty", "172.30.5.10:80", "tcp", false, "router changed its MAC: a container that routes still sends only from its own MAC", spoofRouterMAC, nil},
		{"peer", "172.30.1.2:5301", "udp", true, "a raw frame from its own address, untagged: the probe of the rows below, when it is allowed", nil, datagram(nil, "172.30.1.3:40000")},
		{"peer", "172.30.1.2:5301", "udp", false, "a raw frame from a spoofed source, 172.30.1.99", nil, datagram(nil, "172.30.1.99:40000")},
		{"peer", "172.30.1.2:5301", "udp", false, "the same inside an 802.1Q priority tag (VID 0), which the receiving kernel strips: only untagged IPv4 and ARP frames leave an endpoint", nil, datagram(dot1q, "172.30.1.99:40000")},
		{"peer", "172.30.1.2:5301", "udp", false, "the same inside an 802.1ad tag (VID 0)", nil, datagram(dot1ad, "172.30.1.99:40000")},
		{"peer", "172.30.1.2:5301", "udp", false, "the same double-tagged: 802.1ad VID 0, then 802.1Q VID 0", nil, datagram(qinq, "172.30.1.99:40000")},
		{"peer", webARP, "arp", false, "a forged ARP reply: web's address 172.30.1.2 is at peer's MAC", nil, forgeARP(nil)},
		{"peer", webARP, "arp", false, "the same inside an 802.1Q priority tag (VID 0)", nil, forgeARP(dot1q)},
		{"peer", webARP, "arp", false, "the same double-tagged: 802.1ad VID 0, then 802.1Q VID 0", nil, forgeARP(qinq)},
		{"peer", "web's fe80:: address, port 80", "tcp", false, "IPv6: cnet is IPv4-only, so IPv6 frames from an endpoint are dropped at its bridge port", nil, webIPv6},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s->%s/%s", tc.from, tc.to, tc.proto), func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup(t)()
			}
			err := attempt(t, tc)
			if tc.open && err != nil {
				t.Errorf("%s -> %s/%s: want reachable (%s): %v", tc.from, tc.to, tc.proto, tc.why, err)
			}
			if !tc.open && err == nil {
				t.Errorf("%s -> %s/%s: reached, want blocked (%s)", tc.from, tc.to, tc.proto, tc.why)
			}
		})
	}
	t.Run("spoofing probes are sensitive", func(t *testing.T) {
		// Without cnet's bridge table the spoofed connection gets through:
		// the blocked rows above are the firewall's doing. gc puts it back.
		testenv.Run(t, "nft", "delete", "table", "bridge", "cnet")
		undo := spoofBoth(t)
		if err := httpFrom("peer", "172.30.1.2:80"); err != nil {
			t.Errorf("without table bridge cnet the spoofed connection should get through (the probe is broken): %v", err)
		}
		c.ok("gc")
		if err := httpFrom("peer", "172.30.1.2:80"); err == nil {
			t.Error("after gc restored the firewall, the spoofed connection still gets through")
		}
		undo()
		if err := httpFrom("peer", "172.30.1.2:80"); err != nil {
			t.Errorf("with its own address and MAC back, peer cannot reach web: %v", err)
		}
	})
	t.Run("tag and IPv6 probes are sensitive", func(t *testing.T) {
		// Without the ether type allow-list, tagged frames skip the
		// address checks and IPv6 passes: the blocked rows above are that
		// rule's doing. gc puts it back.
		out := testenv.Run(t, "nft", "-a", "list", "chain", "bridge", "cnet", "prerouting")
		handle := ""
		for _, l := range strings.Split(out, "\n") {
			if rule, h, ok := strings.Cut(strings.TrimSpace(l), " # handle "); ok && rule == "ether type != { ip, arp } drop" {
				handle = h
			}
		}
		if handle == "" {
			t.Fatalf("no ether type allow-list in table bridge cnet:\n%s", out)
		}
		testenv.Run(t, "nft", "delete", "rule", "bridge", "cnet", "prerouting", "handle", handle)
		for name, probe := range map[string]func(*testing.T) error{
			"802.1Q datagram": datagram(dot1q, "172.30.1.99:40000"), "802.1ad datagram": datagram(dot1ad, "172.30.1.99:40000"),
			"double-tagged datagram": datagram(qinq, "172.30.1.99:40000"), "802.1Q ARP": forgeARP(dot1q),
			"double-tagged ARP": forgeARP(qinq), "IPv6": webIPv6,
		} {
			if err := probe(t); err != nil {
				t.Errorf("%s: without the allow-list it should get through (the probe is broken): %v", name, err)
			}
		}
		if err := datagram(nil, "172.30.1.99:40000")(t); err == nil {
			t.Error("an untagged spoofed datagram got through without the allow-list: the source check should still hold")
		}
		c.ok("gc")
		if err := datagram(dot1q, "172.30.1.99:40000")(t); err == nil {
			t.Error("after gc restored the firewall, the tagged spoofed datagram still gets through")
		}
	})
	checkSecurityDoc(t, cases)
}

// attempt makes one real connection; an open case gets three tries, as
// the machine may be busy.
func attempt(t *testing.T, tc secCase) error {
	ns := map[string]string{"LAN": "lan", "internet": "inet", "host": ""}[tc.from]
	if _, named := map[string]bool{"LAN": true, "internet": true, "host": true}[tc.from]; !named {
		ns = tc.from
	}
	try := func() error {
		if tc.proto == "udp" {
			conn := udpSocket(t, ns, 0, tc.to)
			_, err := ask(conn, "probe")
			testenv.Close(t, "conn", conn)
			return err
		}
		return httpFrom(ns, tc.to)
	}
	tries := 1
	if tc.open {
		tries = 3
	}
	if tc.probe != nil {
		try = func() error { return tc.probe(t) }
	}
	var err error
	for range tries {
		if err = try(); err == nil {
			return nil
		}
	}
	return err
}

// hostInputTable keeps containers from the host's own services, except
// cnet's name server; docs/security.md quotes it.
const hostInputTable = `table inet hostinput {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "cnet-*" ct state established,related accept
		iifname "cnet-*" meta l4proto { tcp, udp } th dport 53 accept
		iifname "cnet-*" drop
	}
}
`

// hostService serves HTTP on the sandbox host at addr.
func hostService(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := fmt.Fprintln(w, "host service"); err != nil {
			t.Errorf("host service: %v", err)
		}
	})}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("host service: %v", err)
		}
	}()
	t.Cleanup(func() { testenv.Close(t, "srv", srv) })
	return ln
}

const secDoc = "../../docs/security.md"

// checkSecurityDoc compares the matrix in docs/security.md (between the
// markers) with the cases, or rewrites it with CNET_UPDATE_DOCS=1.
func checkSecurityDoc(t *testing.T, cases []secCase) {
	var b strings.Builder
	b.WriteString("| from | to | proto | outcome | why |\n|---|---|---|---|---|\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.from, c.to, c.proto, c.outcome(), c.why)
	}
	table := b.String()
	data, err := os.ReadFile(secDoc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	const begin, end = "<!-- matrix: generated by TestSecurityMatrix -->\n", "<!-- end of matrix -->\n"
	doc := string(data)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if os.Getenv("CNET_UPDATE_DOCS") == "1" {
		if i < 0 || j < i {
			t.Fatalf("%s lacks the markers %q and %q", secDoc, begin, end)
		}
		doc = doc[:i+len(begin)] + table + doc[j:]
		if err := os.WriteFile(secDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if i < 0 || j < i || doc[i+len(begin):j] != table {
		t.Errorf("%s does not hold the matrix this test checks; run with CNET_UPDATE_DOCS=1 to rewrite it. Want:\n%s", secDoc, table)
	}
}
