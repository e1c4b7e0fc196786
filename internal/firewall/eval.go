package firewall

import (
	"net/netip"
	"slices"
)

// Packet is what cnet's rules look at: the first packet of a connection
// as one hook of the host sees it. Eval runs a chain of the table over it
// without the kernel, so `cnet explain` can say which rule decides.
type Packet struct {
	IIf, OIf string // input and output interface ("" where the hook has none)
	Src, Dst netip.Addr
	Proto    string // "tcp" or "udp"
	DPort    uint16
	// LocalDst: the destination is an address of the host
	// (`fib daddr type local`).
	LocalDst bool
	// DNAT: the connection was destination-NATed (`ct status dnat`).
	DNAT bool
	// Established: a reply or a later packet (`ct state established,related`).
	Established bool
}

// Actions a rule can take.
const (
	Accept     = "accept"
	Drop       = "drop"
	DNAT       = "dnat"
	Masquerade = "masquerade"
)

// Rule IDs, so callers can tell why a packet was dropped without parsing
// nft text.
const (
	RuleLoopback    = "loopback"     // raw_prerouting: 127.0.0.0/8 from outside (CVE-2020-8558)
	RuleDNAT        = "dnat"         // prerouting/output: a published port
	RuleSameBridge  = "samebr"       // forward: switched inside one bridge
	RuleInternalOut = "internal-out" // forward: leaving an internal network
	RuleInternalIn  = "internal-in"  // forward: entering an internal network
	RulePublished   = "published"    // forward: to a published port
	RuleIsolation   = "isolation"    // forward: between two cnet networks
	RuleReplies     = "replies"      // forward: replies into a network
	RuleUnpublished = "unpublished"  // forward: from outside into a network
	RuleMasquerade  = "masquerade"   // postrouting: a network's traffic leaving
	RuleLocalnet    = "localnet"     // postrouting: 127.0.0.1 to a published port
	RuleHairpin     = "hairpin"      // postrouting: a container to a published port
)

// Verdict is what one chain did to a packet. Action "" means no rule
// matched: the chain's policy (accept) applies and nothing is rewritten.
type Verdict struct {
	Chain  string `json:"chain"`
	Action string `json:"action"`
	ID     string `json:"id,omitempty"`
	// Rule is the deciding rule in nft syntax.
	Rule string `json:"rule,omitempty"`
	// To is where DNAT sends the packet, and Port the mapping that did it.
	To   netip.AddrPort `json:"to,omitzero"`
	Port *PortMatch     `json:"port,omitempty"`
}

// PortMatch is the published port a DNAT verdict came from.
type PortMatch struct {
	Proto    string     `json:"proto"`
	HostIP   netip.Addr `json:"host_ip"`
	HostPort uint16     `json:"host_port"`
}

// Chains lists the chains of the table, in hook order.
func Chains() []string {
	out := make([]string, len(chains))
	for i, c := range chains {
		out[i] = c.name
	}
	return out
}

// Eval runs chain over p: the first rule that matches decides. It mirrors
// the rules the table holds, rule for rule (each rule carries its own
// evaluator next to its netlink expressions).
func (rs Ruleset) Eval(chain string, p Packet) Verdict {
	if rs.Empty() {
		return Verdict{Chain: chain}
	}
	for _, r := range allRules() {
		if r.chain != chain {
			continue
		}
		if v, ok := r.eval(rs, p); ok {
			v.Chain, v.Rule = chain, r.nft
			return v
		}
	}
	return Verdict{Chain: chain}
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

func (rs Ruleset) masq(a netip.Addr) bool {
	return slices.ContainsFunc(rs.Masq, func(p netip.Prefix) bool { return p.Contains(a) })
}

// dnat looks p up in the map of proto: keyed by host address and port, or
// (any) by port alone for mappings on every address.
func (rs Ruleset) dnat(p Packet, proto string, any bool) (Verdict, bool) {
	if !p.LocalDst || p.Proto != proto {
		return Verdict{}, false
	}
	for _, e := range rs.Ports {
		if e.Proto != proto || e.HostPort != p.DPort || e.HostIP.IsUnspecified() != any {
			continue
		}
		if any || e.HostIP == p.Dst {
			return Verdict{Action: DNAT, ID: RuleDNAT, To: netip.AddrPortFrom(e.Addr, e.Port),
				Port: &PortMatch{Proto: e.Proto, HostIP: e.HostIP, HostPort: e.HostPort}}, true
		}
	}
	return Verdict{}, false
}

// ForeignChain is a base chain of another table hooked at forward: the
// iptables FORWARD chain of Docker or of a firewall. cnet's accept does
// not override its drop: a packet must pass every base chain on a hook.
type ForeignChain struct {
	// Name reads "ip filter chain FORWARD".
	Name   string `json:"name"`
	Family string `json:"family"` // ip or inet
	Table  string `json:"table"`
	Chain  string `json:"chain"`
	Policy string `json:"policy"` // "accept" or "drop"
	// Rules are the chain's rules, in order, as far as cnet reads them.
	Rules []ForeignRule `json:"rules"`
}

// ForeignRule is one rule of a foreign chain. cnet understands rules made
// only of interface matches and a verdict (`iifname "br0" accept`,
// `iptables -A FORWARD -o br0 -j DROP`); any other is Opaque.
type ForeignRule struct {
	Conds   []IfCond `json:"conds,omitempty"`
	Verdict string   `json:"verdict,omitempty"` // accept, drop, or "" (no verdict: counters, logging)
	Opaque  bool     `json:"opaque,omitempty"`
}

// IfCond is `iifname "NAME"` (Key "iifname"), `oifname != "NAME"`, or a
// prefix match (`iifname "br*"`, iptables' `-i br+`).
type IfCond struct {
	Key    string `json:"key"` // iifname or oifname
	Not    bool   `json:"not,omitempty"`
	Name   string `json:"name"`
	Prefix bool   `json:"prefix,omitempty"`
}

func (c IfCond) match(iif, oif string) bool {
	v := iif
	if c.Key == "oifname" {
		v = oif
	}
	hit := v == c.Name || c.Prefix && len(v) >= len(c.Name) && v[:len(c.Name)] == c.Name
	return hit != c.Not
}

// ForeignVerdict is what a foreign chain does to a forwarded packet.
type ForeignVerdict struct {
	Action string // accept or drop
	// Rule is the index of the deciding rule, -1 for the policy.
	Rule int
	// Opaque counts rules before the decision that cnet could not read:
	// any of them might have decided first.
	Opaque int
}

// Eval runs the chain over a packet forwarded from iif to oif: the first
// readable rule that matches with a verdict decides, else the policy.
func (c ForeignChain) Eval(iif, oif string) ForeignVerdict {
	opaque := 0
	for i, r := range c.Rules {
		if r.Opaque {
			opaque++
			continue
		}
		if r.Verdict == "" {
			continue
		}
		all := true
		for _, cond := range r.Conds {
			all = all && cond.match(iif, oif)
		}
		if all {
			return ForeignVerdict{Action: r.Verdict, Rule: i, Opaque: opaque}
		}
	}
	return ForeignVerdict{Action: c.Policy, Rule: -1, Opaque: opaque}
}
