package firewall

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/faults"
	"github.com/cnetdev/cnet/internal/model"
)

// Anti-spoofing: a container owns its interface, so it can give itself
// any address or MAC, and send any frame. Frames entering a bridge from a
// cnet endpoint must carry the endpoint's MAC and be IPv4 or ARP (an
// allow-list: the address checks below read IPv4 and ARP headers, so a
// frame of any other ether type, a VLAN-tagged one above all, would pass
// them unread), and IPv4 packets and ARP messages must carry its address;
// anything else is dropped at the bridge port, before the bridge switches
// it to a neighbour or hands it to the host. A container that routes
// (forwarding on) sends other hosts' packets by design: its MAC and ARP
// are checked, its IPv4 source addresses are not. The table:
//
//	table bridge cnet {
//		set ports   { type ifname }                  # every endpoint's host veth
//		set portmac { type ifname . ether_addr }     # veth . its container's MAC
//		set portip  { type ifname . ipv4_addr }      # veth . its container's address
//		set routers { type ifname }                  # veths of containers that route
//		chain prerouting { type filter hook prerouting priority 0; policy accept;
//			iifname != @ports accept                                   # not a cnet endpoint
//			iifname . ether saddr != @portmac drop
//			ether type != { ip, arp } drop                             # 802.1Q/802.1ad tags, IPv6, the rest
//			ether type arp iifname . arp saddr ip != @portip drop
//			ether type arp iifname . arp saddr ether != @portmac drop
//			iifname @routers accept                                    # forwarded packets
//			ether type ip iifname . ip saddr != @portip drop
//		}
//	}
//
// Network operations rebuild it with the rest of the firewall (Sync);
// endpoints add and delete their own elements (AddGuards, DelGuards).
//
// The allow-list reads the frame's outer ether type: a VLAN tag, which
// the kernel keeps beside the frame once it has received it, is put back
// for `ether type`, so a tagged frame reads 0x8100 (802.1Q) or 0x88a8
// (802.1ad) and is dropped, a priority tag (VID 0) too. Nothing on a cnet
// network needs tags (the bridges do no VLAN filtering and the endpoints
// belong to no VLAN), and a tag would hide the frame's IPv4 or ARP
// header from the checks while the receiving kernel strips a VID-0 tag
// and takes the frame as untagged. cnet is IPv4-only: it gives containers
// no IPv6 address, route or neighbour, so IPv6 is dropped too, which also
// keeps a container from sending router advertisements or neighbour
// advertisements to its neighbours and the host. Dual stack adds ip6 to
// guardEtherTypes together with the IPv6 source checks.

var (
	guardTable = &nftables.Table{Name: Table, Family: nftables.TableFamilyBridge}
	portsSet   = &nftables.Set{Table: guardTable, Name: "ports", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	portMACSet = &nftables.Set{Table: guardTable, Name: "portmac", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr), Concatenation: true}
	portIPSet  = &nftables.Set{Table: guardTable, Name: "portip", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr), Concatenation: true}
	routersSet = &nftables.Set{Table: guardTable, Name: "routers", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	guardChain = "prerouting"
)

// guardEtherTypes are the ether types an endpoint may send, in the order
// nft lists them; every other frame from an endpoint is dropped.
var guardEtherTypes = []struct {
	typ  uint16
	name string
}{{unix.ETH_P_IP, "ip"}, {unix.ETH_P_ARP, "arp"}}

// etherTypeSet is the anonymous constant set `{ ip, arp }` of
// guardEtherTypes; a new one per batch, as anonymous sets live in one.
func etherTypeSet() (*nftables.Set, []nftables.SetElement) {
	s := &nftables.Set{Table: guardTable, Anonymous: true, Constant: true, KeyType: nftables.TypeEtherType, KeyByteOrder: binaryutil.BigEndian}
	var elems []nftables.SetElement
	for _, t := range guardEtherTypes {
		elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(t.typ)})
	}
	return s, elems
}

