// Package dns is cnet's embedded name server: containers on a network
// resolve each other by name and alias, other names are forwarded to the
// host's upstream servers. The server never reads cnet's state: commands
// send it the records they change over a control socket (client.go), and
// a full snapshot when they start it.
package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Domain is the zone under which NAME.NETWORK.Domain resolves.
const Domain = "cnet."

// Net is a DNS-enabled network: its server answers on Gateway, to
// queries that arrive on Bridge.
type Net struct {
	Name    string       `json:"name"`
	Gateway netip.Addr   `json:"gateway"`
	Subnet  netip.Prefix `json:"subnet"`
	Bridge  string       `json:"bridge"`
}

// Ctr is a container's names on each network it is attached to.
type Ctr struct {
	Name      string `json:"name"`
	Endpoints []Ep   `json:"endpoints"`
	// Isolated is set when every network the container is on is
	// --internal: it has no way out, so names outside cnet are not
	// forwarded for it either (they would carry data out).
	Isolated bool `json:"isolated,omitempty"`
}

// Ep is one endpoint: an address on a network, and extra names there.
type Ep struct {
	Network string     `json:"network"`
	Addr    netip.Addr `json:"addr"`
	Aliases []string   `json:"aliases,omitempty"`
}

// Snapshot is the whole record set and the upstream servers.
type Snapshot struct {
	Networks   []Net        `json:"networks"`
	Containers []Ctr        `json:"containers"`
	Upstreams  []netip.Addr `json:"upstreams"`
}

// Change updates records: sets replace, deletes remove by name.
type Change struct {
	SetNetworks   []Net    `json:"set_networks,omitempty"`
	DelNetworks   []string `json:"del_networks,omitempty"`
	SetContainers []Ctr    `json:"set_containers,omitempty"`
	DelContainers []string `json:"del_containers,omitempty"`
}

// Empty reports whether the change changes nothing.
func (c Change) Empty() bool {
	return len(c.SetNetworks)+len(c.DelNetworks)+len(c.SetContainers)+len(c.DelContainers) == 0
}

// Table holds the records, indexed for answering. Updates cost the size
// of what they change; lookups cost the answer.
type Table struct {
	mu        sync.RWMutex
	nets      map[string]Net
	byGateway map[netip.Addr]string
	ctrs      map[string]Ctr
	byAddr    map[netip.Addr]addrOwner
	// names: network → lower-case name or alias → addresses on it.
	names     map[string]map[string][]netip.Addr
	upstreams []netip.Addr
}

type addrOwner struct{ container, network string }

// NewTable returns a table loaded from a snapshot.
func NewTable(s Snapshot) *Table {
	t := &Table{nets: map[string]Net{}, byGateway: map[netip.Addr]string{}, ctrs: map[string]Ctr{},
		byAddr: map[netip.Addr]addrOwner{}, names: map[string]map[string][]netip.Addr{}}
	t.Apply(Change{SetNetworks: s.Networks, SetContainers: s.Containers})
	t.upstreams = s.Upstreams
	return t
}

// Networks returns the networks, for the server's listeners.
func (t *Table) Networks() []Net {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Net, 0, len(t.nets))
	for _, n := range t.nets {
		out = append(out, n)
	}
	return out
}

// Upstreams returns the servers other names are forwarded to.
func (t *Table) Upstreams() []netip.Addr {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.upstreams
}

