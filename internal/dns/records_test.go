package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

var (
	a      = netip.MustParseAddr
	gwA    = a("10.1.0.1")
	gwB    = a("10.2.0.1")
	sample = Snapshot{
		Networks: []Net{{Name: "front", Gateway: gwA}, {Name: "back", Gateway: gwB}},
		Containers: []Ctr{
			{Name: "web", Endpoints: []Ep{{Network: "front", Addr: a("10.1.0.2"), Aliases: []string{"www"}}}},
			{Name: "api", Endpoints: []Ep{{Network: "front", Addr: a("10.1.0.3")}, {Network: "back", Addr: a("10.2.0.3"), Aliases: []string{"internal-api"}}}},
			{Name: "db", Endpoints: []Ep{{Network: "back", Addr: a("10.2.0.2")}}},
			{Name: "v1.2", Endpoints: []Ep{{Network: "front", Addr: a("10.1.0.9")}}},
		},
	}
)

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func addrsOf(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.PTR:
			out = append(out, v.Ptr)
		}
	}
	return out
}

func TestAnswer(t *testing.T) {
	tab := NewTable(sample)
	tests := []struct {
		name      string
		src       netip.Addr // querier
		local     netip.Addr // server address asked
		q         string
		qtype     uint16
		forwarded bool
		rcode     int
		want      []string
	}{
		{"bare name", a("10.1.0.3"), gwA, "web.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.1.0.2"}},
		{"alias", a("10.1.0.3"), gwA, "www.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.1.0.2"}},
		{"case-insensitive", a("10.1.0.3"), gwA, "WEB.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.1.0.2"}},
		{"fqdn", a("10.1.0.3"), gwA, "web.front.cnet.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.1.0.2"}},
		{"name with a dot", a("10.1.0.2"), gwA, "v1.2.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.1.0.9"}},
		{"fqdn of a name with a dot", a("10.1.0.2"), gwA, "v1.2.front.cnet.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.1.0.9"}},
		{"api on both networks sees db", a("10.1.0.3"), gwA, "db.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.2.0.2"}},
		{"alias on the second network", a("10.1.0.2"), gwA, "internal-api.", dns.TypeA, true, 0, nil},
		{"web cannot see db", a("10.1.0.2"), gwA, "db.", dns.TypeA, true, 0, nil},
		{"web cannot see db by fqdn", a("10.1.0.2"), gwA, "db.back.cnet.", dns.TypeA, false, dns.RcodeNameError, nil},
		{"db sees api on back only", a("10.2.0.2"), gwB, "api.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.2.0.3"}},
		{"unknown cnet name", a("10.1.0.3"), gwA, "nope.front.cnet.", dns.TypeA, false, dns.RcodeNameError, nil},
		{"AAAA is NODATA", a("10.1.0.3"), gwA, "web.", dns.TypeAAAA, false, dns.RcodeSuccess, nil},
		{"other names are forwarded", a("10.1.0.3"), gwA, "example.com.", dns.TypeA, true, 0, nil},
		{"the host asks a gateway", gwB, gwB, "db.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.2.0.2"}},
		{"the host asks the other gateway", gwA, gwA, "db.", dns.TypeA, true, 0, nil},
		{"PTR", a("10.1.0.3"), gwA, "2.0.1.10.in-addr.arpa.", dns.TypePTR, false, dns.RcodeSuccess, []string{"web.front.cnet."}},
		{"PTR not visible", a("10.1.0.2"), gwA, "2.0.2.10.in-addr.arpa.", dns.TypePTR, true, 0, nil},
		{"PTR of a stranger", a("10.1.0.3"), gwA, "8.8.8.8.in-addr.arpa.", dns.TypePTR, true, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := ask(tab, query(tt.q, tt.qtype), tt.src, tt.local)
			if !ok {
				t.Fatal("not admitted")
			}
			if tt.forwarded {
				if m != nil {
					t.Fatalf("answered %v, want it forwarded", m)
				}
				return
			}
			if m == nil {
				t.Fatal("forwarded, want an answer")
			}
			if m.Rcode != tt.rcode || !m.Authoritative {
				t.Errorf("rcode %s authoritative %v, want %s", dns.RcodeToString[m.Rcode], m.Authoritative, dns.RcodeToString[tt.rcode])
			}
			if got := addrsOf(m); len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
				t.Errorf("answers %v, want %v", got, tt.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	tab := NewTable(sample)
	tab.Apply(Change{DelContainers: []string{"web"}, SetContainers: []Ctr{{Name: "web2", Endpoints: []Ep{{Network: "front", Addr: a("10.1.0.2")}}}}})
	if m, _ := ask(tab, query("web.", dns.TypeA), a("10.1.0.3"), gwA); m != nil {
		t.Errorf("removed name still answers: %v", m)
	}
	if m, _ := ask(tab, query("www.", dns.TypeA), a("10.1.0.3"), gwA); m != nil {
		t.Errorf("removed alias still answers: %v", m)
	}
	if m, _ := ask(tab, query("web2.", dns.TypeA), a("10.1.0.3"), gwA); len(addrsOf(m)) != 1 {
		t.Errorf("new name: %v", m)
	}
	tab.Apply(Change{DelNetworks: []string{"back"}})
	if _, ok := ask(tab, query("db.", dns.TypeA), gwB, gwB); ok {
		t.Error("a removed network's gateway still admits the host")
	}
}

// FuzzAnswer: no packet crashes the query path, and every answer packs.
func FuzzAnswer(f *testing.F) {
	for _, q := range []*dns.Msg{query("web.", dns.TypeA), query("2.0.1.10.in-addr.arpa.", dns.TypePTR), query("a.b.front.cnet.", dns.TypeAAAA)} {
		b, _ := q.Pack()
		f.Add(b, []byte{10, 1, 0, 3})
	}
	tab := NewTable(sample)
	f.Fuzz(func(t *testing.T, pkt []byte, src []byte) {
		req := new(dns.Msg)
		if req.Unpack(pkt) != nil {
			return
		}
		from, _ := netip.AddrFromSlice(src)
		m, _ := ask(tab, req, from, gwA)
		if m == nil {
			return
		}
		if _, err := m.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, m)
		}
	})
}

