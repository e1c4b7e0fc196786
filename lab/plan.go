package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/plan"
)

// Action is one change: one engine transaction, or starting or stopping a
// lab's command. Apply runs actions in order and stops at the first that
// fails; that one has rolled itself back, and the others stand.
type Action struct {
	Op     string `json:"op"`   // create, remove, replace, update, connect, disconnect, publish, unpublish, start, stop
	Kind   string `json:"kind"` // network, container, endpoint, ports, link, routes, command
	Object string `json:"object"`
	Detail string `json:"detail,omitempty"`
	run    func(e *cnet.Engine) error
}

// String renders the action as the plan shows it.
func (a Action) String() string {
	s := fmt.Sprintf("%-10s %s %s", a.Op, a.Kind, a.Object)
	if a.Detail != "" {
		s += ": " + a.Detail
	}
	return s
}

// Plan is what apply (or destroy) will do, in order.
type Plan struct {
	Lab     string   `json:"lab"`
	Actions []Action `json:"actions"`
}

// Starter starts a lab's command detached in a container, with env added
// to its environment (as `cnet run -d`).
type Starter func(container string, argv, env []string) error

// CommandEnv is the environment variable that marks the processes a lab
// started, with a hash of their command, so apply knows whether the
// command running is the one in the file.
const CommandEnv = "CNET_LAB_COMMAND"

func commandTag(argv []string) string {
	h := sha256.Sum256([]byte(strings.Join(argv, "\x00")))
	return hex.EncodeToString(h[:8])
}

// running reports whether one of pids carries the tag of argv, and
// whether any carries a lab tag at all.
func running(pids []int, argv []string) (same, tagged bool) {
	want := CommandEnv + "=" + commandTag(argv)
	for _, pid := range pids {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == want {
				return true, true
			}
			if strings.HasPrefix(kv, CommandEnv+"=") {
				tagged = true
			}
		}
	}
	return false, tagged
}

// machine is what Diff reads from the engine.
type machine struct {
	nets map[string]*cnet.Network
	cs   map[string]*cnet.Container
}

func read(e *cnet.Engine) (*machine, error) {
	nets, err := e.Networks()
	if err != nil {
		return nil, err
	}
	cs, err := e.Containers()
	if err != nil {
		return nil, err
	}
	m := &machine{nets: map[string]*cnet.Network{}, cs: map[string]*cnet.Container{}}
	for _, n := range nets {
		m.nets[n.Name] = n
	}
	for _, c := range cs {
		m.cs[c.Name] = c
	}
	return m, nil
}

func owner(lab string) string {
	if lab == "" {
		return "was made outside any lab"
	}
	return "belongs to lab " + lab
}