// etherTypeText is guardEtherTypes in nft syntax: `{ ip, arp }`.
func etherTypeText() string {
	var n []string
	for _, t := range guardEtherTypes {
		n = append(n, t.name)
	}
	return "{ " + strings.Join(n, ", ") + " }"
}

// guardSet is one set of the bridge table: its type in nft syntax, and
// the element an endpoint has in it (ok false: none).
type guardSet struct {
	set  *nftables.Set
	typ  string
	elem func(g model.GuardSpec) (key []byte, text string, ok bool)
}

var guardSets = []guardSet{
	{portsSet, "ifname", func(g model.GuardSpec) ([]byte, string, bool) {
		return ifKey(g.HostIf), fmt.Sprintf("%q", g.HostIf), true
	}},
	{portMACSet, "ifname . ether_addr", func(g model.GuardSpec) ([]byte, string, bool) {
		mac := guardMAC(g)
		return append(append(ifKey(g.HostIf), mac...), 0, 0), fmt.Sprintf("%q . %s", g.HostIf, mac), true // padded to 8 bytes
	}},
	{portIPSet, "ifname . ipv4_addr", func(g model.GuardSpec) ([]byte, string, bool) {
		a := g.Addr.As4()
		return append(ifKey(g.HostIf), a[:]...), fmt.Sprintf("%q . %s", g.HostIf, g.Addr), true
	}},
	{routersSet, "ifname", func(g model.GuardSpec) ([]byte, string, bool) {
		return ifKey(g.HostIf), fmt.Sprintf("%q", g.HostIf), g.Router
	}},
}

func guardMAC(g model.GuardSpec) net.HardwareAddr {
	mac, _ := net.ParseMAC(g.MAC)
	if len(mac) != 6 {
		mac = make(net.HardwareAddr, 6)
	}
	return mac
}

// guardElems returns the elements of gs in each of guardSets.
func guardElems(gs []model.GuardSpec) [][]nftables.SetElement {
	out := make([][]nftables.SetElement, len(guardSets))
	for i, s := range guardSets {
		for _, g := range gs {
			if key, _, ok := s.elem(g); ok {
				out[i] = append(out[i], nftables.SetElement{Key: key})
			}
		}
	}
	return out
}

// guardTexts returns the elements of gs in each of guardSets, in nft syntax.
func guardTexts(gs []model.GuardSpec) [][]string {
	out := make([][]string, len(guardSets))
	for i, s := range guardSets {
		for _, g := range gs {
			if _, text, ok := s.elem(g); ok {
				out[i] = append(out[i], text)
			}
		}
	}
	return out
}

// addGuardTable queues the whole bridge table with gs on b.
func addGuardTable(b *batch, gs []model.GuardSpec) error {
	conn := b.conn
	conn.AddTable(guardTable)
	elems := guardElems(gs)
	for i, s := range guardSets {
		if err := conn.AddSet(s.set, nil); err != nil {
			return fmt.Errorf("nft add set bridge %s %s: %w", Table, s.set.Name, err)
		}
		if err := b.add(s.set, elems[i]); err != nil {
			return fmt.Errorf("nft add element bridge %s %s: %w", Table, s.set.Name, err)
		}
	}
	types, typeElems := etherTypeSet()
	if err := conn.AddSet(types, typeElems); err != nil {
		return fmt.Errorf("nft add set bridge %s %s: %w", Table, etherTypeText(), err)
	}
	b.tally(typeElems) // an anonymous set's elements go with it, in one message
	accept := nftables.ChainPolicyAccept
	ch := conn.AddChain(&nftables.Chain{Table: guardTable, Name: guardChain, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	iif := meta(expr.MetaKeyIIFNAME, 1)
	etherType := func(t uint16) []expr.Any {
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)}}
	}
	second := func(base expr.PayloadBase, off, n uint32) expr.Any {
		return &expr.Payload{DestRegister: 2, Base: base, Offset: off, Len: n}
	}
	for _, r := range [][]expr.Any{
		// iifname != @ports accept
		{iif, lookup(portsSet, 1, true), verdict(expr.VerdictAccept)},
		// iifname . ether saddr != @portmac drop
		{iif, second(expr.PayloadBaseLLHeader, 6, 6), lookup(portMACSet, 1, true), verdict(expr.VerdictDrop)},
		// ether type != { ip, arp } drop
		{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2}, lookup(types, 1, true), verdict(expr.VerdictDrop)},
		// ether type arp iifname . arp saddr ip != @portip drop
		append(etherType(unix.ETH_P_ARP), iif, second(expr.PayloadBaseNetworkHeader, 14, 4), lookup(portIPSet, 1, true), verdict(expr.VerdictDrop)),
		// ether type arp iifname . arp saddr ether != @portmac drop
		append(etherType(unix.ETH_P_ARP), iif, second(expr.PayloadBaseNetworkHeader, 8, 6), lookup(portMACSet, 1, true), verdict(expr.VerdictDrop)),
		// iifname @routers accept
		{iif, lookup(routersSet, 1, false), verdict(expr.VerdictAccept)},
		// ether type ip iifname . ip saddr != @portip drop
		append(etherType(unix.ETH_P_IP), iif, second(expr.PayloadBaseNetworkHeader, 12, 4), lookup(portIPSet, 1, true), verdict(expr.VerdictDrop)),
	} {
		conn.AddRule(&nftables.Rule{Table: guardTable, Chain: ch, Exprs: r})
	}
	return nil
}

