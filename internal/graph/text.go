package graph

import (
	"fmt"
	"strings"
)

// Width is how wide TextOf draws before it starts a new row of
// containers under the same bridge.
const Width = 100

const indent = 2

// TextOf draws t for a terminal, in ASCII. Each network is a bridge in
// the host, drawn as a bus; each of its containers hangs from it by a
// vertical line, one veth pair, with the host end's name above and the
// container end's name and address below:
//
//	network seed: bridge cont-br0, subnet 172.18.0.0/24, gateway 172.18.0.1, NAT, DNS
//
//	  [host] bridge cont-br0 172.18.0.1/24
//	  ==+======================+=======================
//	    |                      |
//	    | veth1a2b3c4          | veth9f8e7d6
//	    |                      |
//	    | eth0 172.18.0.2/24   | eth0 172.18.0.3/24
//	  +-+--------------------+ +-+--------------------+
//	  | container-1          | | container-2          |
//	  | default via 172.18.0.1 ...
//
// Direct links between two containers follow, each drawn as two boxes
// joined by a line.
func TextOf(t Topology) string {
	var b strings.Builder
	attached := map[string]bool{}
	for _, l := range t.Links {
		attached[l.A.Container] = true
		attached[l.B.Container] = true
	}
	onBridge := false
	for _, n := range t.Networks {
		var cols []column
		for _, l := range t.Links {
			if l.Network == n.Name {
				cols = append(cols, newColumn(l.B.Ifname, l.A.label(), t.boxLines(l.A)))
			}
		}
		onBridge = onBridge || len(cols) > 0
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "network %s: bridge %s, subnet %s, gateway %s, %s\n\n", n.Name, n.Bridge, n.Subnet, n.Gateway, n.flags())
		title := fmt.Sprintf("[host] bridge %s %s/%d", n.Bridge, n.Gateway, n.Subnet.Bits())
		if len(cols) == 0 {
			drawBus(&b, title+"  (no containers)", nil)
			continue
		}
		for i, row := range rows(cols) {
			if i > 0 {
				b.WriteString("\n")
				title = fmt.Sprintf("[host] bridge %s (continued)", n.Bridge)
			}
			drawBus(&b, title, row)
		}
	}
	var direct []Link
	for _, l := range t.Links {
		if l.Direct() {
			direct = append(direct, l)
		}
	}
	if len(direct) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("direct links: veth pairs between two containers, no bridge\n")
		for _, l := range direct {
			b.WriteString("\n")
			drawDirect(&b, l, t.boxLines(l.A), t.boxLines(l.B))
		}
	}
	var alone []string
	for _, c := range t.Containers {
		if !attached[c.Name] {
			alone = append(alone, c.Name)
		}
	}
	if len(alone) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "containers on no network: %s\n", strings.Join(alone, ", "))
	}
	if b.Len() == 0 {
		return "nothing to draw: no networks and no containers\n"
	}
	if onBridge {
		b.WriteString("\neach vertical line is a veth pair: its host end on the bridge above, its container end below\n")
	}
	return b.String()
}

// column is one container under a bridge.
type column struct {
	top, bottom string   // host end; container end and address
	box         []string // the container's box
	width       int      // of the box, borders included
}

func newColumn(top, bottom string, box []string) column {
	w := max(len(top), len(bottom))
	for _, l := range box {
		w = max(w, len(l))
	}
	return column{top: top, bottom: bottom, box: box, width: w + 4}
}

const gap = 2

// rows splits columns into rows that fit in Width.
func rows(cols []column) [][]column {
	var out [][]column
	var row []column
	x := indent
	for _, c := range cols {
		if len(row) > 0 && x+c.width > Width {
			out = append(out, row)
			row, x = nil, indent
		}
		row = append(row, c)
		x += c.width + gap
	}
	return append(out, row)
}

// canvas is a grid of characters that grows as it is drawn on.
type canvas [][]byte

func (c *canvas) put(x, y int, s string) {
	for len(*c) <= y {
		*c = append(*c, nil)
	}
	row := (*c)[y]
	for len(row) < x+len(s) {
		row = append(row, ' ')
	}
	copy(row[x:], s)
	(*c)[y] = row
}

func (c canvas) write(b *strings.Builder) {
	for _, row := range c {
		b.WriteString(strings.TrimRight(string(row), " ") + "\n")
	}
}

// box draws lines in a box whose top-left corner is at x, y.
func (c *canvas) box(x, y, width int, lines []string) {
	edge := "+" + strings.Repeat("-", width-2) + "+"
	c.put(x, y, edge)
	for i, l := range lines {
		c.put(x, y+1+i, "| "+l+strings.Repeat(" ", width-4-len(l))+" |")
	}
	c.put(x, y+1+len(lines), edge)
}

// drawBus draws a bridge as a bus with its columns hanging from it.
func drawBus(b *strings.Builder, title string, cols []column) {
	var c canvas
	c.put(indent, 0, title)
	width := 0
	for _, col := range cols {
		width += col.width + gap
	}
	c.put(indent, 1, strings.Repeat("=", max(width, 10))) // a little past the last column: the bus goes on
	x := indent
	for _, col := range cols {
		line := x + 2
		c.put(line, 1, "+")
		for y, label := range []string{"", col.top, "", col.bottom} {
			if label != "" {
				label = " " + label
			}
			c.put(line, 2+y, "|"+label)
		}
		c.box(x, 6, col.width, col.box)
		c.put(line, 6, "+")
		x += col.width + gap
	}
	c.write(b)
}

// drawDirect draws two containers joined by a veth pair, each end's name
// and address next to its container.
func drawDirect(b *strings.Builder, l Link, boxA, boxB []string) {
	wa, wb := boxWidth(boxA), boxWidth(boxB)
	la, lb := l.A.label(), l.B.label()
	span := max(24, len(la)+len(lb)+6)
	xa, xb := indent, indent+wa+span
	var c canvas
	c.box(xa, 0, wa, boxA)
	c.box(xb, 0, wb, boxB)
	c.put(xa+wa+1, 0, la)
	c.put(xb-1-len(lb), 0, lb)
	c.put(xa+wa-1, 1, "+"+strings.Repeat("-", xb-xa-wa)+"+")
	c.write(b)
}

func boxWidth(lines []string) int {
	w := 0
	for _, l := range lines {
		w = max(w, len(l))
	}
	return w + 4
}
