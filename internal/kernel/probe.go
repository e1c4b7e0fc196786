package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/explain"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/sockdiag"
)

// Probe answers `cnet explain`'s questions (explain.Facts) from the live
// kernel, reading only: route lookups, links, neighbours, sockets and
// sysctls of each namespace, and other tables' forward chains.
type Probe struct {
	k *Kernel
	// spaces maps the namespaces cnet knows, by key (a container name or
	// a name under /run/netns), to what Kernel.Netns opens.
	spaces map[string]string
	hints  ProbeHints

	hostFd int
	diag   map[string]*nl.NetlinkSocket
	nsids  map[string]map[int]string // namespace -> nsid it uses for another -> that one
}

// ProbeHints say where to look first, from state. The probe checks every
// hint against the kernel.
type ProbeHints struct {
	Containers map[string]bool         // keys of spaces that are cnet containers
	Addrs      map[netip.Addr][]string // the containers that hold an address
	Peers      map[string]string       // the container at the far end of a host veth
}

// NewProbe returns a Probe over the host and spaces (key -> name under
// NetnsDir or absolute path). Close releases it.
func (k *Kernel) NewProbe(spaces map[string]string, hints ProbeHints) *Probe {
	return &Probe{k: k, spaces: spaces, hints: hints, hostFd: -1,
		diag: map[string]*nl.NetlinkSocket{}, nsids: map[string]map[int]string{}}
}

// Close releases the probe's sockets (the Kernel's own stay open).
func (p *Probe) Close() {
	for _, h := range p.diag {
		h.Close()
	}
	if p.hostFd >= 0 {
		netns.CloseFd(p.hostFd)
	}
}

func (p *Probe) handle(ns string) (*netlink.Handle, error) {
	if ns == explain.Host {
		return p.k.Host()
	}
	n, err := p.ns(ns)
	if err != nil {
		return nil, err
	}
	return n.Link, nil
}

func (p *Probe) ns(key string) (*netns.NS, error) {
	ref, ok := p.spaces[key]
	if !ok {
		return nil, fmt.Errorf("namespace %s is not one cnet knows", key)
	}
	return p.k.Netns(ref)
}

func (p *Probe) fd(key string) (int, error) {
	if key == explain.Host {
		if p.hostFd < 0 {
			fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return -1, fmt.Errorf("open the host's netns: %w", err)
			}
			p.hostFd = fd
		}
		return p.hostFd, nil
	}
	n, err := p.ns(key)
	if err != nil {
		return -1, err
	}
	return n.Fd(), nil
}

func where(ns string) string {
	if ns == explain.Host {
		return "the host"
	}
	return "netns " + ns
}

// Route looks a destination up. Equivalent to: `ip -n NS route get DST`,
// or `ip -n NS route get DST from SRC iif IIF`.
func (p *Probe) Route(ns string, q explain.RouteQuery) (explain.Route, error) {
	h, err := p.handle(ns)
	if err != nil {
		return explain.Route{}, err
	}
	opts := &netlink.RouteGetOptions{}
	if q.Iif != "" {
		opts.Iif, opts.SrcAddr = q.Iif, q.Src.AsSlice()
	}
	routes, err := h.RouteGetWithOptions(q.Dst.AsSlice(), opts)
	if err != nil {
		kind := map[unix.Errno]string{unix.ENETUNREACH: explain.NoRoute, unix.EHOSTUNREACH: explain.Unreachable,
			unix.EINVAL: explain.Blackhole, unix.EACCES: explain.Prohibit, unix.EXDEV: explain.Martian}
		var errno unix.Errno
		if errors.As(err, &errno) && kind[errno] != "" {
			return explain.Route{}, &explain.RouteError{Kind: kind[errno], Err: err}
		}
		return explain.Route{}, fmt.Errorf("ip route get %s in %s: %w", q.Dst, where(ns), err)
	}
	if len(routes) == 0 {
		return explain.Route{}, &explain.RouteError{Kind: explain.NoRoute, Err: unix.ENETUNREACH}
	}
	r := routes[0]
	out := explain.Route{Type: routeType(r.Type), Dst: q.Dst}
	if r.LinkIndex > 0 {
		if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
			out.Dev = l.Attrs().Name
		}
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
		out.Gateway = gw.Unmap()
	}
	if src, ok := netip.AddrFromSlice(r.Src); ok && r.Src != nil {
		out.Src = src.Unmap()
	}
	return out, nil
}

