// Package script renders the steps of a plan as the shell commands a
// person would type to make the same change by hand: `ip netns add`,
// `ip link add ... type veth peer name ... netns ...`, `ip addr add`,
// `ip route add default via`, `sysctl -w`, files under /etc/netns, and
// `nft` for the firewall. It is what `cnet --dry-run` prints.
//
// The commands come from the same steps the engine runs, so what is
// printed is what cnet would do. It is pure: it renders text and runs
// nothing.
//
// cnet marks what it creates (link aliases `cnet/ID/...`, a first line in
// each /etc/netns file) so that it can tell its own objects from others'.
// The commands leave the marks out: what they build belongs to whoever
// runs them, and cnet will neither adopt nor remove it.
package script

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
)

// Step is one step of a plan as shell commands.
type Step struct {
	Kind   string `json:"kind"`
	Action string `json:"action"`
	// Comment says what the step does, in words.
	Comment string `json:"comment"`
	// Commands are complete shell commands, in order. A command may span
	// lines (a here-document feeding `nft -f -` or a file).
	Commands []string `json:"commands"`
}

// Env is what rendering needs beyond the steps.
type Env struct {
	// FilesDir is where per-container files go (/etc/netns).
	FilesDir string
	// Marker is the first line of the files cnet writes; it is left out.
	Marker string
	// Firewall is `table inet cnet` as it is once the operation is done,
	// for a firewall step.
	Firewall firewall.Ruleset
	// DNS describes what cnet's name server would do, for a dns step:
	// it has no ip or nft equivalent.
	DNS []string
}

// Render returns the commands of each step.
func Render(steps []model.Step, env Env) []Step {
	fresh := map[string]bool{} // namespaces this plan creates
	for _, st := range steps {
		if st.Kind == model.KindNetns && st.Action == model.Add {
			fresh[st.Netns.Name] = true
		}
	}
	out := make([]Step, 0, len(steps))
	for _, st := range steps {
		out = append(out, render(st, env, fresh))
	}
	return out
}

