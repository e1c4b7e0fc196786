package main

import (
	"fmt"
	"strings"
	"time"
)

// The published-ports, name-server, CNI and soak sections of the report.

func pct(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func ratio[T ~int64](a, b T) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("x%.2f", float64(a)/float64(b))
}

// ok reports whether a path was measured.
func ok(p *PathResult) bool { return p != nil && p.Err == "" }

// medians are a path's iperf3, wrk and wrk-close medians.
func (p *PathResult) medians() [3]float64 {
	return [3]float64{p.MedianGbps(), p.MedianRPS(), p.MedianCloseRPS()}
}

// over divides a by b figure by figure; a figure over nothing is 0,
// which pct shows as "-".
func over(a, b [3]float64) (q [3]float64) {
	for i := range a {
		if b[i] > 0 {
			q[i] = a[i] / b[i]
		}
	}
	return q
}

// pcts renders a as percentages of b: "iperf3 / wrk / wrk close".
func pcts(a, b [3]float64) string {
	return fmt.Sprintf("%s / %s / %s", pct(a[0], b[0]), pct(a[1], b[1]), pct(a[2], b[2]))
}

func (r *Results) portsMarkdown(b *strings.Builder, note func(what, msg string) string) {
	p := r.Ports
	if p == nil {
		return
	}
	fmt.Fprintf(b, "\n## Published ports\n\n")
	fmt.Fprintf(b, "A LAN namespace (%s) reaches a server container (iperf3 and echo-server) through ports published on "+
		"the host's address %s, and directly at an address on a bridge, without NAT. `iperf3 -t %d`, `wrk -t2 -c32 -d%ds` "+
		"(keep-alive) and the same wrk with `Connection: close` (a new connection, so a new NAT lookup, per request); "+
		"median of %d runs, direct and published alternating. First with one mapping per service, then with %d mappings "+
		"present (fillers added in batches of %d, then one more). Adding one mapping (host port %d) is timed %d times "+
		"with none present and with the count reached less one. **cnet**: `cnet publish` on a cnet container; its direct "+
		"path is a plain bridge beside it, since cnet's firewall drops unpublished traffic from outside. **portmap**: the "+
		"container attached by bridge + host-local, then the CNI `portmap` plugin (iptables) chained after it with "+
		"bridge's result as prevResult and the mappings in runtimeConfig, one ADD per attachment; its direct path is the "+
		"same container's address. Each tool may spend %s adding mappings.\n\n",
		lanClient, lanHost, p.Seconds, p.Seconds, p.Reps, p.Mappings, fillBatch, probePort, p.AddReps, p.Budget)
	if p.Err != "" {
		fmt.Fprintf(b, "%s\n", note("Not measured", p.Err))
		return
	}
	var rows [][]string
	for _, t := range p.Tools {
		if t.Err != "" {
			rows = append(rows, []string{t.Name, note("failed", t.Name+": "+t.Err)})
			continue
		}
		for i, label := range []string{"1 per service", fmt.Sprint(t.Reached)} {
			d, pub := t.Direct[i], t.Published[i]
			if d == nil || pub == nil {
				continue
			}
			if pub.Err != "" || d.Err != "" {
				rows = append(rows, []string{t.Name, label, note("failed", t.Name+": "+pub.Err+d.Err)})
				continue
			}
			rows = append(rows, []string{t.Name, label,
				fmt.Sprintf("%.2f / %.2f Gbit/s", pub.MedianGbps(), d.MedianGbps()), pct(pub.MedianGbps(), d.MedianGbps()),
				fmt.Sprintf("%.0f / %.0f", pub.MedianRPS(), d.MedianRPS()), pct(pub.MedianRPS(), d.MedianRPS()),
				fmt.Sprintf("%.0f / %.0f", pub.MedianCloseRPS(), d.MedianCloseRPS()), pct(pub.MedianCloseRPS(), d.MedianCloseRPS())})
		}
	}
	b.WriteString(table([]string{"tool", "mappings", "iperf3 published / direct", "%", "wrk requests/s published / direct", "%",
		"wrk, connection per request", "%"}, rows))
	b.WriteString("\n")
	rows = nil
	for _, t := range p.Tools {
		if t.Err != "" {
			continue
		}
		many := t.Published[1]
		one := t.Published[0]
		reached := fmt.Sprint(t.Reached)
		if t.Cut {
			reached += fmt.Sprintf(" (budget spent; %d asked)", p.Mappings)
		}
		var keep, keepNorm string
		if ok(one) && ok(many) {
			keep = pcts(many.medians(), one.medians())
			// The same, each stage over its own direct runs: what the
			// mappings cost, with the machine's drift between the two
			// stages taken out.
			if d1, dm := t.Direct[0], t.Direct[1]; ok(d1) && ok(dm) {
				keepNorm = pcts(over(many.medians(), dm.medians()), over(one.medians(), d1.medians()))
			}
		}
		rows = append(rows, []string{t.Name, reached, t.FillTime.Round(time.Second).String(),
			ms(t.AddFirst.Median), ms(t.AddMany.Median), ratio(t.AddMany.Median, t.AddFirst.Median), keep, keepNorm})
	}
	if len(rows) > 0 {
		b.WriteString(table([]string{"tool", "mappings reached", "adding them", "add 1st (median)", "add last (median)", "ratio",
			"published at many / at 1: iperf3 / wrk / wrk close", "the same, each over its direct"}, rows))
		b.WriteString("\nTargets for cnet: published ≥ 95% of direct; with many mappings ≥ 95% of the one-mapping figures; adding the last mapping ≤ 2x the first. " +
			"The last column divides each stage's published figure by its own direct one before comparing, which takes out a change in the machine's speed between the two stages.\n")
	}
}

