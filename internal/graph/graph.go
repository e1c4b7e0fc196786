// Package graph draws a network topology: bridges in the host, the
// containers, the veth pairs between them with the names of both ends,
// addresses, default routes, published ports, whether a network is
// internal or NATed, and veth pairs that join two containers directly,
// with no bridge. It renders plain text for a terminal, Graphviz dot and
// Mermaid flowcharts. It is pure: it takes a Topology and returns text.
package graph

import (
	"fmt"
	"net/netip"
	"strings"
)

// Topology is what is drawn.
type Topology struct {
	Networks   []Network   `json:"networks"`
	Containers []Container `json:"containers"`
	// Links are veth pairs, in the order they are drawn.
	Links []Link `json:"links"`
}

// Network is a bridge in the host holding the gateway of a subnet.
type Network struct {
	Name    string       `json:"name"`
	Bridge  string       `json:"bridge"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Internal networks have no NAT and nothing forwarded in or out;
	// others are masqueraded on their way out of the host.
	Internal bool `json:"internal"`
	// DNS is true when cnet's name server answers on the gateway.
	DNS bool `json:"dns"`
}

// Container is a network namespace.
type Container struct {
	Name  string `json:"name"`
	Ports []Port `json:"ports,omitempty"`
}

// Port is a published port: HostIP:HostPort on the host leads to Port.
type Port struct {
	Proto    string     `json:"proto"`
	HostIP   netip.Addr `json:"host_ip"`
	HostPort uint16     `json:"host_port"`
	Port     uint16     `json:"port"`
}

func (p Port) String() string {
	return fmt.Sprintf("%s:%d->%d/%s", p.HostIP, p.HostPort, p.Port, p.Proto)
}

// Link is a veth pair. With Network set it is an endpoint: A is the
// container's end, B the host end, a port of the network's bridge (no
// address). With Network empty it joins two containers directly, A and
// B, each end with its own address.
type Link struct {
	Network string `json:"network,omitempty"`
	A       End    `json:"a"`
	B       End    `json:"b"`
}

// Direct reports whether the link joins two containers with no bridge.
func (l Link) Direct() bool { return l.Network == "" }

// End is one end of a veth pair.
type End struct {
	// Container holds this end; empty for the host end on a bridge.
	Container string       `json:"container,omitempty"`
	Ifname    string       `json:"ifname"`
	Addr      netip.Prefix `json:"addr,omitzero"`
	// Via is set when this end carries its container's default route:
	// the next hop (a network's gateway, or the other end's address).
	Via netip.Addr `json:"via,omitzero"`
}

func (e End) label() string {
	if e.Addr.IsValid() {
		return e.Ifname + " " + e.Addr.String()
	}
	return e.Ifname
}

// network returns the named network, or nil.
func (t *Topology) network(name string) *Network {
	for i := range t.Networks {
		if t.Networks[i].Name == name {
			return &t.Networks[i]
		}
	}
	return nil
}

func (t *Topology) container(name string) Container {
	for _, c := range t.Containers {
		if c.Name == name {
			return c
		}
	}
	return Container{Name: name}
}

// flags describes a network in a few words.
func (n Network) flags() string {
	f := []string{"NAT"}
	if n.Internal {
		f = []string{"internal (no NAT, nothing in or out)"}
	}
	if n.DNS {
		f = append(f, "DNS")
	}
	return strings.Join(f, ", ")
}

// boxLines is what a container's box says where end is attached: its
// name, its default route if it goes through end, and then its published
// ports, which lead to that endpoint.
func (t *Topology) boxLines(end End) []string {
	c := t.container(end.Container)
	lines := []string{c.Name}
	if end.Via.IsValid() {
		lines = append(lines, "default via "+end.Via.String())
		for _, p := range c.Ports {
			lines = append(lines, p.String())
		}
	}
	return lines
}

// Format is an output format.
type Format string

// The formats Render knows. SVG is dot run through Graphviz, outside
// this package.
const (
	Text    Format = "text"
	Dot     Format = "dot"
	Mermaid Format = "mermaid"
)

// Render draws t in format f.
func Render(t Topology, f Format) (string, error) {
	switch f {
	case Text:
		return TextOf(t), nil
	case Dot:
		return DotOf(t), nil
	case Mermaid:
		return MermaidOf(t), nil
	}
	return "", fmt.Errorf("unknown format %q", f)
}
