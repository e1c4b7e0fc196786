// Package fakekernel is an in-memory machine for engine tests that run
// without root. It keeps the objects a real kernel would hold and records
// every mutation as the `ip`/`nft` command a person would type, so tests
// compare readable golden sequences. A call that changes nothing records
// nothing, which is how idempotence is asserted.
package fakekernel

import (
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/netns"
)

// Link is a host link.
type Link struct {
	Kind    string // "bridge", "veth", "dummy"
	Mark    string
	Master  string
	Addr    netip.Prefix
	PeerNS  string // veth: namespace of the peer
	Peer    string
	Hairpin bool
	// PeerMAC is the MAC of the peer of a veth a test staged by hand;
	// Learned are MACs the bridge learned on a port that is not a veth.
	PeerMAC string
	Learned []model.Holder
}

// Namespace is a named network namespace.
type Namespace struct {
	Mark string
	// ID is the namespace's identity (its nsfs inode), given at creation.
	ID    uint64
	Links map[string]netip.Prefix // container-side links and their address
	Route string                  // "default via GW dev DEV", or ""
	// Static are static routes: "DST via GW".
	Static     map[string]bool
	Forwarding bool
	// Direct are the ends of direct links: interface → its peer.
	Direct map[string]DirectEnd
	// Egress are token-bucket limits in bits/s, by interface.
	Egress map[string]uint64
}

// DirectEnd is the far end of a direct link, and the link's mark.
type DirectEnd struct {
	Mark, PeerNS, Peer string
}

// Op is one recorded mutation.
type Op struct {
	Line   string // what a person would type
	Object string // the object it changes, e.g. "link veth123"
	Undo   bool   // true when it removes or restores rather than adds
}

// Kernel is the fake. Its exported maps may be edited by tests to stage
// a machine (a foreign link, a host route).
type Kernel struct {
	Links        map[string]*Link
	Netns        map[string]*Namespace
	Files        map[string]model.FilesSpec
	Firewall     *firewall.Ruleset // nil when the table is absent
	Forward      bool
	HostRoutes   []netip.Prefix
	HostAddrs    []netip.Addr
	Listening    map[string]string // "tcp 0.0.0.0:80" → "nginx (pid 1)"
	ForeignDrops []string
	Names        *DNS // the name server, nil when stopped
	// Stale lists the PIDs of name servers that lost their control socket.
	Stale []int
	// Odd are entries under /run/netns that are no namespace (Foreign,
	// Incomplete) or cannot be read (Unknown), by name.
	Odd map[string]netns.State
	Ops []Op
	// Fail, if set, is consulted before each mutation; an error fails it.
	Fail func(line string) error

	lastID uint64 // the last namespace identity given
}

// New returns an empty machine.
func New() *Kernel {
	return &Kernel{Links: map[string]*Link{}, Netns: map[string]*Namespace{}, Files: map[string]model.FilesSpec{}}
}

func (k *Kernel) record(obj string, undo bool, format string, args ...any) error {
	line := fmt.Sprintf(format, args...)
	if k.Fail != nil {
		if err := k.Fail(line); err != nil {
			return err
		}
	}
	k.Ops = append(k.Ops, Op{Line: line, Object: obj, Undo: undo})
	return nil
}

// Lines returns the recorded commands and forgets them.
func (k *Kernel) Lines() []string {
	out := make([]string, len(k.Ops))
	for i, o := range k.Ops {
		out[i] = o.Line
	}
	k.Ops = nil
	return out
}

// Snapshot renders every object, sorted, for before/after comparisons.
func (k *Kernel) Snapshot() string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(k.Links)) {
		l := k.Links[name]
		fmt.Fprintf(&b, "link %s %s mark=%s master=%s addr=%v peer=%s/%s hairpin=%v\n", name, l.Kind, l.Mark, l.Master, l.Addr, l.PeerNS, l.Peer, l.Hairpin)
	}
	for _, name := range slices.Sorted(maps.Keys(k.Netns)) {
		n := k.Netns[name]
		fmt.Fprintf(&b, "netns %s mark=%s route=%q forwarding=%v\n", name, n.Mark, n.Route, n.Forwarding)
		for _, l := range slices.Sorted(maps.Keys(n.Links)) {
			fmt.Fprintf(&b, "  %s %v", l, n.Links[l])
			if d, ok := n.Direct[l]; ok {
				fmt.Fprintf(&b, " peer=%s/%s mark=%s", d.PeerNS, d.Peer, d.Mark)
			}
			if r := n.Egress[l]; r > 0 {
				fmt.Fprintf(&b, " egress=%d", r)
			}
			b.WriteString("\n")
		}
		for _, r := range slices.Sorted(maps.Keys(n.Static)) {
			fmt.Fprintf(&b, "  route %s\n", r)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(k.Files)) {
		f := k.Files[name]
		fmt.Fprintf(&b, "files %s\n%s%s", name, f.Resolv, f.Hosts)
	}
	fmt.Fprintf(&b, "firewall:\n%sforwarding=%v\n", k.firewallText(), k.Forward)
	b.WriteString(k.Names.String())
	return b.String()
}