func routeType(t int) string {
	switch t {
	case unix.RTN_UNICAST:
		return "unicast"
	case unix.RTN_LOCAL:
		return "local"
	case unix.RTN_BROADCAST:
		return "broadcast"
	case unix.RTN_MULTICAST:
		return "multicast"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	}
	return fmt.Sprintf("type %d", t)
}

// Link describes an interface. Equivalent to: `ip -n NS -d addr show
// NAME`; a veth's peer is
// found by its ifindex in the namespace its link-netnsid names.
func (p *Probe) Link(ns, name string) (*explain.Link, error) {
	h, err := p.handle(ns)
	if err != nil {
		return nil, err
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("ip link show %s in %s: %w", name, where(ns), err)
	}
	a := l.Attrs()
	out := &explain.Link{Name: a.Name, Kind: l.Type(), Up: a.Flags&net.FlagUp != 0}
	switch out.Kind {
	case "veth", "bridge":
	case "device":
		if a.Name == "lo" {
			out.Kind = "loopback"
		}
	default:
		out.Kind = "device"
	}
	if a.MasterIndex > 0 {
		m, err := h.LinkByIndex(a.MasterIndex)
		if err != nil {
			return nil, fmt.Errorf("master of %s in %s: %w", name, where(ns), err)
		}
		out.Master = m.Attrs().Name
	}
	addrs, err := link.AddrList(h, l, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("ip addr show %s in %s: %w", name, where(ns), err)
	}
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok {
			ones, _ := ad.Mask.Size()
			out.Addrs = append(out.Addrs, netip.PrefixFrom(ip, ones))
		}
	}
	if out.Kind == "veth" && a.ParentIndex > 0 {
		peerNS := ns
		if a.NetNsID >= 0 {
			peerNS, err = p.byNsid(ns, name, a.NetNsID)
			if err != nil {
				return nil, err
			}
		}
		if peerNS != "?" {
			ph, err := p.handle(peerNS)
			if err != nil {
				return nil, err
			}
			pl, err := ph.LinkByIndex(a.ParentIndex)
			if err != nil {
				return nil, fmt.Errorf("peer of %s (ifindex %d) in %s: %w", name, a.ParentIndex, where(peerNS), err)
			}
			out.Peer = &explain.Ref{NS: peerNS, Name: pl.Attrs().Name}
		}
	}
	return out, nil
}

// Hairpin reports whether hairpin mode is on for a bridge port.
// Equivalent to: `bridge -n NS -d link show dev PORT`.
func (p *Probe) Hairpin(ns, port string) bool {
	h, err := p.handle(ns)
	if err != nil {
		return false
	}
	l, err := h.LinkByName(port)
	if err != nil {
		return false
	}
	pi, err := h.LinkGetProtinfo(l)
	return err == nil && pi.Hairpin
}

// byNsid finds the namespace that ns calls nsid (`ip -n NS netns
// list-id`), trying first where the peer of ifname is likely to be. It
// returns "?" when the namespace is none cnet knows.
func (p *Probe) byNsid(ns, ifname string, nsid int) (string, error) {
	if key, ok := p.nsids[ns][nsid]; ok {
		return key, nil
	}
	if p.nsids[ns] == nil {
		p.nsids[ns] = map[int]string{}
	}
	h, err := p.handle(ns)
	if err != nil {
		return "", err
	}
	var order []string
	if ns != explain.Host {
		order = append(order, explain.Host)
	} else if hint, ok := p.hints.Peers[ifname]; ok {
		order = append(order, hint)
	}
	for key := range p.spaces {
		order = append(order, key)
	}
	for _, key := range order {
		if key == ns {
			continue
		}
		fd, err := p.fd(key)
		if err != nil {
			continue // gone since state was read: it cannot be the peer
		}
		id, err := h.GetNetNsIdByFd(fd)
		if err != nil {
			return "", fmt.Errorf("ip -n %s netns list-id: %w", ns, err)
		}
		if id >= 0 {
			p.nsids[ns][id] = key
		}
		if id == nsid {
			return key, nil
		}
	}
	p.nsids[ns][nsid] = "?"
	return "?", nil
}

