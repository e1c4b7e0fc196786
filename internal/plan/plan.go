// Package plan turns a request and a snapshot of state into the steps and
// record changes of one transaction. Every refusal happens here, before
// any change: the package reads state through View and the live machine
// through Facts, and changes nothing itself.
package plan

import (
	"cmp"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/state"
)

// View is the committed state the plan reads.
type View interface {
	Network(name string) (*model.Network, error)
	Networks() ([]*model.Network, error)
	// NetworkOfBridge returns the network whose bridge is named bridge.
	NetworkOfBridge(bridge string) (string, bool, error)
	// SubnetOverlap returns a network whose subnet overlaps p, and that
	// subnet; it costs the same whatever the number of networks.
	SubnetOverlap(p netip.Prefix) (name string, subnet netip.Prefix, ok bool, err error)
	// Subnets returns every network's subnet.
	Subnets() ([]netip.Prefix, error)
	Container(name string) (*model.Container, error)
	UsedAddrs(network string) iter.Seq[netip.Addr]
	AddrOwner(network string, a netip.Addr) (string, bool)
	HostIfOwner(name string) (string, bool)
	Attached(network string) []string
	AttachedCount(network string) int
	EndpointGen() uint64
	PortHolders(proto string, port uint16) []state.PortHolder
	PortOwner(proto string, port uint16, hostIP netip.Addr) (string, uint16, bool)
	ContainerPorts(name string) []model.PortMapping
	// PortsAtLeast reports whether a container publishes at least n
	// ports, reading no more than n.
	PortsAtLeast(name string, n int) bool
}

// Facts answers questions about the live machine.
type Facts interface {
	// HostPrefixes lists addresses and routes on the host, except on the
	// links skip reports.
	HostPrefixes(skip func(link string) bool) ([]netip.Prefix, error)
	// Link reports whether a host link exists and its alias.
	Link(name string) (exists bool, alias string, err error)
	// Netns reports what is bound at /run/netns/NAME.
	NetnsState(name string) netns.State
	// NetnsLinks lists the interface names inside a namespace.
	NetnsLinks(name string) ([]string, error)
	// Forwarding reports whether net.ipv4.ip_forward is on.
	Forwarding() bool
	// HostHasAddr reports whether an address is assigned to the host.
	HostHasAddr(a netip.Addr) (bool, error)
	// Listeners reads the host's listening (or, for udp, bound) sockets
	// of proto once, for any number of ports to be asked about.
	Listeners(proto string) (model.PortHolders, error)
	// BridgeHolders lists the addresses and MACs in use behind the ports
	// of a bridge that ours does not claim. ours is asked with a port's
	// name, and again, when it said no, with the port's alias.
	BridgeHolders(bridge string, ours func(port, alias string) bool) ([]model.Holder, error)
}

// Env is everything a plan needs besides the request.
type Env struct {
	Instance string
	View     View
	Facts    Facts
	Upstream nsfiles.Upstream
	Pool     netip.Prefix
	PoolBits int
	Now      time.Time
}

// Marker is the first line of the files this instance writes.
func (e *Env) Marker() string { return names.FileMarker(e.Instance) }

// Plan is one transaction: steps to run, then changes to commit.
type Plan struct {
	Op        string
	Direction model.Direction
	Steps     []model.Step
	Changes   model.Changes
	Network   *model.Network   // the network created or changed
	Container *model.Container // the container created or changed
	// Networks are the networks Container has endpoints on, for results.
	Networks map[string]*model.Network

	// Warnings are for the user: the request is carried out, but
	// something in it is probably a mistake.
	Warnings []string

	// live caches what is behind each network's bridge (see holders).
	live map[string][]model.Holder
}

func (p *Plan) noteNetwork(n *model.Network) {
	if p.Networks == nil {
		p.Networks = map[string]*model.Network{}
	}
	p.Networks[n.Name] = n
}

// DefaultMTU is used when a network is created without --mtu.
const DefaultMTU = 1500

// MTU bounds for bridges and veths.
const (
	MinMTU = 68
	MaxMTU = 65535
)