// Close does nothing.
func (k *Kernel) Close() {}

// EnsureNetns implements the engine's machine.
func (k *Kernel) EnsureNetns(s model.NetnsSpec) error {
	n, ok := k.Netns[s.Name]
	if ok && n.Mark != s.Mark {
		return errs.Conflict("namespace", s.Name, "a namespace cnet did not create", "")
	}
	if !ok {
		fwd := ""
		if s.Forwarding {
			fwd = fmt.Sprintf(" && ip netns exec %s sysctl -w net.ipv4.ip_forward=1", s.Name)
		}
		if err := k.record("netns "+s.Name, false, "ip netns add %s && ip -n %s link set lo alias %s up%s", s.Name, s.Name, s.Mark, fwd); err != nil {
			return err
		}
		k.lastID++
		n = &Namespace{Mark: s.Mark, ID: k.lastID, Links: map[string]netip.Prefix{}, Forwarding: s.Forwarding}
		k.Netns[s.Name] = n
	}
	if s.Forwarding && !n.Forwarding {
		if err := k.record("netns "+s.Name, false, "ip netns exec %s sysctl -w net.ipv4.ip_forward=1", s.Name); err != nil {
			return err
		}
		n.Forwarding = true
	}
	return nil
}

// RemoveNetns implements the engine's machine.
func (k *Kernel) RemoveNetns(s model.NetnsSpec) error {
	n, ok := k.Netns[s.Name]
	if !ok {
		return nil
	}
	if err := owned(n, s, "left in place"); err != nil {
		return err
	}
	if err := k.record("netns "+s.Name, true, "ip netns del %s", s.Name); err != nil {
		return err
	}
	delete(k.Netns, s.Name)
	for name, l := range k.Links { // veth peers die with the namespace
		if l.PeerNS == s.Name {
			delete(k.Links, name)
		}
	}
	for _, d := range n.Direct { // and so do direct links
		if peer := k.Netns[d.PeerNS]; peer != nil {
			peer.dropLink(d.Peer)
		}
	}
	return nil
}

// dropLink forgets an interface and what went with it.
func (n *Namespace) dropLink(name string) {
	delete(n.Links, name)
	delete(n.Direct, name)
	delete(n.Egress, name)
	if strings.HasSuffix(n.Route, " dev "+name) {
		n.Route = ""
	}
	for r := range n.Static { // the kernel drops routes whose gateway it can no longer reach
		_, gw, _ := strings.Cut(r, " via ")
		if a, err := netip.ParseAddr(gw); err != nil || !n.reaches(a) {
			delete(n.Static, r)
		}
	}
}

// owned is the real kernel's check: the recorded identity when there is
// one, else the mark.
func owned(n *Namespace, s model.NetnsSpec, hint string) error {
	if s.ID != nil {
		if n.ID != s.ID.Ino {
			return errs.Conflict("namespace", s.Name, fmt.Sprintf("another namespace than the one cnet created (nsfs 0:%d, recorded %s)", n.ID, *s.ID), "%s", hint)
		}
		return nil
	}
	if n.Mark != s.Mark {
		return errs.Conflict("namespace", s.Name, "a namespace cnet did not create", "%s", hint)
	}
	return nil
}

// NetnsID implements the engine's machine.
func (k *Kernel) NetnsID(name string) (model.NetnsID, error) {
	n, ok := k.Netns[name]
	if !ok {
		return model.NetnsID{}, fmt.Errorf("open netns %s: %w", name, fs.ErrNotExist)
	}
	return model.NetnsID{Ino: n.ID}, nil
}

// RemoveNamespaces implements the engine's machine: every mark is checked
// before anything is deleted.
func (k *Kernel) RemoveNamespaces(specs []model.NetnsSpec) error {
	for _, s := range specs {
		if n, ok := k.Netns[s.Name]; ok {
			if err := owned(n, s, "left in place; nothing was deleted"); err != nil {
				return err
			}
		}
	}
	for _, s := range specs {
		if err := k.RemoveNetns(s); err != nil {
			return err
		}
	}
	return nil
}

