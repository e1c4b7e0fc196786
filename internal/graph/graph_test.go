package graph

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("drawing differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// seed is the seed's two containers on cont-br0, one of them also on an
// internal network with a third container.
func seed() Topology {
	return Topology{
		Networks: []Network{
			{Name: "back", Bridge: "cnet-back", Subnet: pfx("10.89.0.0/24"), Gateway: addr("10.89.0.1"), Internal: true},
			{Name: "seed", Bridge: "cont-br0", Subnet: pfx("172.18.0.0/24"), Gateway: addr("172.18.0.1"), DNS: true},
		},
		Containers: []Container{
			{Name: "container-1", Ports: []Port{{"tcp", addr("0.0.0.0"), 8080, 8000}, {"udp", addr("127.0.0.1"), 5353, 53}}},
			{Name: "container-2"},
			{Name: "db"},
		},
		Links: []Link{
			{Network: "seed", A: End{Container: "container-1", Ifname: "eth0", Addr: pfx("172.18.0.2/24"), Via: addr("172.18.0.1")}, B: End{Ifname: "veth9233800"}},
			{Network: "seed", A: End{Container: "container-2", Ifname: "eth0", Addr: pfx("172.18.0.3/24"), Via: addr("172.18.0.1")}, B: End{Ifname: "veth7c8dc2d"}},
			{Network: "back", A: End{Container: "container-2", Ifname: "eth1", Addr: pfx("10.89.0.2/24")}, B: End{Ifname: "veth4eb332a"}},
			{Network: "back", A: End{Container: "db", Ifname: "eth0", Addr: pfx("10.89.0.3/24")}, B: End{Ifname: "veth0c1d2e3"}},
		},
	}
}

// lab has a direct veth pair between two routers, built by hand the way a
// lab file describes one: two ends with addresses and no bridge. r1 is
// also on a network; r2 routes through r1. A container on no network
// stands apart.
func lab() Topology {
	return Topology{
		Networks:   []Network{{Name: "edge", Bridge: "cnet-edge", Subnet: pfx("10.89.1.0/24"), Gateway: addr("10.89.1.1"), DNS: true}},
		Containers: []Container{{Name: "idle"}, {Name: "r1"}, {Name: "r2", Ports: []Port{{"tcp", addr("0.0.0.0"), 2222, 22}}}},
		Links: []Link{
			{Network: "edge", A: End{Container: "r1", Ifname: "eth0", Addr: pfx("10.89.1.2/24"), Via: addr("10.89.1.1")}, B: End{Ifname: "veth1111111"}},
			{A: End{Container: "r1", Ifname: "eth1", Addr: pfx("10.0.0.1/30")},
				B: End{Container: "r2", Ifname: "eth1", Addr: pfx("10.0.0.2/30"), Via: addr("10.0.0.1")}},
		},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		topo Topology
	}{{"seed", seed()}, {"lab", lab()}} {
		for _, f := range []struct {
			format Format
			ext    string
		}{{Text, "txt"}, {Dot, "dot"}, {Mermaid, "mmd"}} {
			t.Run(tc.name+"."+f.ext, func(t *testing.T) {
				got, err := Render(tc.topo, f.format)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, tc.name+"."+f.ext, got)
			})
		}
	}
}

// TestTextShowsEverything: the drawing names both ends of every veth
// pair, every address, gateway and published port, and the network flags.
func TestTextShowsEverything(t *testing.T) {
	text := TextOf(seed())
	for _, want := range []string{"veth9233800", "veth7c8dc2d", "veth4eb332a", "veth0c1d2e3", "eth0 172.18.0.2/24", "eth0 172.18.0.3/24",
		"eth1 10.89.0.2/24", "eth0 10.89.0.3/24", "default via 172.18.0.1", "0.0.0.0:8080->8000/tcp", "127.0.0.1:5353->53/udp",
		"bridge cont-br0 172.18.0.1/24", "internal (no NAT, nothing in or out)", "NAT, DNS"} {
		if !strings.Contains(text, want) {
			t.Errorf("the drawing lacks %q:\n%s", want, text)
		}
	}
	text = TextOf(lab())
	for _, want := range []string{"eth1 10.0.0.1/30", "eth1 10.0.0.2/30", "default via 10.0.0.1", "2222->22/tcp", "containers on no network: idle"} {
		if !strings.Contains(text, want) {
			t.Errorf("the lab drawing lacks %q:\n%s", want, text)
		}
	}
}

// TestTextWraps: many containers under one bridge go on in rows no wider
// than Width.
func TestTextWraps(t *testing.T) {
	topo := Topology{Networks: []Network{{Name: "big", Bridge: "cnet-big", Subnet: pfx("10.89.0.0/24"), Gateway: addr("10.89.0.1")}}}
	for i := 0; i < 9; i++ {
		name := fmt.Sprintf("web-%d", i)
		topo.Containers = append(topo.Containers, Container{Name: name})
		topo.Links = append(topo.Links, Link{Network: "big",
			A: End{Container: name, Ifname: "eth0", Addr: pfx(fmt.Sprintf("10.89.0.%d/24", i+2)), Via: addr("10.89.0.1")},
			B: End{Ifname: fmt.Sprintf("veth000000%d", i)}})
	}
	text := TextOf(topo)
	golden(t, "wide.txt", text)
	for _, l := range strings.Split(text, "\n") {
		if len(l) > Width {
			t.Errorf("line of %d characters, over %d: %q", len(l), Width, l)
		}
	}
	if !strings.Contains(text, "(continued)") || !strings.Contains(text, "web-8") {
		t.Errorf("no second row:\n%s", text)
	}
}

func TestEmpty(t *testing.T) {
	if got := TextOf(Topology{}); got != "nothing to draw: no networks and no containers\n" {
		t.Errorf("got %q", got)
	}
	if _, err := Render(Topology{}, "png"); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestDotRenders: Graphviz accepts the dot output.
func TestDotRenders(t *testing.T) {
	testenv.RequireTool(t, "dot")
	for _, topo := range []Topology{seed(), lab(), {}} {
		cmd := exec.Command("dot", "-Tsvg")
		cmd.Stdin = strings.NewReader(DotOf(topo))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "<svg") {
			t.Errorf("dot -Tsvg: %v\n%s", err, out)
		}
	}
}

// TestQuoting: names with quotes cannot break out of labels.
func TestQuoting(t *testing.T) {
	if got := dotQuote(`a"b\c`, "d"); got != `"a\"b\\c\nd"` {
		t.Errorf("dotQuote = %s", got)
	}
	if got := mermaidQuote(`a"b`, "x->y <z> & w"); got != `"a#quot;b<br/>x-#gt;y #lt;z#gt; #amp; w"` {
		t.Errorf("mermaidQuote = %s", got)
	}
}
