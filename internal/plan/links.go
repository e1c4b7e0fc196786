package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
)

// LinkEndReq is one end of a direct link asked for.
type LinkEndReq struct {
	Container string
	// Interface is the end's name inside the container (default: the
	// peer's name, when it is a valid interface name).
	Interface string
	// Address is the end's address with its prefix length, or none.
	Address netip.Prefix
	// Egress limits what this end sends, in bits/s (0: no limit).
	Egress uint64
}

// LinkReq asks for a direct link: a veth pair between two containers,
// with no bridge.
type LinkReq struct {
	A, B LinkEndReq
	MTU  int
	Lab  string
}

// LinkSpec is the kernel view of a direct link, seen from container c.
func LinkSpec(instance string, c *model.Container, peer *model.Container, l model.LinkEnd) model.LinkSpec {
	return model.LinkSpec{
		A:    model.LinkEndSpec{Netns: c.NetnsRef(), Interface: l.Interface, Addr: l.Addr, Egress: l.Egress},
		B:    model.LinkEndSpec{Netns: peer.NetnsRef(), Interface: l.PeerIf, Addr: l.PeerAddr, Egress: l.PeerEgress},
		MTU:  l.MTU,
		Mark: LinkMark(instance, c.Name, l.Interface, peer.Name, l.PeerIf),
	}
}

// LinkMark is the alias both ends of a direct link carry. It names the
// two ends in a fixed order, so it is the same seen from either.
func LinkMark(instance, a, aIf, b, bIf string) string {
	x, y := a+":"+aIf, b+":"+bIf
	if y < x {
		x, y = y, x
	}
	return names.Mark{Instance: instance, Kind: "link", Name: names.Hash(x, y)}.String()
}

// interfaces lists the interface names in use inside c: its endpoints',
// its links', and in an adopted namespace whatever else is there.
func interfaces(env *Env, c *model.Container) ([]string, error) {
	var used []string
	if c.Adopted {
		present, err := env.Facts.NetnsLinks(c.NetnsRef())
		if err != nil {
			return nil, err
		}
		used = append(used, present...)
	}
	for _, ep := range c.Endpoints {
		used = append(used, ep.ContainerIf)
	}
	for _, l := range c.Links {
		used = append(used, l.Interface)
	}
	return used, nil
}

// CreateLink plans a direct link between two containers.
func CreateLink(env *Env, req LinkReq) (*Plan, error) {
	ends := []*LinkEndReq{&req.A, &req.B}
	cs := make([]*model.Container, 2)
	for i, e := range ends {
		if err := names.CheckName("container", e.Container); err != nil {
			return nil, err
		}
		c, err := env.View.Container(e.Container)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, errs.NotFound("container", e.Container, "create it with `cnet create %s`", e.Container)
		}
		cs[i] = c
	}
	if req.A.Container == req.B.Container {
		return nil, errs.Invalid("link", req.A.Container+" to "+req.B.Container, "want two different containers; a link joins two namespaces")
	}
	for i, e := range ends {
		if e.Interface == "" {
			e.Interface = ends[1-i].Container
			if names.CheckIfName("interface", e.Interface) != nil {
				return nil, errs.Invalid("interface", "", "container name %s is too long to name the interface in %s; give the end an interface name of at most 15 bytes", ends[1-i].Container, e.Container)
			}
		}
		if err := names.CheckIfName("interface", e.Interface); err != nil {
			return nil, err
		}
		if e.Interface == "lo" {
			return nil, errs.Invalid("interface", e.Interface, "want a name other than lo")
		}
		used, err := interfaces(env, cs[i])
		if err != nil {
			return nil, err
		}
		if slices.Contains(used, e.Interface) {
			return nil, errs.Conflict("interface", e.Interface, "an existing interface in container "+e.Container, "choose another interface name")
		}
	}
	if err := checkLinkAddrs(req.A.Address, req.B.Address); err != nil {
		return nil, err
	}
	mtu := req.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < MinMTU || mtu > MaxMTU {
		return nil, errs.Invalid("mtu", fmt.Sprint(req.MTU), "want %d to %d", MinMTU, MaxMTU)
	}
	end := model.LinkEnd{Interface: req.A.Interface, Addr: req.A.Address, Peer: req.B.Container, PeerIf: req.B.Interface,
		PeerAddr: req.B.Address, MTU: mtu, Egress: req.A.Egress, PeerEgress: req.B.Egress, Lab: req.Lab}
	a, b := cs[0].Clone(), cs[1].Clone()
	a.Links = append(a.Links, end)
	b.Links = append(b.Links, end.Reverse(a.Name))
	p := &Plan{Op: "link", Direction: model.Rollback, Container: a}
	spec := LinkSpec(env.Instance, a, b, end)
	p.Steps = append(p.Steps, model.Step{Kind: model.KindLink, Action: model.Add, Link: &spec})
	p.Changes.PutContainer(a)
	p.Changes.PutContainer(b)
	return p, nil
}