// EnsureBridge implements the engine's machine.
func (k *Kernel) EnsureBridge(b model.BridgeSpec) error {
	if l, ok := k.Links[b.Name]; ok {
		if l.Kind != "bridge" || l.Mark != b.Mark {
			return errs.Conflict("bridge name", b.Name, "an existing link that cnet did not create", "")
		}
		if l.Addr == b.Gateway {
			return nil
		}
		if err := k.record("link "+b.Name, false, "ip addr add %s dev %s", b.Gateway, b.Name); err != nil {
			return err
		}
		l.Addr = b.Gateway
		return nil
	}
	if err := k.record("link "+b.Name, false, "ip link add %s mtu %d up type bridge && ip link set %s alias %s && ip addr add %s dev %s",
		b.Name, b.MTU, b.Name, b.Mark, b.Gateway, b.Name); err != nil {
		return err
	}
	k.Links[b.Name] = &Link{Kind: "bridge", Mark: b.Mark, Addr: b.Gateway}
	return nil
}

// RemoveBridge implements the engine's machine.
func (k *Kernel) RemoveBridge(b model.BridgeSpec) error { return k.removeLink(b.Name, b.Mark) }

func (k *Kernel) removeLink(name, mark string) error {
	l, ok := k.Links[name]
	if !ok {
		return nil
	}
	if l.Mark != mark {
		return errs.Conflict("link", name, "a link cnet did not create", "left in place")
	}
	if err := k.record("link "+name, true, "ip link del %s", name); err != nil {
		return err
	}
	delete(k.Links, name)
	if l.Kind == "veth" {
		if n := k.Netns[l.PeerNS]; n != nil {
			n.dropLink(l.Peer)
		}
	}
	return nil
}

// EnsureEndpoint implements the engine's machine.
func (k *Kernel) EnsureEndpoint(ep model.EndpointSpec) error {
	n, ok := k.Netns[ep.Netns]
	if !ok {
		return fmt.Errorf("open netns %s: no such namespace", ep.Netns)
	}
	if _, ok := k.Links[ep.Bridge]; !ok {
		return fmt.Errorf("find bridge %s: not found", ep.Bridge)
	}
	if l, ok := k.Links[ep.HostIf]; ok {
		if l.Mark != ep.Mark {
			return errs.Conflict("interface", ep.HostIf, "a link cnet did not create", "")
		}
		if l.Master != ep.Bridge {
			if err := k.record("link "+ep.HostIf, false, "ip link set %s master %s up", ep.HostIf, ep.Bridge); err != nil {
				return err
			}
			l.Master = ep.Bridge
		}
	} else {
		if _, taken := n.Links[ep.ContainerIf]; taken {
			return errs.Conflict("interface", ep.ContainerIf, "an existing interface in namespace "+ep.Netns, "")
		}
		route := ""
		if ep.DefaultRoute {
			route = fmt.Sprintf(" && ip -n %s route replace default via %s dev %s", ep.Netns, ep.Gateway, ep.ContainerIf)
		}
		route += tbf(ep.Netns, ep.ContainerIf, ep.Egress)
		if err := k.record("link "+ep.HostIf, false, "ip link add %s mtu %d master %s type veth peer name %s netns %s && sysctl -w net.ipv6.conf.%s.disable_ipv6=1 && ip link set %s alias %s up && ip -n %s addr add %s dev %s && ip -n %s link set %s up%s",
			ep.HostIf, ep.MTU, ep.Bridge, ep.ContainerIf, ep.Netns, ep.HostIf, ep.HostIf, ep.Mark, ep.Netns, ep.Addr, ep.ContainerIf, ep.Netns, ep.ContainerIf, route); err != nil {
			return err
		}
		k.Links[ep.HostIf] = &Link{Kind: "veth", Mark: ep.Mark, Master: ep.Bridge, PeerNS: ep.Netns, Peer: ep.ContainerIf, Hairpin: ep.Hairpin}
		n.Links[ep.ContainerIf] = ep.Addr
		if ep.DefaultRoute {
			n.Route = fmt.Sprintf("default via %s dev %s", ep.Gateway, ep.ContainerIf)
		}
		n.setEgress(ep.ContainerIf, ep.Egress)
		return nil
	}
	if ep.DefaultRoute {
		return k.EnsureRoute(model.RouteSpec{Netns: ep.Netns, Dev: ep.ContainerIf, Gateway: ep.Gateway, Src: ep.Addr.Addr()})
	}
	return nil
}

