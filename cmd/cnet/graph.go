package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/graph"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/lab"
)

// svgFormat is dot run through Graphviz.
const svgFormat = "svg"

func (a *app) graphCmd() *cobra.Command {
	var format, file string
	cmd := &cobra.Command{
		Use:   "graph [--format text|dot|svg|mermaid] [-f FILE]",
		Short: "Draw the networks, containers and the veth pairs between them",
		Long: `Draw what cnet has built: each network's bridge in the host, with its subnet,
gateway and whether it is NATed or internal; each container; and each veth
pair between them, with the name of its host end (on the bridge) and of its
container end with the address; and each direct link between two
containers. Containers show their default route and published ports. With
-f FILE it draws a lab file instead, as apply would build it, without
touching the machine; addresses the file leaves to cnet are left blank.

Formats:
  text     a drawing for the terminal (the default)
  dot      Graphviz source: cnet graph --format dot | dot -Tpng > net.png
  svg      the dot drawing rendered by Graphviz's dot, which must be
           installed (apt-get install graphviz)
  mermaid  a Mermaid flowchart, for Markdown that renders Mermaid

--json prints the topology that is drawn.`,
		Example: "  cnet graph\n  cnet graph --format svg > net.svg\n  cnet graph -f examples/router.yaml",
		GroupID: "networks",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := strings.ToLower(format)
			switch graph.Format(f) {
			case graph.Text, graph.Dot, graph.Mermaid, svgFormat:
			default:
				return &cnet.InvalidError{What: "format", Value: format, Want: "text, dot, svg or mermaid"}
			}
			var topo graph.Topology
			if file != "" {
				f, err := a.readLab(file)
				if err != nil {
					return err
				}
				topo = labTopology(f)
			} else {
				nets, err := a.eng.Networks()
				if err != nil {
					return err
				}
				cs, err := a.eng.Containers()
				if err != nil {
					return err
				}
				topo = topology(nets, cs)
			}
			if a.json {
				return printJSON(topo)
			}
			if f == svgFormat {
				return renderSVG(graph.DotOf(topo))
			}
			out, err := graph.Render(topo, graph.Format(f))
			if err != nil {
				return err
			}
			fmt.Print(out)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output `FORMAT`: text, dot, svg (rendered by Graphviz) or mermaid")
	cmd.Flags().StringVarP(&file, "file", "f", "", "draw the lab `FILE` as it would be built, instead of what exists")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the topology as JSON instead of drawing it")
	return cmd
}

// topology is what cnet has built, as the graph package draws it.
func topology(nets []*cnet.Network, cs []*cnet.Container) graph.Topology {
	t := graph.Topology{Networks: []graph.Network{}, Containers: []graph.Container{}, Links: []graph.Link{}}
	for _, n := range nets {
		t.Networks = append(t.Networks, graph.Network{Name: n.Name, Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway,
			Internal: n.Internal, DNS: n.DNS})
	}
	for _, c := range cs {
		gc := graph.Container{Name: c.Name}
		for _, p := range c.Ports {
			gc.Ports = append(gc.Ports, graph.Port{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, Port: p.Port})
		}
		t.Containers = append(t.Containers, gc)
		for _, ep := range c.Endpoints {
			l := graph.Link{Network: ep.Network,
				A: graph.End{Container: c.Name, Ifname: ep.Interface, Addr: ep.Address},
				B: graph.End{Ifname: ep.HostInterface}}
			if ep.DefaultRoute {
				l.A.Via = ep.Gateway
			}
			t.Links = append(t.Links, l)
		}
		for _, l := range c.Links {
			if l.Peer < c.Name && slices.ContainsFunc(cs, func(o *cnet.Container) bool { return o.Name == l.Peer }) {
				continue // drawn from the peer's side
			}
			t.Links = append(t.Links, graph.Link{
				A: graph.End{Container: c.Name, Ifname: l.Interface, Addr: l.Address},
				B: graph.End{Container: l.Peer, Ifname: l.PeerInterface, Addr: l.PeerAddress}})
		}
	}
	return t
}

// labTopology is a lab file as apply would build it.
func labTopology(f *lab.File) graph.Topology {
	t := graph.Topology{Networks: []graph.Network{}, Containers: []graph.Container{}, Links: []graph.Link{}}
	gateways := map[string]netip.Addr{}
	for _, n := range f.Networks {
		gw := n.Gateway
		if !gw.IsValid() && n.Subnet.IsValid() {
			gw = n.Subnet.Masked().Addr().Next()
		}
		gateways[n.Name] = gw
		t.Networks = append(t.Networks, graph.Network{Name: n.Name, Bridge: cmp.Or(n.Bridge, names.Bridge(n.Name)),
			Subnet: n.Subnet, Gateway: gw, Internal: n.Internal, DNS: n.DNS})
	}
	for _, c := range f.Containers {
		gc := graph.Container{Name: c.Name}
		for _, p := range c.Ports {
			gc.Ports = append(gc.Ports, graph.Port{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, Port: p.Port})
		}
		t.Containers = append(t.Containers, gc)
		routed := false // the default route goes through the first network that is not internal
		for i, a := range c.Networks {
			end := graph.End{Container: c.Name, Ifname: fmt.Sprintf("eth%d", i)}
			n := f.Network(a.Network)
			switch {
			case a.IP.IsValid() && n != nil && n.Subnet.IsValid():
				end.Addr = netip.PrefixFrom(a.IP, n.Subnet.Bits())
			case a.IP.IsValid():
				end.Addr = netip.PrefixFrom(a.IP, 32)
			}
			if !routed && (n == nil || !n.Internal) {
				routed, end.Via = true, gateways[a.Network]
			}
			t.Links = append(t.Links, graph.Link{Network: a.Network, A: end, B: graph.End{Ifname: "veth"}})
		}
	}
	for _, l := range f.Links {
		t.Links = append(t.Links, graph.Link{
			A: graph.End{Container: l.A.Container, Ifname: cmp.Or(l.A.Interface, l.B.Container), Addr: l.A.IP},
			B: graph.End{Container: l.B.Container, Ifname: cmp.Or(l.B.Interface, l.A.Container), Addr: l.B.IP}})
	}
	return t
}

// renderSVG runs Graphviz's dot: a renderer, not a network tool.
func renderSVG(dot string) error {
	path, err := exec.LookPath("dot")
	if err != nil {
		return errors.New("--format svg runs Graphviz's dot, which is not installed: apt-get install graphviz " +
			"(or print --format dot and render it elsewhere)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dot -Tsvg: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}
