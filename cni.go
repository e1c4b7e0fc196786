package cnet

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/state"
)

// CNIAttach is a container runtime's request to attach a namespace it
// made to a network (a CNI ADD).
type CNIAttach struct {
	ContainerID string
	IfName      string
	Netns       string // path
	// Network is the network of that name; it is created from this spec
	// when it does not exist, and must agree with it when it does.
	Network      NetworkSpec
	IP           netip.Addr // a static address, or invalid for the lowest free one
	MAC          string
	Ports        []PortMapping
	Aliases      []string
	DefaultRoute bool
	Hairpin      bool
	// DNSSet says the configuration chose Network.NoDNS itself; if not,
	// an existing network's choice stands.
	DNSSet bool
}

// CNIRef names one attachment.
type CNIRef = plan.CNIRef

// CNIResult is an attachment as it is.
type CNIResult struct {
	Bridge, BridgeMAC string
	HostIf, HostMAC   string
	IfName, MAC       string
	Netns             string
	Address           netip.Prefix
	Gateway           netip.Addr
	DefaultRoute      bool
	// Nameservers and Search are cnet's name server for the network (none
	// with NoDNS).
	Nameservers []netip.Addr
	Search      []string
}

// AttachCNI attaches a runtime's namespace to a network. A retried ADD
// returns the existing attachment.
func (e *Engine) AttachCNI(a CNIAttach) (*CNIResult, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.AttachCNI(env, plan.CNIReq{
			ContainerID: a.ContainerID, IfName: a.IfName, Netns: a.Netns, Network: plan.NetworkReq(a.Network),
			IP: a.IP, MAC: a.MAC, Ports: a.Ports, Aliases: a.Aliases, DefaultRoute: a.DefaultRoute, Hairpin: a.Hairpin, DNSSet: a.DNSSet,
		})
	})
	if err != nil {
		return nil, err
	}
	return e.cniResult(p.Container, p.Networks[a.Network.Name])
}

func (e *Engine) cniResult(c *model.Container, n *model.Network) (*CNIResult, error) {
	ep := c.Endpoint(n.Name)
	if ep == nil {
		return nil, errs.NotFound("attachment", c.Name+" on "+n.Name, "")
	}
	r := &CNIResult{
		Bridge: n.Bridge, BridgeMAC: names.MAC(n.Gateway).String(),
		HostIf: ep.HostIf, IfName: ep.ContainerIf, Netns: e.netnsOf(c),
		MAC:     names.MAC(ep.Addr).String(),
		Address: netip.PrefixFrom(ep.Addr, n.Subnet.Bits()), Gateway: n.Gateway, DefaultRoute: ep.DefaultRoute,
	}
	if ep.MAC != "" {
		r.MAC = ep.MAC
	}
	if !n.NoDNS {
		r.Nameservers, r.Search = []netip.Addr{n.Gateway}, []string{n.Name + ".cnet"}
	}
	k := e.newKernel()
	defer k.Close()
	r.HostMAC = k.LinkMAC(ep.HostIf)
	return r, nil
}

// DetachCNI removes an attachment (a CNI DEL). It succeeds when there is
// none, and when the namespace is already gone.
func (e *Engine) DetachCNI(containerID, ifname, network string) error {
	_, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.DetachCNI(env, containerID, ifname, network)
	})
	return err
}

// CheckCNI verifies an attachment against the kernel (a CNI CHECK).
func (e *Engine) CheckCNI(containerID, ifname, network string) (*CNIResult, error) {
	var c *model.Container
	var n *model.Network
	err := e.read(func(tx *state.Tx) error {
		var err error
		if c, err = tx.Container(plan.CNIName(containerID)); err != nil {
			return err
		}
		n, err = tx.Network(network)
		return err
	})
	if err != nil {
		return nil, err
	}
	if c == nil || c.CNI == nil || n == nil {
		return nil, errs.NotFound("attachment", containerID+" on "+network, "no ADD recorded it")
	}
	ep := c.Endpoint(network)
	if ep == nil || ep.ContainerIf != ifname {
		return nil, errs.NotFound("attachment", containerID+" on "+network, "not as %s", ifname)
	}
	if netns.Stat("", c.NetnsPath) != netns.Bound {
		return nil, fmt.Errorf("namespace %s is gone", c.NetnsPath)
	}
	k := e.newKernel()
	defer k.Close()
	problem, err := k.CheckEndpoint(plan.EndpointSpec(e.instance, c, n, *ep))
	if err != nil {
		return nil, err
	}
	if problem != "" {
		return nil, errors.New(problem)
	}
	return e.cniResult(c, n)
}

// GCCNI removes every CNI attachment to network that valid does not list
// (a CNI GC), with its addresses and published ports.
func (e *Engine) GCCNI(network string, valid []CNIRef) error {
	_, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		tx := env.View.(*state.Tx)
		cs, err := tx.Containers()
		if err != nil {
			return nil, err
		}
		return plan.GCCNI(env, network, valid, cs)
	})
	return err
}

// StatusCNI reports whether an ADD to network could succeed now (a CNI
// STATUS): the state is readable and the network has room.
func (e *Engine) StatusCNI(network string) error {
	return e.read(func(tx *state.Tx) error {
		n, err := tx.Network(network)
		if err != nil || n == nil {
			return err
		}
		if tx.AttachedCount(network) >= plan.MaxBridgePorts {
			return errs.Conflict("network", network, "its full bridge", "a Linux bridge holds %d ports", plan.MaxBridgePorts)
		}
		if _, ok := ipam.FirstIn(n.Subnet, n.Gateway, n.RangeStart, n.RangeEnd, tx.UsedAddrs(network)); !ok {
			return errs.Conflict("address pool of network", network, "its containers", "%s has no free address", n.Subnet)
		}
		return nil
	})
}