// RemoveEndpoint implements the engine's machine.
func (k *Kernel) RemoveEndpoint(ep model.EndpointSpec) error { return k.removeLink(ep.HostIf, ep.Mark) }

// RemoveEndpoints implements the engine's machine: every mark is checked
// before anything is deleted, then each host veth is recorded as deleted,
// in order (the real kernel deletes them as one group).
func (k *Kernel) RemoveEndpoints(eps []model.EndpointSpec) error {
	for _, ep := range eps {
		if l, ok := k.Links[ep.HostIf]; ok && l.Mark != ep.Mark {
			return errs.Conflict("link", ep.HostIf, "a link cnet did not create", "left in place; nothing was deleted")
		}
	}
	for _, ep := range eps {
		if err := k.removeLink(ep.HostIf, ep.Mark); err != nil {
			return err
		}
	}
	return nil
}

// EnsureRoute implements the engine's machine.
func (k *Kernel) EnsureRoute(r model.RouteSpec) error {
	n, ok := k.Netns[r.Netns]
	if !ok {
		return fmt.Errorf("open netns %s: no such namespace", r.Netns)
	}
	if r.Dst.IsValid() {
		want := fmt.Sprintf("%s via %s", r.Dst, r.Gateway)
		if n.Static[want] {
			return nil
		}
		if !n.reaches(r.Gateway) {
			return fmt.Errorf("ip -n %s route replace %s: Nexthop has invalid gateway", r.Netns, want)
		}
		if err := k.record("route "+r.Netns, false, "ip -n %s route replace %s", r.Netns, want); err != nil {
			return err
		}
		if n.Static == nil {
			n.Static = map[string]bool{}
		}
		n.Static[want] = true
		return nil
	}
	want := fmt.Sprintf("default via %s dev %s", r.Gateway, r.Dev)
	if n.Route == want {
		return nil
	}
	if err := k.record("route "+r.Netns, false, "ip -n %s route replace %s", r.Netns, want); err != nil {
		return err
	}
	n.Route = want
	return nil
}

// RemoveRoute implements the engine's machine.
func (k *Kernel) RemoveRoute(r model.RouteSpec) error {
	n, ok := k.Netns[r.Netns]
	if ok && r.Dst.IsValid() {
		want := fmt.Sprintf("%s via %s", r.Dst, r.Gateway)
		if !n.Static[want] {
			return nil
		}
		if err := k.record("route "+r.Netns, true, "ip -n %s route del %s", r.Netns, want); err != nil {
			return err
		}
		delete(n.Static, want)
		return nil
	}
	if !ok || !strings.HasSuffix(n.Route, " dev "+r.Dev) {
		return nil
	}
	if err := k.record("route "+r.Netns, true, "ip -n %s route del default dev %s", r.Netns, r.Dev); err != nil {
		return err
	}
	n.Route = ""
	return nil
}

func (k *Kernel) firewallText() string {
	if k.Firewall == nil {
		return ""
	}
	return k.Firewall.String()
}

// SyncFirewall implements the engine's machine.
func (k *Kernel) SyncFirewall(rs firewall.Ruleset) error {
	rs = firewall.FromState(nil, rs.Ports).WithNetworksOf(rs)
	if rs.String() == k.firewallText() {
		return nil
	}
	var err error
	if rs.Empty() {
		err = k.record("firewall", true, "nft delete table inet cnet")
	} else {
		err = k.record("firewall", false, "nft -f - # bridges=%v internal=%v masq=%v ports=%d", rs.Bridges, rs.Internal, rs.Masq, len(rs.Ports))
	}
	if err != nil {
		return err
	}
	if rs.Empty() {
		k.Firewall = nil
	} else {
		k.Firewall = &rs
	}
	return nil
}

// FirewallPresent implements the engine's machine.
func (k *Kernel) FirewallPresent() (bool, error) { return k.Firewall != nil, nil }

// AddPorts implements the engine's machine: it fails, as nft does, when
// the table is missing or an element exists.
func (k *Kernel) AddPorts(ps []model.PortElem) error {
	if k.Firewall == nil {
		return fmt.Errorf("nft add element: table inet cnet: no such file or directory")
	}
	for _, p := range ps {
		for _, q := range k.Firewall.Ports {
			if q.Proto == p.Proto && q.HostIP == p.HostIP && q.HostPort == p.HostPort {
				return fmt.Errorf("nft add element: %s %s:%d exists", p.Proto, p.HostIP, p.HostPort)
			}
		}
	}
	if err := k.record("firewall", false, "nft add element inet cnet dnat_* %s", portList(ps)); err != nil {
		return err
	}
	rs := firewall.FromState(nil, append(slices.Clone(k.Firewall.Ports), ps...)).WithNetworksOf(*k.Firewall)
	k.Firewall = &rs
	return nil
}

