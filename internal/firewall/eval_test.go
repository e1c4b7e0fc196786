package firewall

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"

	"github.com/cnetdev/cnet/internal/testenv"
)

// TestEval: each rule of the table decides the packet it exists for, and
// the rules before it let that packet through.
func TestEval(t *testing.T) {
	rs := FromState(sampleNetworks(), samplePorts())
	a := netip.MustParseAddr
	tests := []struct {
		name   string
		chain  string
		p      Packet
		action string
		id     string
		to     string
	}{
		{"loopback from a container", "raw_prerouting", Packet{IIf: "cont-br0", Dst: a("127.0.0.1")}, Drop, RuleLoopback, ""},
		{"loopback from lo", "raw_prerouting", Packet{IIf: "lo", Dst: a("127.0.0.1")}, "", "", ""},
		{"published on every address", "prerouting", Packet{Proto: "tcp", Dst: a("10.89.0.1"), DPort: 8080, LocalDst: true}, DNAT, RuleDNAT, "172.18.0.2:80"},
		{"published on one address", "prerouting", Packet{Proto: "tcp", Dst: a("192.0.2.10"), DPort: 443, LocalDst: true}, DNAT, RuleDNAT, "172.18.0.3:8443"},
		{"one address, another asked", "prerouting", Packet{Proto: "tcp", Dst: a("192.0.2.11"), DPort: 443, LocalDst: true}, "", "", ""},
		{"not a local address", "prerouting", Packet{Proto: "tcp", Dst: a("198.51.100.1"), DPort: 8080}, "", "", ""},
		{"udp map is not the tcp map", "prerouting", Packet{Proto: "tcp", Dst: a("10.89.0.1"), DPort: 9000, LocalDst: true}, "", "", ""},
		{"udp on one address", "prerouting", Packet{Proto: "udp", Dst: a("127.0.0.1"), DPort: 5353, LocalDst: true}, DNAT, RuleDNAT, "10.89.0.2:53"},
		{"udp on every address", "prerouting", Packet{Proto: "udp", Dst: a("10.89.0.1"), DPort: 9000, LocalDst: true}, DNAT, RuleDNAT, "10.89.0.2:9000"},
		{"host, every address", "output", Packet{Proto: "tcp", Dst: a("127.0.0.1"), DPort: 8080, LocalDst: true}, DNAT, RuleDNAT, "172.18.0.2:80"},
		{"host, one address", "output", Packet{Proto: "tcp", Dst: a("192.0.2.10"), DPort: 443, LocalDst: true}, DNAT, RuleDNAT, "172.18.0.3:8443"},
		{"host, udp on every address", "output", Packet{Proto: "udp", Dst: a("127.0.0.1"), DPort: 9000, LocalDst: true}, DNAT, RuleDNAT, "10.89.0.2:9000"},
		{"127.0.0.1 from the host", "output", Packet{Proto: "udp", Dst: a("127.0.0.1"), DPort: 5353, LocalDst: true}, DNAT, RuleDNAT, "10.89.0.2:53"},
		{"switched in one bridge", "forward", Packet{IIf: "cnet0", OIf: "cnet0"}, Accept, RuleSameBridge, ""},
		{"leaving an internal network", "forward", Packet{IIf: "cnet-lab", OIf: "eth0"}, Drop, RuleInternalOut, ""},
		{"entering an internal network", "forward", Packet{IIf: "cnet0", OIf: "cnet-lab", DNAT: true}, Drop, RuleInternalIn, ""},
		{"to a published port", "forward", Packet{IIf: "cnet0", OIf: "cont-br0", DNAT: true}, Accept, RulePublished, ""},
		{"between networks", "forward", Packet{IIf: "cnet0", OIf: "cont-br0"}, Drop, RuleIsolation, ""},
		{"a reply", "forward", Packet{IIf: "eth0", OIf: "cnet0", Established: true}, Accept, RuleReplies, ""},
		{"from outside", "forward", Packet{IIf: "eth0", OIf: "cnet0"}, Drop, RuleUnpublished, ""},
		{"out to the world", "forward", Packet{IIf: "cnet0", OIf: "eth0"}, "", "", ""},
		{"masquerade out", "postrouting", Packet{Src: a("10.89.0.2"), OIf: "eth0"}, Masquerade, RuleMasquerade, ""},
		{"no masquerade for internal", "postrouting", Packet{Src: a("10.90.0.2"), OIf: "eth0"}, "", "", ""},
		{"127.0.0.1 to a container", "postrouting", Packet{Src: a("127.0.0.1"), OIf: "cnet0", DNAT: true}, Masquerade, RuleLocalnet, ""},
		{"hairpin", "postrouting", Packet{Src: a("172.18.0.2"), OIf: "cont-br0", DNAT: true}, Masquerade, RuleHairpin, ""},
		{"host to a container", "postrouting", Packet{Src: a("172.18.0.1"), OIf: "cont-br0"}, "", "", ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := rs.Eval(tt.chain, tt.p)
			if v.Action != tt.action || v.ID != tt.id {
				t.Fatalf("got %s by %q (%s), want %q by %q", v.Action, v.Rule, v.ID, tt.action, tt.id)
			}
			if tt.to != "" && v.To.String() != tt.to {
				t.Errorf("dnat to %s, want %s", v.To, tt.to)
			}
			if v.Action != "" && v.Rule == "" {
				t.Errorf("verdict %s names no rule", v.Action)
			}
			seen[tt.chain+": "+v.Rule] = true
		})
	}
	for _, r := range allRules() {
		if !seen[r.chain+": "+r.nft] {
			t.Errorf("no case is decided by rule %q in chain %s", r.nft, r.chain)
		}
	}
	if v := (Ruleset{}).Eval("forward", Packet{IIf: "cnet0", OIf: "cont-br0"}); v.Action != "" {
		t.Errorf("without the table: %+v, want nothing decided", v)
	}
}

