// Package firewall models cnet's nftables table and writes it through
// netlink (google/nftables) in one atomic batch.
//
// The table's rules never change; only set and map elements do. Every
// rule tests membership in a set or looks up a map, so per-packet cost
// does not grow with the number of networks, containers or published
// ports. The whole table is rebuilt from state with
//
//	nft -f - <<< 'add table inet cnet; delete table inet cnet; table inet cnet { ... }'
//
// which the kernel applies atomically: there is never a moment without it.
// Publishing and unpublishing ports add and delete map elements only.
package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/model"
)

// Table is the name of cnet's table in the inet family.
const Table = "cnet"

// Ruleset is the wanted content of `table inet cnet`: the elements.
type Ruleset struct {
	Bridges  []string         // every cnet bridge
	Internal []string         // bridges of --internal networks
	Masq     []netip.Prefix   // subnets that get NAT (non-internal networks)
	Ports    []model.PortElem // published ports
	// Guards are every endpoint's anti-spoofing entry, in `table bridge
	// cnet` (guard.go); String renders the inet table only.
	Guards []model.GuardSpec
}

// FromState computes the ruleset for networks and published ports.
func FromState(nets []*model.Network, ports []model.PortElem) Ruleset {
	var rs Ruleset
	for _, n := range nets {
		rs.Bridges = append(rs.Bridges, n.Bridge)
		if n.Internal {
			rs.Internal = append(rs.Internal, n.Bridge)
		} else {
			rs.Masq = append(rs.Masq, n.Subnet)
		}
	}
	slices.Sort(rs.Bridges)
	slices.Sort(rs.Internal)
	slices.SortFunc(rs.Masq, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	rs.Ports = slices.Clone(ports)
	slices.SortFunc(rs.Ports, func(a, b model.PortElem) int {
		if c := strings.Compare(a.Proto, b.Proto); c != 0 {
			return c
		}
		if c := a.HostIP.Compare(b.HostIP); c != 0 {
			return c
		}
		return int(a.HostPort) - int(b.HostPort)
	})
	return rs
}

// WithGuards returns rs with the anti-spoofing entries of every endpoint
// of cs.
func (rs Ruleset) WithGuards(cs []*model.Container) Ruleset {
	rs.Guards = nil
	for _, c := range cs {
		rs.Guards = append(rs.Guards, c.Guards()...)
	}
	slices.SortFunc(rs.Guards, func(a, b model.GuardSpec) int { return strings.Compare(a.HostIf, b.HostIf) })
	return rs
}

// WithNetworksOf returns rs with the network elements of other.
func (rs Ruleset) WithNetworksOf(other Ruleset) Ruleset {
	rs.Bridges, rs.Internal, rs.Masq = other.Bridges, other.Internal, other.Masq
	return rs
}

// Empty reports whether there is nothing to filter: then the table is
// deleted, so an idle cnet leaves no trace in the ruleset.
func (rs Ruleset) Empty() bool { return len(rs.Bridges) == 0 }

// setDef is one named set or map of the table.
type setDef struct {
	name     string
	typ      string // nft key type
	key      nftables.SetDatatype
	dataTyp  string // nft data type, for maps
	data     nftables.SetDatatype
	concat   bool
	interval bool
	hostKey  bool // strings are host byte order; nft reverses them otherwise
	elems    func(Ruleset) []elem
}

type elem struct {
	text string
	keys []nftables.SetElement
}

var (
	addrPort = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	sets     = []setDef{
		{name: "bridges", typ: "ifname", key: nftables.TypeIFName, hostKey: true,
			elems: func(rs Ruleset) []elem { return ifElems(rs.Bridges) }},
		{name: "internal", typ: "ifname", key: nftables.TypeIFName, hostKey: true,
			elems: func(rs Ruleset) []elem { return ifElems(rs.Internal) }},
		{name: "samebr", typ: "ifname . ifname", key: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName), concat: true,
			elems: func(rs Ruleset) []elem {
				var out []elem
				for _, b := range rs.Bridges {
					out = append(out, elem{
						text: fmt.Sprintf("%q . %q", b, b),
						keys: []nftables.SetElement{{Key: append(ifKey(b), ifKey(b)...)}},
					})
				}
				return out
			}},
		{name: "masq", typ: "ipv4_addr", key: nftables.TypeIPAddr, interval: true,
			elems: func(rs Ruleset) []elem {
				var out []elem
				for _, p := range rs.Masq {
					start := p.Masked().Addr().As4()
					end := ipam.Broadcast(p).Next()
					endKey := end.As4()
					e := nftables.SetElement{Key: endKey[:], IntervalEnd: true}
					if !end.IsValid() || end.IsUnspecified() { // 255.255.255.255/x wraps
						e = nftables.SetElement{Key: []byte{0, 0, 0, 0}, IntervalEnd: true}
					}
					out = append(out, elem{text: p.String(), keys: []nftables.SetElement{{Key: start[:]}, e}})
				}
				return out
			}},
		portMap("dnat_tcp", "tcp", false),
		portMap("dnat_tcp_any", "tcp", true),
		portMap("dnat_udp", "udp", false),
		portMap("dnat_udp_any", "udp", true),
	}
)