// checkLinkAddrs refuses end addresses that could not talk to each other.
func checkLinkAddrs(a, b netip.Prefix) error {
	if a.IsValid() != b.IsValid() {
		return errs.Invalid("link addresses", fmt.Sprintf("%v and %v", fmtPrefix(a), fmtPrefix(b)), "want an address on both ends or on neither")
	}
	if !a.IsValid() {
		return nil
	}
	for _, p := range []netip.Prefix{a, b} {
		if !p.Addr().Is4() {
			return errs.Invalid("link address", p.String(), "want an IPv4 address with its prefix length, e.g. 10.0.0.1/30")
		}
		if p.Bits() < 31 && (p.Addr() == p.Masked().Addr() || p.Addr() == ipam.Broadcast(p)) {
			return errs.Invalid("link address", p.String(), "want a host address of %s, not its network or broadcast address", p.Masked())
		}
	}
	if a.Masked() != b.Masked() {
		return errs.Invalid("link addresses", a.String()+" and "+b.String(), "want both ends in one subnet, e.g. 10.0.0.1/30 and 10.0.0.2/30")
	}
	if a.Addr() == b.Addr() {
		return errs.Invalid("link addresses", a.String()+" and "+b.String(), "want two different addresses")
	}
	return nil
}

func fmtPrefix(p netip.Prefix) string {
	if !p.IsValid() {
		return "none"
	}
	return p.String()
}

// RemoveLink plans the removal of the direct link on container's
// interface iface.
func RemoveLink(env *Env, container, iface string) (*Plan, error) {
	c, err := env.View.Container(container)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errs.NotFound("container", container, "see `cnet ls`")
	}
	end := c.Link(iface)
	if end == nil {
		var have []string
		for _, l := range c.Links {
			have = append(have, l.Interface)
		}
		return nil, errs.NotFound("link", container+":"+iface, "container %s has links on: %s", container, orNone(have))
	}
	peer, err := env.View.Container(end.Peer)
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "unlink", Direction: model.Rollforward}
	spec := model.LinkSpec{A: model.LinkEndSpec{Netns: c.NetnsRef(), Interface: end.Interface}, MTU: end.MTU,
		Mark: LinkMark(env.Instance, c.Name, end.Interface, end.Peer, end.PeerIf)}
	if peer != nil {
		spec = LinkSpec(env.Instance, c, peer, *end)
	}
	c = c.Clone()
	c.Links = slices.DeleteFunc(c.Links, func(l model.LinkEnd) bool { return l.Interface == iface })
	if err := pruneRoutes(env, p, c); err != nil {
		return nil, err
	}
	if peer != nil {
		peer = peer.Clone()
		peer.Links = slices.DeleteFunc(peer.Links, func(l model.LinkEnd) bool { return l.Interface == end.PeerIf && l.Peer == container })
		if err := pruneRoutes(env, p, peer); err != nil {
			return nil, err
		}
		p.Changes.PutContainer(peer)
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindLink, Action: model.Del, Link: &spec})
	p.Changes.PutContainer(c)
	p.Container = c
	return p, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// connected returns the subnets c reaches directly: those of its
// endpoints and of its links' addresses.
func connected(env *Env, c *model.Container) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, ep := range c.Endpoints {
		n, err := env.View.Network(ep.Network)
		if err != nil {
			return nil, err
		}
		if n != nil {
			out = append(out, n.Subnet)
		}
	}
	for _, l := range c.Links {
		if l.Addr.IsValid() {
			out = append(out, l.Addr.Masked())
		}
	}
	return out, nil
}

// pruneRoutes drops from c (already changed by the plan) the static
// routes whose gateway c can no longer reach; the kernel drops them with
// the interface, and the steps make sure of it.
func pruneRoutes(env *Env, p *Plan, c *model.Container) error {
	if len(c.Routes) == 0 {
		return nil
	}
	nets, err := connected(env, c)
	if err != nil {
		return err
	}
	var keep []model.Route
	for _, r := range c.Routes {
		if slices.ContainsFunc(nets, func(n netip.Prefix) bool { return n.Contains(r.Via) }) {
			keep = append(keep, r)
			continue
		}
		p.Steps = append(p.Steps, model.Step{Kind: model.KindRoute, Action: model.Del, Route: &model.RouteSpec{Netns: c.NetnsRef(), Dst: r.To, Gateway: r.Via}})
	}
	c.Routes = keep
	return nil
}