// AddGuards adds endpoints' anti-spoofing elements in one batch.
// Equivalent to:
//
//	nft add element bridge cnet ports { VETH }
//	nft add element bridge cnet portmac { VETH . MAC }
//	nft add element bridge cnet portip { VETH . ADDR }
//	nft add element bridge cnet routers { VETH }     # if its container routes
//
// When the table is missing (someone flushed the ruleset), there is
// nothing to add to: `cnet gc` rebuilds the whole firewall from state,
// these elements included, as it must for the rest of it anyway.
func AddGuards(gs []model.GuardSpec, opts ...nftables.ConnOption) error {
	if len(gs) == 0 {
		return nil
	}
	b, err := newBatch(opts)
	if err != nil {
		return err
	}
	elems := guardElems(gs)
	for i, s := range guardSets {
		if err := b.add(s.set, elems[i]); err != nil {
			return fmt.Errorf("nft add element bridge %s %s: %w", Table, s.set.Name, err)
		}
	}
	err = b.conn.Flush()
	if err == nil {
		faults.Point()
	}
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("nft add element bridge %s ports %s: %w", Table, guardNames(gs), err)
	}
	return nil
}

// DelGuards deletes endpoints' anti-spoofing elements in one batch, those
// present. Equivalent to `nft delete element bridge cnet ports { VETH }`
// and the same in portmac, portip and (for a container that routes)
// routers.
//
// It first sends the batch for every endpoint, which is the whole job
// when all are present, as they are unless something interrupted cnet.
// Deleting an absent element fails the batch, and the kernel then
// changes nothing; only then does DelGuards list the ports set and send
// the batch again for those present. Listing first would cost every
// removal a dump of the set, which grows with the number of containers.
func DelGuards(gs []model.GuardSpec, opts ...nftables.ConnOption) error {
	if len(gs) == 0 {
		return nil
	}
	if err := delGuards(gs, opts); err == nil || !errors.Is(err, unix.ENOENT) {
		return err
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	live, err := conn.GetSetElements(portsSet)
	if err != nil {
		return nil // no table or set: nothing to delete
	}
	present := map[string]bool{}
	for _, e := range live {
		present[string(e.Key)] = true
	}
	var del []model.GuardSpec
	for _, g := range gs {
		if present[string(ifKey(g.HostIf))] {
			del = append(del, g)
		}
	}
	return delGuards(del, opts)
}

// delGuards deletes gs's elements in one batch, which fails (changing
// nothing) with ENOENT if one is absent.
func delGuards(gs []model.GuardSpec, opts []nftables.ConnOption) error {
	if len(gs) == 0 {
		return nil
	}
	b, err := newBatch(opts)
	if err != nil {
		return err
	}
	elems := guardElems(gs)
	for i, s := range guardSets {
		if err := b.del(s.set, elems[i]); err != nil {
			return fmt.Errorf("nft delete element bridge %s %s: %w", Table, s.set.Name, err)
		}
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nft delete element bridge %s ports %s: %w", Table, guardNames(gs), err)
	}
	faults.Point()
	return nil
}

func guardNames(gs []model.GuardSpec) string {
	var n []string
	for _, g := range gs {
		n = append(n, g.HostIf)
	}
	return "{ " + strings.Join(n, ", ") + " }"
}

// checkGuards compares the live bridge table with gs.
func checkGuards(conn *nftables.Conn, rs Ruleset) (string, error) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyBridge)
	if err != nil {
		return "", fmt.Errorf("nft list tables bridge: %w", err)
	}
	present := slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == Table })
	switch {
	case !present && rs.Empty():
		return "", nil
	case !present:
		return "table bridge " + Table + " is missing", nil
	case rs.Empty():
		return "table bridge " + Table + " exists but no network needs it", nil
	}
	want := guardElems(rs.Guards)
	for i, gs := range guardSets {
		s := gs.set
		live, err := conn.GetSetElements(s)
		if err != nil {
			return fmt.Sprintf("set bridge %s %s is missing", Table, s.Name), nil
		}
		got := map[string]bool{}
		for _, e := range live {
			got[string(e.Key)] = true
		}
		if len(got) != len(want[i]) {
			return fmt.Sprintf("set bridge %s %s has %d elements, want %d", Table, s.Name, len(got), len(want[i])), nil
		}
		for _, e := range want[i] {
			if !got[string(e.Key)] {
				return fmt.Sprintf("set bridge %s %s lacks an element", Table, s.Name), nil
			}
		}
	}
	c, err := conn.ListChain(guardTable, guardChain)
	if err != nil {
		return "chain bridge " + Table + " " + guardChain + " is missing", nil
	}
	live, err := conn.GetRules(guardTable, c)
	if err != nil {
		return "", fmt.Errorf("nft list chain bridge %s %s: %w", Table, guardChain, err)
	}
	if len(live) != len(guardRuleText) {
		return fmt.Sprintf("chain bridge %s %s has %d rules, want %d", Table, guardChain, len(live), len(guardRuleText)), nil
	}
	return "", nil
}

