package main

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
)

var toolDescriptions = map[string]string{
	"cnet-cli":   "one `cnet create NAME --network NET` process per container; `cnet rm NAME`",
	"cnet-lib":   "`Engine.CreateContainer` / `Engine.RemoveContainers` in a loop, in one process",
	"seed-ip":    "the seed tutorial's `ip` commands, one bash script per container (namespace, lo up, veth, move, address, up, master, default route, resolv.conf); `ip netns del`, `ip link del`, `rm -r`",
	"cni-bridge": "`ip netns add`, then the CNI `bridge` plugin with `host-local` IPAM and a default route (ADD); DEL, then `ip netns del`. lo stays down (a runtime would also run the `loopback` plugin) and no resolv.conf is written",
	"netavark":   "`ip netns add`, then `netavark setup` with a static address (the caller does IPAM, as podman does) and the iptables driver; `netavark teardown`, then `ip netns del`",
	"floor":      "netlink only, in process: unshare + bind mount, lo up, veth with its peer born inside, master + up, address, peer up, default route; unmount",
	"floor-cli":  "the same netlink-only work as floor, one `cnetfloor` process per container (a static Go program with nothing else linked in): the floor of a whole command on this machine, process start-up included",
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.2f s", v/1000)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// table renders a markdown table with padded columns, readable as text.
func table(header []string, rows [][]string) string {
	w := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			w[i] = max(w[i], len(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i := range header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			fmt.Fprintf(&b, " %-*s |", w[i], c)
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", w[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// Markdown renders the whole run.
func (r *Results) Markdown() string {
	var b strings.Builder
	// Failures are told in full in numbered notes below the tables.
	var notes []string
	note := func(what, msg string) string {
		notes = append(notes, msg)
		return fmt.Sprintf("%s (note %d)", what, len(notes))
	}
	fmt.Fprintf(&b, "# cnet benchmark results\n\n")
	fmt.Fprintf(&b, "Measured %s, in one run of %s on one machine:\n\n",
		r.Start.UTC().Format("2006-01-02 15:04 MST"), r.End.Sub(r.Start).Round(time.Second))
	for _, h := range r.Host {
		fmt.Fprintf(&b, "- %s\n", h)
	}

	if len(r.Tools) > 0 {
		fmt.Fprintf(&b, "\n## Setup and teardown per container\n\n")
		fmt.Fprintf(&b, "Each tool creates containers 1..%d one after another on one network (a /16), "+
			"then removes them in reverse order. N=1 is repeated create+remove on an empty network, timed before the rest with the tools taking turns round by round (the order rotating), so that drift in the machine's speed falls on all of them alike; "+
			"a larger N is the containers around it (91..110 for N=100, the last 20 for N=1000). "+
			"Growth is the median at the largest N over the median at N=1.\n\n", r.Ns[len(r.Ns)-1])
		rows := timingRows(r.Tools, note)
		b.WriteString(table([]string{"tool", "N", "setup median", "setup p95", "teardown median", "teardown p95",
			"growth setup", "growth teardown"}, rows))
		b.WriteString("\n")
		for _, t := range r.Tools {
			fmt.Fprintf(&b, "- **%s**: %s", t.Name, toolDescriptions[t.Name])
			if t.Err == "" && t.FillTime > 0 {
				fmt.Fprintf(&b, ". Containers 1..%d took %.1f s (%.0f/s)", t.Filled, t.FillTime.Seconds(),
					float64(t.Filled)/t.FillTime.Seconds())
			}
			b.WriteString(".\n")
		}
		if rows := r.comparisonRows(); len(rows) > 0 {
			fmt.Fprintf(&b, "\nSide by side, from the medians above: how many times faster cnet is than each peer "+
				"(peer median / cnet median), and how many times the floor it takes (cnet median / floor median). "+
				"The CLI is compared with whole processes (the peers run one or more processes per container, and "+
				"floor-cli is one process), the library with the in-process floor.\n\n")
			b.WriteString(table([]string{"N", "comparison", "setup", "teardown"}, rows))
		}
	}

	c := r.Cnet
	var rows [][]string
	if c.SequentialRate > 0 {
		rows = append(rows, []string{"`cnet create`, one process after another (containers 1..max above)",
			fmt.Sprintf("%.0f containers/s", c.SequentialRate)})
	}
	if c.Bulk > 0 {
		v := ""
		if c.ParallelErr != "" && len(c.ParallelRate) == 0 {
			v = note("failed", c.ParallelErr)
		} else {
			var rates []string
			for _, x := range c.ParallelRate {
				rates = append(rates, fmt.Sprintf("%.0f", x))
			}
			v = strings.Join(rates, " and ") + " containers/s (two rounds)"
			if c.ParallelErr != "" {
				v += "; then " + note("failed", c.ParallelErr)
			}
		}
		rows = append(rows, []string{fmt.Sprintf("`cnet create` of %d containers from %d parallel workers", c.Bulk, c.Workers), v})
		rows = append(rows, []string{fmt.Sprintf("one `cnet rm` naming %d containers", c.Bulk), orErr(c.RmAll, c.RmAllErr, note)})
		rows = append(rows, []string{fmt.Sprintf("`cnet network rm --force` with %d containers attached", c.Bulk), orErr(c.NetRmForce, c.NetRmErr, note)})
	}
	if c.MemErr != "" {
		rows = append(rows, []string{"memory", note("not measured", c.MemErr)})
	} else if c.RSSMax > 0 {
		rows = append(rows, []string{fmt.Sprintf("peak RSS of one `cnet create`, N=1 / N=%d", c.RSSN), mib(c.RSS1) + " / " + mib(c.RSSMax)})
		rows = append(rows, []string{fmt.Sprintf("state.db with %d containers", c.RSSN), size(c.DBBytes)})
	}
	if len(rows) > 0 {
		fmt.Fprintf(&b, "\n## cnet alone\n\n")
		b.WriteString(table([]string{"figure", "value"}, rows))
	}

	if d := r.Data; d.Err != "" || len(d.Paths) > 0 {
		fmt.Fprintf(&b, "\n## Data path\n\n")
		fmt.Fprintf(&b, "Two containers on one network: `iperf3 -c IP -t %d` (TCP) and `wrk -t2 -c32 -d%ds` against "+
			"`echo-server` (GET /echo), client in one container, server in the other; median of %d runs. "+
			"seed is the same topology built by the seed's `ip` commands; loopback is client and server in one "+
			"namespace, the ceiling.\n\n", d.Seconds, d.Seconds, d.Reps)
		if d.Err != "" {
			fmt.Fprintf(&b, "%s\n", note("Not measured", d.Err))
		} else {
			var seed *PathResult
			for _, p := range d.Paths {
				if p.Name == "seed" && p.Err == "" {
					seed = p
				}
			}
			var rows [][]string
			for _, p := range d.Paths {
				if p.Err != "" {
					rows = append(rows, []string{p.Name, note("failed", p.Name+": "+p.Err)})
					continue
				}
				g, q := p.MedianGbps(), p.MedianRPS()
				row := []string{p.Name, fmt.Sprintf("%.2f Gbit/s", g), "", fmt.Sprintf("%.0f requests/s", q), ""}
				if seed != nil {
					row[2] = fmt.Sprintf("%.0f%%", 100*g/seed.MedianGbps())
					row[4] = fmt.Sprintf("%.0f%%", 100*q/seed.MedianRPS())
				}
				rows = append(rows, row)
			}
			b.WriteString(table([]string{"path", "iperf3 TCP", "% of seed", "echo-server (wrk)", "% of seed"}, rows))
		}
	}

	r.portsMarkdown(&b, note)
	r.dnsMarkdown(&b, note)
	r.cniMarkdown(&b, note)
	r.soakMarkdown(&b, note)

	if len(notes) > 0 {
		fmt.Fprintf(&b, "\n## Notes\n\n")
		for i, n := range notes {
			fmt.Fprintf(&b, "%d. %s\n", i+1, n)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\n## Problems\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}

func orErr(d time.Duration, err string, note func(what, msg string) string) string {
	if err != "" {
		return note("failed", err)
	}
	if d == 0 {
		return "not measured"
	}
	return ms(d)
}

var toolColors = map[string]string{
	"cnet-cli":   "#1f77b4",
	"cnet-lib":   "#17becf",
	"seed-ip":    "#ff7f0e",
	"cni-bridge": "#9467bd",
	"netavark":   "#d62728",
	"floor":      "#7f7f7f",
	"floor-cli":  "#bcbd22",
}

// SVG plots the setup median against N for every tool that ran, on log
// scales.
func (r *Results) SVG() string {
	const (
		width, height          = 640, 380
		left, right, top, bott = 70, 470, 40, 320
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">Setup time per container against containers on the network</text>`+"\n", left-40)

	lo, hi := math.Inf(1), math.Inf(-1)
	for _, t := range r.Tools {
		for _, row := range t.Rows {
			v := float64(row.Setup.Median) / float64(time.Millisecond)
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	// The y range runs between steps of 1, 2 and 5 around the data.
	ylo, yhi := math.Log10(stepBelow(lo)), math.Log10(stepAbove(hi))
	if yhi-ylo < 1 {
		yhi = ylo + 1
	}
	nlo, nhi := math.Log10(float64(r.Ns[0])), math.Log10(float64(r.Ns[len(r.Ns)-1]))
	if nhi == nlo {
		nlo, nhi = nlo-0.5, nhi+0.5
	}
	x := func(n int) float64 { return left + (math.Log10(float64(n))-nlo)/(nhi-nlo)*(right-left) }
	y := func(v float64) float64 { return bott - (math.Log10(v)-ylo)/(yhi-ylo)*(bott-top) }

	// Grid and axes.
	for e := math.Floor(ylo); e <= yhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			lv := math.Log10(v)
			if lv < ylo-1e-9 || lv > yhi+1e-9 {
				continue
			}
			yy := y(v)
			stroke := "#eeeeee"
			if m == 1 {
				stroke = "#cccccc"
			}
			label := strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, yy, right, yy, stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, label)
		}
	}
	for _, n := range r.Ns {
		xx := x(n)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#cccccc"/>`+"\n", xx, top, xx, bott)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", xx, bott+16, n)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444444"/>`+"\n", left, top, right-left, bott-top)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">containers on the network, N (log scale)</text>`+"\n", (left+right)/2, bott+40)
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">setup median, ms (log scale)</text>`+"\n", (top+bott)/2)

	// One line per tool, and the legend.
	ly := top + 10
	for _, t := range r.Tools {
		color := toolColors[t.Name]
		if color == "" {
			color = "black"
		}
		label := t.Name
		if t.Err != "" {
			label += " (did not run)"
		} else {
			var pts []string
			for _, row := range t.Rows {
				v := float64(row.Setup.Median) / float64(time.Millisecond)
				if v <= 0 {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(row.N), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x(row.N), y(v), color)
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", right+15, ly, right+35, ly, color)
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3.5" fill="%s"/>`+"\n", right+25, ly, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", right+42, ly+4, label)
		ly += 20
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#666666">%s, %d cores</text>`+"\n",
		right+15, ly+6, r.Start.UTC().Format("2006-01-02"), runtime.NumCPU())
	b.WriteString("</svg>\n")
	return b.String()
}

// stepBelow and stepAbove round v down or up to 1, 2 or 5 times a power
// of ten.
func stepBelow(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{5, 2, 1} {
		if m*p <= v*(1+1e-9) {
			return m * p
		}
	}
	return p
}

func stepAbove(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func size(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// timingRows are a table's rows of per-N medians and p95s, one tool after
// another, the growth ratios on each tool's last row; a tool that did not
// run gets one row saying why.
func timingRows(tools []*ToolResult, note func(what, msg string) string) [][]string {
	var rows [][]string
	for _, t := range tools {
		if t.Err != "" {
			rows = append(rows, []string{t.Name, "-", note("did not run", t.Name+": "+t.Err)})
			continue
		}
		for i, row := range t.Rows {
			cells := []string{t.Name, fmt.Sprint(row.N), ms(row.Setup.Median), ms(row.Setup.P95),
				ms(row.Teardown.Median), ms(row.Teardown.P95), "", ""}
			if i == len(t.Rows)-1 && t.GrowthSetup > 0 {
				cells[6], cells[7] = fmt.Sprintf("x%.2f", t.GrowthSetup), fmt.Sprintf("x%.2f", t.GrowthTeardown)
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

// comparisonRows set cnet's medians against its peers' and the floors' at
// every N where both ran.
func (r *Results) comparisonRows() [][]string {
	pairs := []struct {
		cnet, other string
		faster      bool // true: other/cnet "faster"; false: cnet/other "the floor"
	}{
		{"cnet-cli", "cni-bridge", true},
		{"cnet-cli", "netavark", true},
		{"cnet-cli", "seed-ip", true},
		{"cnet-cli", "floor-cli", false},
		{"cnet-lib", "floor", false},
	}
	var rows [][]string
	for _, n := range r.Ns {
		for _, p := range pairs {
			a, b := r.row(p.cnet, n), r.row(p.other, n)
			if a == nil || b == nil {
				continue
			}
			f := func(c, o time.Duration) string {
				if c <= 0 || o <= 0 {
					return "-"
				}
				if p.faster {
					return fmt.Sprintf("x%.1f faster", float64(o)/float64(c))
				}
				return fmt.Sprintf("x%.1f the floor", float64(c)/float64(o))
			}
			what := p.cnet + " vs " + p.other
			rows = append(rows, []string{fmt.Sprint(n), what, f(a.Setup.Median, b.Setup.Median), f(a.Teardown.Median, b.Teardown.Median)})
		}
	}
	return rows
}

// row is the tool's row at N, or nil when it did not run there.
func (r *Results) row(tool string, n int) *Row {
	t := r.tool(tool)
	if t == nil || t.Err != "" {
		return nil
	}
	for i := range t.Rows {
		if t.Rows[i].N == n {
			return &t.Rows[i]
		}
	}
	return nil
}