// Apply applies a change.
func (t *Table) Apply(c Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, name := range c.DelContainers {
		t.dropContainer(name)
	}
	for _, name := range c.DelNetworks {
		if n, ok := t.nets[name]; ok {
			delete(t.byGateway, n.Gateway)
			delete(t.nets, name)
		}
	}
	for _, n := range c.SetNetworks {
		if old, ok := t.nets[n.Name]; ok {
			delete(t.byGateway, old.Gateway)
		}
		t.nets[n.Name] = n
		t.byGateway[n.Gateway] = n.Name
	}
	for _, ctr := range c.SetContainers {
		t.dropContainer(ctr.Name)
		t.ctrs[ctr.Name] = ctr
		for _, ep := range ctr.Endpoints {
			t.byAddr[ep.Addr] = addrOwner{ctr.Name, ep.Network}
			m := t.names[ep.Network]
			if m == nil {
				m = map[string][]netip.Addr{}
				t.names[ep.Network] = m
			}
			for _, n := range append([]string{ctr.Name}, ep.Aliases...) {
				k := strings.ToLower(n)
				m[k] = append(m[k], ep.Addr)
			}
		}
	}
}

func (t *Table) dropContainer(name string) {
	old, ok := t.ctrs[name]
	if !ok {
		return
	}
	delete(t.ctrs, name)
	for _, ep := range old.Endpoints {
		delete(t.byAddr, ep.Addr)
		m := t.names[ep.Network]
		for _, n := range append([]string{old.Name}, ep.Aliases...) {
			k := strings.ToLower(n)
			addrs := m[k][:0]
			for _, a := range m[k] {
				if a != ep.Addr {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == 0 {
				delete(m, k)
			} else {
				m[k] = addrs
			}
		}
	}
}

// Querier is an admitted asker: whose names it resolves, and whether
// names outside cnet are forwarded for it.
type Querier struct {
	// Container is the container asking, "" for the host.
	Container string
	// Networks are the networks whose names it sees.
	Networks []string
	// Forward is false for a container on --internal networks only.
	Forward bool
}

// Admit decides whether the server answers a query from src that
// arrived on network's bridge: only when src is the address of a
// container's endpoint on that network, or the host itself (src is one
// of the host's own addresses: a gateway, or whichever address cnet's
// masquerade gave the host's packet to a gateway, which leaves through
// lo). local reports whether an address is the host's. A container sees
// the networks it is on; the host sees network. Anyone else is not
// admitted.
//
// The kernel guarantees the rest: the listener only gets packets that
// arrived on the bridge (SO_BINDTODEVICE), the bridge drops frames whose
// source is not the endpoint's own (table bridge cnet), and a packet
// from outside the host carrying a host address as its source is
// dropped as a martian.
func (t *Table) Admit(network string, src netip.Addr, local func(netip.Addr) bool) (Querier, bool) {
	q, ok, known := t.admitContainer(network, src)
	if known {
		return q, ok
	}
	t.mu.RLock()
	_, gw := t.byGateway[src]
	_, exists := t.nets[network]
	t.mu.RUnlock()
	// Loopback sources are never the host's here: route_localnet is on
	// for the bridges, so a container that routes could send them.
	if exists && (gw || !src.IsLoopback() && local != nil && local(src)) {
		return Querier{Networks: []string{network}, Forward: true}, true
	}
	return Querier{}, false
}

// admitContainer is Admit for container addresses: known is false when
// src is not a container's.
func (t *Table) admitContainer(network string, src netip.Addr) (q Querier, ok, known bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	o, known := t.byAddr[src]
	if !known {
		return q, false, false
	}
	if _, exists := t.nets[network]; !exists || o.network != network {
		return q, false, true
	}
	c := t.ctrs[o.container]
	q = Querier{Container: c.Name, Forward: !c.Isolated}
	for _, ep := range c.Endpoints {
		if _, dnsOn := t.nets[ep.Network]; dnsOn {
			q.Networks = append(q.Networks, ep.Network)
		}
	}
	return q, true, true
}

// NetworkAt returns the network whose gateway is gw.
func (t *Table) NetworkAt(gw netip.Addr) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, ok := t.byGateway[gw]
	return n, ok
}

// Refused is the answer to a query the server does not serve: REFUSED,
// without recursion available, as Docker's embedded server answers when
// it does not forward.
func Refused(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeRefused)
	m.RecursionAvailable = false
	return m
}