// NetworkReq asks for a network. Zero values mean "choose for me".
type NetworkReq struct {
	Name     string
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Bridge   string
	Internal bool
	NoDNS    bool
	MTU      int
	// RangeStart and RangeEnd bound automatic addresses (CNI host-local).
	RangeStart, RangeEnd netip.Addr
	Lab                  string
}

// CreateNetwork plans `cnet network create`.
func CreateNetwork(env *Env, req NetworkReq) (*Plan, error) {
	p := &Plan{Op: "network create", Direction: model.Rollback}
	n, err := planNetwork(env, p, req)
	if err != nil {
		return nil, err
	}
	p.Network = n
	return p, nil
}

func planNetwork(env *Env, p *Plan, req NetworkReq) (*model.Network, error) {
	if err := names.CheckName("network", req.Name); err != nil {
		return nil, err
	}
	if req.Name == NoNetwork {
		return nil, errs.Invalid("network name", req.Name, "want another name: %q is reserved for containers with no network (only lo)", NoNetwork)
	}
	if old, err := env.View.Network(req.Name); err != nil {
		return nil, err
	} else if old != nil {
		return nil, errs.Exists("network", req.Name, "")
	}
	mtu := req.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < MinMTU || mtu > MaxMTU {
		return nil, errs.Invalid("mtu", fmt.Sprint(req.MTU), "want %d to %d", MinMTU, MaxMTU)
	}
	bridge := req.Bridge
	if bridge == "" {
		bridge = names.Bridge(req.Name)
	}
	if err := names.CheckIfName("bridge name", bridge); err != nil {
		return nil, err
	}
	// Every check reads an index, not every network, so that planning N
	// networks in a row (a lab file's rehearsal) costs N, not N².
	if name, ok, err := env.View.NetworkOfBridge(bridge); err != nil {
		return nil, err
	} else if ok {
		return nil, errs.Conflict("bridge name", bridge, "network "+name, "choose another --bridge")
	}
	mark := names.NetworkMark(env.Instance, req.Name).String()
	if exists, alias, err := env.Facts.Link(bridge); err != nil {
		return nil, err
	} else if exists && alias != mark {
		with := "an existing link that cnet did not create"
		if _, ok := names.ParseMark(alias); ok {
			with = fmt.Sprintf("an existing link marked %q", alias)
		}
		return nil, errs.Conflict("bridge name", bridge, with, "choose another --bridge")
	}

	var viewErr error
	hostPrefixes, err := env.Facts.HostPrefixes(func(link string) bool { // cnet's own bridges
		_, ours, err := env.View.NetworkOfBridge(link)
		viewErr = cmp.Or(viewErr, err)
		return ours
	})
	if err = cmp.Or(err, viewErr); err != nil {
		return nil, err
	}
	subnet := req.Subnet
	if subnet.IsValid() {
		if err := ipam.CheckSubnet(subnet); err != nil {
			return nil, err
		}
		if w := ipam.SubnetWarning(subnet); w != "" {
			p.Warnings = append(p.Warnings, "network "+req.Name+": "+w)
		}
		if name, o, ok, err := env.View.SubnetOverlap(subnet); err != nil {
			return nil, err
		} else if ok {
			return nil, errs.Conflict("subnet", subnet.String(), fmt.Sprintf("network %s (%s)", name, o), "choose a subnet that overlaps no other network")
		}
		for _, hp := range hostPrefixes {
			if subnet.Overlaps(hp) {
				return nil, errs.Conflict("subnet", subnet.String(), fmt.Sprintf("%s already on the host", hp), "choose a subnet the host does not use")
			}
		}
	} else {
		subnets, err := env.View.Subnets()
		if err != nil {
			return nil, err
		}
		taken := append(slices.Clone(hostPrefixes), subnets...)
		if subnet, err = ipam.NextSubnet(env.Pool, env.PoolBits, taken); err != nil {
			return nil, err
		}
	}
	gw := req.Gateway
	if gw.IsValid() {
		if err := ipam.CheckGateway(subnet, gw); err != nil {
			return nil, err
		}
	} else {
		gw = ipam.FirstHost(subnet)
	}
	n := &model.Network{
		Name: req.Name, Bridge: bridge, Subnet: subnet, Gateway: gw,
		Internal: req.Internal, NoDNS: req.NoDNS, MTU: mtu, Created: env.Now,
		RangeStart: req.RangeStart, RangeEnd: req.RangeEnd, Lab: req.Lab,
	}
	for _, b := range []struct {
		what string
		a    netip.Addr
	}{{"rangeStart", req.RangeStart}, {"rangeEnd", req.RangeEnd}} {
		if b.a.IsValid() {
			if err := ipam.CheckHost(b.what, subnet, netip.Addr{}, b.a); err != nil {
				return nil, err
			}
		}
	}
	if req.RangeStart.IsValid() && req.RangeEnd.IsValid() && req.RangeEnd.Less(req.RangeStart) {
		return nil, errs.Invalid("rangeEnd", req.RangeEnd.String(), "want an address from rangeStart %s on", req.RangeStart)
	}
	bs := BridgeSpec(env.Instance, n)
	p.Steps = append(p.Steps, model.Step{Kind: model.KindBridge, Action: model.Add, Bridge: &bs})
	p.Steps = append(p.Steps, model.Step{Kind: model.KindFirewall, Action: model.Set})
	if !n.Internal && !env.Facts.Forwarding() {
		// Undone (switched back off) only by a rollback of this plan.
		p.Steps = append(p.Steps, model.Step{Kind: model.KindForwarding, Action: model.Add})
	}
	if !n.NoDNS {
		p.addDNS()
	}
	p.Changes.PutNetwork(n)
	return n, nil
}

