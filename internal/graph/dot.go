package graph

import (
	"fmt"
	"strings"
)

// DotOf draws t as a Graphviz graph (`dot -Tsvg` renders it): the
// bridges inside a cluster for the host, containers outside it, one edge
// per veth pair, labelled in its middle with the host end (or, for a
// direct link, the other container's end) and next to the container with
// its end. Internal networks are dashed.
func DotOf(t Topology) string {
	var b strings.Builder
	b.WriteString("graph cnet {\n")
	b.WriteString("\tgraph [rankdir=TB, fontname=\"monospace\", nodesep=0.6, ranksep=1.2];\n")
	b.WriteString("\tnode [fontname=\"monospace\", fontsize=11, shape=box];\n")
	b.WriteString("\tedge [fontname=\"monospace\", fontsize=9, labeldistance=2.5];\n")
	if len(t.Networks) > 0 {
		b.WriteString("\tsubgraph cluster_host {\n\t\tlabel=\"host\";\n\t\tstyle=rounded;\n")
		for _, n := range t.Networks {
			style := "filled"
			if n.Internal {
				style = "filled,dashed"
			}
			fmt.Fprintf(&b, "\t\t%s [label=%s, style=%q, fillcolor=\"#e8eef7\"];\n", dotID("network", n.Name),
				dotQuote(n.Bridge+" (bridge)", "network "+n.Name, fmt.Sprintf("%s/%d", n.Gateway, n.Subnet.Bits()), n.flags()), style)
		}
		b.WriteString("\t}\n")
	}
	for _, c := range t.Containers {
		lines := []string{c.Name}
		for _, l := range t.Links {
			for _, e := range []End{l.A, l.B} {
				if e.Container == c.Name && e.Via.IsValid() {
					lines = t.boxLines(e)
				}
			}
		}
		fmt.Fprintf(&b, "\t%s [label=%s, style=rounded];\n", dotID("container", c.Name), dotQuote(lines...))
	}
	for _, l := range t.Links {
		from, tail := dotID("network", l.Network), dotQuote(l.B.Ifname)
		if l.Direct() {
			from, tail = dotID("container", l.B.Container), dotQuote(l.B.Ifname, l.B.Addr.String())
		}
		style := ""
		if n := t.network(l.Network); n != nil && n.Internal {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "\t%s -- %s [label=%s, headlabel=%s%s];\n", from, dotID("container", l.A.Container), tail,
			dotQuote(l.A.Ifname, l.A.Addr.String()), style)
	}
	b.WriteString("}\n")
	return b.String()
}

// dotID names a node; kinds keep a network and a container of the same
// name apart.
func dotID(kind, name string) string { return dotQuote(kind + "/" + name) }

// dotQuote is a dot string of lines, centred.
func dotQuote(lines ...string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	q := make([]string, len(lines))
	for i, l := range lines {
		q[i] = r.Replace(l)
	}
	return `"` + strings.Join(q, `\n`) + `"`
}
