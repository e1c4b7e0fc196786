// Package model holds cnet's state records and the steps of a transaction.
// It is pure data: the store persists it as JSON, the planner produces it,
// the engine executes it.
package model

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// SchemaVersion is written to the store and checked on open.
const SchemaVersion = 1

// Network is a bridge with a subnet; the gateway address lives on the bridge.
type Network struct {
	Name     string       `json:"name"`
	Bridge   string       `json:"bridge"`
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway"`
	Internal bool         `json:"internal"`
	// NoDNS turns cnet's name server off for this network.
	NoDNS bool `json:"no_dns,omitempty"`
	// RangeStart and RangeEnd, when set, bound the addresses given out
	// automatically (as a CNI host-local range does).
	RangeStart netip.Addr `json:"range_start,omitzero"`
	RangeEnd   netip.Addr `json:"range_end,omitzero"`
	MTU        int        `json:"mtu"`
	Created    time.Time  `json:"created"`
	// Lab is the lab file that made the network, if any.
	Lab string `json:"lab,omitempty"`
}

// GatewayPrefix is the address assigned to the bridge: gateway/len.
func (n *Network) GatewayPrefix() netip.Prefix {
	return netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
}

// Container is a named network namespace and its endpoints.
type Container struct {
	Name string `json:"name"`
	// Adopted is true when the namespace existed before cnet (made by
	// `ip netns add`); cnet then never deletes it.
	Adopted bool `json:"adopted,omitempty"`
	// NetnsPath is where the namespace is when it is not /run/netns/NAME
	// (a container runtime's, attached through CNI).
	NetnsPath string `json:"netns_path,omitempty"`
	// CNI is set for containers attached by a runtime through CNI.
	CNI *CNIInfo `json:"cni,omitempty"`
	// NetnsID is the identity of the namespace cnet created, read when it
	// was made; removal deletes only the namespace that still has it.
	NetnsID   *NetnsID     `json:"netns_id,omitempty"`
	DNS       []netip.Addr `json:"dns,omitempty"`
	Endpoints []Endpoint   `json:"endpoints"`
	// Ports are published to the address of the default-route endpoint.
	// They are stored apart from the record (each mapping its own entry,
	// so publishing costs the same at 10,000 mappings as at one); this
	// field is filled only where an operation needs them.
	Ports   []PortMapping `json:"-"`
	Created time.Time     `json:"created"`
	// Lab is the lab file that made the container, if any.
	Lab string `json:"lab,omitempty"`
	// Forwarding is net.ipv4.ip_forward inside the namespace: the
	// container routes between its interfaces.
	Forwarding bool `json:"forwarding,omitempty"`
	// Links are the container's ends of direct links to other containers.
	Links []LinkEnd `json:"links,omitempty"`
	// Routes are static routes inside the namespace, beyond the
	// connected subnets and the default route.
	Routes []Route `json:"routes,omitempty"`
}

// LinkEnd is one container's end of a direct link: a veth pair whose two
// ends live in two containers, with no bridge between them.
type LinkEnd struct {
	Interface string       `json:"interface"`
	Addr      netip.Prefix `json:"addr,omitzero"` // addr/len, or none
	Peer      string       `json:"peer"`
	PeerIf    string       `json:"peer_interface"`
	PeerAddr  netip.Prefix `json:"peer_addr,omitzero"`
	MTU       int          `json:"mtu"`
	// Egress and PeerEgress limit what each end sends, in bits/s (0: no limit).
	Egress     uint64 `json:"egress,omitempty"`
	PeerEgress uint64 `json:"peer_egress,omitempty"`
	Lab        string `json:"lab,omitempty"`
}

// Reverse returns the same link seen from the peer's end.
func (l LinkEnd) Reverse(container string) LinkEnd {
	return LinkEnd{Interface: l.PeerIf, Addr: l.PeerAddr, Peer: container, PeerIf: l.Interface, PeerAddr: l.Addr,
		MTU: l.MTU, Egress: l.PeerEgress, PeerEgress: l.Egress, Lab: l.Lab}
}

// Route is a static route inside a container: To via Via.
type Route struct {
	To  netip.Prefix `json:"to"`
	Via netip.Addr   `json:"via"`
}

// Link returns the container's end of the direct link on interface, or nil.
func (c *Container) Link(iface string) *LinkEnd {
	for i := range c.Links {
		if c.Links[i].Interface == iface {
			return &c.Links[i]
		}
	}
	return nil
}

// CNIInfo identifies a runtime's container.
type CNIInfo struct {
	ContainerID string `json:"container_id"`
}