// Answer answers req for an admitted querier. It returns nil when the
// name is not cnet's: the caller forwards it, or refuses when q.Forward
// is false.
func (t *Table) Answer(req *dns.Msg, q Querier) *dns.Msg {
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}
	qn := req.Question[0]
	if qn.Qclass != dns.ClassINET && qn.Qclass != dns.ClassANY {
		return nil
	}
	name := strings.ToLower(qn.Name)
	t.mu.RLock()
	defer t.mu.RUnlock()
	vis := q.Networks
	if qn.Qtype == dns.TypePTR && strings.HasSuffix(name, ".in-addr.arpa.") {
		return t.ptr(req, name, vis)
	}
	addrs, ours := t.lookup(name, vis)
	if !ours {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = q.Forward
	if addrs == nil {
		m.Rcode = dns.RcodeNameError
		return m
	}
	if qn.Qtype == dns.TypeA || qn.Qtype == dns.TypeANY {
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: qn.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   a.AsSlice(),
			})
		}
	}
	// Other types (AAAA while there is no IPv6): NODATA, an empty NOERROR.
	return m
}

// lookup resolves a lower-case FQDN. ours is false for names outside
// cnet (to be forwarded); addrs is nil for cnet names that do not exist.
// Names may contain dots, so NAME.NETWORK.cnet is split at each visible
// network's name rather than at the last dot.
func (t *Table) lookup(name string, vis []string) (addrs []netip.Addr, ours bool) {
	if name == Domain {
		return nil, true
	}
	if rest, ok := strings.CutSuffix(name, "."+Domain); ok { // NAME.NETWORK.cnet.
		for _, v := range vis {
			if host, ok := strings.CutSuffix(rest, "."+strings.ToLower(v)); ok && host != "" {
				return t.names[v][host], true
			}
		}
		return nil, true
	}
	host := strings.TrimSuffix(name, ".")
	for _, v := range vis {
		addrs = append(addrs, t.names[v][host]...)
	}
	return addrs, addrs != nil // a bare name that is not a container: perhaps the upstreams know it
}

// ptr answers reverse lookups of container addresses the querier may see.
func (t *Table) ptr(req *dns.Msg, name string, vis []string) *dns.Msg {
	rev := strings.TrimSuffix(name, ".in-addr.arpa.")
	parts := strings.Split(rev, ".")
	if len(parts) != 4 {
		return nil
	}
	a, err := netip.ParseAddr(parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0])
	if err != nil {
		return nil
	}
	o, ok := t.byAddr[a]
	if !ok || !contains(vis, o.network) {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Answer = append(m.Answer, &dns.PTR{
		Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 0},
		Ptr: o.container + "." + o.network + "." + Domain,
	})
	return m
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Dump renders every record the table answers from, one line each,
// sorted: networks, names (and aliases) with their addresses, the owner
// of each address (for PTR and for telling who asks), and upstreams.
func (t *Table) Dump() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	for _, n := range t.nets {
		out = append(out, fmt.Sprintf("network %s gateway %s subnet %s bridge %s", n.Name, n.Gateway, n.Subnet, n.Bridge))
	}
	for gw, n := range t.byGateway {
		out = append(out, fmt.Sprintf("gateway %s network %s", gw, n))
	}
	for net, m := range t.names {
		for name, addrs := range m {
			out = append(out, fmt.Sprintf("name %s.%s %v", name, net, addrs))
		}
	}
	for _, c := range t.ctrs {
		if c.Isolated {
			out = append(out, "container "+c.Name+" isolated: nothing forwarded")
		}
	}
	for a, o := range t.byAddr {
		out = append(out, fmt.Sprintf("addr %s container %s network %s", a, o.container, o.network))
	}
	for _, u := range t.upstreams {
		out = append(out, "upstream "+u.String())
	}
	slices.Sort(out)
	return out
}
