// Package explain answers "why can't A reach B?". It walks the path the
// first packet of a connection would take, namespace by namespace, asking
// the kernel at each step what it would do (the route lookup, the links,
// the bridge, the sockets), and running cnet's firewall model and other
// tables' forward chains over the packet. It returns the hops and a
// verdict: reachable, dropped (with the cause and how to fix it), or
// leaves (out of the host, where nothing more can be seen).
//
// The package does no I/O: the kernel's answers come through Facts, which
// internal/kernel implements with netlink and nftables, and tests with
// tables.
package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
)

// MaxHops bounds the namespaces a packet may cross: a routing loop stops
// here rather than running forever.
const MaxHops = 8

// Host is the key of the host's namespace in Facts and Ref. Every other
// key names a container or a namespace under /run/netns.
const Host = ""

// Facts are the kernel's answers, one namespace at a time.
type Facts interface {
	// Route is the kernel's route lookup in ns: `ip -n NS route get DST`;
	// with q.Iif set, the lookup for a packet from q.Src arriving on Iif
	// (`ip -n NS route get DST from SRC iif IIF`), which also applies
	// forwarding and reverse-path checks. Failures are *RouteError.
	Route(ns string, q RouteQuery) (Route, error)
	// Link describes an interface (`ip -n NS -d addr show NAME`), with a
	// veth's peer resolved to its namespace.
	Link(ns, name string) (*Link, error)
	// Owners lists the interfaces, in any namespace cnet knows, that hold
	// address a (`ip -n NS addr show to A` in each).
	Owners(a netip.Addr) ([]Ref, error)
	// Hairpin reports whether a bridge port lets a frame leave through
	// the port it came in (`bridge -n NS link show dev PORT`).
	Hairpin(ns, port string) bool
	// Neighbour is the state of a's entry on dev (`ip -n NS neigh show A
	// dev DEV`): REACHABLE, STALE, FAILED, ..., or "" when there is none.
	Neighbour(ns, dev string, a netip.Addr) string
	// Sockets lists the sockets in ns on port: listening TCP sockets or
	// bound UDP ones (`ip netns exec NS ss -Hln[tu] sport = :PORT`).
	Sockets(ns, proto string, port uint16) ([]Socket, error)
	// Sysctl reads a sysctl of ns by its path under /proc/sys
	// ("net/ipv4/ip_forward"), "" when it does not exist.
	Sysctl(ns, path string) string
	// ForwardChains lists other tables' chains hooked at forward in ns.
	ForwardChains(ns string) ([]firewall.ForeignChain, error)
}

// RouteQuery is one route lookup.
type RouteQuery struct {
	Dst, Src netip.Addr
	Iif      string
}

// Route is the kernel's answer to a route lookup.
type Route struct {
	Type    string // unicast, local, broadcast, ...
	Dst     netip.Addr
	Dev     string
	Gateway netip.Addr
	Src     netip.Addr
}