func (r *Results) dnsMarkdown(b *strings.Builder, note func(what, msg string) string) {
	d := r.DNS
	if d == nil {
		return
	}
	fmt.Fprintf(b, "\n## Name server\n\n")
	fmt.Fprintf(b, "Each server holds the same %d container names on one network and answers on its gateway, port 53: "+
		"**cnet** (`cnet __dns DIR` started from a snapshot, as cnet starts it), **aardvark-dns** (netavark's per-network "+
		"config file), **dnsmasq** (`--addn-hosts` file). A client container on the network runs `dnsperf -q 100 -l %d` "+
		"over UDP with an A query for every name, shuffled, looped; every answer must be NOERROR, and a sample is checked "+
		"for the right address first. Full load: as fast as answers come; p99 from dnsperf's per-query latencies. "+
		"Fixed rate: `-Q %d`. Median of %d runs, the servers taking turns; RSS after the last run.\n\n",
		d.Records, d.Seconds, d.Rate, d.Reps)
	if d.Err != "" {
		fmt.Fprintf(b, "%s\n", note("Not measured", d.Err))
		return
	}
	var aard *DNSServerResult
	for _, s := range d.Servers {
		if s.Name == "aardvark-dns" && s.Err == "" && len(s.QPS) > 0 {
			aard = s
		}
	}
	var rows [][]string
	for _, s := range d.Servers {
		if s.Err != "" {
			rows = append(rows, []string{s.Name, note("failed", s.Name+": "+s.Err)})
			continue
		}
		row := []string{s.Name, fmt.Sprintf("%.0f", s.MedianQPS()), "", secs(s.MedianP99()), secs(s.MedianRateP99()),
			fmt.Sprint(s.Lost), mib(s.RSS)}
		if aard != nil {
			row[2] = pct(s.MedianQPS(), aard.MedianQPS())
		}
		rows = append(rows, row)
	}
	b.WriteString(table([]string{"server", "queries/s", "% of aardvark-dns", "p99 at full load", fmt.Sprintf("p99 at %d/s", d.Rate),
		"lost", fmt.Sprintf("RSS with %d records", d.Records)}, rows))
	b.WriteString("\nGoal: cnet's queries/s ≥ aardvark-dns's, at a p99 no higher.\n")
}

