package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
)

// fake is a kernel made of tables: namespaces with links, routes,
// sockets, sysctls and foreign forward chains. Its route lookup is a
// longest-prefix match over the connected and explicit routes, and it
// refuses to forward when ip_forward is off, as the kernel does.
type fake struct {
	ns map[string]*fakeNS
}

type fakeNS struct {
	links   map[string]*Link
	routes  []fakeRoute
	sockets map[string][]Socket // by proto
	sysctl  map[string]string
	chains  []firewall.ForeignChain
	neigh   map[string]string
}

type fakeRoute struct {
	dst  netip.Prefix
	dev  string
	gw   netip.Addr
	kind string // "" or unreachable, blackhole
}

func newFake() *fake {
	f := &fake{ns: map[string]*fakeNS{}}
	f.space(Host)
	f.ns[Host].sysctl["net/ipv4/ip_forward"] = "1"
	return f
}

func (f *fake) space(name string) *fakeNS {
	n := &fakeNS{links: map[string]*Link{"lo": {Name: "lo", Kind: "loopback", Up: true, Addrs: []netip.Prefix{pfx("127.0.0.1/8")}}},
		sockets: map[string][]Socket{}, sysctl: map[string]string{"net/ipv4/ip_forward": "0"}, neigh: map[string]string{}}
	f.ns[name] = n
	return n
}

func (f *fake) Route(ns string, q RouteQuery) (Route, error) {
	n := f.ns[ns]
	if lo := n.links["lo"]; lo.Up && q.Dst.IsLoopback() { // lo down: no local route for 127.0.0.0/8
		return Route{Type: "local", Dst: q.Dst, Dev: "lo", Src: q.Dst}, nil
	}
	for _, l := range n.links {
		if l.Up && holds(l, q.Dst) {
			return Route{Type: "local", Dst: q.Dst, Dev: "lo", Src: q.Dst}, nil
		}
	}
	var best *fakeRoute
	for _, l := range n.links {
		if !l.Up || l.Kind == "loopback" {
			continue
		}
		for _, a := range l.Addrs {
			if a.Masked().Contains(q.Dst) && (best == nil || a.Bits() > best.dst.Bits()) {
				best = &fakeRoute{dst: a.Masked(), dev: l.Name}
			}
		}
	}
	for i, r := range n.routes {
		if r.dst.Contains(q.Dst) && (best == nil || r.dst.Bits() > best.dst.Bits()) {
			best = &n.routes[i]
		}
	}
	if best == nil {
		return Route{}, &RouteError{Kind: NoRoute, Err: syscall.ENETUNREACH}
	}
	switch best.kind {
	case "unreachable":
		return Route{}, &RouteError{Kind: Unreachable, Err: syscall.EHOSTUNREACH}
	case "blackhole":
		return Route{}, &RouteError{Kind: Blackhole, Err: syscall.EINVAL}
	}
	if q.Iif != "" && n.sysctl["martian "+q.Iif] == "1" {
		return Route{}, &RouteError{Kind: Martian, Err: syscall.EXDEV}
	}
	if q.Iif != "" && (n.sysctl["net/ipv4/ip_forward"] != "1" || n.sysctl["net/ipv4/conf/"+q.Iif+"/forwarding"] == "0") {
		return Route{}, &RouteError{Kind: Unreachable, Err: syscall.EHOSTUNREACH}
	}
	r := Route{Type: "unicast", Dst: q.Dst, Dev: best.dev, Gateway: best.gw}
	if l := n.links[best.dev]; l != nil && len(l.Addrs) > 0 {
		r.Src = l.Addrs[0].Addr()
	}
	return r, nil
}

func (f *fake) Link(ns, name string) (*Link, error) {
	l := f.ns[ns].links[name]
	if l == nil {
		return nil, fmt.Errorf("no link %s in %q", name, ns)
	}
	return l, nil
}