// portMap is one of the four DNAT maps: per protocol, keyed by host
// address and port, or (for mappings on every address) by port alone.
func portMap(name, proto string, any bool) setDef {
	d := setDef{name: name, typ: "ipv4_addr . inet_service", key: addrPort, concat: true,
		dataTyp: "ipv4_addr . inet_service", data: addrPort}
	if any {
		d.typ, d.key, d.concat = "inet_service", nftables.TypeInetService, false
	}
	d.elems = func(rs Ruleset) []elem {
		var out []elem
		for _, p := range rs.Ports {
			if p.Proto == proto && (p.HostIP == netip.IPv4Unspecified()) == any {
				out = append(out, portElem(p, any))
			}
		}
		return out
	}
	return d
}

// portElem encodes one mapping. Concatenated keys and data are padded to
// 4-byte registers: address (4) . port (2) + 2 zero bytes.
func portElem(p model.PortElem, any bool) elem {
	val := padded(p.Addr, p.Port)
	e := elem{keys: []nftables.SetElement{{Val: val}}}
	if any {
		e.text = fmt.Sprintf("%d : %s . %d", p.HostPort, p.Addr, p.Port)
		e.keys[0].Key = binary.BigEndian.AppendUint16(nil, p.HostPort)
	} else {
		e.text = fmt.Sprintf("%s . %d : %s . %d", p.HostIP, p.HostPort, p.Addr, p.Port)
		e.keys[0].Key = padded(p.HostIP, p.HostPort)
	}
	return e
}

func padded(a netip.Addr, port uint16) []byte {
	b := a.As4()
	return append(binary.BigEndian.AppendUint16(b[:], port), 0, 0)
}

func ifElems(names []string) []elem {
	var out []elem
	for _, n := range names {
		out = append(out, elem{text: fmt.Sprintf("%q", n), keys: []nftables.SetElement{{Key: ifKey(n)}}})
	}
	return out
}

// ifKey encodes an interface name as nft stores it: IFNAMSIZ bytes, zero padded.
func ifKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

type chainDef struct {
	name    string
	typ     nftables.ChainType
	hook    *nftables.ChainHook
	prio    *nftables.ChainPriority
	typText string // "filter hook forward priority filter"
}

var chains = []chainDef{
	{name: "raw_prerouting", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityRaw,
		typText: "filter hook prerouting priority raw"},
	{name: "prerouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityNATDest,
		typText: "nat hook prerouting priority dstnat"},
	{name: "output", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookOutput, prio: nftables.ChainPriorityNATDest,
		typText: "nat hook output priority -100"},
	{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter,
		typText: "filter hook forward priority filter"},
	{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource,
		typText: "nat hook postrouting priority srcnat"},
}

// rule is one rule: its nft text, the same rule as netlink expressions,
// and what it does to a packet (for Eval), side by side so they cannot
// drift apart.
type rule struct {
	chain string
	nft   string
	exprs func(set func(string) *nftables.Set) []expr.Any
	eval  func(rs Ruleset, p Packet) (Verdict, bool)
}

type exprs = []expr.Any

var baseRules = []rule{
	// route_localnet is on for cnet bridges, so that 127.0.0.1-bound ports
	// reach containers. Without this, anything that sends a packet for
	// 127.0.0.0/8 to the host (a container, or a LAN neighbour on an
	// interface with route_localnet) would reach the host's loopback
	// services: CVE-2020-8558.
	{"raw_prerouting", `iifname != "lo" ip daddr 127.0.0.0/8 drop`,
		func(set func(string) *nftables.Set) exprs {
			return exprs{meta(expr.MetaKeyIIFNAME, 1), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifKey("lo")},
				ipv4()[0], ipv4()[1],
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127}},
				verdict(expr.VerdictDrop)}
		},
		func(rs Ruleset, p Packet) (Verdict, bool) {
			return Verdict{Action: Drop, ID: RuleLoopback}, p.IIf != "lo" && loopback.Contains(p.Dst)
		}},
}