func render(st model.Step, env Env, fresh map[string]bool) Step {
	s := Step{Kind: string(st.Kind), Action: string(st.Action), Commands: []string{}}
	add := st.Action != model.Del
	switch st.Kind {
	case model.KindNetns:
		n := st.Netns.Name
		if add {
			s.Comment = fmt.Sprintf("the container %s: a network namespace bound at /run/netns/%s, with lo up", n, n)
			s.Commands = append(s.Commands, "ip netns add "+Quote(n), ip(n, "link set lo up"))
			if st.Netns.Forwarding {
				s.Comment += ", routing between its interfaces"
				s.Commands = append(s.Commands, "ip netns exec "+Quote(n)+" sysctl -w net.ipv4.ip_forward=1")
			}
		} else {
			s.Comment = fmt.Sprintf("the namespace of %s goes, and its veths with it", n)
			if len(st.Netns.Guards) > 0 {
				s.Comment += ", after their anti-spoofing entries"
			}
			s.Commands = append(guards(st.Netns.Guards, false), "ip netns del "+Quote(n))
		}
	case model.KindBridge:
		b := st.Bridge
		if add {
			s.Comment = fmt.Sprintf("the network's switch: bridge %s holding the gateway %s; route_localnet lets ports published on 127.0.0.1 through", b.Name, b.Gateway)
			s.Commands = append(s.Commands,
				fmt.Sprintf("ip link add %s address %s mtu %d type bridge", Quote(b.Name), names.MAC(b.Gateway.Addr()), b.MTU),
				fmt.Sprintf("ip addr add %s dev %s", b.Gateway, Quote(b.Name)),
				fmt.Sprintf("ip link set %s up", Quote(b.Name)),
				"sysctl -w "+Quote(sysctlKey("net.ipv4.conf", b.Name, "route_localnet")+"=1"))
		} else {
			s.Comment = fmt.Sprintf("the bridge %s goes, with its gateway address", b.Name)
			s.Commands = append(s.Commands, "ip link del "+Quote(b.Name))
		}
	case model.KindEndpoint:
		s.Comment, s.Commands = endpoint(st.Endpoint, add, fresh)
	case model.KindEndpoints: // Del only
		// cnet deletes the batch with one request through an interface
		// group numbered beyond what ip accepts; one by one has the same
		// result.
		var hosts []string
		var gs []model.GuardSpec
		for i := range st.Endpoints {
			hosts = append(hosts, st.Endpoints[i].HostIf)
			gs = append(gs, st.Endpoints[i].Guard())
		}
		s.Commands = append(s.Commands, guards(gs, false)...)
		for _, h := range hosts {
			s.Commands = append(s.Commands, "ip link del "+Quote(h))
		}
		s.Comment = fmt.Sprintf("the veth pairs of %d endpoint(s) go in one kernel batch, after their anti-spoofing entries: %s", len(hosts), strings.Join(hosts, ", "))
	case model.KindNamespaces: // Del only
		var ns []string
		var gs []model.GuardSpec
		for _, n := range st.Namespaces {
			ns = append(ns, n.Name)
			gs = append(gs, n.Guards...)
		}
		s.Commands = append(s.Commands, guards(gs, false)...)
		for _, n := range ns {
			s.Commands = append(s.Commands, "ip netns del "+Quote(n))
		}
		s.Comment = fmt.Sprintf("the namespaces of %s go, and their veths with them", strings.Join(ns, ", "))
		if len(gs) > 0 {
			s.Comment += ", after their anti-spoofing entries"
		}
	case model.KindRoute:
		r := st.Route
		if r.Dst.IsValid() {
			if add {
				s.Comment = fmt.Sprintf("a static route in %s: %s through %s", r.Netns, r.Dst, r.Gateway)
				s.Commands = append(s.Commands, ip(r.Netns, fmt.Sprintf("route replace %s via %s", r.Dst, r.Gateway)))
			} else {
				s.Comment = fmt.Sprintf("the static route to %s in %s goes (the kernel drops it with the interface that reached %s)", r.Dst, r.Netns, r.Gateway)
				s.Commands = append(s.Commands, ip(r.Netns, fmt.Sprintf("route del %s via %s", r.Dst, r.Gateway))+" 2>/dev/null || true")
			}
			break
		}
		if add {
			s.Comment = fmt.Sprintf("the default route of %s moves to %s", r.Netns, r.Dev)
			s.Commands = append(s.Commands, ip(r.Netns, fmt.Sprintf("route replace default via %s dev %s src %s", r.Gateway, Quote(r.Dev), r.Src)))
		} else {
			s.Comment = fmt.Sprintf("the default route of %s through %s goes", r.Netns, r.Dev)
			s.Commands = append(s.Commands, ip(r.Netns, "route del default dev "+Quote(r.Dev)))
		}
	case model.KindFiles:
		s.Comment, s.Commands = files(st, env)
	case model.KindFirewall:
		if env.Firewall.Empty() {
			s.Comment = "no network is left: table inet cnet and table bridge cnet go"
		} else {
			s.Comment = "table inet cnet and table bridge cnet, rebuilt whole in one atomic batch: NAT for the subnets, isolation between networks, published ports, and anti-spoofing at every endpoint's bridge port"
		}
		s.Commands = append(s.Commands, "nft -f - "+heredoc(firewall.ReplaceText(env.Firewall)))
	case model.KindForwarding:
		s.Comment = "forward packets between interfaces, so containers reach beyond the host"
		s.Commands = append(s.Commands, "sysctl -w net.ipv4.ip_forward=1")
	case model.KindPorts:
		s.Comment, s.Commands = ports(st.Ports, add)
	case model.KindHairpin:
		state := "off"
		if add {
			state = "on"
			s.Comment = fmt.Sprintf("hairpin on %s, so the container reaches its own published ports through the host", st.HostIf)
		} else {
			s.Comment = fmt.Sprintf("hairpin off on %s: no port is published any more", st.HostIf)
		}
		s.Commands = append(s.Commands, fmt.Sprintf("bridge link set dev %s hairpin %s", Quote(st.HostIf), state))
	case model.KindLink:
		s.Comment, s.Commands = direct(st.Link, add)
	case model.KindDNS:
		s.Comment = "cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent"
		for _, line := range env.DNS {
			s.Commands = append(s.Commands, "# "+line)
		}
	default:
		s.Comment = "a step this cnet cannot render"
		s.Commands = append(s.Commands, fmt.Sprintf("# %s %s", st.Action, st.Kind))
	}
	return s
}