// RemoveNetwork plans `cnet network rm`. With force, attached containers
// are disconnected first.
func RemoveNetwork(env *Env, name string, force bool) (*Plan, error) {
	n, err := env.View.Network(name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errs.NotFound("network", name, "see `cnet network ls`")
	}
	p := &Plan{Op: "network rm", Direction: model.Rollforward, Network: n}
	attached := env.View.Attached(name)
	if len(attached) > 0 && !force {
		return nil, &errs.BusyError{What: "network", Name: name,
			Reason: fmt.Sprintf("has %d container(s) attached: %s", len(attached), strings.Join(attached, ", ")),
			Hint:   "disconnect them or use --force"}
	}
	var td teardown
	for _, cname := range attached {
		c, err := env.View.Container(cname)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue
		}
		if err := planDisconnect(env, p, c, n, true, &td); err != nil {
			return nil, err
		}
	}
	p.flush(&td)
	p.Changes.DelNetwork(name)
	bs := BridgeSpec(env.Instance, n)
	p.Steps = append(p.Steps,
		model.Step{Kind: model.KindFirewall, Action: model.Set})
	p.addDNS()
	p.Steps = append(p.Steps, model.Step{Kind: model.KindBridge, Action: model.Del, Bridge: &bs})
	return p, nil
}

// NoNetwork is the network name that asks for a container with no
// endpoint, only lo (as `docker run --network none`); direct links can
// still join it to others.
const NoNetwork = "none"

// ContainerReq asks for a container on one network.
type ContainerReq struct {
	Name    string
	Network string // default: names.DefaultNetwork, created on first use
	IP      netip.Addr
	DNS     []netip.Addr
	Aliases []string
	Ports   []model.PortMapping
	// Egress limits what the container sends on Network, in bits/s.
	Egress     uint64
	Forwarding bool
	Lab        string
}

