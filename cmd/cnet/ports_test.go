package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// lan wires a namespace "lan" to the sandbox host: the host has
// 192.168.77.1 and 192.168.77.10 on lan0, the neighbour 192.168.77.2.
func lan(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "lan0")
		testenv.Try("ip", "netns", "del", "lan")
	})
	for _, args := range [][]string{
		{"netns", "add", "lan"},
		{"link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", "lan"},
		{"addr", "add", "192.168.77.1/24", "dev", "lan0"},
		{"addr", "add", "192.168.77.10/24", "dev", "lan0"},
		{"link", "set", "lan0", "up"},
		{"-n", "lan", "addr", "add", "192.168.77.2/24", "dev", "eth0"},
		{"-n", "lan", "link", "set", "eth0", "up"},
		{"-n", "lan", "link", "set", "lo", "up"},
	} {
		testenv.Run(t, "ip", args...)
	}
}

// httpFrom fetches http://addr/echo from a namespace ("" for the host).
// Everything is on one machine: a second is ample, and a blocked case
// costs exactly that.
func httpFrom(ns, addr string) error {
	argv := []string{"curl", "-sf", "--max-time", "1", "-o", "/dev/null", "http://" + addr + "/echo"}
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	out, err := testenv.Try(argv[0], argv[1:]...)
	if err != nil {
		return fmt.Errorf("%s: %v %s", strings.Join(argv, " "), err, out)
	}
	return nil
}

func reach(t *testing.T, what, ns, addr string) {
	t.Helper()
	if err := httpFrom(ns, addr); err != nil {
		t.Errorf("%s: want reachable: %v", what, err)
	}
}

func blocked(t *testing.T, what, ns, addr string) {
	t.Helper()
	if err := httpFrom(ns, addr); err == nil {
		t.Errorf("%s: reached %s, want it blocked", what, addr)
	}
}