// endpoint renders a veth pair: the host end on the bridge, the container
// end born inside the namespace with its address (and maybe the default
// route). The kernel deletes both ends together.
func endpoint(ep *model.EndpointSpec, add bool, fresh map[string]bool) (string, []string) {
	if !add {
		return fmt.Sprintf("the veth pair %s - %s goes (deleting one end deletes both), with its anti-spoofing entry", ep.HostIf, ep.ContainerIf),
			append(guards([]model.GuardSpec{ep.Guard()}, false), "ip link del "+Quote(ep.HostIf))
	}
	mac := names.MAC(ep.Addr.Addr()).String()
	if ep.MAC != "" {
		mac = ep.MAC
	}
	cmds := []string{
		fmt.Sprintf("ip link add %s mtu %d type veth peer name %s address %s mtu %d netns %s",
			Quote(ep.HostIf), ep.MTU, Quote(ep.ContainerIf), mac, ep.MTU, Quote(ep.Netns)),
		// A bridge port needs no address: the host end comes up with IPv6 off.
		"sysctl -w " + Quote(sysctlKey("net.ipv6.conf", ep.HostIf, "disable_ipv6")+"=1"),
		fmt.Sprintf("ip link set %s master %s", Quote(ep.HostIf), Quote(ep.Bridge)),
		fmt.Sprintf("ip link set %s up", Quote(ep.HostIf)),
	}
	if ep.Hairpin {
		cmds = append(cmds, fmt.Sprintf("bridge link set dev %s hairpin on", Quote(ep.HostIf)))
	}
	cmds = append(cmds,
		ip(ep.Netns, fmt.Sprintf("addr add %s dev %s", ep.Addr, Quote(ep.ContainerIf))),
		ip(ep.Netns, fmt.Sprintf("link set %s up", Quote(ep.ContainerIf))))
	if ep.DefaultRoute {
		verb := "replace" // the namespace may have a default route of its own
		if fresh[ep.Netns] {
			verb = "add"
		}
		cmds = append(cmds, ip(ep.Netns, fmt.Sprintf("route %s default via %s dev %s src %s", verb, ep.Gateway, Quote(ep.ContainerIf), ep.Addr.Addr())))
	}
	if ep.Egress > 0 {
		cmds = append(cmds, tbf(ep.Netns, ep.ContainerIf, ep.Egress))
	}
	cmds = append(cmds, guards([]model.GuardSpec{ep.Guard()}, true)...)
	return fmt.Sprintf("veth pair %s (host end, on %s) - %s (inside %s) with %s; frames from %s must carry %s's MAC and address",
		ep.HostIf, ep.Bridge, ep.ContainerIf, ep.Netns, ep.Addr, ep.HostIf, ep.ContainerIf), cmds
}

// guards renders anti-spoofing elements of table bridge cnet, added or
// deleted in one batch.
func guards(gs []model.GuardSpec, add bool) []string {
	lines := firewall.GuardsText(gs, add)
	if len(lines) == 0 {
		return nil
	}
	return []string{"nft -f - " + heredoc(strings.Join(lines, "\n")+"\n")}
}

func files(st model.Step, env Env) (string, []string) {
	name := st.Files.Name
	dir := strings.TrimSuffix(env.FilesDir, "/") + "/" + name
	if st.Action == model.Del {
		return fmt.Sprintf("the files of %s go (%s)", name, dir), []string{
			fmt.Sprintf("rm -f %s %s", Quote(dir+"/resolv.conf"), Quote(dir+"/hosts")),
			"rmdir --ignore-fail-on-non-empty " + Quote(dir),
		}
	}
	unmark := func(s string) string { return strings.TrimPrefix(s, env.Marker+"\n") }
	return fmt.Sprintf("resolv.conf and hosts of %s, which ip netns exec and cnet exec mount over /etc", name), []string{
		"mkdir -p " + Quote(dir),
		"cat > " + Quote(dir+"/resolv.conf") + " " + heredoc(unmark(st.Files.Resolv)),
		"cat > " + Quote(dir+"/hosts") + " " + heredoc(unmark(st.Files.Hosts)),
	}
}

// ports renders DNAT map elements, added or deleted in one batch, then
// the connection-tracking cleanup (conntrack exits 1 when no entry
// matched, which is not a failure).
func ports(ps []model.PortElem, add bool) (string, []string) {
	lines := firewall.PortsText(ps, add)
	var cmds []string
	if len(lines) == 1 {
		cmds = append(cmds, "nft "+lines[0])
	} else {
		cmds = append(cmds, "nft -f - "+heredoc(strings.Join(lines, "\n")+"\n"))
	}
	var what []string
	for _, p := range ps {
		what = append(what, fmt.Sprintf("%s:%d->%s:%d/%s", p.HostIP, p.HostPort, p.Addr, p.Port, p.Proto))
		ct := fmt.Sprintf("conntrack -D -p %s --orig-port-dst %d", p.Proto, p.HostPort)
		switch {
		case !add:
			ct += " --reply-src " + p.Addr.String()
		case p.HostIP != netip.IPv4Unspecified():
			ct += " --orig-dst " + p.HostIP.String()
		}
		cmds = append(cmds, ct+" 2>/dev/null || true")
	}
	if add {
		return "publish " + strings.Join(what, ", ") + "; stale connection-tracking entries of those host ports go", cmds
	}
	return "unpublish " + strings.Join(what, ", ") + "; the connections they carried are forgotten", cmds
}

// sysctlKey names a per-interface sysctl. An interface name with a dot
// needs the slash form, where dots are part of names.
func sysctlKey(prefix, ifname, leaf string) string {
	if strings.Contains(ifname, ".") {
		return strings.ReplaceAll(prefix, ".", "/") + "/" + ifname + "/" + leaf
	}
	return prefix + "." + ifname + "." + leaf
}