// CreateContainer plans `cnet create`.
func CreateContainer(env *Env, req ContainerReq) (*Plan, error) {
	if err := names.CheckName("container", req.Name); err != nil {
		return nil, err
	}
	if old, err := env.View.Container(req.Name); err != nil {
		return nil, err
	} else if old != nil {
		return nil, errs.Exists("container", req.Name, "")
	}
	switch st := env.Facts.NetnsState(req.Name); st {
	case netns.Bound:
		return nil, errs.Exists("namespace", req.Name,
			"it was made outside cnet; attach it with `cnet connect NETWORK %s`", req.Name)
	case netns.Incomplete:
		return nil, errs.Exists("namespace mount point", netns.Dir+"/"+req.Name, "remove it or choose another name")
	case netns.Foreign, netns.Unknown:
		return nil, errs.Conflict("namespace path", netns.Dir+"/"+req.Name, st.String(),
			"cnet did not make it and leaves it in place: remove it or choose another name")
	}
	for _, d := range req.DNS {
		if !d.Is4() {
			return nil, errs.Invalid("dns", d.String(), "want an IPv4 address")
		}
	}
	if err := checkAliases(req.Aliases); err != nil {
		return nil, err
	}
	p := &Plan{Op: "create", Direction: model.Rollback}
	c := &model.Container{Name: req.Name, DNS: req.DNS, Created: env.Now, Lab: req.Lab, Forwarding: req.Forwarding}
	var n *model.Network // the default network's steps, when it is new, come first
	var err error
	if req.Network == NoNetwork {
		if req.IP.IsValid() || len(req.Aliases) > 0 || len(req.Ports) > 0 || req.Egress > 0 {
			return nil, errs.Invalid("network", NoNetwork, "want a network for --ip, --alias, --publish or --egress; a container on network none has only lo")
		}
	} else if n, err = networkFor(env, p, req.Network); err != nil {
		return nil, err
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindNetns, Action: model.Add, Netns: &model.NetnsSpec{
		Name: req.Name, Mark: names.NetnsMark(env.Instance, req.Name).String(), Forwarding: req.Forwarding,
	}})
	if n == nil {
		p.Changes.PutContainer(c)
	} else if err := planConnect(env, p, c, n, model.Endpoint{Addr: req.IP, Aliases: req.Aliases, Egress: req.Egress}, nil); err != nil {
		return nil, err
	}
	if err := planPublish(env, p, c, req.Ports, false, false); err != nil {
		return nil, err
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindFiles, Action: model.Set, Files: Files(overlay{env.View, &p.Changes}, env.Marker(), c, env.Upstream)})
	p.addDNS()
	p.Container = c
	return p, nil
}

// addDNS adds the step that brings cnet's name server in line with the
// records the plan changes; the runner works out which from the plan's
// changes, so one step per plan covers them all, wherever it is first
// asked for (after a new bridge, so the server can listen on it).
func (p *Plan) addDNS() {
	for _, st := range p.Steps {
		if st.Kind == model.KindDNS {
			return
		}
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindDNS, Action: model.Set})
}

// checkAliases refuses aliases that could not name a container.
func checkAliases(aliases []string) error {
	for _, a := range aliases {
		if err := names.CheckName("alias", a); err != nil {
			return err
		}
	}
	return nil
}

// networkFor returns the named network, planning the default one into p
// when it is asked for and does not exist yet.
func networkFor(env *Env, p *Plan, name string) (*model.Network, error) {
	if name == "" {
		name = names.DefaultNetwork
	}
	n, err := env.View.Network(name)
	if err != nil || n != nil {
		return n, err
	}
	if name != names.DefaultNetwork {
		if err := names.CheckName("network", name); err != nil {
			return nil, err
		}
		return nil, errs.NotFound("network", name, "create it with `cnet network create %s`", name)
	}
	n, err = planNetwork(env, p, NetworkReq{Name: name})
	if err != nil {
		return nil, fmt.Errorf("create default network %s: %w", name, err)
	}
	p.Network = n
	return n, nil
}

// ConnectReq asks for an endpoint of Container on Network.
type ConnectReq struct {
	Network, Container string
	IP                 netip.Addr
	Aliases            []string
	// Egress limits what the container sends on Network, in bits/s.
	Egress uint64
}

