package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
)

// exitDropped is explain's exit status when the packet would be dropped,
// so scripts can test reachability: `cnet explain web db:5432 || ...`.
const exitDropped = 1

func (a *app) explainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain SRC DST[:PORT][/tcp|udp]",
		Short: "Explain why SRC can or cannot reach DST, hop by hop",
		Long: `Follow the first packet of a connection from SRC to DST the way the kernel
would, and say where it ends: reachable, dropped (with the cause and the
fix), or leaves (out of the host, beyond what cnet can see). Nothing is
sent and nothing is changed.

SRC  host, a container, or a namespace under /run/netns (ip netns add)
DST  a container, an IPv4 address, or host:PORT (a port published on the
     host: 127.0.0.1 from the host, the gateway from a container); with
     :PORT and /tcp (default) or /udp. A container on several networks is
     reached on a network it shares with SRC, else on its default one.

In each namespace on the way, cnet asks the kernel and reads:
  route     the route lookup there:   ip -n NS route get DST [from SRC iif IN]
  dnat      published ports:          nft list map inet cnet dnat_tcp ...
  filter    cnet's forward chain and other tables' forward chains with
            their policy (Docker sets the iptables FORWARD policy to DROP):
                                      nft list chains
  snat      masquerade of a network's traffic leaving the host
  link      the veth peer, or the bridge and the port the next hop is on:
                                      ip -n NS -d link; bridge link
  neighbour the ARP entry of the next hop: ip -n NS neigh
  sysctl    net.ipv4.ip_forward, net.bridge.bridge-nf-call-iptables
  socket    who listens on PORT there: ip netns exec NS ss -lntp
and follows the next hop into the namespace that holds it, up to 8.

Causes of a drop: isolation (networks share nothing: cnet connect),
internal (an --internal network), ip_forward (off), forward_policy
(another tool's forward chain), no_route, not_published (host:PORT, or a
container from outside), loopback_only (the service listens on 127.0.0.1),
bound_elsewhere, nothing_listening, no_neighbour, link_down, hairpin_off,
martian, loopback_dst, hop_limit, no_network.

Exit status: 0 when reachable or when it leaves the host, 1 when dropped
(and on other failures, which print "cnet: ..." on stderr), 2 for a bad
SRC or DST, 3 when SRC or DST does not exist.`,
		Example: `  cnet explain web db:5432          why can't web reach db's port 5432?
  cnet explain host host:8080       does the published port 8080 work from the host?
  cnet explain web host:8080        ... and from web, through its gateway?
  cnet explain web 1.1.1.1:53/udp   does web reach the outside?
  cnet explain web db --json        the same as JSON: hops, verdict, cause, fix`,
		GroupID: "maintenance",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			r, err := a.eng.Explain(argv[0], argv[1])
			if err != nil {
				return err
			}
			if a.json {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false) // "eth0 -> veth1" stays readable
				err = enc.Encode(r)
			} else {
				err = printExplanation(os.Stdout, r)
			}
			if err == nil && r.Verdict == cnet.Dropped {
				return exitStatus(exitDropped)
			}
			return err
		},
	}
	a.addJSON(cmd)
	return cmd
}

// printExplanation renders an explanation for people: the packet, each
// hop with what happened there, then the verdict and the fixes.
func printExplanation(out io.Writer, r *cnet.Explanation) error {
	proto := r.Proto
	if proto == "" {
		proto = "ip"
	}
	o := &printer{w: out}
	o.f("%s %s -> %s", proto, r.Src, r.Dst)
	if r.Address.IsValid() && r.Address.String() != strings.Split(r.Dst, ":")[0] {
		o.f(" (%s)", r.Address)
	}
	o.ln()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	p := &printer{w: w}
	for i, h := range r.Hops {
		p.ln()
		title := h.Kind + " " + h.Namespace
		if h.Kind == "host" {
			title = "host"
		}
		if h.In != "" {
			title += ", in through " + h.In
		}
		p.f("%2d  %s\n", i+1, title)
		for _, s := range h.Steps {
			p.f("      %s\t%s\n", s.Kind, s.Text)
		}
		if err := p.flush(w); err != nil {
			return err
		}
	}
	o.ln()
	verdict := r.Verdict
	if r.Cause != "" {
		verdict += " (" + r.Cause + ")"
	}
	o.f("%s: %s\n", verdict, r.Reason)
	for i, f := range r.Fix {
		lead := "fix:"
		if i > 0 {
			lead = " or:"
		}
		o.f("%s %s\n", lead, f)
	}
	for _, n := range r.Notes {
		o.f("note: %s\n", n)
	}
	if o.err != nil {
		return fmt.Errorf("write output: %w", o.err)
	}
	return nil
}