// ip runs an ip command inside a namespace: by name (`ip -n NAME`, which
// is `ip netns exec NAME ip`), or by path for namespaces outside
// /run/netns.
func ip(netns, args string) string {
	if strings.Contains(netns, "/") {
		return "nsenter --net=" + Quote(netns) + " ip " + args
	}
	return "ip -n " + Quote(netns) + " " + args
}

// heredoc returns a here-document holding text, with a delimiter that
// does not occur in it. Quoting the delimiter keeps the shell from
// expanding anything inside.
func heredoc(text string) string {
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	delim := "EOF"
	for strings.Contains("\n"+text, "\n"+delim+"\n") {
		delim += "_"
	}
	return "<<'" + delim + "'\n" + text + delim
}

// plain reports whether s is one shell word as it stands: not empty, and
// only letters, digits and _./:=@%+,-
func plain(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("_./:=@%+,-", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// Quote returns s as one shell word.
func Quote(s string) string {
	if plain(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each word and joins them with spaces.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// Write prints steps as a script for `sh -e`: title and notes as comments
// first, then each step's comment and commands.
func Write(w io.Writer, title string, notes []string, steps []Step) error {
	var b strings.Builder
	b.WriteString("#!/bin/sh -e\n")
	for _, line := range strings.Split(title, "\n") {
		b.WriteString("# " + line + "\n")
	}
	b.WriteString("# (dry run: nothing was changed; cnet's ownership marks are left out)\n")
	for _, n := range notes {
		b.WriteString("# note: " + n + "\n")
	}
	if len(steps) == 0 {
		b.WriteString("\n# nothing to do\n")
	}
	for _, s := range steps {
		fmt.Fprintf(&b, "\n# %s %s: %s\n", s.Action, s.Kind, s.Comment)
		for _, c := range s.Commands {
			b.WriteString(c + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// direct renders a direct link: a veth pair with one end born in each
// container, no bridge.
func direct(l *model.LinkSpec, add bool) (string, []string) {
	a, b := l.A, l.B
	if !add {
		return fmt.Sprintf("the direct link %s:%s - %s:%s goes (deleting one end deletes both)", a.Netns, a.Interface, b.Netns, b.Interface),
			[]string{ip(a.Netns, "link del "+Quote(a.Interface))}
	}
	var cmds []string
	macA, macB := "", ""
	if a.Addr.IsValid() { // as endpoints: the MAC follows the address
		macA, macB = " address "+names.MAC(a.Addr.Addr()).String(), " address "+names.MAC(b.Addr.Addr()).String()
	}
	if strings.Contains(a.Netns, "/") || strings.Contains(b.Netns, "/") {
		cmds = append(cmds, fmt.Sprintf("nsenter --net=%s ip link add %s%s mtu %d type veth peer name %s%s mtu %d netns %s",
			Quote(nsPath(a.Netns)), Quote(a.Interface), macA, l.MTU, Quote(b.Interface), macB, l.MTU, Quote(nsPath(b.Netns))))
	} else {
		cmds = append(cmds, ip(a.Netns, fmt.Sprintf("link add %s%s mtu %d type veth peer name %s%s mtu %d netns %s",
			Quote(a.Interface), macA, l.MTU, Quote(b.Interface), macB, l.MTU, Quote(b.Netns))))
	}
	for _, e := range []model.LinkEndSpec{a, b} {
		if e.Addr.IsValid() {
			cmds = append(cmds, ip(e.Netns, fmt.Sprintf("addr add %s dev %s", e.Addr, Quote(e.Interface))))
		}
		cmds = append(cmds, ip(e.Netns, fmt.Sprintf("link set %s up", Quote(e.Interface))))
		if e.Egress > 0 {
			cmds = append(cmds, tbf(e.Netns, e.Interface, e.Egress))
		}
	}
	return fmt.Sprintf("a direct link, no bridge: %s in %s - %s in %s", a.Interface, a.Netns, b.Interface, b.Netns), cmds
}

// nsPath is a namespace's path for nsenter and `netns` arguments.
func nsPath(ns string) string {
	if strings.Contains(ns, "/") {
		return ns
	}
	return "/run/netns/" + ns
}

// tbf renders the token bucket that limits what an interface sends, as
// cnet sets it: a burst of 10 ms at the rate (at least 64 KiB) and 50 ms
// of queue.
func tbf(netns, ifname string, rate uint64) string {
	burst := max(rate/8/100, 64<<10)
	return tc(netns, fmt.Sprintf("qdisc replace dev %s root handle 1: tbf rate %dbit burst %d latency 50ms", Quote(ifname), rate, burst))
}

func tc(netns, args string) string {
	if strings.Contains(netns, "/") {
		return "nsenter --net=" + Quote(netns) + " tc " + args
	}
	return "tc -n " + Quote(netns) + " " + args
}