func (r Route) String() string {
	var b strings.Builder
	if r.Type != "unicast" && r.Type != "" {
		b.WriteString(r.Type + " ")
	}
	b.WriteString(r.Dst.String())
	if r.Gateway.IsValid() {
		b.WriteString(" via " + r.Gateway.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	if r.Src.IsValid() {
		b.WriteString(" src " + r.Src.String())
	}
	return b.String()
}

// Route lookup failures, as the kernel reports them.
const (
	NoRoute     = "no route"    // ENETUNREACH: no route matches
	Unreachable = "unreachable" // EHOSTUNREACH: an unreachable route, or forwarding refused
	Blackhole   = "blackhole"   // EINVAL: a blackhole route
	Prohibit    = "prohibit"    // EACCES: a prohibit route
	Martian     = "martian"     // EXDEV: the reverse-path filter refuses the source
)

// RouteError is a failed route lookup.
type RouteError struct {
	Kind string
	Err  error
}

func (e *RouteError) Error() string { return e.Kind + ": " + e.Err.Error() }
func (e *RouteError) Unwrap() error { return e.Err }

// Link is an interface as the kernel reports it.
type Link struct {
	Name string
	Kind string // veth, bridge, loopback, device
	// Up: administratively up and not reported down.
	Up     bool
	Master string // the bridge it is a port of
	// Peer is a veth's other end, when it is in a namespace cnet knows.
	Peer  *Ref
	Addrs []netip.Prefix
}

// Ref names an interface in a namespace.
type Ref struct {
	NS   string
	Name string
}

// Socket is a listening (TCP) or bound (UDP) socket.
type Socket struct {
	Addr    netip.Addr
	Port    uint16
	Process string // "echo-server (pid 42)", or "" when unknown
}

func (s Socket) String() string {
	return fmt.Sprintf("%s on %s", s.who(), netip.AddrPortFrom(s.Addr, s.Port))
}

func (s Socket) who() string {
	if s.Process == "" {
		return "a process"
	}
	return s.Process
}

// World is what cnet's state says, and the firewall as the host has it.
type World struct {
	Networks   []*model.Network
	Containers []*model.Container
	// Spaces are other namespaces under /run/netns, by name.
	Spaces []string
	// Firewall is cnet's table in the host: the model of what state says,
	// or empty when the kernel has no table.
	Firewall firewall.Ruleset
	// Notes are said with every answer (a table that differs from state,
	// an interrupted operation).
	Notes []string
}

// Verdicts.
const (
	Reachable = "reachable" // delivered to a socket (or, without a port, to an address) at the destination
	Dropped   = "dropped"   // the kernel would drop it on the way, or refuse it at the end
	Leaves    = "leaves"    // it leaves the host; beyond, nothing more is known
)

// Causes of a drop.
const (
	CauseIsolation      = "isolation"       // between two cnet networks
	CauseInternal       = "internal"        // into or out of an --internal network
	CauseIPForward      = "ip_forward"      // forwarding is off
	CauseForwardPolicy  = "forward_policy"  // another table's forward chain drops it (Docker's FORWARD DROP)
	CauseNoRoute        = "no_route"        // no route, or an unreachable/blackhole/prohibit one
	CauseNotPublished   = "not_published"   // to the host, where no published port or process takes it
	CauseLoopbackOnly   = "loopback_only"   // the service listens on 127.0.0.1 only
	CauseBoundElsewhere = "bound_elsewhere" // the service listens on another address only
	CauseNotListening   = "nothing_listening"
	CauseNoNeighbour    = "no_neighbour" // nothing on the link holds the next hop
	CauseLinkDown       = "link_down"    // an interface on the way is down
	CauseHairpin        = "hairpin_off"  // back out of the bridge port it came in, without hairpin mode
	CauseLoopback       = "loopback_dst" // 127.0.0.0/8 from outside the host
	CauseMartian        = "martian"      // the reverse-path filter refuses the source
	CauseHopLimit       = "hop_limit"    // a routing loop
	CauseNoNetwork      = "no_network"   // the container is attached to nothing
	CauseSpoofed        = "spoofed"      // a container sends from an address not its own (anti-spoofing)
)

// Result is the answer: the hops and the verdict.
type Result struct {
	Src   string `json:"src"`
	Dst   string `json:"dst"`
	Proto string `json:"proto"`
	Port  uint16 `json:"port,omitempty"`
	// Address is where DST was taken to be.
	Address netip.Addr `json:"address,omitzero"`
	Hops    []*Hop     `json:"hops"`
	Verdict string     `json:"verdict"`
	// Cause names why it is dropped (one of the Cause constants).
	Cause  string `json:"cause,omitempty"`
	Reason string `json:"reason"`
	// Fix lists what would make it reachable, commands first.
	Fix   []string `json:"fix,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Hop is the packet in one namespace.
type Hop struct {
	Namespace string `json:"namespace"` // "host", a container, or a namespace under /run/netns
	Kind      string `json:"kind"`      // host, container, namespace
	In        string `json:"in,omitempty"`
	// Src, Dst and Port are the packet as it arrives (as it starts, in
	// the first hop); NAT shows in Steps and in the next hop.
	Src   netip.Addr `json:"src,omitzero"`
	Dst   netip.Addr `json:"dst"`
	Port  uint16     `json:"port,omitempty"`
	Out   string     `json:"out,omitempty"`
	Via   netip.Addr `json:"via,omitzero"`
	Steps []Step     `json:"steps"`
}

// Step is one thing that happened to the packet in a hop.
type Step struct {
	// Kind: route, dnat, snat, filter, link, bridge, neighbour, socket, sysctl.
	Kind string `json:"kind"`
	Text string `json:"text"`
}

func (h *Hop) step(kind, format string, args ...any) {
	h.Steps = append(h.Steps, Step{Kind: kind, Text: fmt.Sprintf(format, args...)})
}

type packet struct {
	src, dst netip.Addr
	port     uint16
	proto    string
	dnat     bool
}

type walker struct {
	f     Facts
	w     *World
	res   *Result
	src   string // key of the source namespace
	dst   Target
	err   error
	byBr  map[string]*model.Network
	byNet map[string]*model.Network
	byCt  map[string]*model.Container
	space map[string]bool
}

// Explain walks a packet from src (HostName, a container, or a namespace
// under /run/netns) to dst. It changes nothing. An unknown src or dst is
// an error; everything the packet meets is in the Result.
func Explain(f Facts, w *World, src string, dst Target) (*Result, error) {
	wk := &walker{f: f, w: w, dst: dst, byBr: map[string]*model.Network{}, byNet: map[string]*model.Network{},
		byCt: map[string]*model.Container{}, space: map[string]bool{}}
	for _, n := range w.Networks {
		wk.byBr[n.Bridge], wk.byNet[n.Name] = n, n
	}
	for _, c := range w.Containers {
		wk.byCt[c.Name] = c
	}
	for _, s := range w.Spaces {
		wk.space[s] = true
	}
	if err := CheckSource(src); err != nil {
		return nil, err
	}
	switch {
	case src == HostName:
		wk.src = Host
	case wk.byCt[src] != nil || wk.space[src]:
		wk.src = src
	default:
		return nil, errs.NotFound("source", src, "want host, a container (see `cnet ls`) or a namespace in /run/netns")
	}
	wk.res = &Result{Src: src, Dst: dst.String(), Proto: dst.Proto, Port: dst.Port, Hops: []*Hop{}, Notes: slices.Clone(w.Notes)}
	if dst.Port == 0 {
		wk.res.Proto = ""
	}
	addr, err := wk.destination()
	if err != nil {
		return nil, err
	}
	if wk.res.Verdict == "" {
		wk.res.Address = addr
		wk.walk(packet{dst: addr, port: dst.Port, proto: dst.Proto})
	}
	if wk.err != nil {
		return nil, wk.err
	}
	return wk.res, nil
}

// destination picks the address DST stands for. A container on several
// networks is reached on one it shares with SRC, else on its default-route
// network; host:PORT is 127.0.0.1 from the host and the gateway of SRC's
// default-route network from a container.
func (wk *walker) destination() (netip.Addr, error) {
	d := wk.dst
	switch {
	case d.Addr.IsValid():
		return d.Addr, nil
	case d.Host:
		if wk.src == Host {
			return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
		}
		c := wk.byCt[wk.src]
		if c == nil {
			return netip.Addr{}, errs.Invalid("destination", d.String(),
				"host:PORT is known only from the host or a container; from namespace %s, give the host's address (ADDRESS:%d)", wk.src, d.Port)
		}
		ep := c.Target()
		if ep == nil && len(c.Endpoints) > 0 {
			ep = &c.Endpoints[0]
		}
		if ep == nil || wk.byNet[ep.Network] == nil {
			wk.noNetwork(c.Name)
			return netip.Addr{}, nil
		}
		return wk.byNet[ep.Network].Gateway, nil
	}
	c := wk.byCt[d.Name]
	if c == nil {
		return netip.Addr{}, errs.NotFound("container", d.Name, "DST is a container (see `cnet ls`), an IPv4 address or host:PORT")
	}
	var pick *model.Endpoint
	if sc := wk.byCt[wk.src]; sc != nil {
		for i := range c.Endpoints {
			if sc.Endpoint(c.Endpoints[i].Network) != nil {
				pick = &c.Endpoints[i]
				break
			}
		}
	}
	if pick == nil {
		pick = c.Target()
	}
	if pick == nil && len(c.Endpoints) > 0 {
		pick = &c.Endpoints[0]
	}
	if pick == nil {
		// A container on no network may still be reached over a direct
		// link: the one to SRC if there is one, else the first addressed.
		var via *model.LinkEnd
		for i, l := range c.Links {
			if l.Addr.IsValid() && (via == nil || l.Peer == wk.src) {
				via = &c.Links[i]
			}
		}
		if via == nil {
			wk.noNetwork(c.Name)
			return netip.Addr{}, nil
		}
		wk.res.Notes = append(wk.res.Notes, fmt.Sprintf("%s is on no network; this is the path to %s on its direct link %s", c.Name, via.Addr.Addr(), via.Interface))
		return via.Addr.Addr(), nil
	}
	if len(c.Endpoints) > 1 {
		wk.res.Notes = append(wk.res.Notes, fmt.Sprintf("%s is on %d networks; this is the path to %s on %s", c.Name, len(c.Endpoints), pick.Addr, pick.Network))
	}
	return pick.Addr, nil
}

func (wk *walker) noNetwork(name string) {
	wk.drop(CauseNoNetwork, fmt.Sprintf("container %s is attached to no network", name),
		fmt.Sprintf("cnet connect NETWORK %s", name))
}

// drop ends the walk with a dropped verdict.
func (wk *walker) drop(cause, reason string, fix ...string) {
	wk.res.Verdict, wk.res.Cause, wk.res.Reason, wk.res.Fix = Dropped, cause, reason, fix
}

func (wk *walker) label(ns string) (name, kind string) {
	switch {
	case ns == Host:
		return HostName, "host"
	case wk.byCt[ns] != nil:
		return ns, "container"
	}
	return ns, "namespace"
}

// where names a namespace for a sentence: "the host", "container web".
func (wk *walker) where(ns string) string {
	name, kind := wk.label(ns)
	if kind == "host" {
		return "the host"
	}
	return kind + " " + name
}

// whose describes an address: "web (172.18.0.3 on front)" when a
// container has it.
func (wk *walker) whose(a netip.Addr) string {
	if c, ep := wk.holder(a); c != nil {
		return fmt.Sprintf("%s (%s on %s)", c.Name, a, ep.Network)
	}
	return a.String()
}

func (wk *walker) holder(a netip.Addr) (*model.Container, *model.Endpoint) {
	for _, c := range wk.w.Containers {
		for i := range c.Endpoints {
			if c.Endpoints[i].Addr == a {
				return c, &c.Endpoints[i]
			}
		}
	}
	return nil, nil
}

func (wk *walker) rs() firewall.Ruleset { return wk.w.Firewall }

// network is the network of a bridge (one named after the bridge when
// state has none).
func (wk *walker) network(bridge string) *model.Network {
	if n := wk.byBr[bridge]; n != nil {
		return n
	}
	return &model.Network{Name: bridge, Bridge: bridge}
}

// walk follows the packet from the source namespace, hop by hop.
func (wk *walker) walk(p packet) {
	ns, iif, inPort := wk.src, "", ""
	for range MaxHops {
		name, kind := wk.label(ns)
		h := &Hop{Namespace: name, Kind: kind, In: iif, Src: p.src, Dst: p.dst, Port: p.port, Steps: []Step{}}
		wk.res.Hops = append(wk.res.Hops, h)
		next, ok := wk.hop(h, ns, iif, inPort, &p)
		if !ok || wk.err != nil {
			return
		}
		ns, iif, inPort = next.ns, next.dev, next.inPort
	}
	wk.drop(CauseHopLimit, fmt.Sprintf("the packet crossed %d namespaces without arriving: a routing loop", MaxHops),
		"look at the routes of the namespaces above (`ip -n NAME route`)")
}

type arrival struct{ ns, dev, inPort string }

// hop is the packet in one namespace: prerouting, the route lookup,
// local delivery or forwarding, postrouting, and the link to the next
// namespace. It reports false when the walk ends here.
func (wk *walker) hop(h *Hop, ns, iif, inPort string, p *packet) (arrival, bool) {
	origin := iif == ""
	if !origin && ns == Host {
		local := wk.isLocal(ns, p.dst)
		fp := firewall.Packet{IIf: iif, Src: p.src, Dst: p.dst, Proto: p.proto, DPort: p.port, LocalDst: local}
		if v := wk.rs().Eval("raw_prerouting", fp); v.Action == firewall.Drop {
			h.step("filter", "dropped by `%s` (table inet cnet, chain %s)", v.Rule, v.Chain)
			wk.drop(CauseLoopback, fmt.Sprintf("the host drops packets for %s that come from outside it: 127.0.0.0/8 is reachable only from the host itself", p.dst))
			return arrival{}, false
		}
		if p.port != 0 {
			if v := wk.rs().Eval("prerouting", fp); v.Action == firewall.DNAT {
				wk.dnat(h, p, v)
			}
		}
	}
	q := RouteQuery{Dst: p.dst}
	if !origin {
		q.Src, q.Iif = p.src, iif
	}
	r, err := wk.f.Route(ns, q)
	if err != nil {
		wk.routeFailed(h, ns, iif, p, err)
		return arrival{}, false
	}
	if origin && ns == Host && r.Type == "local" && p.port != 0 {
		fp := firewall.Packet{Src: r.Src, Dst: p.dst, Proto: p.proto, DPort: p.port, LocalDst: true}
		if v := wk.rs().Eval("output", fp); v.Action == firewall.DNAT {
			h.step("route", "%s", r)
			if !p.src.IsValid() {
				p.src, h.Src = r.Src, r.Src
			}
			wk.dnat(h, p, v)
			if r, err = wk.f.Route(ns, RouteQuery{Dst: p.dst}); err != nil {
				wk.routeFailed(h, ns, iif, p, err)
				return arrival{}, false
			}
		}
	}
	h.step("route", "%s", r)
	if !p.src.IsValid() {
		p.src, h.Src = r.Src, r.Src
	}
	switch r.Type {
	case "local":
		wk.deliver(h, ns, p)
		return arrival{}, false
	case "unicast", "":
	default:
		wk.drop(CauseNoRoute, fmt.Sprintf("%s routes %s as %s: it is not sent to one host", wk.where(ns), p.dst, r.Type))
		return arrival{}, false
	}
	h.Out, h.Via = r.Dev, r.Gateway
	if !origin {
		if ns == Host {
			fp := firewall.Packet{IIf: iif, OIf: r.Dev, Src: p.src, Dst: p.dst, Proto: p.proto, DPort: p.port, DNAT: p.dnat}
			v := wk.rs().Eval("forward", fp)
			if v.Action != "" {
				h.step("filter", "%s by `%s` (table inet cnet, chain forward)", verb(v.Action), v.Rule)
			}
			if v.Action == firewall.Drop {
				wk.cnetDrop(v, iif, r.Dev, p)
				return arrival{}, false
			}
		}
		if !wk.foreign(h, ns, iif, r.Dev, false) {
			return arrival{}, false
		}
	}
	if ns == Host {
		fp := firewall.Packet{IIf: iif, OIf: r.Dev, Src: p.src, Dst: p.dst, Proto: p.proto, DPort: p.port, DNAT: p.dnat}
		if v := wk.rs().Eval("postrouting", fp); v.Action == firewall.Masquerade {
			to := wk.masqueradeAddr(ns, r)
			h.step("snat", "source %s masqueraded to %s by `%s`", p.src, to, v.Rule)
			p.src = to
		}
	}
	nh := r.Gateway
	if !nh.IsValid() {
		nh = p.dst
	}
	return wk.link(h, ns, r.Dev, nh, inPort, p)
}

func verb(action string) string {
	switch action {
	case firewall.Accept:
		return "accepted"
	case firewall.Drop:
		return "dropped"
	}
	return action
}

func (wk *walker) isLocal(ns string, a netip.Addr) bool {
	r, err := wk.f.Route(ns, RouteQuery{Dst: a})
	return err == nil && r.Type == "local"
}

// masqueradeAddr is the address masquerade picks: the preferred source
// for the destination on the output interface.
func (wk *walker) masqueradeAddr(ns string, r Route) netip.Addr {
	if out, err := wk.f.Route(ns, RouteQuery{Dst: r.Dst}); err == nil && out.Src.IsValid() {
		return out.Src
	}
	if l, err := wk.f.Link(ns, r.Dev); err == nil && len(l.Addrs) > 0 {
		return l.Addrs[0].Addr()
	}
	return r.Src
}

func (wk *walker) dnat(h *Hop, p *packet, v firewall.Verdict) {
	owner := ""
	if c, _ := wk.holder(v.To.Addr()); c != nil {
		owner = " of " + c.Name
	}
	h.step("dnat", "%s:%d -> %s: published port %s:%d/%s%s (`%s`, chain %s)", p.dst, p.port, v.To,
		v.Port.HostIP, v.Port.HostPort, v.Port.Proto, owner, v.Rule, v.Chain)
	p.dst, p.port, p.dnat = v.To.Addr(), v.To.Port(), true
}

// routeFailed explains a failed route lookup.
func (wk *walker) routeFailed(h *Hop, ns, iif string, p *packet, err error) {
	var re *RouteError
	if !errors.As(err, &re) {
		wk.err = fmt.Errorf("route lookup for %s in %s: %w", p.dst, wk.where(ns), err)
		return
	}
	h.step("route", "%s: %s", p.dst, re.Kind)
	if iif != "" && re.Kind != NoRoute {
		// The kernel refuses to forward when forwarding is off, with
		// the same error as an unreachable route: the sysctls tell.
		if v := wk.f.Sysctl(ns, "net/ipv4/ip_forward"); v != "1" {
			h.step("sysctl", "net.ipv4.ip_forward = %s", v)
			fix := "sysctl -w net.ipv4.ip_forward=1"
			if ns != Host {
				fix = fmt.Sprintf("ip netns exec %s sysctl -w net.ipv4.ip_forward=1", ns)
			}
			wk.drop(CauseIPForward, fmt.Sprintf("net.ipv4.ip_forward is off in %s: it forwards nothing, so nothing it receives for %s goes further", wk.where(ns), p.dst), fix)
			return
		}
		if v := wk.f.Sysctl(ns, "net/ipv4/conf/"+iif+"/forwarding"); v == "0" {
			h.step("sysctl", "net.ipv4.conf.%s.forwarding = 0", iif)
			wk.drop(CauseIPForward, fmt.Sprintf("forwarding is off on %s in %s: nothing arriving there is forwarded", iif, wk.where(ns)),
				fmt.Sprintf("sysctl -w net.ipv4.conf.%s.forwarding=1", iif))
			return
		}
	}
	if re.Kind == Martian {
		wk.drop(CauseMartian, fmt.Sprintf("%s refuses a packet from %s on %s: its reverse-path filter (rp_filter) does not route %s back through %s",
			wk.where(ns), p.src, iif, p.src, iif), fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2 (loose), or add a route to %s through %s", iif, p.src, iif))
		return
	}
	if c := wk.byCt[ns]; c != nil && iif == "" && re.Kind == NoRoute {
		internal := len(c.Endpoints) > 0
		var nets []string
		for _, ep := range c.Endpoints {
			nets = append(nets, ep.Network)
			if n := wk.byNet[ep.Network]; n == nil || !n.Internal {
				internal = false
			}
		}
		if internal {
			wk.drop(CauseInternal, fmt.Sprintf("%s is only on internal network %s: it has no default route, and nothing leaves an internal network",
				c.Name, strings.Join(nets, ", ")), wk.connectFix(c.Name, p.dst)...)
			return
		}
		if len(c.Endpoints) == 0 {
			wk.noNetwork(c.Name)
			return
		}
		if c.Target() != nil {
			wk.drop(CauseNoRoute, fmt.Sprintf("container %s has no route to %s: its default route via %s is missing",
				c.Name, p.dst, wk.byNet[c.Target().Network].Gateway), "cnet gc")
			return
		}
	}
	what := map[string]string{
		NoRoute:     "has no route to",
		Unreachable: "has an unreachable route to",
		Blackhole:   "has a blackhole route for",
		Prohibit:    "has a prohibit route for",
	}[re.Kind]
	if what == "" {
		what = "cannot route (" + re.Err.Error() + ")"
	}
	fix := "add a route: ip route add " + p.dst.String() + " via GATEWAY"
	if ns != Host {
		fix = fmt.Sprintf("add a route: ip -n %s route add %s via GATEWAY", ns, p.dst)
	}
	wk.drop(CauseNoRoute, fmt.Sprintf("%s %s %s", wk.where(ns), what, p.dst), fix)
}

// connectFix suggests networks to connect a container to, so it reaches dst.
func (wk *walker) connectFix(container string, dst netip.Addr) []string {
	if _, ep := wk.holder(dst); ep != nil {
		return []string{fmt.Sprintf("cnet connect %s %s", ep.Network, container)}
	}
	for _, n := range wk.w.Networks {
		if !n.Internal {
			return []string{fmt.Sprintf("cnet connect %s %s", n.Name, container)}
		}
	}
	return []string{fmt.Sprintf("cnet network create NETWORK && cnet connect NETWORK %s", container)}
}

// cnetDrop explains a drop by a rule of cnet's forward chain.
func (wk *walker) cnetDrop(v firewall.Verdict, iif, oif string, p *packet) {
	in, out := wk.network(iif), wk.network(oif)
	srcC := wk.byCt[wk.src]
	dstC, dstEp := wk.holder(p.dst)
	switch v.ID {
	case firewall.RuleIsolation:
		reason := fmt.Sprintf("networks %s and %s are isolated from each other: cnet forwards nothing between two networks", in.Name, out.Name)
		var fix []string
		if srcC != nil {
			fix = append(fix, fmt.Sprintf("cnet connect %s %s", out.Name, srcC.Name))
			reason = fmt.Sprintf("%s (on %s) and %s share no network, and %s", srcC.Name, in.Name, wk.whose(p.dst), reason)
		}
		if dstC != nil {
			fix = append(fix, fmt.Sprintf("cnet connect %s %s", in.Name, dstC.Name))
		}
		if dstC != nil && dstEp != nil && srcC != nil {
			fix = append(fix, fmt.Sprintf("cnet publish %s HOSTPORT:%d%s, then connect to host:HOSTPORT", dstC.Name, p.port, protoSuffix(p.proto)))
		}
		wk.drop(CauseIsolation, reason, fix...)
	case firewall.RuleInternalOut:
		fix := []string{}
		if srcC != nil {
			fix = wk.connectFix(srcC.Name, p.dst)
		}
		wk.drop(CauseInternal, fmt.Sprintf("network %s is internal: nothing from it is routed out of its bridge", in.Name), fix...)
	case firewall.RuleInternalIn:
		var fix []string
		if srcC != nil {
			fix = append(fix, fmt.Sprintf("cnet connect %s %s", out.Name, srcC.Name))
		}
		wk.drop(CauseInternal, fmt.Sprintf("network %s is internal: nothing is routed into it; only its own containers and the host reach %s",
			out.Name, wk.whose(p.dst)), fix...)
	case firewall.RuleUnpublished:
		var fix []string
		if dstC != nil && p.port != 0 {
			fix = append(fix, fmt.Sprintf("cnet publish %s %d:%d%s, then connect to the host's address on port %d", dstC.Name, p.port, p.port, protoSuffix(p.proto), p.port))
		}
		wk.drop(CauseNotPublished, fmt.Sprintf("%s is not published: from outside cnet's networks, a container is reached only through a published port", wk.whose(p.dst)), fix...)
	default:
		wk.drop(CauseIsolation, fmt.Sprintf("dropped by `%s` in cnet's forward chain", v.Rule))
	}
}

func protoSuffix(proto string) string {
	if proto == "udp" {
		return "/udp"
	}
	return ""
}

// foreign runs other tables' forward chains of ns over a packet from iif
// to oif; bridged is a packet switched inside a bridge that br_netfilter
// shows to the forward hook. It reports false when one drops it.
func (wk *walker) foreign(h *Hop, ns, iif, oif string, bridged bool) bool {
	chains, err := wk.f.ForwardChains(ns)
	if err != nil {
		wk.res.Notes = append(wk.res.Notes, "could not read other tables' forward chains in "+wk.where(ns)+": "+err.Error())
		return true
	}
	for _, c := range chains {
		v := c.Eval(iif, oif)
		unread := ""
		if v.Opaque > 0 {
			unread = fmt.Sprintf("; %d rule(s) before it that cnet cannot read might decide first", v.Opaque)
		}
		if v.Action == firewall.Accept {
			if v.Rule >= 0 {
				h.step("filter", "accepted by rule %d of %s%s", v.Rule+1, c.Name, unread)
			}
			continue
		}
		by := fmt.Sprintf("rule %d of %s", v.Rule+1, c.Name)
		if v.Rule < 0 {
			by = fmt.Sprintf("the policy drop of %s", c.Name)
			if v.Opaque > 0 {
				unread = fmt.Sprintf(" (unless one of its %d rule(s) that cnet cannot read accepts it)", v.Opaque)
			}
		}
		h.step("filter", "dropped by %s%s", by, unread)
		reason := fmt.Sprintf("%s drops packets forwarded from %s to %s%s; cnet's own rules accept them, but a packet must pass every table's forward chain",
			by, iif, oif, unread)
		if bridged {
			reason += fmt.Sprintf(". The packet is only switched inside bridge %s, but net.bridge.bridge-nf-call-iptables=1 (br_netfilter) shows it to the forward hook", iif)
		}
		if v.Rule < 0 {
			reason = "another tool (Docker sets the iptables FORWARD policy to DROP): " + reason
		}
		// Accepting what enters and leaves cnet's bridges there is safe:
		// cnet's own chain still decides what may pass.
		var rules []string
		for _, br := range uniq(iif, oif) {
			if wk.byBr[br] == nil && !bridged {
				continue
			}
			rules = append(rules,
				fmt.Sprintf(`nft insert rule %s %s %s iifname "%s" accept`, c.Family, c.Table, c.Chain, br),
				fmt.Sprintf(`nft insert rule %s %s %s oifname "%s" accept`, c.Family, c.Table, c.Chain, br))
		}
		fix := []string{strings.Join(rules, " && ")}
		if len(rules) == 0 {
			fix = []string{fmt.Sprintf("add a rule that accepts this traffic to %s, or set its policy to accept", c.Name)}
		}
		if bridged {
			fix = append(fix, "sysctl -w net.bridge.bridge-nf-call-iptables=0 (if nothing else on the host relies on it)")
		}
		wk.drop(CauseForwardPolicy, reason, fix...)
		return false
	}
	return true
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// link takes the packet from ns out of dev to the namespace that holds
// the next hop nh: through a veth to its peer, and through a bridge to the
// port whose far end has nh.
func (wk *walker) link(h *Hop, ns, dev string, nh netip.Addr, inPort string, p *packet) (arrival, bool) {
	l, err := wk.f.Link(ns, dev)
	if err != nil {
		wk.err = err
		return arrival{}, false
	}
	if !l.Up {
		wk.linkDown(h, ns, dev)
		return arrival{}, false
	}
	if s := wk.f.Neighbour(ns, dev, nh); s != "" {
		h.step("neighbour", "%s on %s: %s", nh, dev, s)
	}
	switch l.Kind {
	case "bridge":
		return wk.bridge(h, ns, dev, inPort, false, nh, p)
	case "veth":
		if l.Peer == nil {
			break
		}
		pl, err := wk.f.Link(l.Peer.NS, l.Peer.Name)
		if err != nil {
			wk.err = err
			return arrival{}, false
		}
		if !pl.Up {
			wk.linkDown(h, l.Peer.NS, l.Peer.Name)
			return arrival{}, false
		}
		if pl.Master != "" {
			h.step("link", "%s -> %s in %s, a port of bridge %s", dev, l.Peer.Name, wk.where(l.Peer.NS), pl.Master)
			if l.Peer.NS == Host && !wk.guarded(h, ns, l.Peer.Name, pl.Master, p) {
				return arrival{}, false
			}
			return wk.bridge(h, l.Peer.NS, pl.Master, l.Peer.Name, true, nh, p)
		}
		h.step("link", "%s -> %s in %s", dev, l.Peer.Name, wk.where(l.Peer.NS))
		if holds(pl, nh) || wk.isLocal(l.Peer.NS, nh) {
			return arrival{ns: l.Peer.NS, dev: l.Peer.Name}, true
		}
		wk.drop(CauseNoNeighbour, fmt.Sprintf("nothing at the far end of %s (%s in %s) has %s", dev, l.Peer.Name, wk.where(l.Peer.NS), nh))
		return arrival{}, false
	}
	what := "through " + dev
	if nh != p.dst {
		what += " via " + nh.String()
	}
	wk.res.Verdict = Leaves
	wk.res.Reason = fmt.Sprintf("the packet leaves %s %s; beyond it cnet cannot see (is anything listening at %s?)",
		wk.where(ns), what, netip.AddrPortFrom(p.dst, p.port))
	if p.port == 0 {
		wk.res.Reason = fmt.Sprintf("the packet leaves %s %s; beyond it cnet cannot see", wk.where(ns), what)
	}
	return arrival{}, false
}

// guarded applies cnet's anti-spoofing (table bridge cnet) to a packet
// that ns sends into bridge br through port: when port is a cnet
// endpoint's host veth, the packet must come from the endpoint's own
// address, unless its container routes (forwarding on in its lab file).
func (wk *walker) guarded(h *Hop, ns, port, br string, p *packet) bool {
	i := slices.IndexFunc(wk.rs().Guards, func(g model.GuardSpec) bool { return g.HostIf == port })
	if i < 0 {
		return true
	}
	g := wk.rs().Guards[i]
	if g.Router || p.src == g.Addr {
		return true
	}
	h.step("filter", "dropped by `ether type ip iifname . ip saddr != @portip drop` (table bridge cnet, chain prerouting): %s is not %s's address", p.src, port)
	wk.drop(CauseSpoofed, fmt.Sprintf("%s sends the packet from %s into bridge %s, and cnet's anti-spoofing lets a container send there only from its own address, %s, unless it is a router",
		wk.where(ns), p.src, br, g.Addr),
		fmt.Sprintf("make %s a router: declare it in a lab file with forwarding: true and cnet apply -f it (the packets a router forwards pass; its MAC is still checked)", wk.where(ns)))
	return false
}

func holds(l *Link, a netip.Addr) bool {
	return slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr() == a })
}

func (wk *walker) linkDown(h *Hop, ns, dev string) {
	h.step("link", "%s in %s is down", dev, wk.where(ns))
	fix := fmt.Sprintf("ip link set %s up", dev)
	if ns != Host {
		fix = fmt.Sprintf("ip -n %s link set %s up", ns, dev)
	}
	wk.drop(CauseLinkDown, fmt.Sprintf("%s in %s is down", dev, wk.where(ns)), "cnet gc (it repairs cnet's bridges and endpoints)", fix)
}

// bridge switches the packet inside bridge br of namespace bns, from
// port inPort (or from the bridge itself when switched is false), to the
// bridge itself when it holds nh, or to the port whose veth peer holds nh.
func (wk *walker) bridge(h *Hop, bns, br, inPort string, switched bool, nh netip.Addr, p *packet) (arrival, bool) {
	bl, err := wk.f.Link(bns, br)
	if err != nil {
		wk.err = err
		return arrival{}, false
	}
	if !bl.Up {
		wk.linkDown(h, bns, br)
		return arrival{}, false
	}
	owners, err := wk.f.Owners(nh)
	if err != nil {
		wk.err = err
		return arrival{}, false
	}
	netName := ""
	if n := wk.byBr[br]; n != nil && bns == Host {
		netName = " (network " + n.Name + ")"
	}
	for _, o := range owners {
		if o.NS == bns && o.Name == br {
			if !switched {
				break // the bridge's own address, from its own namespace: that is local, not here
			}
			return arrival{ns: bns, dev: br, inPort: inPort}, true
		}
	}
	for _, o := range owners {
		ol, err := wk.f.Link(o.NS, o.Name)
		if err != nil {
			wk.err = err
			return arrival{}, false
		}
		if ol.Peer == nil || ol.Peer.NS != bns {
			continue
		}
		pl, err := wk.f.Link(bns, ol.Peer.Name)
		if err != nil {
			wk.err = err
			return arrival{}, false
		}
		if pl.Master != br {
			continue
		}
		if !pl.Up {
			wk.linkDown(h, bns, pl.Name)
			return arrival{}, false
		}
		if !ol.Up {
			wk.linkDown(h, o.NS, o.Name)
			return arrival{}, false
		}
		from := inPort
		if !switched {
			from = br
		}
		h.step("bridge", "bridge %s%s: %s -> %s, to %s in %s", br, netName, from, pl.Name, o.Name, wk.where(o.NS))
		if pl.Name == inPort && !wk.f.Hairpin(bns, pl.Name) {
			wk.drop(CauseHairpin, fmt.Sprintf("the packet would leave bridge %s through %s, the port it came in through, and hairpin mode is off there", br, pl.Name),
				fmt.Sprintf("bridge link set dev %s hairpin on", pl.Name))
			return arrival{}, false
		}
		if switched && wk.f.Sysctl(bns, "net/bridge/bridge-nf-call-iptables") == "1" {
			h.step("sysctl", "net.bridge.bridge-nf-call-iptables = 1: the forward hook sees this as %s -> %s", br, br)
			if bns == Host {
				fp := firewall.Packet{IIf: br, OIf: br, Src: p.src, Dst: p.dst, Proto: p.proto, DPort: p.port, DNAT: p.dnat}
				if v := wk.rs().Eval("forward", fp); v.Action != "" {
					h.step("filter", "%s by `%s` (table inet cnet, chain forward)", verb(v.Action), v.Rule)
					if v.Action == firewall.Drop {
						wk.cnetDrop(v, br, br, p)
						return arrival{}, false
					}
				}
			}
			if !wk.foreign(h, bns, br, br, true) {
				return arrival{}, false
			}
		}
		return arrival{ns: o.NS, dev: o.Name}, true
	}
	reason := fmt.Sprintf("nothing on bridge %s%s has %s", br, netName, nh)
	if c, _ := wk.holder(nh); c != nil {
		reason += fmt.Sprintf(", though state says container %s does: run `cnet gc`", c.Name)
	}
	wk.drop(CauseNoNeighbour, reason+" (its neighbour lookup fails)")
	return arrival{}, false
}

// deliver is the packet arriving at a local address of ns: a socket takes
// it, or nothing does.
func (wk *walker) deliver(h *Hop, ns string, p *packet) {
	if p.port == 0 {
		wk.res.Verdict = Reachable
		wk.res.Reason = fmt.Sprintf("%s is an address of %s", p.dst, wk.where(ns))
		return
	}
	socks, err := wk.f.Sockets(ns, p.proto, p.port)
	if err != nil {
		wk.err = err
		return
	}
	var loop, other []Socket
	for _, s := range socks {
		switch {
		case !s.Addr.IsValid() || s.Addr.IsUnspecified() || s.Addr == p.dst:
			h.step("socket", "%s", s)
			wk.res.Verdict = Reachable
			wk.res.Reason = fmt.Sprintf("%s in %s takes %s", s, wk.where(ns), portProto(p.port, p.proto))
			return
		case s.Addr.IsLoopback():
			loop = append(loop, s)
		default:
			other = append(other, s)
		}
	}
	target := netip.AddrPortFrom(p.dst, p.port)
	refused := fmt.Sprintf("connections to %s are refused", target)
	if p.proto == "udp" {
		refused = fmt.Sprintf("datagrams to %s get ICMP port unreachable", target)
	}
	switch {
	case len(loop) > 0:
		h.step("socket", "%s", loop[0])
		wk.drop(CauseLoopbackOnly, fmt.Sprintf("%s in %s listens on %s only, so %s: a 127.0.0.1 binding is reachable only from inside %s",
			loop[0].who(), wk.where(ns), netip.AddrPortFrom(loop[0].Addr, loop[0].Port), refused, wk.where(ns)),
			fmt.Sprintf("make the service listen on 0.0.0.0:%d (or %s) instead of %s", p.port, target, netip.AddrPortFrom(loop[0].Addr, loop[0].Port)))
	case len(other) > 0:
		h.step("socket", "%s", other[0])
		wk.drop(CauseBoundElsewhere, fmt.Sprintf("%s in %s listens on %s only, so %s",
			other[0].who(), wk.where(ns), netip.AddrPortFrom(other[0].Addr, other[0].Port), refused),
			fmt.Sprintf("make the service listen on 0.0.0.0:%d (or %s), or connect to %s", p.port, target, netip.AddrPortFrom(other[0].Addr, other[0].Port)))
	case ns == Host:
		wk.notPublished(h, p, refused)
	default:
		h.step("socket", "nothing on %s", portProto(p.port, p.proto))
		start := fmt.Sprintf("start a server on %s in %s", portProto(p.port, p.proto), wk.where(ns))
		if wk.byCt[ns] != nil {
			start += fmt.Sprintf(": cnet exec %s -- SERVER (listening on 0.0.0.0:%d)", ns, p.port)
		}
		wk.drop(CauseNotListening, fmt.Sprintf("nothing listens on %s in %s, so %s", portProto(p.port, p.proto), wk.where(ns), refused), start)
	}
}

// notPublished explains a packet for the host that no published port and
// no host process takes.
func (wk *walker) notPublished(h *Hop, p *packet, refused string) {
	h.step("socket", "nothing on %s", portProto(p.port, p.proto))
	for _, e := range wk.rs().Ports {
		if e.Proto != p.proto || e.HostPort != p.port {
			continue
		}
		owner := "a container"
		if c, _ := wk.holder(e.Addr); c != nil {
			owner = c.Name
		}
		spec := fmt.Sprintf("%d:%d%s", e.HostPort, e.Port, protoSuffix(e.Proto))
		reason := fmt.Sprintf("%s publishes %s only on %s, not on %s", owner, portProto(p.port, p.proto), e.HostIP, p.dst)
		if e.HostIP.IsLoopback() {
			reason += ": a 127.0.0.1 mapping is reachable only from the host itself"
		}
		wk.drop(CauseNotPublished, reason,
			fmt.Sprintf("cnet unpublish %s %s:%s && cnet publish %s %s", owner, e.HostIP, spec, owner, spec))
		return
	}
	wk.drop(CauseNotPublished, fmt.Sprintf("no container publishes %s and nothing on the host listens on it, so %s",
		portProto(p.port, p.proto), refused),
		fmt.Sprintf("cnet publish CONTAINER %d:CONTAINERPORT%s", p.port, protoSuffix(p.proto)))
}