// Connect plans `cnet connect`. A namespace made outside cnet (by `ip
// netns add`) is adopted: cnet adds its endpoints and never deletes it.
func Connect(env *Env, req ConnectReq) (*Plan, error) {
	network, container, aliases := req.Network, req.Container, req.Aliases
	if err := names.CheckName("container", container); err != nil {
		return nil, err
	}
	if err := checkAliases(aliases); err != nil {
		return nil, err
	}
	if err := names.CheckName("network", network); err != nil {
		return nil, err
	}
	p := &Plan{Op: "connect", Direction: model.Rollback}
	c, err := env.View.Container(container)
	if err != nil {
		return nil, err
	}
	var present []string
	if c == nil {
		if env.Facts.NetnsState(container) != netns.Bound {
			return nil, errs.NotFound("container", container, "create it with `cnet create %s`, or make the namespace with `ip netns add %s`", container, container)
		}
		c = &model.Container{Name: container, Adopted: true, Created: env.Now}
	}
	if c.Adopted {
		if present, err = env.Facts.NetnsLinks(container); err != nil {
			return nil, err
		}
	}
	n, err := networkFor(env, p, network)
	if err != nil {
		return nil, err
	}
	if c.Endpoint(n.Name) != nil {
		return nil, errs.Exists("endpoint", container+" on "+n.Name, "already connected")
	}
	prev := Files(overlay{env.View, &p.Changes}, env.Marker(), c, env.Upstream)
	if c.Adopted && len(c.Endpoints) == 0 {
		prev = nil // adopting: nothing of ours was written yet
	}
	c = c.Clone()
	if err := planConnect(env, p, c, n, model.Endpoint{Addr: req.IP, Aliases: aliases, Egress: req.Egress}, present); err != nil {
		return nil, err
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindFiles, Action: model.Set, Files: Files(overlay{env.View, &p.Changes}, env.Marker(), c, env.Upstream), Prev: prev})
	p.addDNS()
	p.Container = c
	return p, nil
}

// MaxBridgePorts is how many interfaces a Linux bridge accepts: port
// numbers run below BR_MAX_PORTS (1 << BR_PORT_BITS, 1024) and the
// kernel keeps number 0 for itself, so the 1024th `ip link set IF master
// BRIDGE` fails with EXFULL ("Exchange full").
var MaxBridgePorts = 1023

// planConnect adds an endpoint on n to c (modified in place), appending
// its step and recording c and the endpoint generation in p.Changes. want
// carries the asked-for address (or none), aliases and egress limit;
// present lists interfaces already in an adopted namespace.
func planConnect(env *Env, p *Plan, c *model.Container, n *model.Network, want model.Endpoint, present []string) error {
	ip, aliases := want.Addr, want.Aliases
	if count := env.View.AttachedCount(n.Name); count >= MaxBridgePorts {
		return errs.Conflict("network", n.Name, fmt.Sprintf("its %d endpoints", count),
			"a Linux bridge holds at most %d ports; put further containers on another network", MaxBridgePorts)
	}
	addr, err := chooseAddr(env, n, ip, p)
	if err != nil {
		return err
	}
	gen := env.View.EndpointGen()
	if p.Changes.EndpointGen > gen {
		gen = p.Changes.EndpointGen
	}
	var hostIf string
	for {
		gen++
		hostIf = names.HostVeth(env.Instance, c.Name, n.Name, gen)
		if _, taken := env.View.HostIfOwner(hostIf); !taken {
			break
		}
	}
	used := slices.Clone(present)
	for _, ep := range c.Endpoints {
		used = append(used, ep.ContainerIf)
	}
	for _, l := range c.Links {
		used = append(used, l.Interface)
	}
	cif := ""
	for i := 0; ; i++ {
		if cif = names.ContainerIf(i); !slices.Contains(used, cif) {
			break
		}
	}
	defRoute := !n.Internal && !slices.ContainsFunc(c.Endpoints, func(e model.Endpoint) bool { return e.DefaultRoute })
	ep := model.Endpoint{Network: n.Name, HostIf: hostIf, ContainerIf: cif, Addr: addr, DefaultRoute: defRoute, Aliases: aliases, Egress: want.Egress}
	c.Endpoints = append(c.Endpoints, ep)
	p.noteNetwork(n)
	for _, other := range c.Endpoints {
		if p.Networks[other.Network] == nil {
			o, err := env.View.Network(other.Network)
			if err != nil {
				return err
			}
			if o != nil {
				p.noteNetwork(o)
			}
		}
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindEndpoint, Action: model.Add, Endpoint: endpointSpec(env, c, n, ep)})
	p.Changes.PutContainer(c)
	p.Changes.EndpointGen = gen
	return nil
}