// Owners lists the interfaces that hold a: in the host, in the namespaces
// state names for it and in namespaces cnet does not manage; in every
// namespace when none of those has it. Equivalent to `ip -n NS -4 addr
// show to A` in each.
func (p *Probe) Owners(a netip.Addr) ([]explain.Ref, error) {
	var out []explain.Ref
	seen := map[string]bool{}
	look := func(key string) error {
		if seen[key] {
			return nil
		}
		seen[key] = true
		h, err := p.handle(key)
		if err != nil {
			return nil // a namespace gone since state was read holds nothing
		}
		addrs, err := link.AddrList(h, nil, unix.AF_INET)
		if err != nil {
			return fmt.Errorf("ip -4 addr show in %s: %w", where(key), err)
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok && ip == a {
				l, err := h.LinkByIndex(ad.LinkIndex)
				if err != nil {
					return fmt.Errorf("link %d in %s: %w", ad.LinkIndex, where(key), err)
				}
				out = append(out, explain.Ref{NS: key, Name: l.Attrs().Name})
			}
		}
		return nil
	}
	if err := look(explain.Host); err != nil {
		return nil, err
	}
	for _, key := range p.hints.Addrs[a] {
		if err := look(key); err != nil {
			return nil, err
		}
	}
	for key := range p.spaces {
		if !p.hints.Containers[key] {
			if err := look(key); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		for key := range p.spaces {
			if err := look(key); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Neighbour is the state of a's neighbour entry on dev. Equivalent to:
// `ip -n NS neigh show A dev DEV`.
func (p *Probe) Neighbour(ns, dev string, a netip.Addr) string {
	h, err := p.handle(ns)
	if err != nil {
		return ""
	}
	l, err := h.LinkByName(dev)
	if err != nil {
		return ""
	}
	neighs, err := link.NeighList(h, l.Attrs().Index, unix.AF_INET)
	if err != nil {
		return ""
	}
	for _, n := range neighs {
		if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && ip == a {
			return neighState(n.State)
		}
	}
	return ""
}

func neighState(s int) string {
	var out []string
	for _, st := range []struct {
		bit  int
		name string
	}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"}} {
		if s&st.bit != 0 {
			out = append(out, st.name)
		}
	}
	return strings.Join(out, ",")
}

// Sockets lists the listening TCP or bound UDP sockets on port in ns,
// IPv4 and dual-stack IPv6 ones, through sock_diag netlink, each with the
// process that holds it. Equivalent to: `ip netns exec NS ss -Hlnp[tu]
// sport = :PORT`.
func (p *Probe) Sockets(ns, proto string, port uint16) ([]explain.Socket, error) {
	s, ok := p.diag[ns]
	if !ok {
		var n *netns.NS
		if ns != explain.Host {
			var err error
			if n, err = p.ns(ns); err != nil {
				return nil, err
			}
		}
		var err error
		if s, err = netns.DiagSocket(n); err != nil {
			return nil, err
		}
		p.diag[ns] = s
	}
	socks, err := sockdiag.BoundSockets(s, proto, port)
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", where(ns), err)
	}
	var out []explain.Socket
	for _, b := range socks {
		a := b.Addr
		if a.Is6() {
			if !a.IsUnspecified() {
				continue // an IPv6 address: no IPv4 packet reaches it
			}
			a = netip.IPv4Unspecified() // [::] takes IPv4 too (unless IPV6_V6ONLY, which sock_diag does not tell)
		}
		out = append(out, explain.Socket{Addr: a, Port: b.Port, Process: sockdiag.SocketOwner(b.Inode)})
	}
	return out, nil
}

// Sysctl reads /proc/sys/PATH in ns: directly for the host, from a thread
// inside the namespace otherwise (the net sysctls are per namespace).
// Equivalent to: `ip netns exec NS sysctl NAME`.
func (p *Probe) Sysctl(ns, path string) string {
	file := filepath.Join("/proc/sys", path)
	if ns == explain.Host {
		b, _ := os.ReadFile(file) // missing: the feature is not there (br_netfilter not loaded)
		return strings.TrimSpace(string(b))
	}
	n, err := p.ns(ns)
	if err != nil {
		return ""
	}
	var b []byte
	if err := netns.Do(n.Path, func() error {
		var err error
		b, err = os.ReadFile(file)
		return err
	}); err != nil {
		return "" // unknown, as when the file is missing above
	}
	return strings.TrimSpace(string(b))
}

// ForwardChains reads other tables' forward chains in ns. Equivalent to:
// `ip netns exec NS nft list chains`, then each forward chain.
func (p *Probe) ForwardChains(ns string) ([]firewall.ForeignChain, error) {
	var opts []nftables.ConnOption
	if ns != explain.Host {
		fd, err := p.fd(ns)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables in %s: %w", where(ns), err)
	}
	return firewall.ForwardChains(c)
}