var cniDescriptions = map[string]string{
	"cnet":              "the cnet binary with `CNI_COMMAND`, `\"type\": \"cnet\"` (docs/cni.md), state in the run's cnet root",
	"bridge+host-local": "the reference `bridge` plugin with `host-local` IPAM and a default route",
	"netavark":          "`netavark setup` / `netavark teardown` with a static address and the iptables driver",
}

func (r *Results) cniMarkdown(b *strings.Builder, note func(what, msg string) string) {
	if len(r.CNI) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## CNI ADD and DEL\n\n")
	fmt.Fprintf(b, "Each plugin attaches containers 1..%d one after another to one network (a /16) and detaches them in "+
		"reverse order; only the plugin's ADD and DEL are timed: the namespace is made before (`ip netns add`) and "+
		"removed after, untimed, as a runtime does. N as in the setup table. The ratio is the ADD (DEL) median at the "+
		"largest N over the one at N=1.\n\n", r.Ns[len(r.Ns)-1])
	rows := timingRows(r.CNI, note)
	b.WriteString(table([]string{"plugin", "N", "ADD median", "ADD p95", "DEL median", "DEL p95", "ADD ratio", "DEL ratio"}, rows))
	b.WriteString("\n")
	for _, t := range r.CNI {
		fmt.Fprintf(b, "- **%s**: %s.\n", t.Name, cniDescriptions[t.Name])
	}
	b.WriteString("\nTarget: cnet fastest at every N, and its ADD ratio near 1.\n")
}

func (r *Results) soakMarkdown(b *strings.Builder, note func(what, msg string) string) {
	s := r.Soak
	if s == nil {
		return
	}
	fmt.Fprintf(b, "\n## Soak\n\n")
	fmt.Fprintf(b, "%d cycles of `cnet create soak-I --network bsoak` then `cnet rm soak-I`, one process each. "+
		"First and last are the first and last %d cycles (medians). After the first cycle and at the end: links, "+
		"namespaces, /etc/netns, `nft list table inet cnet` and `nft list table bridge cnet`, and the key count of every state bucket; anything more at "+
		"the end is a leak.\n\n", s.Cycles, s.Window)
	if s.Err != "" {
		fmt.Fprintf(b, "%s\n", note("Failed", s.Err))
	}
	if s.CreateFirst.Samples == 0 {
		return
	}
	rows := [][]string{
		{"`cnet create`", ms(s.CreateFirst.Median), ms(s.CreateLast.Median), ratio(s.CreateLast.Median, s.CreateFirst.Median)},
		{"`cnet rm`", ms(s.RmFirst.Median), ms(s.RmLast.Median), ratio(s.RmLast.Median, s.RmFirst.Median)},
		{"peak RSS of `cnet create`", mib(s.CreateRSSFirst), mib(s.CreateRSSLast), ""},
		{fmt.Sprintf("name server RSS (after the first %d cycles / at the end)", s.Window), mib(s.DNSRSSWarm), mib(s.DNSRSSLast), ratio(s.DNSRSSLast, s.DNSRSSWarm)},
		{"state.db (after cycle 1 / at the end)", size(s.DBFirst), size(s.DBLast), ""},
	}
	b.WriteString(table([]string{"figure", "first", "last", "last / first"}, rows))
	fmt.Fprintf(b, "\nThe name server's RSS after cycle 1 was %s: it grows over its first cycles to the garbage collector's working size, then stays there.\n", mib(s.DNSRSSFirst))
	fmt.Fprintf(b, "\n%d cycles took %s. ", s.Cycles, s.Elapsed.Round(time.Second))
	if len(s.Leaks) == 0 {
		b.WriteString("Leaked objects: none.\n")
	} else {
		fmt.Fprintf(b, "Leaked objects (%d):\n\n", len(s.Leaks))
		for _, l := range s.Leaks {
			fmt.Fprintf(b, "- %s\n", strings.ReplaceAll(l, "\n", "\n  "))
		}
	}
}