func endpointSpec(env *Env, c *model.Container, n *model.Network, ep model.Endpoint) *model.EndpointSpec {
	s := EndpointSpec(env.Instance, c, n, ep)
	return &s
}

// EndpointSpec is the kernel view of an endpoint.
func EndpointSpec(instance string, c *model.Container, n *model.Network, ep model.Endpoint) model.EndpointSpec {
	return model.EndpointSpec{
		Netns: c.NetnsRef(), MAC: ep.MAC, HostIf: ep.HostIf, ContainerIf: ep.ContainerIf, Bridge: n.Bridge,
		Addr: netip.PrefixFrom(ep.Addr, n.Subnet.Bits()), Gateway: n.Gateway, MTU: n.MTU,
		DefaultRoute: ep.DefaultRoute, Hairpin: ep.Hairpin || ep.DefaultRoute && len(c.Ports) > 0,
		Mark:   names.EndpointMark(instance, c.Name, n.Name).String(),
		Egress: ep.Egress,
		Router: c.Forwarding,
	}
}

// BridgeSpec is the kernel view of a network's bridge.
func BridgeSpec(instance string, n *model.Network) model.BridgeSpec {
	return model.BridgeSpec{Name: n.Bridge, Gateway: n.GatewayPrefix(), MTU: n.MTU, Mark: names.NetworkMark(instance, n.Name).String()}
}

func chooseAddr(env *Env, n *model.Network, ip netip.Addr, p *Plan) (netip.Addr, error) {
	if ip.IsValid() {
		if err := ipam.CheckHost("ip", n.Subnet, n.Gateway, ip); err != nil {
			return netip.Addr{}, err
		}
		if owner, taken := env.View.AddrOwner(n.Name, ip); taken {
			return netip.Addr{}, errs.Conflict("address", ip.String(), "container "+owner, "on network %s; choose another --ip or omit it", n.Name)
		}
		hs, err := p.holders(env, n)
		if err != nil {
			return netip.Addr{}, err
		}
		if h, held := heldAddr(hs, ip); held {
			what := "it"
			if h.Addr != ip {
				what = "the MAC " + h.MAC + " cnet would give it"
			}
			return netip.Addr{}, errs.Conflict("address", ip.String(), h.Who,
				"%s is live on bridge %s of network %s though no cnet container has it; choose another --ip or omit it", what, n.Bridge, n.Name)
		}
		return ip, nil
	}
	// Addresses and MACs live on the bridge that no endpoint in state
	// accounts for (say, a --dry-run script run by hand) are skipped.
	hs, err := p.holders(env, n)
	if err != nil {
		return netip.Addr{}, err
	}
	a, ok := ipam.FirstIn(n.Subnet, n.Gateway, n.RangeStart, n.RangeEnd, merged(env.View.UsedAddrs(n.Name), skipped(hs, n.Subnet)))
	if !ok {
		return netip.Addr{}, errs.Conflict("address pool of network", n.Name, fmt.Sprintf("its %d containers", len(env.View.Attached(n.Name))),
			"%s is full; remove a container or use a larger subnet", n.Subnet)
	}
	return a, nil
}

// Disconnect plans `cnet disconnect`.
func Disconnect(env *Env, network, container string) (*Plan, error) {
	c, err := env.View.Container(container)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errs.NotFound("container", container, "see `cnet ls`")
	}
	n, err := env.View.Network(network)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errs.NotFound("network", network, "see `cnet network ls`")
	}
	if c.Endpoint(network) == nil {
		return nil, errs.NotFound("endpoint", container+" on "+network, "container %s is not connected to network %s", container, network)
	}
	p := &Plan{Op: "disconnect", Direction: model.Rollforward, Network: n}
	if err := planDisconnect(env, p, c, n, false, nil); err != nil {
		return nil, err
	}
	p.addDNS()
	return p, nil
}

// teardown gathers the endpoints a plan removes from many containers, so
// that the kernel deletes them in one batch (a KindEndpoints step), and
// the steps that must come after their removal.
type teardown struct {
	endpoints []model.EndpointSpec
	after     []model.Step
}