// DelPorts implements the engine's machine.
func (k *Kernel) DelPorts(ps []model.PortElem) error {
	if k.Firewall == nil {
		return fmt.Errorf("nft delete element: table inet cnet: no such file or directory")
	}
	left := slices.Clone(k.Firewall.Ports)
	for _, p := range ps {
		i := slices.Index(left, p)
		if i < 0 {
			return fmt.Errorf("nft delete element: %s %s:%d: no such file or directory", p.Proto, p.HostIP, p.HostPort)
		}
		left = slices.Delete(left, i, i+1)
	}
	if err := k.record("firewall", true, "nft delete element inet cnet dnat_* %s", portList(ps)); err != nil {
		return err
	}
	rs := firewall.FromState(nil, left).WithNetworksOf(*k.Firewall)
	k.Firewall = &rs
	return nil
}

// FlushConntrack implements the engine's machine. Deleting flows changes
// nothing the fake models, so it records nothing; it consults Fail, so a
// test can fail a ports step after its nft batch.
func (k *Kernel) FlushConntrack(ps []model.PortElem, published bool) error {
	if k.Fail != nil {
		return k.Fail(fmt.Sprintf("conntrack -D # %s published=%v", portList(ps), published))
	}
	return nil
}

func portList(ps []model.PortElem) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s %s:%d->%s:%d", p.Proto, p.HostIP, p.HostPort, p.Addr, p.Port))
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// SetHairpin implements the engine's machine.
func (k *Kernel) SetHairpin(hostIf string, on bool) error {
	l, ok := k.Links[hostIf]
	if !ok {
		if on {
			return fmt.Errorf("bridge link set dev %s hairpin on: no such link", hostIf)
		}
		return nil
	}
	if l.Hairpin == on {
		return nil
	}
	state := "off"
	if on {
		state = "on"
	}
	if err := k.record("link "+hostIf, !on, "bridge link set dev %s hairpin %s", hostIf, state); err != nil {
		return err
	}
	l.Hairpin = on
	return nil
}

// HostHasAddr implements plan.Facts.
func (k *Kernel) HostHasAddr(a netip.Addr) (bool, error) {
	if slices.Contains(k.HostAddrs, a) {
		return true, nil
	}
	for _, l := range k.Links {
		if l.Addr.Addr() == a {
			return true, nil
		}
	}
	return false, nil
}

// Listeners implements plan.Facts.
func (k *Kernel) Listeners(proto string) (model.PortHolders, error) {
	return holders{k.Listening, proto}, nil
}

// holders answers from Kernel.Listening.
type holders struct {
	listeners map[string]string
	proto     string
}

func (h holders) Holder(ip netip.Addr, port uint16) string {
	for _, key := range []string{fmt.Sprintf("%s %s:%d", h.proto, ip, port), fmt.Sprintf("%s 0.0.0.0:%d", h.proto, port)} {
		if d, ok := h.listeners[key]; ok {
			return d
		}
	}
	if ip == netip.IPv4Unspecified() {
		for key, d := range h.listeners {
			if strings.HasPrefix(key, h.proto+" ") && strings.HasSuffix(key, fmt.Sprintf(":%d", port)) {
				return d
			}
		}
	}
	return ""
}

// WriteFiles implements the engine's machine.
func (k *Kernel) WriteFiles(f *model.FilesSpec) error {
	if old, ok := k.Files[f.Name]; ok && old == *f {
		return nil
	}
	if err := k.record("files "+f.Name, false, "write /etc/netns/%s/resolv.conf /etc/netns/%s/hosts (%d addresses)",
		f.Name, f.Name, strings.Count(f.Hosts, "\t"+f.Name+"\n")); err != nil {
		return err
	}
	k.Files[f.Name] = *f
	return nil
}

// RemoveFiles implements the engine's machine.
func (k *Kernel) RemoveFiles(name string) error {
	if _, ok := k.Files[name]; !ok {
		return nil
	}
	if err := k.record("files "+name, true, "rm -r /etc/netns/%s", name); err != nil {
		return err
	}
	delete(k.Files, name)
	return nil
}

