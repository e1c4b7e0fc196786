package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestDryRunScriptThenCreate: the script `cnet create --dry-run` prints,
// run by hand with sh -e, builds a container cnet's state does not know.
// The next `cnet create` must not give its container the same address or
// MAC: it asks the bridge what is live behind its ports and skips it, and
// a static --ip of that address is refused, naming the holder. The two
// containers then reach each other, each answering with its own MAC.
func TestDryRunScriptThenCreate(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "base", "--subnet", "172.29.0.0/24")
	script := c.ok("create", "byhand", "--network", "base", "--dry-run")
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "byhand") // its veth goes with it
		testenv.Try("rm", "-rf", "/etc/netns/byhand")
	})
	if out, err := testenv.TryIn(script, "sh", "-e"); err != nil {
		t.Fatalf("sh -e of the dry-run script: %v\n%s\n%s", err, out, script)
	}
	handIP, handMAC := ifAddr(t, "byhand", "eth0")
	if handIP != "172.29.0.2" {
		t.Fatalf("the script gave byhand %s, want 172.29.0.2 (the test's premise)", handIP)
	}

	r := c.run("create", "static", "--network", "base", "--ip", handIP)
	if r.code != exitConflict {
		t.Fatalf("create --ip %s: exit %d, want %d\n%s%s", handIP, r.code, exitConflict, r.stdout, r.stderr)
	}
	for _, s := range []string{handIP, "byhand", "not a cnet endpoint", "live on bridge"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("create --ip %s says %q, which does not mention %q", handIP, r.stderr, s)
		}
	}

	var y cnet.Container
	c.json(&y, "create", "y", "--network", "base")
	yIP, yMAC := ifAddr(t, "y", "eth0")
	if yIP == handIP || yMAC == handMAC {
		t.Fatalf("cnet gave y %s %s, which byhand already holds (%s %s)", yIP, yMAC, handIP, handMAC)
	}
	if got := y.Endpoints[0].Address.Addr().String(); got != yIP {
		t.Errorf("state says y has %s, the kernel %s", got, yIP)
	}
	for _, p := range [][2]string{{"y", handIP}, {"byhand", yIP}} {
		testenv.Run(t, "ip", "netns", "exec", p[0], "ping", "-c1", "-W2", p[1])
	}
	if got := neighMAC(t, "y", handIP); got != handMAC {
		t.Errorf("y reached %s at %s, want byhand's %s", handIP, got, handMAC)
	}
	if got := neighMAC(t, "byhand", yIP); got != yMAC {
		t.Errorf("byhand reached %s at %s, want y's %s", yIP, got, yMAC)
	}
}

// ifAddr returns the IPv4 address and MAC of an interface in a namespace.
func ifAddr(t *testing.T, ns, dev string) (ip, mac string) {
	t.Helper()
	var links []struct {
		Address  string `json:"address"`
		AddrInfo []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
		} `json:"addr_info"`
	}
	out := testenv.Run(t, "ip", "-n", ns, "-j", "addr", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -n %s -j addr show dev %s: %v\n%s", ns, dev, err, out)
	}
	for _, a := range links[0].AddrInfo {
		if a.Family == "inet" {
			ip = a.Local
		}
	}
	return ip, links[0].Address
}

// neighMAC returns the MAC a namespace's neighbour table has for ip.
func neighMAC(t *testing.T, ns, ip string) string {
	t.Helper()
	var ns4 []struct {
		LLAddr string `json:"lladdr"`
	}
	out := testenv.Run(t, "ip", "-n", ns, "-j", "neigh", "show", ip)
	if err := json.Unmarshal([]byte(out), &ns4); err != nil || len(ns4) != 1 {
		t.Fatalf("ip -n %s -j neigh show %s: %v\n%s", ns, ip, err, out)
	}
	return ns4[0].LLAddr
}