// NetnsRef names the container's namespace for the kernel: its path when
// it lives outside /run/netns, else its name.
func (c *Container) NetnsRef() string {
	if c.NetnsPath != "" {
		return c.NetnsPath
	}
	return c.Name
}

// PortMapping publishes one container port on the host: connections to
// HostIP:HostPort (HostIP 0.0.0.0: any host address) reach Port.
type PortMapping struct {
	Proto    string     `json:"proto"` // "tcp" or "udp"
	HostIP   netip.Addr `json:"host_ip"`
	HostPort uint16     `json:"host_port"`
	Port     uint16     `json:"port"`
}

// Target returns the endpoint published ports lead to: the one carrying
// the default route, or nil.
func (c *Container) Target() *Endpoint {
	for i := range c.Endpoints {
		if c.Endpoints[i].DefaultRoute {
			return &c.Endpoints[i]
		}
	}
	return nil
}

// Guards returns the anti-spoofing entries of the container's endpoints:
// each one's MAC (its own, else 02:63 and the address, as names.MAC
// derives it) and address.
func (c *Container) Guards() []GuardSpec {
	var out []GuardSpec
	for _, ep := range c.Endpoints {
		out = append(out, guardOf(ep.HostIf, ep.MAC, ep.Addr, c.Forwarding))
	}
	return out
}

// guardOf is the anti-spoofing entry of a veth whose container end has
// mac, or when that is empty 02:63 and addr (as names.MAC derives it), in
// a container that routes or not.
func guardOf(hostIf, mac string, addr netip.Addr, router bool) GuardSpec {
	if mac == "" {
		b := addr.As4()
		mac = net.HardwareAddr{0x02, 0x63, b[0], b[1], b[2], b[3]}.String()
	}
	return GuardSpec{HostIf: hostIf, MAC: mac, Addr: addr, Router: router}
}

// Endpoint returns the container's endpoint on network, or nil.
func (c *Container) Endpoint(network string) *Endpoint {
	for i := range c.Endpoints {
		if c.Endpoints[i].Network == network {
			return &c.Endpoints[i]
		}
	}
	return nil
}

// Clone returns a deep copy.
func (c *Container) Clone() *Container {
	out := *c
	out.DNS = append([]netip.Addr(nil), c.DNS...)
	out.Endpoints = append([]Endpoint(nil), c.Endpoints...)
	out.Ports = append([]PortMapping(nil), c.Ports...)
	out.Links = append([]LinkEnd(nil), c.Links...)
	out.Routes = append([]Route(nil), c.Routes...)
	return &out
}

// Endpoint is one container's attachment to one network: a veth pair.
type Endpoint struct {
	Network     string     `json:"network"`
	HostIf      string     `json:"host_if"`
	ContainerIf string     `json:"container_if"`
	Addr        netip.Addr `json:"addr"`
	// DefaultRoute is true on the endpoint whose gateway is the
	// container's default route.
	DefaultRoute bool `json:"default_route,omitempty"`
	// Aliases are extra names the container answers to on this network.
	Aliases []string `json:"aliases,omitempty"`
	// MAC, when set, replaces the address derived from Addr.
	MAC string `json:"mac,omitempty"`
	// Hairpin asks for hairpin mode even without published ports.
	Hairpin bool `json:"hairpin,omitempty"`
	// Egress limits what the container sends through this endpoint, in
	// bits/s (0: no limit).
	Egress uint64 `json:"egress,omitempty"`
}

// Kind names what a step changes.
type Kind string

const (
	KindNetns      Kind = "netns"      // a named network namespace
	KindBridge     Kind = "bridge"     // a bridge with its gateway address
	KindEndpoint   Kind = "endpoint"   // a veth pair, its address and maybe the default route
	KindEndpoints  Kind = "endpoints"  // many veth pairs, removed in one kernel batch
	KindNamespaces Kind = "namespaces" // many named network namespaces, removed together
	KindRoute      Kind = "route"      // a container's default route
	KindFiles      Kind = "files"      // /etc/netns/NAME/{resolv.conf,hosts}
	KindFirewall   Kind = "firewall"   // the whole nftables table, from state
	KindForwarding Kind = "forwarding" // net.ipv4.ip_forward=1, planned only when it is off
	KindPorts      Kind = "ports"      // DNAT map elements of published ports
	KindHairpin    Kind = "hairpin"    // hairpin mode on an endpoint's bridge port
	KindDNS        Kind = "dns"        // the name server's records, from state
	KindLink       Kind = "link"       // a direct veth pair between two containers
)

// Action is what a step does to its object.
type Action string

