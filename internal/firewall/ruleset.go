// Package firewall models cnet's nftables table and writes it through
// netlink (google/nftables) in one atomic batch.
//
// The table's rules never change; only set elements do. Every rule tests
// membership in a set, so per-packet cost does not grow with the number of
// networks or containers. The whole table is rebuilt from state with
//
//	nft -f - <<< 'add table inet cnet; delete table inet cnet; table inet cnet { ... }'
//
// which the kernel applies atomically: there is never a moment without it.
package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/model"
)

// Table is the name of cnet's table in the inet family.
const Table = "cnet"

// Ruleset is the wanted content of `table inet cnet`: the set elements.
type Ruleset struct {
	Bridges  []string       // every cnet bridge
	Internal []string       // bridges of --internal networks
	Masq     []netip.Prefix // subnets that get NAT (non-internal networks)
}

// FromNetworks computes the ruleset for a set of networks.
func FromNetworks(nets []*model.Network) Ruleset {
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
	return rs
}

// Empty reports whether there is nothing to filter: then the table is
// deleted, so an idle cnet leaves no trace in the ruleset.
func (rs Ruleset) Empty() bool { return len(rs.Bridges) == 0 }

type setDef struct {
	name     string
	typ      string // nft type
	key      nftables.SetDatatype
	concat   bool
	interval bool
	hostKey  bool // strings are host byte order; nft reverses them otherwise
	elems    func(Ruleset) []elem
}

type elem struct {
	text string
	keys []nftables.SetElement
}

var sets = []setDef{
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
	{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter,
		typText: "filter hook forward priority filter"},
	{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource,
		typText: "nat hook postrouting priority srcnat"},
}

// rule is one rule: its nft text, and the same rule as netlink expressions.
type rule struct {
	chain string
	nft   string
	exprs func(set func(string) *nftables.Set) []expr.Any
}

var rules = []rule{
	{"forward", `iifname . oifname @samebr accept`, // switched inside one bridge: only seen with br_netfilter
		func(set func(string) *nftables.Set) []expr.Any {
			return []expr.Any{meta(expr.MetaKeyIIFNAME, 1), meta(expr.MetaKeyOIFNAME, 2), lookup(set("samebr"), 1, false), verdict(expr.VerdictAccept)}
		}},
	{"forward", `iifname @internal drop`, // internal networks: nothing leaves
		func(set func(string) *nftables.Set) []expr.Any {
			return []expr.Any{meta(expr.MetaKeyIIFNAME, 1), lookup(set("internal"), 1, false), verdict(expr.VerdictDrop)}
		}},
	{"forward", `oifname @internal drop`, // ... and nothing routed enters
		func(set func(string) *nftables.Set) []expr.Any {
			return []expr.Any{meta(expr.MetaKeyOIFNAME, 1), lookup(set("internal"), 1, false), verdict(expr.VerdictDrop)}
		}},
	{"forward", `oifname @bridges ct status dnat accept`, // published ports, from anywhere
		func(set func(string) *nftables.Set) []expr.Any {
			return append([]expr.Any{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false)},
				append(ctBits(expr.CtKeySTATUS, 0x20), verdict(expr.VerdictAccept))...)
		}},
	{"forward", `iifname @bridges oifname @bridges drop`, // isolation between networks
		func(set func(string) *nftables.Set) []expr.Any {
			return []expr.Any{meta(expr.MetaKeyIIFNAME, 1), lookup(set("bridges"), 1, false),
				meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false), verdict(expr.VerdictDrop)}
		}},
	{"forward", `oifname @bridges ct state established,related accept`, // replies
		func(set func(string) *nftables.Set) []expr.Any {
			return append([]expr.Any{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false)},
				append(ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))...)
		}},
	{"forward", `oifname @bridges drop`, // nothing unpublished from outside
		func(set func(string) *nftables.Set) []expr.Any {
			return []expr.Any{meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, false), verdict(expr.VerdictDrop)}
		}},
	{"postrouting", `ip saddr @masq oifname != @bridges masquerade`, // the seed's MASQUERADE
		func(set func(string) *nftables.Set) []expr.Any {
			return append(ipv4(),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				lookup(set("masq"), 1, false),
				meta(expr.MetaKeyOIFNAME, 1), lookup(set("bridges"), 1, true),
				&expr.Masq{})
		}},
}

func meta(k expr.MetaKey, reg uint32) expr.Any { return &expr.Meta{Key: k, Register: reg} }

func lookup(s *nftables.Set, reg uint32, invert bool) expr.Any {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, Invert: invert}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

// ctBits matches `ct KEY & mask != 0`.
func ctBits(k expr.CtKey, mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: k, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ipv4 matches `meta nfproto ipv4`, implied by `ip ...` in an inet table.
func ipv4() []expr.Any {
	return []expr.Any{
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
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.name, s.typ)
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
		for _, r := range rules {
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