func (f *fake) Owners(a netip.Addr) ([]Ref, error) {
	var out []Ref
	for ns, n := range f.ns {
		for _, l := range n.links {
			if holds(l, a) {
				out = append(out, Ref{NS: ns, Name: l.Name})
			}
		}
	}
	slices.SortFunc(out, func(x, y Ref) int { return cmpStr(x.NS+"/"+x.Name, y.NS+"/"+y.Name) })
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (f *fake) Hairpin(ns, port string) bool { return f.ns[ns].sysctl["hairpin "+port] == "1" }

func (f *fake) Neighbour(ns, dev string, a netip.Addr) string {
	return f.ns[ns].neigh[dev+" "+a.String()]
}

func (f *fake) Sockets(ns, proto string, port uint16) ([]Socket, error) {
	var out []Socket
	for _, s := range f.ns[ns].sockets[proto] {
		if s.Port == port {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fake) Sysctl(ns, name string) string { return f.ns[ns].sysctl[name] }

func (f *fake) ForwardChains(ns string) ([]firewall.ForeignChain, error) { return f.ns[ns].chains, nil }

// lab builds a fake machine and the matching cnet state together.
type lab struct {
	f     *fake
	w     *World
	ports []model.PortElem
	gen   int
}

func newLab() *lab { return &lab{f: newFake(), w: &World{}} }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// network is a cnet network: bridge br-NAME in the host with the first
// address of subnet.
func (l *lab) network(name, subnet string, internal bool) {
	p := pfx(subnet)
	gw := p.Addr().Next()
	n := &model.Network{Name: name, Bridge: "br-" + name, Subnet: p, Gateway: gw, Internal: internal}
	l.w.Networks = append(l.w.Networks, n)
	l.f.ns[Host].links[n.Bridge] = &Link{Name: n.Bridge, Kind: "bridge", Up: true, Addrs: []netip.Prefix{netip.PrefixFrom(gw, p.Bits())}}
}

func (l *lab) net(name string) *model.Network {
	for _, n := range l.w.Networks {
		if n.Name == name {
			return n
		}
	}
	panic("no network " + name)
}

func (l *lab) ct(name string) *model.Container {
	for _, c := range l.w.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// container creates a container with an endpoint on each network, at
// address host (the last octet), the default route on the first
// non-internal one.
func (l *lab) container(name string, host byte, nets ...string) {
	l.f.space(name)
	c := &model.Container{Name: name}
	l.w.Containers = append(l.w.Containers, c)
	for _, n := range nets {
		l.connect(n, name, host)
	}
}

func (l *lab) connect(network, container string, host byte) {
	n, c := l.net(network), l.ct(container)
	a := n.Subnet.Addr().As4()
	a[3] = host
	addr := netip.AddrFrom4(a)
	ifname := fmt.Sprintf("eth%d", len(c.Endpoints))
	l.gen++
	hostIf := fmt.Sprintf("veth%d", l.gen)
	ep := model.Endpoint{Network: network, HostIf: hostIf, ContainerIf: ifname, Addr: addr}
	if !n.Internal && c.Target() == nil {
		ep.DefaultRoute = true
		l.f.ns[container].routes = append(l.f.ns[container].routes, fakeRoute{dst: pfx("0.0.0.0/0"), dev: ifname, gw: n.Gateway})
	}
	c.Endpoints = append(c.Endpoints, ep)
	l.f.ns[container].links[ifname] = &Link{Name: ifname, Kind: "veth", Up: true, Peer: &Ref{NS: Host, Name: hostIf},
		Addrs: []netip.Prefix{netip.PrefixFrom(addr, n.Subnet.Bits())}}
	l.f.ns[Host].links[hostIf] = &Link{Name: hostIf, Kind: "veth", Up: true, Master: n.Bridge, Peer: &Ref{NS: container, Name: ifname}}
}

// veth links two namespaces directly: a lab link between containers.
func (l *lab) veth(a, aIf, aAddr, b, bIf, bAddr string) {
	l.f.ns[a].links[aIf] = &Link{Name: aIf, Kind: "veth", Up: true, Peer: &Ref{NS: b, Name: bIf}, Addrs: []netip.Prefix{pfx(aAddr)}}
	l.f.ns[b].links[bIf] = &Link{Name: bIf, Kind: "veth", Up: true, Peer: &Ref{NS: a, Name: aIf}, Addrs: []netip.Prefix{pfx(bAddr)}}
}

// uplink gives the host a link to the outside world (a device whose far
// end cnet cannot see) and a default route through it.
func (l *lab) uplink() {
	l.f.ns[Host].links["up0"] = &Link{Name: "up0", Kind: "device", Up: true, Addrs: []netip.Prefix{pfx("198.51.100.254/24")}}
	l.f.ns[Host].routes = append(l.f.ns[Host].routes, fakeRoute{dst: pfx("0.0.0.0/0"), dev: "up0", gw: ip("198.51.100.1")})
}

func (l *lab) listen(ns, proto, addr string, port uint16, proc string) {
	l.f.ns[ns].sockets[proto] = append(l.f.ns[ns].sockets[proto], Socket{Addr: ip(addr), Port: port, Process: proc})
}

func (l *lab) publish(container, hostIP string, hostPort, port uint16, proto string) {
	c := l.ct(container)
	l.ports = append(l.ports, model.PortElem{Proto: proto, HostIP: ip(hostIP), HostPort: hostPort, Addr: c.Target().Addr, Port: port})
}

func (l *lab) hostVeth(container, network string) *Link {
	return l.f.ns[Host].links[l.ct(container).Endpoint(network).HostIf]
}

func (l *lab) explain(src, dst string) (*Result, error) {
	t, err := ParseTarget(dst)
	if err != nil {
		return nil, err
	}
	l.w.Firewall = firewall.FromState(l.w.Networks, l.ports)
	return Explain(l.f, l.w, src, t)
}