// SetForwarding implements the engine's machine.
func (k *Kernel) SetForwarding(on bool) (bool, error) {
	if k.Forward == on {
		return false, nil
	}
	v := 0
	if on {
		v = 1
	}
	if err := k.record("sysctl", !on, "sysctl -w net.ipv4.ip_forward=%d", v); err != nil {
		return false, err
	}
	k.Forward = on
	return true, nil
}

// Forwarding implements plan.Facts.
func (k *Kernel) Forwarding() bool { return k.Forward }

// HostPrefixes implements plan.Facts.
func (k *Kernel) HostPrefixes(skip func(link string) bool) ([]netip.Prefix, error) {
	out := slices.Clone(k.HostRoutes)
	for name, l := range k.Links {
		if !skip(name) && l.Addr.IsValid() {
			out = append(out, l.Addr.Masked())
		}
	}
	return out, nil
}

// Link implements plan.Facts.
func (k *Kernel) Link(name string) (bool, string, error) {
	l, ok := k.Links[name]
	if !ok {
		return false, "", nil
	}
	return true, l.Mark, nil
}

// BridgeHolders implements plan.Facts: for each port of bridge that ours
// does not claim, the address and MAC of its veth peer, or what was
// learned on it.
func (k *Kernel) BridgeHolders(bridge string, ours func(port, alias string) bool) ([]model.Holder, error) {
	var out []model.Holder
	for _, name := range slices.Sorted(maps.Keys(k.Links)) {
		l := k.Links[name]
		if l.Master != bridge || ours(name, l.Mark) {
			continue
		}
		if l.Kind != "veth" {
			out = append(out, l.Learned...)
			continue
		}
		h := model.Holder{MAC: l.PeerMAC, Who: fmt.Sprintf("%s in namespace %s, behind bridge port %s, which is not a cnet endpoint", l.Peer, l.PeerNS, name)}
		if n := k.Netns[l.PeerNS]; n != nil && n.Links[l.Peer].IsValid() {
			h.Addr = n.Links[l.Peer].Addr()
		}
		out = append(out, h)
	}
	return out, nil
}

// NetnsState implements plan.Facts.
func (k *Kernel) NetnsState(name string) netns.State {
	if st, ok := k.Odd[name]; ok {
		return st
	}
	if _, ok := k.Netns[name]; ok {
		return netns.Bound
	}
	return netns.Missing
}

// NetnsLinks implements plan.Facts.
func (k *Kernel) NetnsLinks(name string) ([]string, error) {
	n, ok := k.Netns[name]
	if !ok {
		return nil, fmt.Errorf("open netns %s: no such namespace", name)
	}
	return append([]string{"lo"}, slices.Sorted(maps.Keys(n.Links))...), nil
}

// CheckBridge implements the engine's machine.
func (k *Kernel) CheckBridge(b model.BridgeSpec) (string, error) {
	l, ok := k.Links[b.Name]
	switch {
	case !ok:
		return "bridge " + b.Name + " is missing", nil
	case l.Mark != b.Mark:
		return "", errs.Conflict("bridge name", b.Name, "a link cnet did not create", "")
	case l.Addr != b.Gateway:
		return "bridge " + b.Name + " lacks its gateway address " + b.Gateway.String(), nil
	}
	return "", nil
}

// CheckEndpoint implements the engine's machine.
func (k *Kernel) CheckEndpoint(ep model.EndpointSpec) (string, error) {
	l, ok := k.Links[ep.HostIf]
	switch {
	case !ok || l.Mark != ep.Mark:
		return "veth " + ep.HostIf + " is missing", nil
	case l.Master != ep.Bridge:
		return "veth " + ep.HostIf + " is not on bridge " + ep.Bridge, nil
	}
	return "", nil
}

// CheckFirewall implements the engine's machine.
func (k *Kernel) CheckFirewall(rs firewall.Ruleset) (string, error) {
	if k.firewallText() != rs.String() {
		return "table inet cnet differs", nil
	}
	return "", nil
}

// ForwardDrops implements the engine's machine.
func (k *Kernel) ForwardDrops() ([]string, error) { return k.ForeignDrops, nil }

// MarkedLinks implements the engine's machine.
func (k *Kernel) MarkedLinks() (map[string]string, error) {
	out := map[string]string{}
	for name, l := range k.Links {
		if strings.HasPrefix(l.Mark, "cnet/") {
			out[name] = l.Mark
		}
	}
	return out, nil
}