// udpSocket opens a UDP socket inside a namespace, bound to a fixed
// local port so that its flow keeps one conntrack entry.
func udpSocket(t *testing.T, ns string, local int, remote string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := netns.Do("/run/netns/"+ns, func() error {
		raddr, err := net.ResolveUDPAddr("udp", remote)
		if err != nil {
			return err
		}
		c, err = net.DialUDP("udp", &net.UDPAddr{Port: local}, raddr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Close(t, "c", c) })
	return c
}

// ask sends one datagram and returns the reply, or an error after 1 s.
func ask(c *net.UDPConn, msg string) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	if err := c.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestPublishedPorts(t *testing.T) {
	testenv.RequireTool(t, "conntrack")
	c := newCLI(t)
	lan(t)
	c.ok("network", "create", "front", "--subnet", "172.30.1.0/24")
	c.ok("network", "create", "back", "--subnet", "172.30.2.0/24")
	c.ok("run", "-d", "--name", "web", "--network", "front",
		"-p", "8080:80", "-p", "192.168.77.1:8081:80", "-p", "127.0.0.1:8082:80", "-p", "5300:5300/udp",
		"--", bin.echo, "-listen", ":80", "-udp", ":5300")
	c.ok("run", "-d", "--name", "other", "--network", "back", "--", bin.echo, "-listen", ":80", "-udp", ":5301")
	testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "172.30.1.2:80") })
	testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "172.30.2.2:80") })

	// 0.0.0.0: every host address, from the LAN, the host and containers.
	reach(t, "LAN -> host address", "lan", "192.168.77.1:8080")
	reach(t, "LAN -> second host address", "lan", "192.168.77.10:8080")
	reach(t, "host -> 127.0.0.1", "", "127.0.0.1:8080")
	reach(t, "host -> its own address", "", "192.168.77.1:8080")
	reach(t, "container on another network -> host address", "other", "192.168.77.1:8080")
	reach(t, "hairpin: web -> its own published port", "web", "192.168.77.1:8080")
	// A host address: only through that address.
	reach(t, "LAN -> bound address", "lan", "192.168.77.1:8081")
	blocked(t, "LAN -> another host address", "lan", "192.168.77.10:8081")
	// 127.0.0.1: only from the host.
	reach(t, "host -> 127.0.0.1 binding", "", "127.0.0.1:8082")
	blocked(t, "LAN -> 127.0.0.1 binding through the host address", "lan", "192.168.77.1:8082")
	blocked(t, "container -> 127.0.0.1 binding through the host address", "other", "192.168.77.1:8082")
	// Only published ports: not the container's own port from outside,
	// even for a neighbour that routes the subnet through the host.
	testenv.Run(t, "ip", "-n", "lan", "route", "add", "172.30.0.0/16", "via", "192.168.77.1")
	blocked(t, "LAN -> unpublished container port, routed", "lan", "172.30.1.2:80")
	blocked(t, "LAN -> other container, routed", "lan", "172.30.2.2:80")

	t.Run("crafted packets to 127.0.0.1", func(t *testing.T) {
		// A neighbour sends to 127.0.0.1 at the host's MAC; the host's LAN
		// interface accepts 127/8 (route_localnet, as some setups have).
		testenv.Run(t, "ip", "netns", "exec", "lan", "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
		testenv.Run(t, "ip", "-n", "lan", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local")
		testenv.Run(t, "ip", "-n", "lan", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
		testenv.Run(t, "ip", "-n", "lan", "route", "add", "127.0.0.1/32", "via", "192.168.77.1", "dev", "eth0")
		testenv.Run(t, "sysctl", "-qw", "net.ipv4.conf.lan0.route_localnet=1")
		defer testenv.Run(t, "sysctl", "-qw", "net.ipv4.conf.lan0.route_localnet=0")
		// A container sends to the host's loopback through its gateway:
		// cnet's bridges have route_localnet on.
		testenv.Run(t, "ip", "netns", "exec", "other", "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
		testenv.Run(t, "ip", "-n", "other", "route", "add", "127.0.0.99/32", "via", "172.30.2.1", "dev", "eth0")
		hostOnly, err := net.Listen("tcp", "0.0.0.0:9999") // a service the host means for itself
		if err != nil {
			t.Fatal(err)
		}
		defer testenv.Close(t, "hostOnly", hostOnly)
		go func() {
			for {
				conn, err := hostOnly.Accept()
				if err != nil {
					return
				}
				if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
					t.Error(err)
					return
				}
				buf := make([]byte, 4096)
				_, rerr := conn.Read(buf) // the request; closing with it unread would reset the connection
				_, werr := conn.Write([]byte("HTTP/1.0 200 OK\r\n\r\nsecret"))
				if err := errors.Join(rerr, werr, conn.Close()); err != nil {
					t.Logf("host-only service: %v", err) // the client decides the test
				}
			}
		}()
		check := func(wantBlocked bool) {
			t.Helper()
			// The container's probe is a whole HTTP exchange with a host service.
			err := httpFrom("other", "127.0.0.99:9999")
			if wantBlocked && err == nil {
				t.Errorf("a container reached the host's loopback service at 127.0.0.99:9999")
			}
			if !wantBlocked && err != nil {
				t.Errorf("without the raw rule, the container should reach 127.0.0.99:9999 (the probe is broken): %v", err)
			}
			// The neighbour's SYN for 127.0.0.1:8082 would be DNATed to the
			// container (its answer cannot come back with a loopback
			// source): whether it got past the raw hook shows in conntrack.
			testenv.Try("conntrack", "-D", "-p", "tcp", "--orig-port-dst", "8082")
			_ = httpFrom("lan", "127.0.0.1:8082") // meant to fail: conntrack tells how far it got
			out, _ := testenv.Try("conntrack", "-L", "-p", "tcp", "--orig-port-dst", "8082")
			passed := strings.Contains(out, "src=192.168.77.2 dst=127.0.0.1")
			if wantBlocked && passed {
				t.Errorf("a LAN packet to 127.0.0.1:8082 got past the host's raw hook:\n%s", out)
			}
			if !wantBlocked && !passed {
				t.Errorf("without the raw rule, the LAN packet should reach conntrack (the probe is broken):\n%s", out)
			}
		}
		check(true)
		// The probes are sensitive: without cnet's raw rule both get through.
		testenv.Run(t, "nft", "flush", "chain", "inet", "cnet", "raw_prerouting")
		check(false)
		c.ok("gc")
		check(true)
	})

	t.Run("udp and conntrack", func(t *testing.T) {
		client := udpSocket(t, "lan", 40000, "192.168.77.1:5300")
		if got, err := ask(client, "a"); err != nil || got != "a via :5300" {
			t.Fatalf("udp through 5300: %q %v", got, err)
		}
		c.ok("unpublish", "web", "5300:5300/udp")
		if got, err := ask(client, "b"); err == nil {
			t.Errorf("unpublished udp port still answers: %q", got)
		}
		c.ok("publish", "other", "5300:5301/udp")
		// The same flow (same socket, same ports) now reaches the new container:
		// the old mapping's conntrack entry is gone.
		if got, err := ask(client, "c"); err != nil || got != "c via :5301" {
			t.Errorf("after moving the mapping, the live flow got %q %v; want the new container", got, err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		held, err := net.Listen("tcp", "0.0.0.0:7777")
		if err != nil {
			t.Fatal(err)
		}
		defer testenv.Close(t, "held", held)
		before := testenv.Snapshot(t)
		for _, tc := range []struct {
			args []string
			code int
			says string
		}{
			{[]string{"publish", "other", "8080:80"}, exitConflict, "container web"},
			{[]string{"publish", "other", "192.168.77.10:8080:80"}, exitConflict, "container web"},
			{[]string{"publish", "other", "7777:80"}, exitConflict, fmt.Sprintf("pid %d", os.Getpid())},
			{[]string{"publish", "other", "192.168.99.9:80:80"}, exitInvalid, "assigned to this host"},
			{[]string{"publish", "other", "80"}, exitInvalid, "HOSTPORT"},
			{[]string{"publish", "other", "1000-1002:80-81"}, exitInvalid, "differ in length"},
			{[]string{"publish", "other", "70000:80"}, exitInvalid, "outside 1-65535"},
			{[]string{"publish", "other", "80:80/icmp"}, exitInvalid, "neither tcp nor udp"},
			{[]string{"unpublish", "web", "1234:80"}, exitNotFound, "web publishes"},
			{[]string{"create", "x", "-p", "8080:80"}, exitConflict, "container web"},
		} {
			r := c.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.says) {
				t.Errorf("cnet %s: exit %d %q; want %d mentioning %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.says)
			}
		}
		if after := testenv.Snapshot(t); after != before {
			t.Errorf("refusals changed the sandbox:\n%s\nwant:\n%s", after, before)
		}
	})

	out := c.ok("port", "web")
	for _, want := range []string{"0.0.0.0:8080->80/tcp", "192.168.77.1:8081->80/tcp", "127.0.0.1:8082->80/tcp"} {
		if !strings.Contains(out, want) {
			t.Errorf("cnet port web lacks %q:\n%s", want, out)
		}
	}
	if ls := c.ok("ls"); !strings.Contains(ls, "0.0.0.0:8080->80/tcp") {
		t.Errorf("ls does not show ports:\n%s", ls)
	}
	c.ok("rm", "-f", "web", "other")
	if out := testenv.Run(t, "nft", "list", "map", "inet", "cnet", "dnat_tcp_any"); strings.Contains(out, "8080") {
		t.Errorf("mapping left after rm:\n%s", out)
	}
	blocked(t, "LAN -> removed mapping", "lan", "192.168.77.1:8080")
}

// TestPublishRefusesHeldHostPort: a host process listening on a port
// (tcp) or bound to it (udp) keeps it from being published on its
// address and on 0.0.0.0, named in the refusal, and nothing is changed;
// another address or protocol is free.
func TestPublishRefusesHeldHostPort(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "held", "--subnet", "10.77.0.0/24")
	c.ok("create", "web", "--network", "held")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "ln", ln)
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "pc", pc)
	tcpPort, udpPort := ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port
	me := fmt.Sprintf("(pid %d)", os.Getpid())
	ruleset := func() string { out, _ := testenv.Try("nft", "list", "table", "inet", "cnet"); return out }
	before := ruleset()
	for _, spec := range []string{
		fmt.Sprintf("%d:80", tcpPort),
		fmt.Sprintf("127.0.0.1:%d:80", tcpPort),
		fmt.Sprintf("%d:53/udp", udpPort),
		fmt.Sprintf("127.0.0.1:%d:53/udp", udpPort),
	} {
		r := c.run("publish", "web", spec)
		if r.code != exitConflict || !strings.Contains(r.stderr, "in use on the host") || !strings.Contains(r.stderr, me) {
			t.Errorf("publish %s: exit %d %q; want %d naming this process %s", spec, r.code, r.stderr, exitConflict, me)
		}
	}
	if got := strings.TrimSpace(c.ok("port", "web")); got != "" {
		t.Errorf("refused publishes left ports: %q", got)
	}
	if after := ruleset(); after != before {
		t.Errorf("refused publishes changed the ruleset:\n%s\nwant:\n%s", after, before)
	}
	// Free: udp on the tcp listener's port, tcp on the udp socket's port.
	c.ok("publish", "web", fmt.Sprintf("127.0.0.1:%d:53/udp", tcpPort), fmt.Sprintf("%d:80", udpPort))
}

// dnatElems counts the mappings in `map inet cnet NAME`, as nft lists
// them (0 when the table is gone).
func dnatElems(t *testing.T, name string) int {
	t.Helper()
	out, err := testenv.Try("nft", "-j", "list", "map", "inet", "cnet", name)
	if err != nil {
		return 0
	}
	var doc struct {
		Nftables []struct {
			Map *struct{ Elem []json.RawMessage }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j list map inet cnet %s: %v", name, err)
	}
	for _, o := range doc.Nftables {
		if o.Map != nil {
			return len(o.Map.Elem)
		}
	}
	return 0
}

// TestEveryPortPublished: all 65,535 tcp ports published on every
// address, by one range of 10,000 in `cnet run -p` and by separate
// publishes to another container, survive a network create (which
// rebuilds the firewall), are restored whole by gc after `nft flush
// ruleset`, reach their containers, and leave nothing behind on rm.
// Before, the rebuild was one netlink batch past the socket's limit
// (EMSGSIZE from about 5,500 mappings), and an element list past 64 KiB
// kept only a few hundred of its mappings.
func TestEveryPortPublished(t *testing.T) {
	c := newCLI(t)
	lan(t)
	const all = 65535
	// --no-dns: port 53 on the gateway stays free to publish.
	c.ok("network", "create", "wide", "--subnet", "172.30.9.0/24", "--no-dns")
	c.ok("run", "-d", "--name", "ten", "--network", "wide", "-p", "10000-19999:10000-19999", "--", bin.echo, "-listen", ":10000")
	c.ok("run", "-d", "--name", "rest", "--network", "wide", "--", bin.echo, "-listen", ":1")
	for _, spec := range []string{"1-9999:1-9999", "20000-40000:20000-40000", "40001-65535:40001-65535"} {
		c.ok("publish", "rest", spec)
	}
	// Two more listeners in rest, at the top of the range.
	for _, port := range []string{":20000", ":65535"} {
		srv := exec.Command("ip", "netns", "exec", "rest", bin.echo, "-listen", port)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			testenv.Logged(t, "kill echo-server", srv.Process.Kill())
			_ = srv.Wait() // killed: its exit status is the signal
		})
	}
	spots := []string{"1", "10000", "20000", "65535"}
	reachAll := func(when string) {
		t.Helper()
		for _, p := range spots {
			testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("lan", "192.168.77.1:"+p) })
		}
		for _, p := range spots {
			reach(t, when+": host -> 127.0.0.1:"+p, "", "127.0.0.1:"+p)
		}
	}
	if n := dnatElems(t, "dnat_tcp_any"); n != all {
		t.Fatalf("after publishing: dnat_tcp_any has %d mappings, want %d", n, all)
	}
	reachAll("published")
	if got := strings.Count(c.ok("port", "rest"), "\n"); got != all-10000 {
		t.Errorf("cnet port rest lists %d mappings, want %d", got, all-10000)
	}

	c.ok("network", "create", "other", "--subnet", "172.30.10.0/24", "--no-dns")
	if n := dnatElems(t, "dnat_tcp_any"); n != all {
		t.Errorf("after network create: dnat_tcp_any has %d mappings, want %d", n, all)
	}
	testenv.Run(t, "nft", "flush", "ruleset")
	if n := dnatElems(t, "dnat_tcp_any"); n != 0 {
		t.Fatalf("after nft flush ruleset: %d mappings left", n)
	}
	c.ok("gc")
	if n := dnatElems(t, "dnat_tcp_any"); n != all {
		t.Errorf("after gc: dnat_tcp_any has %d mappings, want %d", n, all)
	}
	if out := c.ok("gc"); strings.Contains(out, "repair") {
		t.Errorf("a second gc still repairs:\n%s", out)
	}
	reachAll("after gc")

	c.ok("network", "rm", "other")
	c.ok("rm", "-f", "ten", "rest")
	if n := dnatElems(t, "dnat_tcp_any"); n != 0 {
		t.Errorf("after rm: dnat_tcp_any has %d mappings, want none", n)
	}
	blocked(t, "LAN -> removed mapping", "lan", "192.168.77.1:10000")
}
