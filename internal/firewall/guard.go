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

	"github.com/cnetdev/cnet/internal/model"
)

// Anti-spoofing: a container owns its interface, so it can give itself
// any address or MAC. Frames entering a bridge from a cnet endpoint must
// carry the endpoint's MAC, and IPv4 packets and ARP messages its
// address; anything else is dropped at the bridge port, before the bridge
// switches it to a neighbour or hands it to the host. The table:
//
//	table bridge cnet {
//		set ports   { type ifname }                  # every endpoint's host veth
//		set portmac { type ifname . ether_addr }     # veth . its container's MAC
//		set portip  { type ifname . ipv4_addr }      # veth . its container's address
//		chain prerouting { type filter hook prerouting priority 0; policy accept;
//			iifname != @ports accept                                   # not a cnet endpoint
//			iifname . ether saddr != @portmac drop
//			ether type ip iifname . ip saddr != @portip drop
//			ether type arp iifname . arp saddr ip != @portip drop
//			ether type arp iifname . arp saddr ether != @portmac drop
//		}
//	}
//
// Network operations rebuild it with the rest of the firewall (Sync);
// endpoints add and delete their own elements (AddGuards, DelGuards).

var (
	guardTable  = &nftables.Table{Name: Table, Family: nftables.TableFamilyBridge}
	portsSet    = &nftables.Set{Table: guardTable, Name: "ports", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	portMACSet  = &nftables.Set{Table: guardTable, Name: "portmac", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr), Concatenation: true}
	portIPSet   = &nftables.Set{Table: guardTable, Name: "portip", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr), Concatenation: true}
	guardSets   = []*nftables.Set{portsSet, portMACSet, portIPSet}
	guardChain  = "prerouting"
	guardNumber = 5 // rules in the chain
)

// guardKeys returns the elements of g in ports, portmac and portip.
func guardKeys(g model.GuardSpec) [3]nftables.SetElement {
	mac, _ := net.ParseMAC(g.MAC)
	if len(mac) != 6 {
		mac = make(net.HardwareAddr, 6)
	}
	a := g.Addr.As4()
	return [3]nftables.SetElement{
		{Key: ifKey(g.HostIf)},
		{Key: append(append(ifKey(g.HostIf), mac...), 0, 0)},
		{Key: append(ifKey(g.HostIf), a[:]...)},
	}
}

func guardElems(gs []model.GuardSpec) [3][]nftables.SetElement {
	var out [3][]nftables.SetElement
	for _, g := range gs {
		k := guardKeys(g)
		for i := range k {
			out[i] = append(out[i], k[i])
		}
	}
	return out
}

// addGuardTable queues the whole bridge table with gs on conn.
func addGuardTable(conn *nftables.Conn, gs []model.GuardSpec) error {
	conn.AddTable(guardTable)
	elems := guardElems(gs)
	for i, s := range guardSets {
		if err := conn.AddSet(s, elems[i]); err != nil {
			return fmt.Errorf("nft add set bridge %s %s: %w", Table, s.Name, err)
		}
	}
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
		// ether type ip iifname . ip saddr != @portip drop
		append(etherType(unix.ETH_P_IP), iif, second(expr.PayloadBaseNetworkHeader, 12, 4), lookup(portIPSet, 1, true), verdict(expr.VerdictDrop)),
		// ether type arp iifname . arp saddr ip != @portip drop
		append(etherType(unix.ETH_P_ARP), iif, second(expr.PayloadBaseNetworkHeader, 14, 4), lookup(portIPSet, 1, true), verdict(expr.VerdictDrop)),
		// ether type arp iifname . arp saddr ether != @portmac drop
		append(etherType(unix.ETH_P_ARP), iif, second(expr.PayloadBaseNetworkHeader, 8, 6), lookup(portMACSet, 1, true), verdict(expr.VerdictDrop)),
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
//
// When the table is missing (someone flushed the ruleset), there is
// nothing to add to: `cnet gc` rebuilds the whole firewall from state,
// these elements included, as it must for the rest of it anyway.
func AddGuards(conn *nftables.Conn, gs []model.GuardSpec) error {
	if len(gs) == 0 {
		return nil
	}
	elems := guardElems(gs)
	for i, s := range guardSets {
		if err := conn.SetAddElements(s, elems[i]); err != nil {
			return err
		}
	}
	err := conn.Flush()
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("nft add element bridge %s ports %s: %w", Table, guardNames(gs), err)
	}
	return nil
}

// DelGuards deletes endpoints' anti-spoofing elements in one batch, those
// present: deleting an absent one would fail the batch. Equivalent to
// `nft delete element bridge cnet ports { VETH }` and the same in portmac
// and portip.
func DelGuards(conn *nftables.Conn, gs []model.GuardSpec) error {
	if len(gs) == 0 {
		return nil
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
	if len(del) == 0 {
		return nil
	}
	elems := guardElems(del)
	for i, s := range guardSets {
		if err := conn.SetDeleteElements(s, elems[i]); err != nil {
			return err
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nft delete element bridge %s ports %s: %w", Table, guardNames(del), err)
	}
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
	for i, s := range guardSets {
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
	if len(live) != guardNumber {
		return fmt.Sprintf("chain bridge %s %s has %d rules, want %d", Table, guardChain, len(live), guardNumber), nil
	}
	return "", nil
}

// guardRuleText are the chain's rules in nft syntax, in order.
var guardRuleText = []string{
	"iifname != @ports accept",
	"iifname . ether saddr != @portmac drop",
	"ether type ip iifname . ip saddr != @portip drop",
	"ether type arp iifname . arp saddr ip != @portip drop",
	"ether type arp iifname . arp saddr ether != @portmac drop",
}

// guardElemText renders g's element in ports, portmac and portip.
func guardElemText(g model.GuardSpec) [3]string {
	mac, _ := net.ParseMAC(g.MAC)
	return [3]string{
		fmt.Sprintf("%q", g.HostIf),
		fmt.Sprintf("%q . %s", g.HostIf, mac),
		fmt.Sprintf("%q . %s", g.HostIf, g.Addr),
	}
}

var guardTypes = [3]string{"ifname", "ifname . ether_addr", "ifname . ipv4_addr"}

// GuardTableText renders `table bridge cnet` with gs, loadable with nft -f.
func GuardTableText(gs []model.GuardSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %s {\n", Table)
	for i, s := range guardSets {
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.Name, guardTypes[i])
		var texts []string
		for _, g := range gs {
			texts = append(texts, guardElemText(g)[i])
		}
		if len(texts) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(texts, ", "))
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
// line per set, e.g.
//
//	add element bridge cnet ports { "veth1a2b3c4" }
//	add element bridge cnet portmac { "veth1a2b3c4" . 02:63:ac:12:00:02 }
//	add element bridge cnet portip { "veth1a2b3c4" . 172.18.0.2 }
func GuardsText(gs []model.GuardSpec, add bool) []string {
	if len(gs) == 0 {
		return nil
	}
	verb := "add"
	if !add {
		verb = "delete"
	}
	var out []string
	for i, s := range guardSets {
		var texts []string
		for _, g := range gs {
			texts = append(texts, guardElemText(g)[i])
		}
		out = append(out, fmt.Sprintf("%s element bridge %s %s { %s }", verb, Table, s.Name, strings.Join(texts, ", ")))
	}
	return out
}