// SetRoutes plans replacing a container's static routes with routes.
func SetRoutes(env *Env, container string, routes []model.Route) (*Plan, error) {
	c, err := env.View.Container(container)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errs.NotFound("container", container, "see `cnet ls`")
	}
	nets, err := connected(env, c)
	if err != nil {
		return nil, err
	}
	seen := map[netip.Prefix]bool{}
	for _, r := range routes {
		if !r.To.IsValid() || !r.To.Addr().Is4() {
			return nil, errs.Invalid("route destination", fmtPrefix(r.To), "want an IPv4 prefix, e.g. 10.2.0.0/24")
		}
		if r.To != r.To.Masked() {
			return nil, errs.Invalid("route destination", r.To.String(), "want the prefix without host bits: %s", r.To.Masked())
		}
		if r.To.Bits() == 0 {
			return nil, errs.Invalid("route destination", r.To.String(), "want a prefix other than the default route, which follows the container's first network beyond a bridge")
		}
		if seen[r.To] {
			return nil, errs.Invalid("route destination", r.To.String(), "want each destination once")
		}
		seen[r.To] = true
		if !r.Via.Is4() || !slices.ContainsFunc(nets, func(n netip.Prefix) bool { return n.Contains(r.Via) }) {
			return nil, errs.Invalid("route gateway", r.Via.String(), "want an address on one of %s's subnets: %s", container, orNone(prefixStrings(nets)))
		}
	}
	p := &Plan{Op: "route", Direction: model.Rollback}
	ns := c.NetnsRef()
	for _, old := range c.Routes {
		if !slices.Contains(routes, old) {
			p.Steps = append(p.Steps, model.Step{Kind: model.KindRoute, Action: model.Del, Route: &model.RouteSpec{Netns: ns, Dst: old.To, Gateway: old.Via}})
		}
	}
	for _, r := range routes {
		if !slices.Contains(c.Routes, r) {
			p.Steps = append(p.Steps, model.Step{Kind: model.KindRoute, Action: model.Add, Route: &model.RouteSpec{Netns: ns, Dst: r.To, Gateway: r.Via}})
		}
	}
	c = c.Clone()
	c.Routes = slices.Clone(routes)
	p.Changes.PutContainer(c)
	p.Container = c
	return p, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// planUnlinkAll takes c's direct links away with it: each peer that stays
// (not in removing) loses its end and the routes through it. The veth
// pair dies with c's namespace, unless cnet did not create that namespace:
// then it is deleted.
func planUnlinkAll(env *Env, p *Plan, c *model.Container, removing map[string]bool) error {
	for _, l := range c.Links {
		peer, err := overlayContainer(env, p, l.Peer)
		if err != nil {
			return err
		}
		if c.Adopted {
			spec := model.LinkSpec{A: model.LinkEndSpec{Netns: c.NetnsRef(), Interface: l.Interface}, MTU: l.MTU,
				Mark: LinkMark(env.Instance, c.Name, l.Interface, l.Peer, l.PeerIf)}
			if peer != nil {
				spec = LinkSpec(env.Instance, c, peer, l)
			}
			p.Steps = append(p.Steps, model.Step{Kind: model.KindLink, Action: model.Del, Link: &spec})
		}
		if peer == nil || removing[peer.Name] {
			continue
		}
		peer = peer.Clone()
		peer.Links = slices.DeleteFunc(peer.Links, func(e model.LinkEnd) bool { return e.Interface == l.PeerIf && e.Peer == c.Name })
		if err := pruneRoutes(env, p, peer); err != nil {
			return err
		}
		p.Changes.PutContainer(peer)
	}
	return nil
}

// overlayContainer returns a container as the plan has changed it so far.
func overlayContainer(env *Env, p *Plan, name string) (*model.Container, error) {
	if c, ok := p.Changes.Containers[name]; ok {
		return c, nil
	}
	return env.View.Container(name)
}

// Unlinked returns c without its ends of links to gone, and without the
// static routes whose gateway only those links reached: what is left of
// c once gone's namespace, and the veths in it, vanished.
func Unlinked(v View, c *model.Container, gone string) (*model.Container, error) {
	c = c.Clone()
	c.Links = slices.DeleteFunc(c.Links, func(l model.LinkEnd) bool { return l.Peer == gone })
	var p Plan
	if err := pruneRoutes(&Env{View: v}, &p, c); err != nil {
		return nil, err
	}
	return c, nil
}