// flush appends the batch and what follows it.
func (p *Plan) flush(td *teardown) {
	if len(td.endpoints) > 0 {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindEndpoints, Action: model.Del, Endpoints: td.endpoints})
	}
	p.Steps = append(p.Steps, td.after...)
	*td = teardown{}
}

// planDisconnect removes c's endpoint on n, moves the default route (and
// the published ports) to the next eligible endpoint, and rewrites the
// files. Published ports with nowhere to go are refused, unless
// dropPorts (the network itself is being removed). With td, the endpoint
// joins td's batch and the steps that follow its removal wait in td.
func planDisconnect(env *Env, p *Plan, c *model.Container, n *model.Network, dropPorts bool, td *teardown) error {
	after := func(st ...model.Step) {
		if td != nil {
			td.after = append(td.after, st...)
		} else {
			p.Steps = append(p.Steps, st...)
		}
	}
	prev := Files(overlay{env.View, &p.Changes}, env.Marker(), c, env.Upstream)
	c = WithPorts(env.View, c)
	oldElems := Elems(c)
	old := c
	c = c.Clone()
	i := slices.IndexFunc(c.Endpoints, func(e model.Endpoint) bool { return e.Network == n.Name })
	ep := c.Endpoints[i]
	c.Endpoints = slices.Delete(c.Endpoints, i, i+1)
	if err := pruneRoutes(env, p, c); err != nil {
		return err
	}
	if len(oldElems) > 0 && ep.DefaultRoute {
		// The ports' DNAT elements point at this endpoint: take them away first.
		p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Del, Ports: oldElems})
	}
	// The spec of the endpoint as it is, so that undoing brings it back whole.
	if td != nil {
		td.endpoints = append(td.endpoints, *endpointSpec(env, old, n, ep))
	} else {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindEndpoint, Action: model.Del, Endpoint: endpointSpec(env, old, n, ep)})
	}
	if ep.DefaultRoute {
		for j := range c.Endpoints {
			other, err := env.View.Network(c.Endpoints[j].Network)
			if err != nil {
				return err
			}
			if other != nil && !other.Internal {
				c.Endpoints[j].DefaultRoute = true
				after(model.Step{Kind: model.KindRoute, Action: model.Add, Route: &model.RouteSpec{
					Netns: c.Name, Dev: c.Endpoints[j].ContainerIf, Gateway: other.Gateway, Src: c.Endpoints[j].Addr,
				}})
				break
			}
		}
		if len(oldElems) > 0 {
			switch t := c.Target(); {
			case t != nil: // the ports follow the default route
				after(model.Step{Kind: model.KindHairpin, Action: model.Add, HostIf: t.HostIf},
					model.Step{Kind: model.KindPorts, Action: model.Add, Ports: Elems(c)})
			case dropPorts:
				for _, m := range c.Ports {
					p.Changes.DelPort(c.Name, m)
				}
				c.Ports = nil
			default:
				return &errs.BusyError{What: "container", Name: c.Name,
					Reason: fmt.Sprintf("publishes %s through network %s, its only network beyond a bridge", formatAll(c.Ports), n.Name),
					Hint:   "unpublish them first, or connect it to another such network"}
			}
		}
	}
	if c.Adopted && len(c.Endpoints) == 0 {
		// Nothing of cnet's is left in a namespace it did not create.
		if c.CNI == nil {
			after(model.Step{Kind: model.KindFiles, Action: model.Del, Files: &model.FilesSpec{Name: c.Name}, Prev: prev})
		}
		p.Changes.DelContainer(c.Name)
		return nil
	}
	if c.CNI == nil { // a runtime writes its containers' resolv.conf itself
		after(model.Step{Kind: model.KindFiles, Action: model.Set, Files: Files(overlay{env.View, &p.Changes}, env.Marker(), c, env.Upstream), Prev: prev})
	}
	p.Changes.PutContainer(c)
	p.Container = c
	return nil
}