const (
	Add Action = "add" // ensure present; undo removes
	Del Action = "del" // remove; undo re-adds
	Set Action = "set" // write new content; undo writes Prev (or removes)
)

// Step is one idempotent kernel or file change. Steps are data so an
// intent record can list them and `cnet gc` can replay their undo after a
// crash.
type Step struct {
	Kind     Kind          `json:"kind"`
	Action   Action        `json:"action"`
	Netns    *NetnsSpec    `json:"netns,omitempty"`
	Bridge   *BridgeSpec   `json:"bridge,omitempty"`
	Endpoint *EndpointSpec `json:"endpoint,omitempty"`
	// Endpoints and Namespaces are the objects of KindEndpoints and
	// KindNamespaces steps, in order.
	Endpoints  []EndpointSpec `json:"endpoints,omitempty"`
	Namespaces []NetnsSpec    `json:"namespaces,omitempty"`
	Route      *RouteSpec     `json:"route,omitempty"`
	Files      *FilesSpec     `json:"files,omitempty"`
	Prev       *FilesSpec     `json:"prev,omitempty"`
	Ports      []PortElem     `json:"ports,omitempty"`
	HostIf     string         `json:"host_if,omitempty"` // KindHairpin
	Link       *LinkSpec      `json:"link,omitempty"`
}

// PortElem is one DNAT map element: Proto HostIP:HostPort → Addr:Port.
type PortElem struct {
	Proto    string     `json:"proto"`
	HostIP   netip.Addr `json:"host_ip"`
	HostPort uint16     `json:"host_port"`
	Addr     netip.Addr `json:"addr"`
	Port     uint16     `json:"port"`
}

// Holder is an address or a MAC in use behind a bridge port that no
// endpoint in state accounts for (a veth someone made by hand, a script
// printed by --dry-run and run with sh, a tap), and who holds it.
type Holder struct {
	Addr netip.Addr `json:"addr,omitzero"` // invalid when only the MAC is known
	MAC  string     `json:"mac,omitempty"` // "" when unknown
	Who  string     `json:"who"`
}

// NetnsID identifies a network namespace for as long as it lives: the
// device and inode of its nsfs file (`stat -L /run/netns/NAME`). A
// process inside the namespace can rewrite the mark on its lo, but not
// this.
type NetnsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func (id NetnsID) String() string { return fmt.Sprintf("nsfs %d:%d", id.Dev, id.Ino) }

// NetnsSpec names a namespace under /run/netns.
type NetnsSpec struct {
	Name string `json:"name"`
	Mark string `json:"mark"`
	// ID, when set, is the namespace's recorded identity: removal checks
	// it instead of the mark (which a process inside can rewrite).
	ID *NetnsID `json:"id,omitempty"`
	// Forwarding turns net.ipv4.ip_forward on inside.
	Forwarding bool `json:"forwarding,omitempty"`
	// Guards are the anti-spoofing entries of the namespace's endpoints,
	// dropped with it (its veths go with the namespace).
	Guards []GuardSpec `json:"guards,omitempty"`
}

// GuardSpec is one endpoint's anti-spoofing entry: frames entering its
// bridge port (the host veth) must come from its MAC and, for IPv4 and
// ARP, from its address.
type GuardSpec struct {
	HostIf string     `json:"host_if"`
	MAC    string     `json:"mac"`
	Addr   netip.Addr `json:"addr"`
	// Router: the container routes (forwarding on), so the IPv4 packets it
	// sends may carry other hosts' addresses; its MAC and ARP are checked.
	Router bool `json:"router,omitempty"`
}

// BridgeSpec is a network's bridge.
type BridgeSpec struct {
	Name    string       `json:"name"`
	Gateway netip.Prefix `json:"gateway"` // gateway/len, assigned to the bridge
	MTU     int          `json:"mtu"`
	Mark    string       `json:"mark"`
}

// EndpointSpec is everything needed to create or remove an endpoint.
type EndpointSpec struct {
	Netns        string       `json:"netns"` // a name under /run/netns, or an absolute path
	MAC          string       `json:"mac,omitempty"`
	HostIf       string       `json:"host_if"`
	ContainerIf  string       `json:"container_if"`
	Bridge       string       `json:"bridge"`
	Addr         netip.Prefix `json:"addr"` // addr/len
	Gateway      netip.Addr   `json:"gateway"`
	MTU          int          `json:"mtu"`
	DefaultRoute bool         `json:"default_route"`
	// Hairpin is on for the endpoint a container's published ports lead
	// to, so the container can reach them through the host.
	Hairpin bool   `json:"hairpin,omitempty"`
	Mark    string `json:"mark"`
	// Egress is a token-bucket limit on what the container end sends,
	// in bits/s (0: none).
	Egress uint64 `json:"egress,omitempty"`
	// Router: the container routes between its interfaces, so what it
	// sends may carry other hosts' addresses (see GuardSpec).
	Router bool `json:"router,omitempty"`
}