func buildRules() []rule {
	rules := slices.Clone(baseRules)
	// Published ports: DNAT to the container, for packets to a host address
	// (prerouting: from the LAN and from containers; output: from the host
	// itself, 127.0.0.1 included). Host-address mappings come first.
	for _, chain := range []string{"prerouting", "output"} {
		for _, proto := range []struct {
			name string
			num  byte
		}{{"tcp", unix.IPPROTO_TCP}, {"udp", unix.IPPROTO_UDP}} {
			keyed, any := "dnat_"+proto.name, "dnat_"+proto.name+"_any"
			num, pname := proto.num, proto.name
			rules = append(rules,
				rule{chain, fmt.Sprintf("fib daddr type local dnat ip to ip daddr . %s dport map @%s", proto.name, keyed),
					func(set func(string) *nftables.Set) exprs {
						return append(append(append(localDst(), ipv4()...), l4(num)...),
							daddr(1), dport(9),
							&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: keyed, SetID: set(keyed).ID},
							dnat())
					},
					func(rs Ruleset, p Packet) (Verdict, bool) {
						return rs.dnat(p, pname, false)
					}},
				rule{chain, fmt.Sprintf("fib daddr type local dnat ip to %s dport map @%s", proto.name, any),
					func(set func(string) *nftables.Set) exprs {
						return append(append(localDst(), l4(num)...), dport(1),
							&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: any, SetID: set(any).ID},
							dnat())
					},
					func(rs Ruleset, p Packet) (Verdict, bool) {
						return rs.dnat(p, pname, true)
					}},
			)
		}
	}
	rules = append(rules,
		rule{"forward", `iifname . oifname @samebr accept`, // switched inside one bridge: only seen with br_netfilter
			func(set func(string) *nftables.Set) exprs {
				return exprs{meta(expr.MetaKeyIIFNAME, 1), meta(expr.MetaKeyOIFNAME, 2), lookup(set("samebr"), 1, false), verdict(expr.VerdictAccept)}
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Accept, ID: RuleSameBridge}, p.IIf == p.OIf && slices.Contains(rs.Bridges, p.IIf)
			}},
		rule{"forward", `iifname @internal drop`, // internal networks: nothing leaves
			func(set func(string) *nftables.Set) exprs {
				return exprs{meta(expr.MetaKeyIIFNAME, 1), lookup(set("internal"), 1, false), verdict(expr.VerdictDrop)}
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Drop, ID: RuleInternalOut}, slices.Contains(rs.Internal, p.IIf)
			}},
		rule{"forward", `oifname @internal drop`, // ... and nothing routed enters
			func(set func(string) *nftables.Set) exprs {
				return exprs{meta(expr.MetaKeyOIFNAME, 1), lookup(set("internal"), 1, false), verdict(expr.VerdictDrop)}
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Drop, ID: RuleInternalIn}, slices.Contains(rs.Internal, p.OIf)
			}},
		rule{"forward", `oifname @bridges ct status dnat accept`, // published ports, from anywhere
			func(set func(string) *nftables.Set) exprs {
				return append(exprs{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false)},
					append(ctBits(expr.CtKeySTATUS, 0x20), verdict(expr.VerdictAccept))...)
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Accept, ID: RulePublished}, slices.Contains(rs.Bridges, p.OIf) && p.DNAT
			}},
		rule{"forward", `iifname @bridges oifname @bridges drop`, // isolation between networks
			func(set func(string) *nftables.Set) exprs {
				return exprs{meta(expr.MetaKeyIIFNAME, 1), lookup(set("bridges"), 1, false),
					meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false), verdict(expr.VerdictDrop)}
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Drop, ID: RuleIsolation}, slices.Contains(rs.Bridges, p.IIf) && slices.Contains(rs.Bridges, p.OIf)
			}},
		rule{"forward", `oifname @bridges ct state established,related accept`, // replies
			func(set func(string) *nftables.Set) exprs {
				return append(exprs{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false)},
					append(ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))...)
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Accept, ID: RuleReplies}, slices.Contains(rs.Bridges, p.OIf) && p.Established
			}},
		rule{"forward", `oifname @bridges drop`, // nothing unpublished from outside
			func(set func(string) *nftables.Set) exprs {
				return exprs{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false), verdict(expr.VerdictDrop)}
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Drop, ID: RuleUnpublished}, slices.Contains(rs.Bridges, p.OIf)
			}},
		rule{"postrouting", `ip saddr @masq oifname != @bridges masquerade`, // the seed's MASQUERADE
			func(set func(string) *nftables.Set) exprs {
				return append(ipv4(), saddr(1), lookup(set("masq"), 1, false),
					meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, true), &expr.Masq{})
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Masquerade, ID: RuleMasquerade}, rs.masq(p.Src) && !slices.Contains(rs.Bridges, p.OIf)
			}},
		rule{"postrouting", `oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade`, // 127.0.0.1 → container
			func(set func(string) *nftables.Set) exprs {
				return append(append(exprs{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false)}, ctBits(expr.CtKeySTATUS, 0x20)...),
					ipv4()[0], ipv4()[1],
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127}}, &expr.Masq{})
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Masquerade, ID: RuleLocalnet}, slices.Contains(rs.Bridges, p.OIf) && p.DNAT && loopback.Contains(p.Src)
			}},
		rule{"postrouting", `oifname @bridges ct status dnat ip saddr @masq masquerade`, // hairpin: a container to its own published port
			func(set func(string) *nftables.Set) exprs {
				return append(append(exprs{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false)}, ctBits(expr.CtKeySTATUS, 0x20)...),
					ipv4()[0], ipv4()[1], saddr(1), lookup(set("masq"), 1, false), &expr.Masq{})
			},
			func(rs Ruleset, p Packet) (Verdict, bool) {
				return Verdict{Action: Masquerade, ID: RuleHairpin}, slices.Contains(rs.Bridges, p.OIf) && p.DNAT && rs.masq(p.Src)
			}},
	)
	return rules
}

