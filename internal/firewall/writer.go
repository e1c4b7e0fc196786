package firewall

import (
	"bytes"
	"fmt"

	"github.com/cnetdev/cnet/internal/faults"
	"github.com/cnetdev/cnet/internal/model"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Sync replaces `table inet cnet` and `table bridge cnet` with rs in one
// atomic batch, in the network namespace opts choose (the caller's by
// default). An empty ruleset deletes both. Equivalent to `nft -f -` with
// ReplaceText(rs). The batch holds every element, in messages of bounded
// size (batch.go), so its size grows with the number of published ports.
func Sync(rs Ruleset, opts ...nftables.ConnOption) error {
	b, err := newBatch(opts)
	if err != nil {
		return err
	}
	if err := queueSync(b, rs); err != nil {
		return err
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nft replace table inet %s: %w", Table, err)
	}
	faults.Point()
	return nil
}

// queueSync queues Sync's batch on b.
func queueSync(b *batch, rs Ruleset) error {
	conn := b.conn
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(guardTable)
	conn.DelTable(guardTable)
	if rs.Empty() {
		return nil
	}
	if err := addGuardTable(b, rs.Guards); err != nil {
		return err
	}
	conn.AddTable(t)
	byName := map[string]*nftables.Set{}
	for _, sd := range sets {
		s := sd.set(t)
		var vals []nftables.SetElement
		for _, e := range sd.elems(rs) {
			vals = append(vals, e.keys...)
		}
		if err := conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("nft add set inet %s %s: %w", Table, sd.name, err)
		}
		if err := b.add(s, vals); err != nil {
			return fmt.Errorf("nft add element inet %s %s: %w", Table, sd.name, err)
		}
		byName[sd.name] = s
	}
	set := func(name string) *nftables.Set { return byName[name] }
	accept := nftables.ChainPolicyAccept
	chainByName := map[string]*nftables.Chain{}
	for _, cd := range chains {
		chainByName[cd.name] = conn.AddChain(&nftables.Chain{
			Table: t, Name: cd.name, Type: cd.typ, Hooknum: cd.hook, Priority: cd.prio, Policy: &accept,
		})
	}
	for _, r := range allRules() {
		conn.AddRule(&nftables.Rule{Table: t, Chain: chainByName[r.chain], Exprs: r.exprs(set)})
	}
	faults.Point()
	return nil
}

func (sd setDef) set(t *nftables.Table) *nftables.Set {
	s := &nftables.Set{Table: t, Name: sd.name, KeyType: sd.key, Concatenation: sd.concat, Interval: sd.interval}
	if sd.hostKey {
		s.KeyByteOrder = binaryutil.NativeEndian
	}
	if sd.dataTyp != "" {
		s.IsMap, s.DataType = true, sd.data
	}
	return s
}

// AddPorts adds published ports to the DNAT maps, and DelPorts deletes
// them, each in one atomic batch, in the namespace opts choose.
// Equivalent to:
//
//	nft add element inet cnet dnat_tcp { HOSTIP . PORT : ADDR . CPORT, ... }
//	nft delete element inet cnet dnat_tcp { ... }
func AddPorts(ps []model.PortElem, opts ...nftables.ConnOption) error {
	return portBatch(ps, true, opts)
}

// DelPorts deletes published ports from the DNAT maps in one batch.
func DelPorts(ps []model.PortElem, opts ...nftables.ConnOption) error {
	return portBatch(ps, false, opts)
}

func portBatch(ps []model.PortElem, add bool, opts []nftables.ConnOption) error {
	if len(ps) == 0 {
		return nil
	}
	b, err := newBatch(opts)
	if err != nil {
		return err
	}
	if err := queuePorts(b, ps, add); err != nil {
		return err
	}
	if err := b.conn.Flush(); err != nil {
		verb := "add"
		if !add {
			verb = "delete"
		}
		return fmt.Errorf("nft %s element inet %s dnat_*: %w", verb, Table, err)
	}
	faults.Point()
	return nil
}

// queuePorts queues portBatch's elements on b.
func queuePorts(b *batch, ps []model.PortElem, add bool) error {
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	rs := Ruleset{Ports: ps}
	for _, sd := range sets {
		if sd.dataTyp == "" {
			continue
		}
		var vals []nftables.SetElement
		for _, e := range sd.elems(rs) {
			vals = append(vals, e.keys...)
		}
		if len(vals) == 0 {
			continue
		}
		s := sd.set(t)
		var err error
		if add {
			err = b.add(s, vals)
		} else {
			err = b.del(s, vals)
		}
		if err != nil {
			return fmt.Errorf("nft element inet %s %s: %w", Table, sd.name, err)
		}
	}
	return nil
}

// Exists reports whether the table is present in conn's namespace.
// Equivalent to: `nft list table inet cnet`.
func Exists(conn *nftables.Conn) (bool, error) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nft list tables inet: %w", err)
	}
	for _, t := range tables {
		if t.Name == Table {
			return true, nil
		}
	}
	return false, nil
}