// MarkedNetns implements the engine's machine.
func (k *Kernel) MarkedNetns() (map[string]string, []string, error) {
	out := map[string]string{}
	for name, n := range k.Netns {
		if strings.HasPrefix(n.Mark, "cnet/") {
			out[name] = n.Mark
		}
	}
	var left []string
	for _, name := range slices.Sorted(maps.Keys(k.Odd)) {
		left = append(left, fmt.Sprintf("%s/%s is %s, not a namespace cnet made; left alone", netns.Dir, name, k.Odd[name]))
	}
	return out, left, nil
}

// MarkedFiles implements the engine's machine.
func (k *Kernel) MarkedFiles() ([]string, []string) { return slices.Sorted(maps.Keys(k.Files)), nil }

// FilesPresent implements the engine's machine.
func (k *Kernel) FilesPresent(name string) bool { _, ok := k.Files[name]; return ok }

// DNS is the fake name server: nil when it is not running.
type DNS struct {
	Networks   map[string]dns.Net
	Containers map[string]dns.Ctr
}

func (d *DNS) apply(c dns.Change) {
	for _, n := range c.DelNetworks {
		delete(d.Networks, n)
	}
	for _, n := range c.SetNetworks {
		d.Networks[n.Name] = n
	}
	for _, n := range c.DelContainers {
		delete(d.Containers, n)
	}
	for _, ctr := range c.SetContainers {
		d.Containers[ctr.Name] = ctr
	}
}

func (d *DNS) String() string {
	if d == nil {
		return "dns: stopped\n"
	}
	var b strings.Builder
	b.WriteString("dns: running\n")
	for _, n := range slices.Sorted(maps.Keys(d.Networks)) {
		fmt.Fprintf(&b, "  network %s %s\n", n, d.Networks[n].Gateway)
	}
	for _, n := range slices.Sorted(maps.Keys(d.Containers)) {
		fmt.Fprintf(&b, "  container %s %+v\n", n, d.Containers[n].Endpoints)
	}
	return b.String()
}

// DNSRunning implements the engine's machine.
func (k *Kernel) DNSRunning() bool { return k.Names != nil }

// DNSStart implements the engine's machine.
func (k *Kernel) DNSStart(s dns.Snapshot) error {
	if err := k.record("dns", false, "cnet __dns # %d networks, %d containers", len(s.Networks), len(s.Containers)); err != nil {
		return err
	}
	k.Names = &DNS{Networks: map[string]dns.Net{}, Containers: map[string]dns.Ctr{}}
	k.Names.apply(dns.Change{SetNetworks: s.Networks, SetContainers: s.Containers})
	return nil
}

// DNSApply implements the engine's machine.
func (k *Kernel) DNSApply(c dns.Change) error {
	if k.Names == nil {
		return dns.ErrNotRunning
	}
	var parts []string
	for _, n := range c.SetNetworks {
		parts = append(parts, "+net "+n.Name)
	}
	for _, n := range c.DelNetworks {
		parts = append(parts, "-net "+n)
	}
	for _, ctr := range c.SetContainers {
		parts = append(parts, "+"+ctr.Name)
	}
	for _, n := range c.DelContainers {
		parts = append(parts, "-"+n)
	}
	if err := k.record("dns", false, "dns apply %s", strings.Join(parts, " ")); err != nil {
		return err
	}
	k.Names.apply(c)
	return nil
}

// DNSSync implements the engine's machine.
func (k *Kernel) DNSSync(s dns.Snapshot) error {
	if k.Names == nil {
		return dns.ErrNotRunning
	}
	before := k.Names.String()
	next := &DNS{Networks: map[string]dns.Net{}, Containers: map[string]dns.Ctr{}}
	next.apply(dns.Change{SetNetworks: s.Networks, SetContainers: s.Containers})
	if next.String() == before {
		return nil
	}
	if err := k.record("dns", false, "dns sync # %d networks, %d containers", len(s.Networks), len(s.Containers)); err != nil {
		return err
	}
	k.Names = next
	return nil
}

// DNSStop implements the engine's machine.
func (k *Kernel) DNSStop() error {
	if k.Names == nil {
		return nil
	}
	if err := k.record("dns", true, "dns stop"); err != nil {
		return err
	}
	k.Names = nil
	return nil
}

// DNSStale implements the engine's machine: the servers in Stale.
func (k *Kernel) DNSStale() []int { return slices.Clone(k.Stale) }

// DNSKill implements the engine's machine.
func (k *Kernel) DNSKill(pid int) error {
	if err := k.record("dns", false, "kill %d", pid); err != nil {
		return err
	}
	k.Stale = slices.DeleteFunc(k.Stale, func(p int) bool { return p == pid })
	return nil
}