// Diff compares the file with the machine and returns the actions that
// converge the machine to the file. An empty plan means nothing to do.
// start runs commands (nil: a lab with commands is refused).
//
// Diff also rehearses the plan, every action planned against the state
// the ones before it would leave (cnet.Engine.Check), so that a file the
// machine would refuse part way (a subnet that overlaps another network,
// a bridge name, address or host port held outside the lab) is refused
// here, naming the line and field, before apply changes anything.
func Diff(e *cnet.Engine, f *File, start Starter) (*Plan, error) {
	p, err := diff(e, f, start)
	if err != nil {
		return nil, err
	}
	// The same plan again, with commands not started, to rehearse.
	pre, err := diff(e, f, func(string, []string, []string) error { return nil })
	if err != nil {
		return nil, err
	}
	err = e.Check(func(r *cnet.Engine) error { return pre.Apply(r, nil) })
	var se *StepError
	if errors.As(err, &se) {
		return nil, refusal(f, se)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func diff(e *cnet.Engine, f *File, start Starter) (*Plan, error) {
	m, err := read(e)
	if err != nil {
		return nil, err
	}
	d := &differ{f: f, m: m, start: start, p: &Plan{Lab: f.Name, Actions: []Action{}}}
	if err := d.check(); err != nil {
		return nil, err
	}
	d.plan()
	return d.p, nil
}

// refusal turns the engine's refusal of one of a rehearsed plan's actions
// into an error at the place in the file that asked for it.
func refusal(f *File, se *StepError) error {
	e := &Error{File: f.Path, Msg: se.Err.Error(), err: se.Err}
	var conflict *errs.ConflictError
	var invalid *errs.InvalidError
	what := ""
	if errors.As(se.Err, &conflict) {
		what = conflict.What
	} else if errors.As(se.Err, &invalid) {
		what = invalid.What
	}
	at := func(line int, field string, lines map[string]int, key string) {
		e.Line, e.Field = line, field
		if l, ok := lines[key]; ok && key != "" {
			e.Line, e.Field = l, field+"."+key
		}
	}
	container, network, _ := strings.Cut(se.Action.Object, " on ")
	switch se.Action.Kind {
	case "network":
		if n := f.Network(se.Action.Object); n != nil {
			at(n.Line, "networks."+n.Name, n.Lines, map[string]string{"subnet": "subnet", "bridge name": "bridge", "mtu": "mtu"}[what])
		}
	case "container", "endpoint":
		c := f.Container(container)
		if c == nil {
			break
		}
		at(c.Line, "containers."+c.Name, c.Lines, map[string]string{"published port": "ports", "host port": "ports", "host address": "ports", "port mapping": "ports", "dns": "dns"}[what])
		for i, a := range c.Networks {
			if a.Network == network || network == "" && i == 0 && what == "address" {
				at(a.Line, fmt.Sprintf("containers.%s.networks[%d]", c.Name, i), a.Lines, map[string]string{"address": "ip"}[what])
			}
		}
	case "ports":
		if c := f.Container(se.Action.Object); c != nil {
			at(c.Line, "containers."+c.Name, c.Lines, "ports")
		}
	case "routes":
		if c := f.Container(se.Action.Object); c != nil {
			at(c.Line, "containers."+c.Name, c.Lines, "routes")
		}
	case "link":
		for i, l := range f.Links {
			if se.Action.Object == fmt.Sprintf("%s:%s -- %s:%s", l.A.Container, l.A.iface(l.B), l.B.Container, l.B.iface(l.A)) {
				at(l.Line, fmt.Sprintf("links[%d]", i), l.Lines, "")
			}
		}
	}
	if e.Field == "" {
		e.Field = se.Action.Kind + " " + se.Action.Object
	}
	return e
}

type differ struct {
	f     *File
	m     *machine
	start Starter
	p     *Plan

	replaceNet map[string]bool // lab networks re-created with new settings
	recreate   map[string]bool // containers re-created
}

func (d *differ) add(a Action) { d.p.Actions = append(d.p.Actions, a) }

// check refuses a file that names objects the lab does not own, or needs
// what the machine lacks.
func (d *differ) check() error {
	for _, n := range d.f.Networks {
		if cur := d.m.nets[n.Name]; cur != nil && cur.Lab != d.f.Name {
			return &Error{File: d.f.Path, Line: n.Line, Field: "networks." + n.Name,
				Msg: fmt.Sprintf("network %s already exists and %s; remove it, or rename the network in the file", n.Name, owner(cur.Lab)), err: errs.ErrConflict}
		}
	}
	for _, c := range d.f.Containers {
		if cur := d.m.cs[c.Name]; cur != nil && cur.Lab != d.f.Name {
			return &Error{File: d.f.Path, Line: c.Line, Field: "containers." + c.Name,
				Msg: fmt.Sprintf("container %s already exists and %s; remove it, or rename the container in the file", c.Name, owner(cur.Lab)), err: errs.ErrConflict}
		}
		for i, a := range c.Networks {
			if d.f.Network(a.Network) == nil && d.m.nets[a.Network] == nil {
				return &Error{File: d.f.Path, Line: a.Line, Field: fmt.Sprintf("containers.%s.networks[%d]", c.Name, i),
					Msg: fmt.Sprintf("network %q is neither in the file nor on this machine; want one of: %s", a.Network, d.networkNames()), err: errs.ErrNotFound}
			}
		}
		if len(c.Command) > 0 && d.start == nil {
			return &Error{File: d.f.Path, Line: c.Line, Field: "containers." + c.Name + ".command",
				Msg: "this program cannot start commands; apply the file with the cnet command"}
		}
	}
	d.replaceNet = map[string]bool{}
	for _, n := range d.f.Networks {
		cur := d.m.nets[n.Name]
		if cur == nil || networkSame(n, cur) {
			continue
		}
		for _, name := range cur.Containers {
			if c := d.m.cs[name]; c != nil && c.Lab != d.f.Name {
				return &Error{File: d.f.Path, Line: n.Line, Field: "networks." + n.Name,
					Msg: fmt.Sprintf("changing network %s means re-creating it, but container %s, which %s, is attached; disconnect it first", n.Name, name, owner(c.Lab)), err: errs.ErrBusy}
			}
		}
		d.replaceNet[n.Name] = true
	}
	return nil
}

func (d *differ) networkNames() string {
	var out []string
	for _, n := range d.f.Networks {
		out = append(out, n.Name)
	}
	for name := range d.m.nets {
		if d.f.Network(name) == nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// networkSame reports whether an existing network already is what the
// file asks for. What the file leaves out may be anything.
func networkSame(n *Network, cur *cnet.Network) bool {
	if n.Subnet.IsValid() {
		gw := n.Gateway
		if !gw.IsValid() {
			gw = n.Subnet.Masked().Addr().Next()
		}
		if n.Subnet != cur.Subnet || gw != cur.Gateway {
			return false
		}
	}
	mtu := n.MTU
	if mtu == 0 {
		mtu = plan.DefaultMTU
	}
	return (n.Bridge == "" || n.Bridge == cur.Bridge) && n.Internal == cur.Internal && mtu == cur.MTU && n.DNS == cur.DNS
}

// internal reports whether a network the container names is internal.
func (d *differ) internal(name string) bool {
	if n := d.f.Network(name); n != nil {
		return n.Internal
	}
	return d.m.nets[name] != nil && d.m.nets[name].Internal
}

// defaultNet is the network the container's default route goes through
// when its endpoints are made in file order: the first not internal.
func (d *differ) defaultNet(c *Container) string {
	for _, a := range c.Networks {
		if !d.internal(a.Network) {
			return a.Network
		}
	}
	return ""
}

func curDefaultNet(c *cnet.Container) string {
	for _, ep := range c.Endpoints {
		if ep.DefaultRoute {
			return ep.Network
		}
	}
	return ""
}

func endpointSame(a *Attach, ep cnet.Endpoint) bool {
	return (!a.IP.IsValid() || a.IP == ep.IP()) && a.Egress == ep.Egress && slices.Equal(sorted(a.Aliases), sorted(ep.Aliases))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if len(s) == 0 {
		return nil
	}
	return s
}

func (d *differ) lab(name string) bool {
	c := d.m.cs[name]
	return c != nil && c.Lab == d.f.Name
}

// plan lists the actions, in an order each can run in.
func (d *differ) plan() {
	d.recreate = map[string]bool{}
	var (
		remove                    []string
		unpublish, publish        []Action
		disconnect, connect       []Action
		removeNets, createNets    []Action
		createContainers, unlinks []Action
	)
	// Containers of the lab no longer in the file.
	for _, name := range sortedKeys(d.m.cs) {
		if d.lab(name) && d.f.Container(name) == nil {
			remove = append(remove, name)
		}
	}
	for _, c := range d.f.Containers {
		cur := d.m.cs[c.Name]
		if cur == nil {
			continue
		}
		if why := d.recreateReason(c, cur); why != "" {
			d.recreate[c.Name] = true
			remove = append(remove, c.Name)
			createContainers = append(createContainers, Action{Op: "replace", Kind: "container", Object: c.Name, Detail: why})
			continue
		}
		// Endpoints: by network.
		want := map[string]*Attach{}
		for _, a := range c.Networks {
			want[a.Network] = a
		}
		target := curDefaultNet(cur)
		curPorts := portSet(cur.Ports)
		wantPorts := mappingSet(c.Ports)
		portsMove := false
		for _, ep := range cur.Endpoints {
			a := want[ep.Network]
			switch {
			case a == nil:
				disconnect = append(disconnect, d.disconnect(c.Name, ep.Network, "not in the file"))
			case d.replaceNet[ep.Network]:
				disconnect = append(disconnect, d.disconnect(c.Name, ep.Network, "its network is re-created"))
				connect = append(connect, d.connect(c.Name, a, "on the re-created network"))
			case !endpointSame(a, ep):
				disconnect = append(disconnect, d.disconnect(c.Name, ep.Network, "to re-create it"))
				connect = append(connect, d.connect(c.Name, a, endpointChange(a, ep)))
			default:
				continue
			}
			if ep.Network == target {
				portsMove = true
			}
		}
		for _, a := range c.Networks {
			if cur.Endpoint(a.Network) == nil {
				connect = append(connect, d.connect(c.Name, a, ""))
			}
		}
		// Ports: the difference, or all of them when their endpoint is re-made.
		var del, put []cnet.PortMapping
		for _, k := range sortedKeys(curPorts) {
			if portsMove || !wantPorts[k].valid {
				del = append(del, curPorts[k].PortMapping)
			}
		}
		for _, k := range sortedKeys(wantPorts) {
			if portsMove || !curPorts[k].valid {
				put = append(put, wantPorts[k].PortMapping)
			}
		}
		if len(del) > 0 {
			unpublish = append(unpublish, Action{Op: "unpublish", Kind: "ports", Object: c.Name, Detail: formatPorts(del),
				run: func(e *cnet.Engine) error { _, err := e.Unpublish(c.Name, del); return err }})
		}
		if len(put) > 0 {
			publish = append(publish, d.publish(c.Name, put))
		}
	}
	if len(remove) > 0 {
		names := slices.Clone(remove)
		d.add(Action{Op: "remove", Kind: "container", Object: strings.Join(names, ", "), Detail: d.removeDetail(names),
			run: func(e *cnet.Engine) error { return e.RemoveContainers(names, cnet.RemoveOptions{Force: true}) }})
	}
	// Links no longer wanted, or changed (not those that go with a removed container).
	wantLinks := map[string]*Link{}
	for _, l := range d.f.Links {
		wantLinks[linkKey(l)] = l
	}
	gone := func(name string) bool { return slices.Contains(remove, name) }
	for _, name := range sortedKeys(d.m.cs) {
		c := d.m.cs[name]
		for _, l := range c.Links {
			if l.Lab != d.f.Name || gone(c.Name) || gone(l.Peer) || name > l.Peer && d.m.cs[l.Peer] != nil {
				continue // each link once, from its first end; none that dies with a container
			}
			if w := wantLinks[curLinkKey(c.Name, l)]; w != nil && linkSame(w, c.Name, l) {
				continue
			}
			iface := l.Interface
			unlinks = append(unlinks, Action{Op: "remove", Kind: "link", Object: fmt.Sprintf("%s:%s -- %s:%s", name, iface, l.Peer, l.PeerInterface),
				run: func(e *cnet.Engine) error { return e.RemoveLink(name, iface) }})
		}
	}
	d.p.Actions = append(d.p.Actions, unlinks...)
	d.p.Actions = append(d.p.Actions, unpublish...)
	d.p.Actions = append(d.p.Actions, disconnect...)
	// Networks of the lab no longer in the file, and those re-created.
	for _, name := range sortedKeys(d.m.nets) {
		if n := d.m.nets[name]; n.Lab == d.f.Name && (d.f.Network(name) == nil || d.replaceNet[name]) {
			removeNets = append(removeNets, Action{Op: "remove", Kind: "network", Object: name, Detail: n.Subnet.String(),
				run: func(e *cnet.Engine) error { return e.RemoveNetwork(name, false) }})
		}
	}
	d.p.Actions = append(d.p.Actions, removeNets...)
	for _, n := range d.f.Networks {
		if d.m.nets[n.Name] != nil && !d.replaceNet[n.Name] {
			continue
		}
		op := "create"
		if d.replaceNet[n.Name] {
			op = "replace"
		}
		spec := cnet.NetworkSpec{Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, Bridge: n.Bridge, Internal: n.Internal, NoDNS: !n.DNS, MTU: n.MTU, Lab: d.f.Name}
		createNets = append(createNets, Action{Op: op, Kind: "network", Object: n.Name, Detail: networkDetail(n),
			run: func(e *cnet.Engine) error { _, err := e.CreateNetwork(spec); return err }})
	}
	d.p.Actions = append(d.p.Actions, createNets...)
	// New and re-created containers: create on the first network, connect
	// the others, publish.
	for _, c := range d.f.Containers {
		if d.m.cs[c.Name] != nil && !d.recreate[c.Name] {
			continue
		}
		spec := cnet.ContainerSpec{Name: c.Name, Network: plan.NoNetwork, DNS: c.DNS, Forwarding: c.Forwarding, Lab: d.f.Name}
		if len(c.Networks) > 0 {
			a := c.Networks[0]
			spec.Network, spec.IP, spec.Aliases, spec.Egress = a.Network, a.IP, a.Aliases, a.Egress
		}
		detail := containerDetail(c)
		if d.recreate[c.Name] {
			detail = createContainers[slices.IndexFunc(createContainers, func(a Action) bool { return a.Object == c.Name })].Detail
		}
		d.add(Action{Op: map[bool]string{true: "replace", false: "create"}[d.recreate[c.Name]], Kind: "container", Object: c.Name, Detail: detail,
			run: func(e *cnet.Engine) error { _, err := e.CreateContainer(spec); return err }})
		for _, a := range c.Networks[min(1, len(c.Networks)):] {
			d.add(d.connect(c.Name, a, ""))
		}
		if len(c.Ports) > 0 {
			d.add(d.publish(c.Name, c.Ports))
		}
	}
	d.p.Actions = append(d.p.Actions, connect...)
	d.p.Actions = append(d.p.Actions, publish...)
	// Links: new, changed, or whose container was re-created.
	for _, l := range d.f.Links {
		if d.linkExists(l) && !d.recreate[l.A.Container] && !d.recreate[l.B.Container] {
			continue
		}
		spec := cnet.LinkSpec{A: cnet.LinkEnd(l.A.engine()), B: cnet.LinkEnd(l.B.engine()), MTU: l.MTU, Lab: d.f.Name}
		d.add(Action{Op: "create", Kind: "link", Object: fmt.Sprintf("%s:%s -- %s:%s", l.A.Container, l.A.iface(l.B), l.B.Container, l.B.iface(l.A)),
			Detail: linkDetail(l), run: func(e *cnet.Engine) error { _, err := e.CreateLink(spec); return err }})
	}
	// Routes, once every interface they go through exists. Routes through
	// a link that goes away go with it.
	goneLinks := map[string][]netip.Prefix{}
	for _, name := range sortedKeys(d.m.cs) {
		for _, l := range d.m.cs[name].Links {
			w := wantLinks[curLinkKey(name, l)]
			if l.Address.IsValid() && (gone(name) || gone(l.Peer) || w == nil || !linkSame(w, name, l)) {
				goneLinks[name] = append(goneLinks[name], l.Address.Masked())
			}
		}
	}
	for _, c := range d.f.Containers {
		cur := d.m.cs[c.Name]
		var have []cnet.Route
		if cur != nil && !d.recreate[c.Name] {
			for _, r := range cur.Routes {
				if !slices.ContainsFunc(goneLinks[c.Name], func(p netip.Prefix) bool { return p.Contains(r.Via) }) {
					have = append(have, r)
				}
			}
		}
		if routesSame(c.Routes, have) {
			continue
		}
		routes := slices.Clone(c.Routes)
		d.add(Action{Op: "update", Kind: "routes", Object: c.Name, Detail: formatRoutes(routes),
			run: func(e *cnet.Engine) error { _, err := e.SetRoutes(c.Name, routes); return err }})
	}
	// Commands, last: everything they talk to is in place.
	for _, c := range d.f.Containers {
		if len(c.Command) == 0 {
			continue
		}
		argv := c.Command
		cur := d.m.cs[c.Name]
		fresh := cur == nil || d.recreate[c.Name]
		if !fresh {
			same, tagged := running(cur.PIDs, argv)
			if same {
				continue
			}
			if tagged {
				d.add(Action{Op: "stop", Kind: "command", Object: c.Name, Detail: "the file's command changed",
					run: func(e *cnet.Engine) error { return e.Stop(c.Name, 0) }})
			}
		}
		start := d.start
		d.add(Action{Op: "start", Kind: "command", Object: c.Name, Detail: strings.Join(argv, " "),
			run: func(e *cnet.Engine) error {
				return start(c.Name, argv, []string{CommandEnv + "=" + commandTag(argv)})
			}})
	}
}

func (d *differ) removeDetail(names []string) string {
	var why []string
	for _, n := range names {
		if d.recreate[n] {
			why = append(why, n+" to re-create it")
		}
	}
	if len(why) == 0 {
		return "not in the file"
	}
	return strings.Join(why, ", ")
}

// recreateReason says why a container must be made again, or "".
func (d *differ) recreateReason(c *Container, cur *cnet.Container) string {
	switch {
	case c.Forwarding != cur.Forwarding:
		return fmt.Sprintf("forwarding %v → %v", cur.Forwarding, c.Forwarding)
	case !slices.Equal(c.DNS, cur.DNS) && (len(c.DNS) > 0 || len(cur.DNS) > 0):
		return fmt.Sprintf("dns %s → %s", addrs(cur.DNS), addrs(c.DNS))
	case d.defaultNet(c) != curDefaultNet(cur):
		return fmt.Sprintf("default route through %s → %s", orNone(curDefaultNet(cur)), orNone(d.defaultNet(c)))
	case len(c.Networks) > 0 && len(cur.Endpoints) > 0 && c.Networks[0].Network != cur.Endpoints[0].Network:
		return fmt.Sprintf("first network %s → %s", cur.Endpoints[0].Network, c.Networks[0].Network)
	}
	// The default-route endpoint changes while another could take the
	// route: making it again would move the route, so make it all again.
	if t := curDefaultNet(cur); t != "" {
		for _, a := range c.Networks {
			ep := cur.Endpoint(a.Network)
			if a.Network == t && ep != nil && (!endpointSame(a, *ep) || d.replaceNet[t]) && len(cur.Endpoints) > 1 {
				return "its default-route endpoint on " + t + " changes"
			}
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func addrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "the default"
	}
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return strings.Join(out, ",")
}

func (d *differ) disconnect(container, network, why string) Action {
	return Action{Op: "disconnect", Kind: "endpoint", Object: container + " on " + network, Detail: why,
		run: func(e *cnet.Engine) error { return e.Disconnect(network, container) }}
}

func (d *differ) connect(container string, a *Attach, why string) Action {
	spec := cnet.ConnectSpec{Network: a.Network, Container: container, IP: a.IP, Aliases: a.Aliases, Egress: a.Egress}
	detail := attachDetail(a)
	if why != "" {
		detail = strings.TrimPrefix(detail+"; "+why, "; ")
	}
	return Action{Op: "connect", Kind: "endpoint", Object: container + " on " + a.Network, Detail: detail,
		run: func(e *cnet.Engine) error { _, err := e.Connect(spec); return err }}
}

func (d *differ) publish(container string, ms []cnet.PortMapping) Action {
	ms = slices.Clone(ms)
	return Action{Op: "publish", Kind: "ports", Object: container, Detail: formatPorts(ms),
		run: func(e *cnet.Engine) error { _, err := e.Publish(container, ms); return err }}
}

func endpointChange(a *Attach, ep cnet.Endpoint) string {
	var out []string
	if a.IP.IsValid() && a.IP != ep.IP() {
		out = append(out, fmt.Sprintf("address %s → %s", ep.IP(), a.IP))
	}
	if a.Egress != ep.Egress {
		out = append(out, fmt.Sprintf("egress %s → %s", rate(ep.Egress), rate(a.Egress)))
	}
	if !slices.Equal(sorted(a.Aliases), sorted(ep.Aliases)) {
		out = append(out, fmt.Sprintf("aliases [%s] → [%s]", strings.Join(ep.Aliases, " "), strings.Join(a.Aliases, " ")))
	}
	return strings.Join(out, ", ")
}

func rate(r uint64) string {
	if r == 0 {
		return "unlimited"
	}
	return cnet.FormatRate(r)
}

type portEntry struct {
	cnet.PortMapping
	valid bool
}

func portKey(m cnet.PortMapping) string {
	return fmt.Sprintf("%s %s:%05d %05d", m.Proto, m.HostIP, m.HostPort, m.Port)
}

func portSet(ps []cnet.Port) map[string]portEntry {
	out := map[string]portEntry{}
	for _, p := range ps {
		m := cnet.PortMapping{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, Port: p.Port}
		out[portKey(m)] = portEntry{m, true}
	}
	return out
}

func mappingSet(ms []cnet.PortMapping) map[string]portEntry {
	out := map[string]portEntry{}
	for _, m := range ms {
		out[portKey(m)] = portEntry{m, true}
	}
	return out
}

func formatPorts(ms []cnet.PortMapping) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", m.HostIP, m.HostPort, m.Port, m.Proto))
	}
	return strings.Join(out, " ")
}

func formatRoutes(rs []cnet.Route) string {
	if len(rs) == 0 {
		return "none"
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s via %s", r.To, r.Via))
	}
	return strings.Join(out, ", ")
}

func routesSame(a, b []cnet.Route) bool {
	key := func(rs []cnet.Route) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.To.String()+" "+r.Via.String())
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

func networkDetail(n *Network) string {
	var out []string
	if n.Subnet.IsValid() {
		out = append(out, n.Subnet.String())
	} else {
		out = append(out, "subnet from the pool")
	}
	if n.Internal {
		out = append(out, "internal")
	}
	if !n.DNS {
		out = append(out, "no dns")
	}
	if n.MTU != 0 {
		out = append(out, fmt.Sprintf("mtu %d", n.MTU))
	}
	return strings.Join(out, ", ")
}

func attachDetail(a *Attach) string {
	var out []string
	if a.IP.IsValid() {
		out = append(out, a.IP.String())
	}
	if len(a.Aliases) > 0 {
		out = append(out, "aliases "+strings.Join(a.Aliases, " "))
	}
	if a.Egress > 0 {
		out = append(out, "egress "+cnet.FormatRate(a.Egress))
	}
	return strings.Join(out, ", ")
}

func containerDetail(c *Container) string {
	if len(c.Networks) == 0 {
		return "no network"
	}
	s := "on " + c.Networks[0].Network
	if d := attachDetail(c.Networks[0]); d != "" {
		s += " (" + d + ")"
	}
	if c.Forwarding {
		s += ", forwarding"
	}
	return s
}

// engine returns the end as the engine takes it.
func (e LinkEnd) engine() cnet.LinkEnd {
	return cnet.LinkEnd{Container: e.Container, Interface: e.Interface, Address: e.IP, Egress: e.Egress}
}

// iface is the end's interface name, defaulted from the peer's container.
func (e LinkEnd) iface(peer LinkEnd) string {
	if e.Interface != "" {
		return e.Interface
	}
	return peer.Container
}

func linkKey(l *Link) string {
	a, b := l.A.Container+":"+l.A.iface(l.B), l.B.Container+":"+l.B.iface(l.A)
	if b < a {
		a, b = b, a
	}
	return a + " " + b
}

func curLinkKey(container string, l cnet.Link) string {
	a, b := container+":"+l.Interface, l.Peer+":"+l.PeerInterface
	if b < a {
		a, b = b, a
	}
	return a + " " + b
}

// linkSame reports whether the link seen from container is the file's.
func linkSame(w *Link, container string, l cnet.Link) bool {
	mine, theirs := w.A, w.B
	if w.B.Container == container && w.B.iface(w.A) == l.Interface {
		mine, theirs = w.B, w.A
	}
	mtu := w.MTU
	if mtu == 0 {
		mtu = plan.DefaultMTU
	}
	return mine.IP == l.Address && theirs.IP == l.PeerAddress && mtu == l.MTU && mine.Egress == l.Egress && theirs.Egress == l.PeerEgress
}

func (d *differ) linkExists(w *Link) bool {
	c := d.m.cs[w.A.Container]
	if c == nil {
		return false
	}
	for _, l := range c.Links {
		if l.Interface == w.A.iface(w.B) && l.Peer == w.B.Container && l.PeerInterface == w.B.iface(w.A) {
			return linkSame(w, c.Name, l) && l.Lab == d.f.Name
		}
	}
	return false
}

func linkDetail(l *Link) string {
	var out []string
	if l.A.IP.IsValid() {
		out = append(out, l.A.IP.String()+" -- "+l.B.IP.String())
	}
	for _, e := range []LinkEnd{l.A, l.B} {
		if e.Egress > 0 {
			out = append(out, fmt.Sprintf("egress from %s %s", e.Container, cnet.FormatRate(e.Egress)))
		}
	}
	return strings.Join(out, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Destroy returns the plan that removes everything lab made: its
// containers (with their processes, endpoints and links), then its
// networks. Objects of other labs, or of none, are left alone.
func Destroy(e *cnet.Engine, lab string) (*Plan, error) {
	m, err := read(e)
	if err != nil {
		return nil, err
	}
	p := &Plan{Lab: lab, Actions: []Action{}}
	var cs []string
	for _, name := range sortedKeys(m.cs) {
		if m.cs[name].Lab == lab {
			cs = append(cs, name)
		}
	}
	if len(cs) > 0 {
		p.Actions = append(p.Actions, Action{Op: "remove", Kind: "container", Object: strings.Join(cs, ", "),
			run: func(e *cnet.Engine) error { return e.RemoveContainers(cs, cnet.RemoveOptions{Force: true}) }})
	}
	for _, name := range sortedKeys(m.nets) {
		if n := m.nets[name]; n.Lab == lab {
			p.Actions = append(p.Actions, Action{Op: "remove", Kind: "network", Object: name, Detail: n.Subnet.String(),
				run: func(e *cnet.Engine) error { return e.RemoveNetwork(name, false) }})
		}
	}
	return p, nil
}

// StepError is the failure of one action of a plan.
type StepError struct {
	Action Action
	Done   int // actions applied before it
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s %s %s: %v", e.Action.Op, e.Action.Kind, e.Action.Object, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Apply runs the plan's actions in order, calling done after each one
// that succeeded. It stops at the first failure: that action has rolled
// itself back, the ones before it stand, and applying the file again
// carries on from there.
func (p *Plan) Apply(e *cnet.Engine, done func(Action)) error {
	for i, a := range p.Actions {
		if a.run == nil {
			return &StepError{Action: a, Done: i, Err: errors.New("this plan was not made by Diff or Destroy")}
		}
		if err := a.run(e); err != nil {
			return &StepError{Action: a, Done: i, Err: err}
		}
		if done != nil {
			done(a)
		}
	}
	return nil
}
