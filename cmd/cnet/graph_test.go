package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/graph"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestTopology: the model drawn is what the engine reports.
func TestTopology(t *testing.T) {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	nets := []*cnet.Network{{Name: "seed", Bridge: "cont-br0", Subnet: p("172.18.0.0/24"), Gateway: a("172.18.0.1"), DNS: true},
		{Name: "back", Bridge: "cnet-back", Subnet: p("10.89.0.0/24"), Gateway: a("10.89.0.1"), Internal: true}}
	cs := []*cnet.Container{{Name: "web",
		Ports: []cnet.Port{{Proto: "tcp", HostIP: a("0.0.0.0"), HostPort: 8080, Address: a("172.18.0.2"), Port: 80}},
		Endpoints: []cnet.Endpoint{
			{Network: "seed", Interface: "eth0", HostInterface: "veth1111111", Address: p("172.18.0.2/24"), Gateway: a("172.18.0.1"), DefaultRoute: true},
			{Network: "back", Interface: "eth1", HostInterface: "veth2222222", Address: p("10.89.0.2/24"), Gateway: a("10.89.0.1")},
		}}}
	got, _ := json.Marshal(topology(nets, cs))
	want := `{"networks":[{"name":"seed","bridge":"cont-br0","subnet":"172.18.0.0/24","gateway":"172.18.0.1","internal":false,"dns":true},` +
		`{"name":"back","bridge":"cnet-back","subnet":"10.89.0.0/24","gateway":"10.89.0.1","internal":true,"dns":false}],` +
		`"containers":[{"name":"web","ports":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"port":80}]}],` +
		`"links":[{"network":"seed","a":{"container":"web","ifname":"eth0","addr":"172.18.0.2/24","via":"172.18.0.1"},"b":{"ifname":"veth1111111"}},` +
		`{"network":"back","a":{"container":"web","ifname":"eth1","addr":"10.89.0.2/24"},"b":{"ifname":"veth2222222"}}]}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// A direct link is stored on both containers and drawn once.
	cs[0].Links = []cnet.Link{{Interface: "to-r", Address: p("10.9.0.1/30"), Peer: "r", PeerInterface: "to-web", PeerAddress: p("10.9.0.2/30")}}
	cs = append(cs, &cnet.Container{Name: "r", Links: []cnet.Link{{Interface: "to-web", Address: p("10.9.0.2/30"), Peer: "web", PeerInterface: "to-r", PeerAddress: p("10.9.0.1/30")}}})
	topo := topology(nets, cs)
	var direct []graph.Link
	for _, l := range topo.Links {
		if l.Direct() {
			direct = append(direct, l)
		}
	}
	wantLink := graph.Link{A: graph.End{Container: "r", Ifname: "to-web", Addr: p("10.9.0.2/30")}, B: graph.End{Container: "web", Ifname: "to-r", Addr: p("10.9.0.1/30")}}
	if len(direct) != 1 || direct[0] != wantLink {
		t.Errorf("direct links: %+v, want once: %+v", direct, wantLink)
	}
	if text := graph.TextOf(topo); !strings.Contains(text, "to-web 10.9.0.2/30") || !strings.Contains(text, "to-r 10.9.0.1/30") {
		t.Errorf("text lacks the direct link:\n%s", text)
	}
}

// TestGraph draws the seed's set-up in every format.
func TestGraph(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("graph"); out != "nothing to draw: no networks and no containers\n" {
		t.Errorf("empty graph: %q", out)
	}
	c.ok("network", "create", "seed", "--subnet", "172.18.0.0/24", "--bridge", "cont-br0")
	c.ok("network", "create", "back", "--subnet", "10.89.3.0/24", "--internal")
	c.ok("create", "container-1", "--network", "seed", "-p", "8080:8000")
	c.ok("create", "container-2", "--network", "seed")
	c.ok("connect", "back", "container-2")
	var cs []cnet.Container
	c.json(&cs, "ls")
	want := []string{"eth0 172.18.0.2/24", "eth0 172.18.0.3/24", "eth1 10.89.3.2/24", "container-1", "container-2"}
	for _, ct := range cs {
		for _, ep := range ct.Endpoints {
			want = append(want, ep.HostInterface)
		}
	}
	text := c.ok("graph")
	for _, s := range append(want, "[host] bridge cont-br0 172.18.0.1/24", "default via 172.18.0.1", "0.0.0.0:8080->8000/tcp",
		"network back: bridge cnet-back, subnet 10.89.3.0/24, gateway 10.89.3.1, internal") {
		if !strings.Contains(text, s) {
			t.Errorf("cnet graph lacks %q:\n%s", s, text)
		}
	}
	dot := c.ok("graph", "--format", "dot")
	mermaid := c.ok("graph", "--format", "mermaid")
	for _, s := range want {
		s = strings.Replace(s, " ", `\n`, 1) // dot puts an end's address under its name
		if !strings.Contains(dot, s) {
			t.Errorf("dot lacks %q:\n%s", s, dot)
		}
	}
	if !strings.HasPrefix(mermaid, "flowchart TB\n") || !strings.Contains(mermaid, "eth0 172.18.0.2/24") {
		t.Errorf("mermaid:\n%s", mermaid)
	}
	var topo graph.Topology
	c.json(&topo, "graph")
	if len(topo.Networks) != 2 || len(topo.Containers) != 2 || len(topo.Links) != 3 {
		t.Errorf("--json: %+v", topo)
	}
	if got := graph.TextOf(topo); got != text {
		t.Errorf("--json does not hold what is drawn:\n%s\nwant\n%s", got, text)
	}

	r := c.run("graph", "--format", "png")
	if r.code != exitInvalid || !strings.Contains(r.stderr, `"png"`) || !strings.Contains(r.stderr, "text, dot, svg or mermaid") {
		t.Errorf("--format png: exit %d %q", r.code, r.stderr)
	}
	c.env = []string{"PATH=/nonexistent"}
	r = c.run("graph", "--format", "svg")
	c.env = nil
	if r.code != exitFailure || r.stdout != "" || !strings.Contains(r.stderr, "apt-get install graphviz") {
		t.Errorf("svg without graphviz: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	testenv.RequireTool(t, "dot")
	svg := c.ok("graph", "--format", "svg")
	if !strings.Contains(svg, "<svg") || !strings.Contains(svg, "172.18.0.2/24") { // dot writes "-" as &#45;
		t.Errorf("svg:\n%s", svg)
	}
}