// allRules is every rule of the table, in order, built on first use:
// most commands never need them.
var allRules = sync.OnceValue(buildRules)

func meta(k expr.MetaKey, reg uint32) expr.Any { return &expr.Meta{Key: k, Register: reg} }

func lookup(s *nftables.Set, reg uint32, invert bool) expr.Any {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, Invert: invert}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

// localDst matches `fib daddr type local`.
func localDst() exprs {
	return exprs{&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)}}
}

// l4 matches `meta l4proto PROTO`.
func l4(proto byte) exprs {
	return exprs{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}}}
}

func daddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

func saddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func dport(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

// dnat is `dnat ip to` the address and port a map lookup left in
// registers 1 and 9.
func dnat() expr.Any {
	return &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9}
}

// ctBits matches `ct KEY & mask != 0`.
func ctBits(k expr.CtKey, mask uint32) exprs {
	return exprs{
		&expr.Ct{Key: k, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ipv4 matches `meta nfproto ipv4`, implied by `ip ...` in an inet table.
func ipv4() exprs {
	return exprs{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// String renders the ruleset in nft syntax, loadable with `nft -f`.
func (rs Ruleset) String() string {
	if rs.Empty() {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", Table)
	for _, s := range sets {
		kind := "set"
		if s.dataTyp != "" {
			kind = "map"
		}
		fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s", kind, s.name, s.typ)
		if s.dataTyp != "" {
			fmt.Fprintf(&b, " : %s", s.dataTyp)
		}
		b.WriteString("\n")
		if s.interval {
			b.WriteString("\t\tflags interval\n")
		}
		if es := s.elems(rs); len(es) > 0 {
			texts := make([]string, len(es))
			for i, e := range es {
				texts[i] = e.text
			}
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(texts, ", "))
		}
		b.WriteString("\t}\n\n")
	}
	for i, c := range chains {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype %s; policy accept;\n", c.name, c.typText)
		for _, r := range allRules() {
			if r.chain == c.name {
				fmt.Fprintf(&b, "\t\t%s\n", r.nft)
			}
		}
		b.WriteString("\t}\n")
		if i < len(chains)-1 {
			b.WriteString("\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// ReplaceText is the nft input that Sync sends as one batch: both tables,
// `inet cnet` and the anti-spoofing `bridge cnet`, are added (so that
// deleting them cannot fail), deleted, and written anew from rs, or left
// deleted when rs is empty. `nft -f -` applies it atomically. The tables
// come in the order Sync creates them, which is the order nft lists them.
func ReplaceText(rs Ruleset) string {
	out := fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\nadd table bridge %[1]s\ndelete table bridge %[1]s\n", Table)
	if rs.Empty() {
		return out
	}
	return out + GuardTableText(rs.Guards) + "\n" + rs.String()
}

// PortsText is the nft input of AddPorts (add true) or DelPorts: one
// line per DNAT map that ps touch, e.g.
//
//	add element inet cnet dnat_tcp_any { 8080 : 172.18.0.2 . 80 }
//	delete element inet cnet dnat_tcp_any { 8080 }
func PortsText(ps []model.PortElem, add bool) []string {
	rs := Ruleset{Ports: ps}
	var out []string
	for _, sd := range sets {
		if sd.dataTyp == "" {
			continue
		}
		var texts []string
		for _, e := range sd.elems(rs) {
			t := e.text
			if !add { // deleting takes the key alone
				t, _, _ = strings.Cut(t, " : ")
			}
			texts = append(texts, t)
		}
		if len(texts) == 0 {
			continue
		}
		verb := "add"
		if !add {
			verb = "delete"
		}
		out = append(out, fmt.Sprintf("%s element inet %s %s { %s }", verb, Table, sd.name, strings.Join(texts, ", ")))
	}
	return out
}