// Check compares the live table with rs and describes the first
// difference ("" when they match). Equivalent to reading
// `nft list table inet cnet` and comparing elements and rule counts.
func Check(conn *nftables.Conn, rs Ruleset) (string, error) {
	present, err := Exists(conn)
	if err != nil {
		return "", err
	}
	if !present {
		if rs.Empty() {
			return checkGuards(conn, rs)
		}
		return "table inet " + Table + " is missing", nil
	}
	if rs.Empty() {
		return "table inet " + Table + " exists but no network needs it", nil
	}
	if problem, err := checkGuards(conn, rs); problem != "" || err != nil {
		return problem, err
	}
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	for _, sd := range sets {
		s, err := conn.GetSetByName(t, sd.name)
		if err != nil {
			return fmt.Sprintf("set %s is missing", sd.name), nil
		}
		live, err := conn.GetSetElements(s)
		if err != nil {
			return "", fmt.Errorf("nft list set inet %s %s: %w", Table, sd.name, err)
		}
		want := map[string]bool{}
		for _, e := range sd.elems(rs) {
			want[string(e.keys[0].Key)] = true
		}
		got := map[string]bool{}
		for _, e := range live {
			if !e.IntervalEnd {
				got[string(e.Key)] = true
			}
		}
		if len(got) != len(want) {
			return fmt.Sprintf("set %s has %d elements, want %d", sd.name, len(got), len(want)), nil
		}
		for k := range want {
			if !got[k] {
				return fmt.Sprintf("set %s lacks an element", sd.name), nil
			}
		}
	}
	for _, cd := range chains {
		c, err := conn.ListChain(t, cd.name)
		if err != nil {
			return fmt.Sprintf("chain %s is missing", cd.name), nil
		}
		live, err := conn.GetRules(t, c)
		if err != nil {
			return "", fmt.Errorf("nft list chain inet %s %s: %w", Table, cd.name, err)
		}
		want := 0
		for _, r := range allRules() {
			if r.chain == cd.name {
				want++
			}
		}
		if len(live) != want {
			return fmt.Sprintf("chain %s has %d rules, want %d", cd.name, len(live), want), nil
		}
	}
	return "", nil
}

// ForeignForwardDrop describes base chains of other tables that drop
// forwarded packets by policy, such as the iptables FORWARD chain Docker
// sets to DROP. cnet's accept cannot override them.
func ForeignForwardDrop(conn *nftables.Conn) ([]string, error) {
	chains, err := conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("nft list chains: %w", err)
	}
	var out []string
	for _, c := range chains {
		if c.Table.Name == Table || c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward {
			continue
		}
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
			out = append(out, fmt.Sprintf("%s %s chain %s", family(c.Table.Family), c.Table.Name, c.Name))
		}
	}
	return out, nil
}

// ForwardChains reads the base chains of other tables hooked at forward,
// with their rules as far as cnet understands them (see ForeignRule).
// Equivalent to: `nft list chains` and `nft list chain FAMILY TABLE CHAIN`
// for each forward hook.
func ForwardChains(conn *nftables.Conn) ([]ForeignChain, error) {
	chains, err := conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("nft list chains: %w", err)
	}
	var out []ForeignChain
	for _, c := range chains {
		if c.Table.Name == Table && c.Table.Family == nftables.TableFamilyINet || c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward {
			continue
		}
		if c.Table.Family != nftables.TableFamilyIPv4 && c.Table.Family != nftables.TableFamilyINet {
			continue // ip6, bridge, netdev: not on the path of IPv4 forwarding
		}
		fc := ForeignChain{Name: fmt.Sprintf("%s %s chain %s", family(c.Table.Family), c.Table.Name, c.Name),
			Family: family(c.Table.Family), Table: c.Table.Name, Chain: c.Name, Policy: Accept}
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
			fc.Policy = Drop
		}
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			return nil, fmt.Errorf("nft list chain %s %s %s: %w", family(c.Table.Family), c.Table.Name, c.Name, err)
		}
		for _, r := range rules {
			fc.Rules = append(fc.Rules, readRule(r.Exprs))
		}
		out = append(out, fc)
	}
	return out, nil
}

// readRule reads a rule made of interface matches, counters and an
// accept or drop verdict; anything else makes it opaque.
func readRule(es []expr.Any) ForeignRule {
	var r ForeignRule
	keys := map[uint32]string{} // register -> iifname/oifname
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Meta:
			switch {
			case e.SourceRegister:
				return ForeignRule{Opaque: true}
			case e.Key == expr.MetaKeyIIFNAME:
				keys[e.Register] = "iifname"
			case e.Key == expr.MetaKeyOIFNAME:
				keys[e.Register] = "oifname"
			default:
				return ForeignRule{Opaque: true}
			}
		case *expr.Cmp:
			key, ok := keys[e.Register]
			if !ok || e.Op != expr.CmpOpEq && e.Op != expr.CmpOpNeq {
				return ForeignRule{Opaque: true}
			}
			// nft pads a name to IFNAMSIZ with zeros, iptables ends it
			// with one zero; a name without a zero is a prefix (br+).
			name, exact := bytes.TrimRight(e.Data, "\x00"), bytes.IndexByte(e.Data, 0) >= 0
			r.Conds = append(r.Conds, IfCond{Key: key, Not: e.Op == expr.CmpOpNeq, Name: string(name), Prefix: !exact})
		case *expr.Counter:
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				r.Verdict = Accept
			case expr.VerdictDrop:
				r.Verdict = Drop
			default:
				return ForeignRule{Opaque: true}
			}
		default:
			return ForeignRule{Opaque: true}
		}
	}
	return r
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprint(f)
}
