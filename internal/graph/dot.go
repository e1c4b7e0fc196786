package graph

import (
	"fmt"
	"strings"
)

// DotOf draws t as a Graphviz graph (`dot -Tsvg` renders it): the
// bridges inside a cluster for the host, containers outside it, one edge
// per veth pair, labelled in its middle with the host end and next to
// the container with its end; a direct link is a bold edge labelled in its
// middle with both ends. Internal networks are dashed.
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
	if len(t.Networks) > 0 && len(t.Containers) > 1 {
		// Containers side by side below the host, so that direct links
		// run between them rather than up past the bridges.
		b.WriteString("\t{ rank=same;")
		for _, c := range t.Containers {
			b.WriteString(" " + dotID("container", c.Name) + ";")
		}
		b.WriteString(" }\n")
	}
	for _, l := range t.Links {
		if l.Direct() {
			// Both ends in the middle: end labels crowd on a short,
			// level edge between two neighbours.
			fmt.Fprintf(&b, "\t%s -- %s [label=%s, style=bold];\n", dotID("container", l.B.Container), dotID("container", l.A.Container),
				dotQuote(l.B.Container+": "+l.B.label(), l.A.Container+": "+l.A.label()))
			continue
		}
		style := ""
		if n := t.network(l.Network); n != nil && n.Internal {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "\t%s -- %s [label=%s, headlabel=%s%s];\n", dotID("network", l.Network), dotID("container", l.A.Container),
			dotQuote(l.B.Ifname), dotQuote(l.A.lines()...), style)
	}
	b.WriteString("}\n")
	return b.String()
}

// lines are an end's name and, when it has one, its address.
func (e End) lines() []string {
	if e.Addr.IsValid() {
		return []string{e.Ifname, e.Addr.String()}
	}
	return []string{e.Ifname}
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