// LinkMAC implements the engine's machine: the fake has no MACs.
func (k *Kernel) LinkMAC(string) string { return "" }

// reaches reports whether gw is in the subnet of one of n's interfaces.
func (n *Namespace) reaches(gw netip.Addr) bool {
	for _, p := range n.Links {
		if p.IsValid() && p.Masked().Contains(gw) {
			return true
		}
	}
	return false
}

// tbf renders the command that shapes an interface, or "".
func tbf(ns, ifname string, rate uint64) string {
	if rate == 0 {
		return ""
	}
	return fmt.Sprintf(" && tc -n %s qdisc replace dev %s root tbf rate %dbit", ns, ifname, rate)
}

func (n *Namespace) setEgress(ifname string, rate uint64) {
	if rate == 0 {
		return
	}
	if n.Egress == nil {
		n.Egress = map[string]uint64{}
	}
	n.Egress[ifname] = rate
}

// EnsureLink implements the engine's machine.
func (k *Kernel) EnsureLink(s model.LinkSpec) error {
	a, b := k.Netns[s.A.Netns], k.Netns[s.B.Netns]
	for _, e := range []model.LinkEndSpec{s.A, s.B} {
		if k.Netns[e.Netns] == nil {
			return fmt.Errorf("open netns %s: no such namespace", e.Netns)
		}
	}
	if d, ok := a.Direct[s.A.Interface]; ok {
		if d.Mark != s.Mark {
			return errs.Conflict("interface", s.A.Interface, "in namespace "+s.A.Netns+": a link cnet did not create", "")
		}
	} else {
		for _, e := range []model.LinkEndSpec{s.A, s.B} {
			if _, taken := k.Netns[e.Netns].Links[e.Interface]; taken {
				return errs.Conflict("interface", e.Interface, "an existing interface in namespace "+e.Netns, "")
			}
		}
		if err := k.record("link "+s.A.Netns+"/"+s.A.Interface, false, "ip -n %s link add %s mtu %d type veth peer name %s netns %s && ip -n %s addr add %v dev %s && ip -n %s addr add %v dev %s%s%s",
			s.A.Netns, s.A.Interface, s.MTU, s.B.Interface, s.B.Netns, s.A.Netns, s.A.Addr, s.A.Interface, s.B.Netns, s.B.Addr, s.B.Interface,
			tbf(s.A.Netns, s.A.Interface, s.A.Egress), tbf(s.B.Netns, s.B.Interface, s.B.Egress)); err != nil {
			return err
		}
		for _, p := range []struct {
			n        *Namespace
			e, other model.LinkEndSpec
		}{{a, s.A, s.B}, {b, s.B, s.A}} {
			p.n.Links[p.e.Interface] = p.e.Addr
			if p.n.Direct == nil {
				p.n.Direct = map[string]DirectEnd{}
			}
			p.n.Direct[p.e.Interface] = DirectEnd{Mark: s.Mark, PeerNS: p.other.Netns, Peer: p.other.Interface}
			p.n.setEgress(p.e.Interface, p.e.Egress)
		}
	}
	return nil
}

// RemoveLink implements the engine's machine.
func (k *Kernel) RemoveLink(s model.LinkSpec) error {
	for _, e := range []model.LinkEndSpec{s.A, s.B} {
		n := k.Netns[e.Netns]
		if n == nil {
			continue
		}
		d, ok := n.Direct[e.Interface]
		if !ok {
			continue
		}
		if d.Mark != s.Mark {
			return errs.Conflict("interface", e.Interface, "in namespace "+e.Netns+": a link cnet did not create", "left in place")
		}
		if err := k.record("link "+s.A.Netns+"/"+s.A.Interface, true, "ip -n %s link del %s", e.Netns, e.Interface); err != nil {
			return err
		}
		n.dropLink(e.Interface)
		if peer := k.Netns[d.PeerNS]; peer != nil {
			peer.dropLink(d.Peer)
		}
		return nil
	}
	return nil
}

// CheckLink implements the engine's machine.
func (k *Kernel) CheckLink(s model.LinkSpec) (string, error) {
	for _, e := range []model.LinkEndSpec{s.A, s.B} {
		n := k.Netns[e.Netns]
		if n == nil {
			return "namespace " + e.Netns + " is missing", nil
		}
		if d, ok := n.Direct[e.Interface]; !ok || d.Mark != s.Mark {
			return fmt.Sprintf("%s is missing in %s", e.Interface, e.Netns), nil
		}
	}
	return "", nil
}
