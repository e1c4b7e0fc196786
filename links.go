package cnet

import (
	"net/netip"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/plan"
)

// LinkEnd is one end of a direct link asked for.
type LinkEnd struct {
	Container string
	// Interface is the end's name inside the container (default: the
	// peer container's name).
	Interface string
	// Address is the end's address with its prefix length, or none (then
	// the other end has none either).
	Address netip.Prefix
	// Egress limits what this end sends, in bits/s (0: no limit).
	Egress uint64
}

// LinkSpec asks for a direct link: a point-to-point veth pair between two
// containers, with no bridge and no host end.
type LinkSpec struct {
	A, B LinkEnd
	MTU  int // default 1500
	Lab  string
}

// Link is a container's end of a direct link.
type Link struct {
	Interface     string       `json:"interface"`
	Address       netip.Prefix `json:"address,omitzero"`
	Peer          string       `json:"peer"`
	PeerInterface string       `json:"peer_interface"`
	PeerAddress   netip.Prefix `json:"peer_address,omitzero"`
	MTU           int          `json:"mtu"`
	Egress        uint64       `json:"egress,omitempty"`
	PeerEgress    uint64       `json:"peer_egress,omitempty"`
	Lab           string       `json:"lab,omitempty"`
}

// Route is a static route inside a container.
type Route struct {
	To  netip.Prefix `json:"to"`
	Via netip.Addr   `json:"via"`
}

func publicLinks(c *model.Container) []Link {
	out := []Link{}
	for _, l := range c.Links {
		out = append(out, Link{Interface: l.Interface, Address: l.Addr, Peer: l.Peer, PeerInterface: l.PeerIf,
			PeerAddress: l.PeerAddr, MTU: l.MTU, Egress: l.Egress, PeerEgress: l.PeerEgress, Lab: l.Lab})
	}
	return out
}

func publicRoutes(c *model.Container) []Route {
	out := []Route{}
	for _, r := range c.Routes {
		out = append(out, Route(r))
	}
	return out
}

// CreateLink joins two containers with a direct link: a veth pair with
// one end in each namespace, born there, and an address on each end.
// Equivalent to:
//
//	ip -n A link add IF_A type veth peer name IF_B netns B
//	ip -n A addr add ADDR_A dev IF_A && ip -n A link set IF_A up
//	ip -n B addr add ADDR_B dev IF_B && ip -n B link set IF_B up
func (e *Engine) CreateLink(spec LinkSpec) (*Container, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.CreateLink(env, plan.LinkReq{A: plan.LinkEndReq(spec.A), B: plan.LinkEndReq(spec.B), MTU: spec.MTU, Lab: spec.Lab})
	})
	if err != nil {
		return nil, err
	}
	return e.containerResult(p)
}

// RemoveLink deletes the direct link on a container's interface, and the
// static routes (on both ends) whose gateway only it reached.
// Equivalent to: `ip -n CONTAINER link del IFACE`.
func (e *Engine) RemoveLink(container, iface string) error {
	_, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.RemoveLink(env, container, iface)
	})
	return err
}

// SetRoutes replaces a container's static routes. Each gateway must be on
// one of the container's subnets (a network's or a link's). Equivalent to
// `ip -n CONTAINER route replace TO via VIA` for each new route and
// `ip -n CONTAINER route del TO via VIA` for each dropped one.
func (e *Engine) SetRoutes(container string, routes []Route) (*Container, error) {
	rs := make([]model.Route, len(routes))
	for i, r := range routes {
		rs[i] = model.Route(r)
	}
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.SetRoutes(env, container, rs)
	})
	if err != nil {
		return nil, err
	}
	return e.containerResult(p)
}