// Guard is the endpoint's anti-spoofing entry.
func (ep EndpointSpec) Guard() GuardSpec {
	return guardOf(ep.HostIf, ep.MAC, ep.Addr.Addr(), ep.Router)
}

// RouteSpec is a route inside a container: the default route through Dev
// when Dst is unset, else a static route to Dst via Gateway.
type RouteSpec struct {
	Netns   string       `json:"netns"`
	Dev     string       `json:"dev"`
	Gateway netip.Addr   `json:"gateway"`
	Src     netip.Addr   `json:"src"`
	Dst     netip.Prefix `json:"dst,omitzero"`
}

// LinkSpec is a direct link's veth pair: end A in one container's
// namespace, end B in another's.
type LinkSpec struct {
	A   LinkEndSpec `json:"a"`
	B   LinkEndSpec `json:"b"`
	MTU int         `json:"mtu"`
	// Mark is the alias both ends carry.
	Mark string `json:"mark"`
}

// LinkEndSpec is one end of a direct link.
type LinkEndSpec struct {
	Netns     string       `json:"netns"`
	Interface string       `json:"interface"`
	Addr      netip.Prefix `json:"addr,omitzero"`
	Egress    uint64       `json:"egress,omitempty"`
}

// FilesSpec is the content of /etc/netns/NAME.
type FilesSpec struct {
	Name   string `json:"name"`
	Resolv string `json:"resolv"`
	Hosts  string `json:"hosts"`
}

// Direction says how a crash in the middle of an operation is resolved.
type Direction string

const (
	// Rollback: undo every step (creates, connects).
	Rollback Direction = "rollback"
	// Rollforward: redo every step, then commit (removals).
	Rollforward Direction = "rollforward"
)

// Changes are the records an operation commits: nil values delete.
type Changes struct {
	Networks   map[string]*Network   `json:"networks,omitempty"`
	Containers map[string]*Container `json:"containers,omitempty"`
	// Ports are published ports added or removed. A deleted container's
	// ports go with it without being listed.
	Ports []PortChange `json:"ports,omitempty"`
	// EndpointGen is the new endpoint generation counter, when it moved.
	EndpointGen uint64 `json:"endpoint_gen,omitempty"`
}

// PortChange adds (or with Del, removes) one published port.
type PortChange struct {
	Container string      `json:"container"`
	Mapping   PortMapping `json:"mapping"`
	Del       bool        `json:"del,omitempty"`
}

// PutNetwork records n for commit.
func (c *Changes) PutNetwork(n *Network) {
	if c.Networks == nil {
		c.Networks = map[string]*Network{}
	}
	c.Networks[n.Name] = n
}

// DelNetwork records the removal of a network.
func (c *Changes) DelNetwork(name string) {
	if c.Networks == nil {
		c.Networks = map[string]*Network{}
	}
	c.Networks[name] = nil
}

// PutContainer records ct for commit.
func (c *Changes) PutContainer(ct *Container) {
	if c.Containers == nil {
		c.Containers = map[string]*Container{}
	}
	c.Containers[ct.Name] = ct
}

// DelContainer records the removal of a container.
func (c *Changes) DelContainer(name string) {
	if c.Containers == nil {
		c.Containers = map[string]*Container{}
	}
	c.Containers[name] = nil
}

// Intent is written before the first step of an operation and removed when
// its changes commit. One found at start-up belongs to a process that died
// mid-operation.
type Intent struct {
	ID        uint64    `json:"id"`
	Op        string    `json:"op"`
	Direction Direction `json:"direction"`
	Steps     []Step    `json:"steps"`
	Changes   Changes   `json:"changes"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
}

// AddPort records a published port for commit.
func (c *Changes) AddPort(container string, m PortMapping) {
	c.Ports = append(c.Ports, PortChange{Container: container, Mapping: m})
}

// DelPort records the removal of a published port.
func (c *Changes) DelPort(container string, m PortMapping) {
	c.Ports = append(c.Ports, PortChange{Container: container, Mapping: m, Del: true})
}

// PortHolders names the host processes holding one protocol's ports.
type PortHolders interface {
	// Holder describes the process listening on (or, for udp, bound to)
	// ip:port or port on every address, or returns "" when there is none.
	Holder(ip netip.Addr, port uint16) string
}
