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
		{"the host asks a gateway", a("10.9.9.9"), gwB, "db.", dns.TypeA, false, dns.RcodeSuccess, []string{"10.2.0.2"}},
		{"the host asks the other gateway", a("10.9.9.9"), gwA, "db.", dns.TypeA, true, 0, nil},
		{"PTR", a("10.1.0.3"), gwA, "2.0.1.10.in-addr.arpa.", dns.TypePTR, false, dns.RcodeSuccess, []string{"web.front.cnet."}},
		{"PTR not visible", a("10.1.0.2"), gwA, "2.0.2.10.in-addr.arpa.", dns.TypePTR, true, 0, nil},
		{"PTR of a stranger", a("10.1.0.3"), gwA, "8.8.8.8.in-addr.arpa.", dns.TypePTR, true, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tab.Answer(query(tt.q, tt.qtype), tt.src, tt.local)
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
	if m := tab.Answer(query("web.", dns.TypeA), a("10.1.0.3"), gwA); m != nil {
		t.Errorf("removed name still answers: %v", m)
	}
	if m := tab.Answer(query("www.", dns.TypeA), a("10.1.0.3"), gwA); m != nil {
		t.Errorf("removed alias still answers: %v", m)
	}
	if got := addrsOf(tab.Answer(query("web2.", dns.TypeA), a("10.1.0.3"), gwA)); len(got) != 1 {
		t.Errorf("new name: %v", got)
	}
	tab.Apply(Change{DelNetworks: []string{"back"}})
	if m := tab.Answer(query("db.", dns.TypeA), a("10.9.9.9"), gwB); m != nil {
		t.Errorf("a removed network's gateway still answers: %v", m)
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
		m := tab.Answer(req, from, gwA)
		if m == nil {
			return
		}
		if _, err := m.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, m)
		}
	})
}