// TestForeignChainEval: the first readable rule that matches decides; an
// unreadable one before it is counted.
func TestForeignChainEval(t *testing.T) {
	c := ForeignChain{Name: "ip filter chain FORWARD", Policy: Drop, Rules: []ForeignRule{
		{Opaque: true},
		{Conds: []IfCond{{Key: "iifname", Name: "br0"}}},
		{Conds: []IfCond{{Key: "iifname", Name: "br0"}, {Key: "oifname", Not: true, Name: "br0"}}, Verdict: Drop},
		{Conds: []IfCond{{Key: "oifname", Name: "vb", Prefix: true}}, Verdict: Accept},
	}}
	for _, tt := range []struct {
		iif, oif string
		want     ForeignVerdict
	}{
		{"br0", "eth0", ForeignVerdict{Drop, 2, 1}},
		{"br0", "vb12", ForeignVerdict{Drop, 2, 1}},
		{"eth0", "vb12", ForeignVerdict{Accept, 3, 1}},
		{"br0", "br0", ForeignVerdict{Drop, -1, 1}},
		{"eth0", "v", ForeignVerdict{Drop, -1, 1}},
	} {
		if got := c.Eval(tt.iif, tt.oif); got != tt.want {
			t.Errorf("%s -> %s: got %+v, want %+v", tt.iif, tt.oif, got, tt.want)
		}
	}
}

// TestForwardChains reads foreign forward chains written by nft: policy,
// interface matches (exact, negated, prefix), and opaque rules; cnet's own
// table is left out.
func TestForwardChains(t *testing.T) {
	testenv.RequirePrivileged(t)
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Sync(FromState(sampleNetworks(), nil)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Logged(t, "Sync(Ruleset{})", Sync(Ruleset{}))
		testenv.Try("nft", "delete", "table", "ip", "filter")
		testenv.Try("nft", "delete", "table", "inet", "fw")
	})
	testenv.Run(t, "nft", "add", "table", "ip", "filter")
	testenv.Run(t, "nft", "add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")
	testenv.Run(t, "nft", `add rule ip filter FORWARD iifname "br0" counter accept`)
	testenv.Run(t, "nft", `add rule ip filter FORWARD oifname != "br1" drop`)
	testenv.Run(t, "nft", `add rule ip filter FORWARD oifname "vb*" accept`)
	testenv.Run(t, "nft", `add rule ip filter FORWARD ip saddr 10.0.0.0/8 accept`)
	testenv.Run(t, "nft", "add table inet fw")
	testenv.Run(t, "nft", "add chain inet fw input { type filter hook input priority 0; policy drop; }")
	testenv.Run(t, "nft", "add chain inet fw pass { type filter hook forward priority 10; }")
	got, err := ForwardChains(conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d chains %+v, want ip filter FORWARD and inet fw pass", len(got), got)
	}
	byName := map[string]ForeignChain{got[0].Name: got[0], got[1].Name: got[1]}
	fwd, ok := byName["ip filter chain FORWARD"]
	if !ok || fwd.Policy != Drop || len(fwd.Rules) != 4 {
		t.Fatalf("ip filter FORWARD: %+v", fwd)
	}
	want := []ForeignRule{
		{Conds: []IfCond{{Key: "iifname", Name: "br0"}}, Verdict: Accept},
		{Conds: []IfCond{{Key: "oifname", Not: true, Name: "br1"}}, Verdict: Drop},
		{Conds: []IfCond{{Key: "oifname", Name: "vb", Prefix: true}}, Verdict: Accept},
		{Opaque: true},
	}
	for i, r := range fwd.Rules {
		if !equalRule(r, want[i]) {
			t.Errorf("rule %d: got %+v, want %+v", i, r, want[i])
		}
	}
	if c := byName["inet fw chain pass"]; c.Policy != Accept || len(c.Rules) != 0 {
		t.Errorf("inet fw pass: %+v, want policy accept and no rules", c)
	}
}

func equalRule(a, b ForeignRule) bool {
	if a.Verdict != b.Verdict || a.Opaque != b.Opaque || len(a.Conds) != len(b.Conds) {
		return false
	}
	for i := range a.Conds {
		if a.Conds[i] != b.Conds[i] {
			return false
		}
	}
	return true
}
