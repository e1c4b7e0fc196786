package plan

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
)

// CNIReq is a runtime's ADD: attach the container's namespace (at Netns)
// to a network as IfName.
type CNIReq struct {
	ContainerID string
	IfName      string
	Netns       string // path
	Network     NetworkReq
	IP          netip.Addr
	MAC         string
	Ports       []model.PortMapping
	Aliases     []string
	// DefaultRoute: a default route via the gateway (isDefaultGateway, or
	// an ipam route to 0.0.0.0/0). Hairpin: hairpinMode.
	DefaultRoute bool
	Hairpin      bool
	// DNSSet says the configuration chose Network.NoDNS itself; if not,
	// an existing network's choice stands.
	DNSSet bool
}

// CNIName is the container name a runtime's container ID gets: the ID
// itself when it can name a container, else cni- and a hash of it.
func CNIName(containerID string) string {
	if names.CheckName("container", containerID) == nil {
		return containerID
	}
	return "cni-" + names.Hash(containerID)[:12]
}

// AttachCNI plans a CNI ADD. A retried ADD of an existing attachment
// plans nothing (and the caller reports the attachment as it is).
func AttachCNI(env *Env, req CNIReq) (*Plan, error) {
	p := &Plan{Op: "cni add", Direction: model.Rollback}
	name := CNIName(req.ContainerID)
	c, err := env.View.Container(name)
	if err != nil {
		return nil, err
	}
	if c != nil && (c.CNI == nil || c.CNI.ContainerID != req.ContainerID) {
		return nil, errs.Exists("container", name, "a cnet container has the name the runtime's container ID maps to")
	}
	n, err := env.View.Network(req.Network.Name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		if n, err = planNetwork(env, p, req.Network); err != nil {
			return nil, err
		}
		p.Network = n
	} else if err := agrees(n, req.Network, req.DNSSet); err != nil {
		return nil, err
	}
	if c != nil {
		if ep := c.Endpoint(n.Name); ep != nil {
			if ep.ContainerIf == req.IfName && c.NetnsPath == req.Netns {
				p.Container, p.Networks = c, map[string]*model.Network{n.Name: n}
				return p, nil // already attached: a retried ADD
			}
			return nil, errs.Exists("attachment", req.ContainerID+" on "+n.Name, "as %s in %s", ep.ContainerIf, c.NetnsPath)
		}
		c = WithPorts(env.View, c)
	} else {
		c = &model.Container{Name: name, Adopted: true, NetnsPath: req.Netns, CNI: &model.CNIInfo{ContainerID: req.ContainerID}, Created: env.Now}
	}
	if err := checkAliases(req.Aliases); err != nil {
		return nil, err
	}
	if err := checkMAC(req.MAC); err != nil {
		return nil, err
	}
	for _, ep := range c.Endpoints {
		if ep.ContainerIf == req.IfName {
			return nil, errs.Exists("interface", req.IfName, "in the namespace of %s, for network %s", req.ContainerID, ep.Network)
		}
	}
	if env.Facts.NetnsState(req.Netns) != netns.Bound {
		return nil, errs.NotFound("network namespace", req.Netns, "CNI_NETNS must name the container's namespace")
	}
	present, err := env.Facts.NetnsLinks(req.Netns)
	if err != nil {
		return nil, err
	}
	if slices.Contains(present, req.IfName) {
		return nil, errs.Exists("interface", req.IfName, "in %s", req.Netns)
	}
	c = c.Clone()
	// The runtime names the interface; cnet numbers ethN only for its own.
	if err := planConnect(env, p, c, n, model.Endpoint{Addr: req.IP, Aliases: req.Aliases}, present); err != nil {
		return nil, err
	}
	ep := &c.Endpoints[len(c.Endpoints)-1]
	if req.MAC != "" {
		if err := checkMACFree(env, p, n, c.Name, req.MAC, ep.Addr); err != nil {
			return nil, err
		}
	}
	ep.ContainerIf, ep.MAC, ep.Hairpin = req.IfName, req.MAC, req.Hairpin
	ep.DefaultRoute = req.DefaultRoute && !slices.ContainsFunc(c.Endpoints[:len(c.Endpoints)-1], func(e model.Endpoint) bool { return e.DefaultRoute })
	p.Steps[len(p.Steps)-1].Endpoint = endpointSpec(env, c, n, *ep)
	p.Changes.PutContainer(c)
	if len(req.Ports) > 0 {
		if err := planPublish(env, p, c, req.Ports, len(c.Ports) > 0, true); err != nil {
			return nil, err
		}
	}
	p.addDNS()
	p.Container = c
	return p, nil
}

// agrees refuses a conflist that contradicts the network of that name;
// dnsSet says whether it chose the name server.
func agrees(n *model.Network, want NetworkReq, dnsSet bool) error {
	bad := func(key, have, asked string) error {
		return errs.Invalid(key, asked, "network %s exists with %s %s; make the configuration match, or remove the network", n.Name, key, have)
	}
	switch {
	case want.Subnet.IsValid() && want.Subnet != n.Subnet:
		return bad("subnet", n.Subnet.String(), want.Subnet.String())
	case want.Gateway.IsValid() && want.Gateway != n.Gateway:
		return bad("gateway", n.Gateway.String(), want.Gateway.String())
	case want.Bridge != "" && want.Bridge != n.Bridge:
		return bad("bridge", n.Bridge, want.Bridge)
	case want.MTU != 0 && want.MTU != n.MTU:
		return bad("mtu", fmt.Sprint(n.MTU), fmt.Sprint(want.MTU))
	case dnsSet && want.NoDNS != n.NoDNS:
		return bad("cnetDNS", fmt.Sprint(!n.NoDNS), fmt.Sprint(!want.NoDNS))
	}
	return nil
}