// ask is what the server does with a query from src to the gateway
// local: admit, then answer. ok is false when src is not admitted.
func ask(tab *Table, req *dns.Msg, src, local netip.Addr) (m *dns.Msg, ok bool) {
	network, ok := tab.NetworkAt(local)
	if !ok {
		return nil, false
	}
	q, ok := tab.Admit(network, src, hostOnly)
	if !ok {
		return nil, false
	}
	return tab.Answer(req, q), true
}

// TestAdmit: a query is served only to a container's endpoint on the
// network whose gateway it asked, or to the host (a gateway address);
// names outside cnet are forwarded only for a container that can reach
// out itself.
func TestAdmit(t *testing.T) {
	snap := sample
	snap.Networks = append(snap.Networks, Net{Name: "intra", Gateway: a("10.3.0.1")})
	snap.Containers = append(snap.Containers,
		Ctr{Name: "secret", Isolated: true, Endpoints: []Ep{{Network: "intra", Addr: a("10.3.0.2")}}})
	tab := NewTable(snap)
	tests := []struct {
		name      string
		network   string
		src       netip.Addr
		admitted  bool
		container string
		forward   bool
	}{
		{"a container on the network", "front", a("10.1.0.2"), true, "web", true},
		{"a container on two networks, by its address on this one", "back", a("10.2.0.3"), true, "api", true},
		{"a container on two networks, by its address on the other", "back", a("10.1.0.3"), false, "", false},
		{"a container of another network", "back", a("10.1.0.2"), false, "", false},
		{"an address of the subnet no container has", "front", a("10.1.0.200"), false, "", false},
		{"a LAN neighbour", "front", a("192.168.77.2"), false, "", false},
		{"the host, from its gateway address", "front", gwA, true, "", true},
		{"the host, from another gateway", "front", gwB, true, "", true},
		{"the host, from another of its addresses (masqueraded)", "front", a("198.51.100.254"), true, "", true},
		{"loopback (a router could forge it where route_localnet is on)", "front", a("127.0.0.1"), false, "", false},
		{"a container on an internal network only", "intra", a("10.3.0.2"), true, "secret", false},
		{"a network the table does not have", "gone", gwA, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ok := tab.Admit(tt.network, tt.src, hostOnly)
			if ok != tt.admitted || q.Container != tt.container || q.Forward != tt.forward {
				t.Errorf("got admitted %v container %q forward %v, want %v %q %v", ok, q.Container, q.Forward, tt.admitted, tt.container, tt.forward)
			}
		})
	}
	// The isolated container still resolves its own network's names, and
	// says recursion is not available.
	q, _ := tab.Admit("intra", a("10.3.0.2"), hostOnly)
	if m := tab.Answer(query("secret.", dns.TypeA), q); m == nil || len(addrsOf(m)) != 1 || m.RecursionAvailable {
		t.Errorf("secret asks for itself: %v", m)
	}
	if m := tab.Answer(query("secret.attacker.example.", dns.TypeA), q); m != nil {
		t.Errorf("an outside name is answered from the table: %v", m)
	}
}

// hostOnly is the host's addresses in these tests: the gateways, and
// 198.51.100.254 (its uplink) and 127.0.0.1.
func hostOnly(a netip.Addr) bool {
	return a == gwA || a == gwB || a == netip.MustParseAddr("198.51.100.254") || a.IsLoopback()
}