// RemoveContainers plans `cnet rm` for many containers as one
// transaction: every name is checked first, and if one is unknown nothing
// is removed. Processes inside are the caller's business: it checks (and
// with -f stops) them first. The namespace deletions come last, after
// every step that could still be undone.
func RemoveContainers(env *Env, containers []string) (*Plan, error) {
	var missing []string
	var cs []*model.Container
	seen := map[string]bool{}
	for _, name := range containers {
		if seen[name] {
			continue
		}
		seen[name] = true
		c, err := env.View.Container(name)
		if err != nil {
			return nil, err
		}
		if c == nil {
			missing = append(missing, name)
			continue
		}
		cs = append(cs, c)
	}
	if len(missing) > 0 {
		return nil, errs.NotFound("container", strings.Join(missing, ", "), "nothing was removed; see `cnet ls`")
	}
	p := &Plan{Op: "rm", Direction: model.Rollforward}
	var td teardown
	var deletions []model.NetnsSpec
	for _, c := range cs {
		if err := planUnlinkAll(env, p, c, seen); err != nil {
			return nil, err
		}
		c = WithPorts(env.View, c)
		if c.Adopted {
			// Not our namespace: take our endpoints out of it, leave it standing.
			for _, ep := range c.Endpoints {
				n, err := env.View.Network(ep.Network)
				if err != nil {
					return nil, err
				}
				if n == nil {
					continue
				}
				td.endpoints = append(td.endpoints, *endpointSpec(env, c, n, ep))
			}
		}
		if elems := Elems(c); len(elems) > 0 {
			p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Del, Ports: elems})
		}
		if c.CNI == nil {
			p.Steps = append(p.Steps, model.Step{Kind: model.KindFiles, Action: model.Del, Files: &model.FilesSpec{Name: c.Name},
				Prev: Files(overlay{env.View, &p.Changes}, env.Marker(), c, env.Upstream)})
		}
		if !c.Adopted {
			if st := env.Facts.NetnsState(c.Name); st == netns.Foreign || st == netns.Unknown {
				// Its path holds something cnet did not make: refuse now,
				// before any step, rather than fail at the last.
				return nil, errs.Conflict("namespace path", netns.Dir+"/"+c.Name, st.String(),
					"cnet leaves it in place; remove it, then run `cnet rm %s` again (or `cnet gc`, which releases the container)", c.Name)
			}
			// Deleting the namespace deletes its veths with it, and lets the
			// kernel batch that work instead of paying for each veth.
			// The identity recorded at create, not the mark on lo (which a
			// process inside can rewrite), says which namespace is ours.
			deletions = append(deletions, model.NetnsSpec{Name: c.Name, Mark: names.NetnsMark(env.Instance, c.Name).String(), ID: c.NetnsID, Guards: c.Guards()})
		}
		p.Changes.DelContainer(c.Name)
	}
	p.flush(&td)
	p.addDNS()
	if len(deletions) > 0 {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindNamespaces, Action: model.Del, Namespaces: deletions})
	}
	if len(cs) == 1 {
		p.Container = cs[0]
	}
	return p, nil
}

// Files renders a container's /etc/netns files. Its resolv.conf points at
// the gateways of its DNS-enabled networks, where cnet's name server
// answers, unless the container has its own --dns.
func Files(v View, marker string, c *model.Container, up nsfiles.Upstream) *model.FilesSpec {
	var local nsfiles.Local
	for _, ep := range c.Endpoints {
		n, err := v.Network(ep.Network)
		if err != nil || n == nil || n.NoDNS || len(local.Servers) == 3 { // resolv.conf uses at most 3
			continue
		}
		local.Servers = append(local.Servers, n.Gateway)
		local.Search = append(local.Search, n.Name+"."+strings.TrimSuffix(dnsDomain, "."))
	}
	return nsfiles.For(marker, c, local, up)
}

// dnsDomain is the zone cnet's name server answers for.
const dnsDomain = "cnet."

// overlay is a View that also sees the networks a plan is about to commit.
type overlay struct {
	View
	ch *model.Changes
}

func (o overlay) Network(name string) (*model.Network, error) {
	if n, ok := o.ch.Networks[name]; ok {
		return n, nil
	}
	return o.View.Network(name)
}