// DetachCNI plans a CNI DEL: it succeeds when nothing is attached, and
// when the namespace is already gone.
func DetachCNI(env *Env, containerID, ifname, network string) (*Plan, error) {
	p := &Plan{Op: "cni del", Direction: model.Rollforward}
	c, err := env.View.Container(CNIName(containerID))
	if err != nil || c == nil || c.CNI == nil || c.CNI.ContainerID != containerID {
		return p, err
	}
	if err := planDetach(env, p, WithPorts(env.View, c), ifname, network, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// planDetach removes one attachment (matched by network, and by ifname
// when given) of a CNI container, and the container with its last one.
// With td, the endpoint joins td's batch.
func planDetach(env *Env, p *Plan, c *model.Container, ifname, network string, td *teardown) error {
	i := slices.IndexFunc(c.Endpoints, func(e model.Endpoint) bool {
		return e.Network == network && (ifname == "" || e.ContainerIf == ifname)
	})
	if i < 0 {
		return nil
	}
	n, err := env.View.Network(network)
	if err != nil || n == nil {
		return err
	}
	ep := c.Endpoints[i]
	if ep.DefaultRoute && len(c.Ports) > 0 {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Del, Ports: Elems(c)})
	}
	if td != nil {
		td.endpoints = append(td.endpoints, *endpointSpec(env, c, n, ep))
	} else {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindEndpoint, Action: model.Del, Endpoint: endpointSpec(env, c, n, ep)})
	}
	left := c.Clone()
	left.Endpoints = slices.Delete(left.Endpoints, i, i+1)
	if len(left.Endpoints) == 0 {
		p.Changes.DelContainer(c.Name)
	} else {
		if ep.DefaultRoute {
			for _, m := range c.Ports { // the runtime publishes again through the next ADD
				p.Changes.DelPort(c.Name, m)
			}
			left.Ports = nil
		}
		p.Changes.PutContainer(left)
	}
	p.addDNS()
	return nil
}

// CNIRef names one attachment: a runtime's container and its interface.
type CNIRef struct{ ContainerID, IfName string }

// GCCNI plans a CNI GC: every CNI attachment to network that valid does
// not list is removed, with its addresses and ports.
func GCCNI(env *Env, network string, valid []CNIRef, cs []*model.Container) (*Plan, error) {
	p := &Plan{Op: "cni gc", Direction: model.Rollforward}
	var td teardown
	keep := map[CNIRef]bool{}
	for _, v := range valid {
		keep[v] = true
	}
	for _, c := range cs {
		if c.CNI == nil {
			continue
		}
		ep := c.Endpoint(network)
		if ep == nil || keep[CNIRef{c.CNI.ContainerID, ep.ContainerIf}] {
			continue
		}
		if err := planDetach(env, p, WithPorts(env.View, c), ep.ContainerIf, network, &td); err != nil {
			return nil, err
		}
	}
	p.flush(&td)
	return p, nil
}

// checkMAC refuses a MAC address an interface cannot have: malformed, not
// 6 bytes, multicast, or all zeros. "" means cnet's own.
func checkMAC(s string) error {
	if s == "" {
		return nil
	}
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 || m[0]&1 == 1 || bytes.Equal(m, make([]byte, 6)) {
		return errs.Invalid("MAC", s, "want a unicast Ethernet MAC address such as 02:42:ac:11:00:02")
	}
	return nil
}

// checkMACFree refuses a MAC asked for an endpoint of container on n
// (whose address is addr) that would be the second of its kind on n's
// bridge: the bridge's own, another endpoint's in state (asked for, or
// derived from its address), one live behind a bridge port, or one of
// the form cnet derives from addresses (02:63 and an IPv4 address) for
// another address, which a later endpoint would get.
func checkMACFree(env *Env, p *Plan, n *model.Network, container, mac string, addr netip.Addr) error {
	m, _ := net.ParseMAC(mac) // checkMAC passed
	mac = m.String()
	hint := func(what string) string {
		return fmt.Sprintf("on network %s (bridge %s), %s; ask for another mac, or none and the endpoint gets %s", n.Name, n.Bridge, what, names.MAC(addr))
	}
	if mac == names.MAC(n.Gateway).String() {
		return errs.Conflict("MAC", mac, "bridge "+n.Bridge, "%s", hint("the bridge's own"))
	}
	for _, other := range env.View.Attached(n.Name) {
		if other == container {
			continue
		}
		oc, err := env.View.Container(other)
		if err != nil {
			return err
		}
		if oc == nil {
			continue
		}
		if ep := oc.Endpoint(n.Name); ep != nil && sameMAC(cmp.Or(ep.MAC, names.MAC(ep.Addr).String()), mac) {
			return errs.Conflict("MAC", mac, fmt.Sprintf("container %s (%s on network %s)", other, ep.ContainerIf, n.Name), "%s", hint("where every MAC must be unique"))
		}
	}
	hs, err := p.holders(env, n)
	if err != nil {
		return err
	}
	if h, held := heldMAC(hs, mac); held {
		return errs.Conflict("MAC", mac, h.Who, "%s", hint("where it is live though no cnet container has it"))
	}
	if a, ok := derivedAddr(mac); ok && a != addr {
		return errs.Invalid("MAC", mac, "want a MAC outside 02:63:00:00:00:00/16, the range cnet derives from IPv4 addresses "+
			"(this one is %s's, and a later endpoint with that address would get it), or none: this endpoint's is %s", a, names.MAC(addr))
	}
	return nil
}

// sameMAC reports whether two spellings (02:63:..., 02-63-..., upper or
// lower case) name one MAC.
func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return bytes.Equal(ma, mb)
}