// guardRuleText are the chain's rules in nft syntax, in order.
var guardRuleText = []string{
	"iifname != @ports accept",
	"iifname . ether saddr != @portmac drop",
	"ether type != " + etherTypeText() + " drop",
	"ether type arp iifname . arp saddr ip != @portip drop",
	"ether type arp iifname . arp saddr ether != @portmac drop",
	"iifname @routers accept",
	"ether type ip iifname . ip saddr != @portip drop",
}

// GuardTableText renders `table bridge cnet` with gs, loadable with nft -f.
func GuardTableText(gs []model.GuardSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %s {\n", Table)
	texts := guardTexts(gs)
	for i, s := range guardSets {
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.set.Name, s.typ)
		if len(texts[i]) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(texts[i], ", "))
		}
		b.WriteString("\t}\n\n")
	}
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook prerouting priority 0; policy accept;\n", guardChain)
	for _, r := range guardRuleText {
		fmt.Fprintf(&b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// GuardsText is the nft input of AddGuards (add true) or DelGuards: one
// line per set that gs have elements in, e.g.
//
//	add element bridge cnet ports { "veth1a2b3c4" }
//	add element bridge cnet portmac { "veth1a2b3c4" . 02:63:ac:12:00:02 }
//	add element bridge cnet portip { "veth1a2b3c4" . 172.18.0.2 }
func GuardsText(gs []model.GuardSpec, add bool) []string {
	verb := "add"
	if !add {
		verb = "delete"
	}
	var out []string
	for i, texts := range guardTexts(gs) {
		if len(texts) > 0 {
			out = append(out, fmt.Sprintf("%s element bridge %s %s { %s }", verb, Table, guardSets[i].set.Name, strings.Join(texts, ", ")))
		}
	}
	return out
}
