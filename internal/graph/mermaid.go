package graph

import (
	"fmt"
	"strings"
)

// MermaidOf draws t as a Mermaid flowchart: the bridges in a "host"
// subgraph, containers as rounded nodes, one edge per veth pair labelled
// with both ends. Internal networks are dashed.
func MermaidOf(t Topology) string {
	var b strings.Builder
	b.WriteString("flowchart TB\n")
	ids := map[string]string{}
	var internal []string
	if len(t.Networks) > 0 {
		b.WriteString("  subgraph host[\"host\"]\n")
		for i, n := range t.Networks {
			id := fmt.Sprintf("n%d", i)
			ids["network/"+n.Name] = id
			fmt.Fprintf(&b, "    %s[%s]\n", id, mermaidQuote(n.Bridge+" (bridge)", "network "+n.Name, fmt.Sprintf("%s/%d", n.Gateway, n.Subnet.Bits()), n.flags()))
			if n.Internal {
				internal = append(internal, id)
			}
		}
		b.WriteString("  end\n")
	}
	for i, c := range t.Containers {
		id := fmt.Sprintf("c%d", i)
		ids["container/"+c.Name] = id
		lines := []string{c.Name}
		for _, l := range t.Links {
			for _, e := range []End{l.A, l.B} {
				if e.Container == c.Name && e.Via.IsValid() {
					lines = t.boxLines(e)
				}
			}
		}
		fmt.Fprintf(&b, "  %s(%s)\n", id, mermaidQuote(lines...))
	}
	for _, l := range t.Links {
		from := ids["network/"+l.Network]
		if l.Direct() {
			from = ids["container/"+l.B.Container]
		}
		to := ids["container/"+l.A.Container]
		if from == "" || to == "" {
			continue // an end the topology does not list
		}
		fmt.Fprintf(&b, "  %s ---|%s| %s\n", from, mermaidQuote(l.B.label()+" <-> "+l.A.label()), to)
	}
	if len(internal) > 0 {
		b.WriteString("  classDef internal stroke-dasharray: 5 5\n")
		fmt.Fprintf(&b, "  class %s internal\n", strings.Join(internal, ","))
	}
	return b.String()
}

// mermaidQuote is a quoted Mermaid label of lines. Characters that
// Mermaid would read as markup are written as its entity codes.
func mermaidQuote(lines ...string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "&", "#amp;")
	q := make([]string, len(lines))
	for i, l := range lines {
		q[i] = r.Replace(l)
	}
	return `"` + strings.Join(q, "<br/>") + `"`
}
