package cnet

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/ports"
	"github.com/cnetdev/cnet/internal/script"
	"github.com/cnetdev/cnet/internal/state"
)

// ContainerSpec asks for a container on one network (default: the
// network "cnet", created on first use), with an address (default: the
// lowest free one) and nameservers (default: the host's).
type ContainerSpec struct {
	Name string
	// Network is the network to attach to ("none": no network, only lo).
	Network string
	IP      netip.Addr
	DNS     []netip.Addr
	// Aliases are extra names the container answers to on Network.
	Aliases []string
	Ports   []PortMapping
	// Egress limits what the container sends on Network, in bits/s
	// (0: no limit), with a token bucket on its interface.
	Egress uint64
	// Forwarding turns IPv4 forwarding on inside the container, so it
	// routes between its networks and links.
	Forwarding bool
	// Lab names the lab file the container belongs to, if any.
	Lab string
}

// ConnectSpec asks for one more endpoint: Container on Network.
type ConnectSpec struct {
	Network, Container string
	// IP is the address (default: the lowest free one).
	IP      netip.Addr
	Aliases []string
	// Egress limits what the container sends on Network, in bits/s.
	Egress uint64
}

// PortMapping publishes one container port on the host. Parse specs with
// ParsePorts.
type PortMapping = model.PortMapping

// ParsePorts parses "[HOSTIP:]HOSTPORT[-END]:CPORT[-END][/tcp|udp]" into
// one mapping per port.
func ParsePorts(spec string) ([]PortMapping, error) { return ports.Parse(spec) }

// Publish adds published ports to a container and returns them as
// served: connections to the host port reach the container's address on
// its default-route network. Its cost does not grow with the number of
// ports already published. Equivalent to:
// `nft add element inet cnet dnat_tcp { HOSTIP . PORT : ADDR . CPORT }`.
func (e *Engine) Publish(container string, mappings []PortMapping) ([]Port, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.Publish(env, container, mappings)
	})
	if err != nil {
		return nil, err
	}
	return publicPorts(p.Container), nil
}

// Unpublish removes published ports from a container, and the connection
// tracking entries they made, and returns what was removed.
func (e *Engine) Unpublish(container string, mappings []PortMapping) ([]Port, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.Unpublish(env, container, mappings)
	})
	if err != nil {
		return nil, err
	}
	return publicPorts(p.Container), nil
}

func publicPorts(c *model.Container) []Port {
	out := []Port{}
	for _, pe := range plan.Elems(c) {
		out = append(out, Port{Proto: pe.Proto, HostIP: pe.HostIP, HostPort: pe.HostPort, Address: pe.Addr, Port: pe.Port})
	}
	return out
}

// Container is a named network namespace and its endpoints.
type Container struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
	// ContainerID is the runtime's, for containers attached through CNI.
	ContainerID string       `json:"container_id,omitempty"`
	Adopted     bool         `json:"adopted"`
	DNS         []netip.Addr `json:"dns"`
	Endpoints   []Endpoint   `json:"endpoints"`
	Ports       []Port       `json:"ports"`
	PIDs        []int        `json:"pids"`
	Created     time.Time    `json:"created"`
	// Lab is the lab file the container belongs to, if any.
	Lab        string  `json:"lab,omitempty"`
	Forwarding bool    `json:"forwarding"`
	Links      []Link  `json:"links"`
	Routes     []Route `json:"routes"`
	// Interfaces is what the kernel reports inside the namespace; only
	// Inspect fills it.
	Interfaces []Interface `json:"interfaces,omitempty"`
}

// Endpoint is a container's attachment to a network: a veth pair.
type Endpoint struct {
	Network       string       `json:"network"`
	Aliases       []string     `json:"aliases"`
	Interface     string       `json:"interface"`
	HostInterface string       `json:"host_interface"`
	Bridge        string       `json:"bridge"`
	Address       netip.Prefix `json:"address"`
	Gateway       netip.Addr   `json:"gateway"`
	MAC           string       `json:"mac"`
	DefaultRoute  bool         `json:"default_route"`
	// Egress is the limit on what the container sends here, in bits/s.
	Egress uint64 `json:"egress,omitempty"`
}

// Port is a published port as it is served: HostIP:HostPort on the host
// leads to Address:Port in the container.
type Port struct {
	Proto    string     `json:"proto"`
	HostIP   netip.Addr `json:"host_ip"`
	HostPort uint16     `json:"host_port"`
	Address  netip.Addr `json:"address"`
	Port     uint16     `json:"port"`
}

// String renders the port as `docker port` does: 0.0.0.0:8080->80/tcp.
func (p Port) String() string {
	return fmt.Sprintf("%s:%d->%d/%s", p.HostIP, p.HostPort, p.Port, p.Proto)
}

// Endpoint returns the container's endpoint on network, or nil.
func (c *Container) Endpoint(network string) *Endpoint {
	for i := range c.Endpoints {
		if c.Endpoints[i].Network == network {
			return &c.Endpoints[i]
		}
	}
	return nil
}

// IP returns the endpoint's address without its prefix length.
func (ep Endpoint) IP() netip.Addr { return ep.Address.Addr() }

// Interface is a link inside a container, as the kernel reports it.
type Interface struct {
	Name      string         `json:"name"`
	MAC       string         `json:"mac"`
	MTU       int            `json:"mtu"`
	State     string         `json:"state"`
	Addresses []netip.Prefix `json:"addresses"`
}

func (e *Engine) publicContainer(c *model.Container, nets map[string]*model.Network, pids []int) *Container {
	out := &Container{Name: c.Name, Netns: e.NetnsPath(c.Name), Adopted: c.Adopted, DNS: c.DNS, Created: c.Created, PIDs: pids,
		Lab: c.Lab, Forwarding: c.Forwarding, Links: publicLinks(c), Routes: publicRoutes(c)}
	if c.NetnsPath != "" {
		out.Netns = c.NetnsPath
	}
	if c.CNI != nil {
		out.ContainerID = c.CNI.ContainerID
	}
	if out.DNS == nil {
		out.DNS = []netip.Addr{}
	}
	if out.PIDs == nil {
		out.PIDs = []int{}
	}
	out.Ports = publicPorts(c)
	out.Endpoints = []Endpoint{}
	for _, ep := range c.Endpoints {
		pe := Endpoint{Network: ep.Network, Aliases: append([]string{}, ep.Aliases...), Interface: ep.ContainerIf, HostInterface: ep.HostIf,
			MAC: cmp.Or(ep.MAC, names.MAC(ep.Addr).String()), DefaultRoute: ep.DefaultRoute, Address: netip.PrefixFrom(ep.Addr, 32), Egress: ep.Egress}
		if n := nets[ep.Network]; n != nil {
			pe.Bridge, pe.Gateway, pe.Address = n.Bridge, n.Gateway, netip.PrefixFrom(ep.Addr, n.Subnet.Bits())
		}
		out.Endpoints = append(out.Endpoints, pe)
	}
	return out
}

// CreateContainer creates a namespace and attaches it to a network.
// Equivalent to:
//
//	ip netns add NAME && ip -n NAME link set lo up
//	ip link add vethX type veth peer name eth0 netns NAME && ip link set vethX master BRIDGE up
//	ip -n NAME addr add ADDR/LEN dev eth0 && ip -n NAME link set eth0 up
//	ip -n NAME route add default via GATEWAY
//	echo nameserver ... > /etc/netns/NAME/resolv.conf
func (e *Engine) CreateContainer(spec ContainerSpec) (*Container, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.CreateContainer(env, plan.ContainerReq(spec))
	})
	if err != nil {
		return nil, err
	}
	if p.Network != nil { // the default network was created on first use
		e.warnForwardPolicy(p.Network)
	}
	return e.containerResult(p)
}

// Connect attaches a container to one more network. A namespace made by
// `ip netns add` is adopted: cnet adds its endpoint, and later removes
// only what it added.
func (e *Engine) Connect(spec ConnectSpec) (*Container, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.Connect(env, plan.ConnectReq(spec))
	})
	if err != nil {
		return nil, err
	}
	return e.containerResult(p)
}

// Disconnect detaches a container from a network.
func (e *Engine) Disconnect(network, container string) error {
	_, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.Disconnect(env, network, container)
	})
	return err
}

func (e *Engine) containerResult(p *plan.Plan) (*Container, error) {
	return e.publicContainer(p.Container, p.Networks, nil), nil
}

// RemoveOptions tune RemoveContainers.
type RemoveOptions struct {
	// Force stops processes running inside a container cnet created:
	// SIGTERM, then SIGKILL after Grace (default 5 s). Processes in an
	// adopted namespace are never signalled.
	Force bool
	Grace time.Duration
}

// RemoveContainers removes containers in one transaction: endpoints,
// addresses, the namespace (unless adopted) and /etc/netns/NAME. Every name
// is checked before anything is removed; without Force, a container with
// processes inside is refused. A namespace cnet adopted (made by `ip netns
// add`, or a runtime's through CNI) is never deleted and its processes are
// never signalled, Force or not: cnet takes its endpoints out of it and
// says which processes stay.
func (e *Engine) RemoveContainers(names []string, opts RemoveOptions) error {
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	// Finding the processes inside takes a scan of /proc, whose cost
	// grows with the machine's processes. It runs while the transaction
	// opens the state and finishes any interrupted operation; the plan
	// waits for it.
	scan := scanProcesses()
	var (
		scanned bool
		busy    map[string][]int
		// left are adopted namespaces with processes, which stay running.
		left map[string][]int
	)
	build := func(env *plan.Env) (*plan.Plan, error) {
		if !scanned {
			byNs, err := scan()
			if err != nil {
				return nil, err
			}
			scanned = true
			busy, left = map[string][]int{}, map[string][]int{}
			for _, name := range names {
				c, err := env.View.Container(name)
				if err != nil {
					return nil, err
				}
				path := e.NetnsPath(name)
				if c != nil {
					path = e.netnsOf(c)
				}
				id, err := netns.IDOf(path)
				if err != nil || len(byNs[id]) == 0 {
					continue
				}
				if c != nil && c.Adopted {
					// cnet did not make this namespace and does not delete
					// it: its processes keep it, and their other
					// interfaces; only cnet's endpoints leave.
					left[name] = byNs[id]
					continue
				}
				busy[name] = byNs[id]
			}
			if len(busy) > 0 {
				return nil, errProcessesInside
			}
		}
		return plan.RemoveContainers(env, names)
	}
	_, err := e.mutateOrPreview(nil, build)
	if errors.Is(err, errProcessesInside) {
		var pre []PreviewStep
		if pre, err = e.stopInside(busy, opts); err == nil {
			_, err = e.mutateOrPreview(pre, build)
		}
	}
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(left) {
		e.opts.Notify(fmt.Sprintf("container %s: its namespace was made outside cnet, so it stays, with its %d process(es) (pid %s) running; "+
			"only cnet's endpoints and files were removed", name, len(left[name]), joinInts(left[name])))
	}
	if e.opts.DryRun != nil {
		return nil
	}
	for _, name := range names {
		e.removeLog(name)
	}
	return nil
}

// errProcessesInside stops a removal's first plan: some of the
// containers have processes inside, which must be refused or stopped
// outside the lock before planning again.
var errProcessesInside = errors.New("processes inside")

// scanProcesses starts netns.ProcessesByNetns and returns a function that
// waits for its result.
func scanProcesses() func() (map[netns.ID][]int, error) {
	type result struct {
		byNs map[netns.ID][]int
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		byNs, err := netns.ProcessesByNetns()
		ch <- result{byNs, err}
	}()
	return sync.OnceValues(func() (map[netns.ID][]int, error) {
		r := <-ch
		return r.byNs, r.err
	})
}

// stopInside refuses to remove containers with processes inside unless
// opts.Force, and then stops those processes (or, in a dry run, returns
// the steps that would).
func (e *Engine) stopInside(busy map[string][]int, opts RemoveOptions) ([]PreviewStep, error) {
	read := e.read
	if e.opts.DryRun != nil {
		read = e.view
	}
	// Only signal processes in namespaces that are cnet's containers.
	if err := read(func(tx *state.Tx) error {
		for name := range busy {
			if c, err := tx.Container(name); err != nil || c == nil {
				return cmp.Or(err, notFound("container", name, "nothing was removed; see `cnet ls`"))
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !opts.Force {
		name := sortedKeys(busy)[0]
		return nil, &errs.BusyError{What: "container", Name: name,
			Reason: fmt.Sprintf("has %d running process(es) (pid %s)", len(busy[name]), joinInts(busy[name])),
			Hint:   "stop them or use -f to send SIGTERM, then SIGKILL; nothing was removed"}
	}
	var pre []PreviewStep
	for _, name := range sortedKeys(busy) {
		if e.opts.DryRun != nil {
			pre = append(pre, stopPreview(name, busy[name], opts.Grace))
			continue
		}
		if err := stopProcesses(e.NetnsPath(name), busy[name], opts.Grace); err != nil {
			return nil, fmt.Errorf("stop processes in %s: %w", name, err)
		}
	}
	return pre, nil
}

// stopPreview is what stopProcesses does, as commands that find the
// processes when they run (PIDs listed now could be reused by then).
func stopPreview(name string, pids []int, grace time.Duration) PreviewStep {
	q := script.Quote(name)
	return PreviewStep{Kind: "processes", Action: string(model.Del),
		Comment: fmt.Sprintf("stop the processes in %s (now pid %s): SIGTERM, then, if any is left after %s, SIGKILL", name, joinInts(pids), grace),
		Commands: []string{
			"ip netns pids " + q + " | xargs -r kill -TERM || true",
			fmt.Sprintf("sleep %g", grace.Seconds()),
			"ip netns pids " + q + " | xargs -r kill -KILL || true",
		}}
}

// stopProcesses sends SIGTERM to pids, waits up to grace for the
// namespace to empty, then sends SIGKILL and waits again.
func stopProcesses(path string, pids []int, grace time.Duration) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig) // ESRCH: already gone, which is the goal; EPERM cannot happen as root, and the wait below tells if it did not stop
		}
		deadline := time.Now().Add(grace)
		for {
			left, err := netns.Processes(path)
			if err != nil {
				return err
			}
			if len(left) == 0 {
				return nil
			}
			pids = left
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return fmt.Errorf("processes %s survived SIGKILL", joinInts(pids))
}

// Containers lists every container with the PIDs running inside.
func (e *Engine) Containers() ([]*Container, error) {
	var out []*Container
	err := e.read(func(tx *state.Tx) error {
		nets, err := networkMap(tx)
		if err != nil {
			return err
		}
		cs, err := tx.Containers()
		if err != nil {
			return err
		}
		byNs, err := netns.ProcessesByNetns()
		if err != nil {
			return err
		}
		for _, c := range cs {
			var pids []int
			if id, err := netns.IDOf(e.netnsOf(c)); err == nil {
				pids = byNs[id]
			}
			c.Ports = tx.ContainerPorts(c.Name)
			out = append(out, e.publicContainer(c, nets, pids))
		}
		return nil
	})
	return out, err
}

// Container returns one container, with what the kernel reports inside
// its namespace.
func (e *Engine) Container(name string) (*Container, error) {
	var out *Container
	err := e.read(func(tx *state.Tx) error {
		c, err := tx.Container(name)
		if err != nil {
			return err
		}
		if c == nil {
			return notFound("container", name, "see `cnet ls`")
		}
		nets, err := networkMap(tx)
		if err != nil {
			return err
		}
		pids, _ := netns.Processes(e.netnsOf(c)) // a missing namespace has none
		c.Ports = tx.ContainerPorts(name)
		out = e.publicContainer(c, nets, pids)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Interfaces, err = e.interfaces(out.Netns)
	return out, err
}

// netnsOf is where a container's namespace is.
func (e *Engine) netnsOf(c *model.Container) string {
	if c.NetnsPath != "" {
		return c.NetnsPath
	}
	return e.NetnsPath(c.Name)
}

func (e *Engine) interfaces(path string) ([]Interface, error) {
	name := path
	ns, err := netns.Open(e.opts.netnsDir, path)
	if err != nil {
		return nil, fmt.Errorf("inspect namespace of %s: %w", name, err)
	}
	defer ns.Close()
	links, err := link.LinkList(ns.Link)
	if err != nil {
		return nil, fmt.Errorf("ip -n %s link show: %w", name, err)
	}
	var out []Interface
	for _, l := range links {
		a := l.Attrs()
		ifc := Interface{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, State: a.OperState.String(), Addresses: []netip.Prefix{}}
		addrs, err := link.AddrList(ns.Link, l, syscall.AF_INET)
		if err != nil {
			return nil, fmt.Errorf("ip -n %s addr show %s: %w", name, a.Name, err)
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok {
				ones, _ := ad.Mask.Size()
				ifc.Addresses = append(ifc.Addresses, netip.PrefixFrom(ip, ones))
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}

func networkMap(tx *state.Tx) (map[string]*model.Network, error) {
	nets, err := tx.Networks()
	m := map[string]*model.Network{}
	for _, n := range nets {
		m[n.Name] = n
	}
	return m, err
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return joinNames(s)
}

func notFound(what, name, hint string) error { return errs.NotFound(what, name, "%s", hint) }

// Resolved is one address a name stands for.
type Resolved struct {
	Container string     `json:"container"`
	Network   string     `json:"network"`
	Address   netip.Addr `json:"address"`
}

// Resolve returns what a name stands for on each network, read from
// state: a container's name, an alias, or NAME.NETWORK.cnet.
func (e *Engine) Resolve(name string) ([]Resolved, error) {
	q := strings.ToLower(strings.TrimSuffix(name, "."))
	var out []Resolved
	err := e.read(func(tx *state.Tx) error {
		cs, err := tx.Containers()
		if err != nil {
			return err
		}
		for _, c := range cs {
			for _, ep := range c.Endpoints {
				for _, n := range append([]string{c.Name}, ep.Aliases...) {
					n = strings.ToLower(n)
					if q == n || q == n+"."+strings.ToLower(ep.Network)+".cnet" {
						out = append(out, Resolved{Container: c.Name, Network: ep.Network, Address: ep.Addr})
						break
					}
				}
			}
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = notFound("name", name, "no container or alias is called that; see `cnet ls`")
	}
	return out, err
}

// Stop ends the processes running in a container: SIGTERM, then SIGKILL
// after grace (default 5 s). A container with none is left as it is.
func (e *Engine) Stop(name string, grace time.Duration) error {
	if grace == 0 {
		grace = 5 * time.Second
	}
	read := e.read
	if e.opts.DryRun != nil {
		read = e.view
	}
	if err := read(func(tx *state.Tx) error {
		c, err := tx.Container(name)
		if err == nil && c == nil {
			err = notFound("container", name, "see `cnet ls`")
		}
		return err
	}); err != nil {
		return err
	}
	pids, err := netns.Processes(e.NetnsPath(name))
	if err != nil || len(pids) == 0 {
		return err
	}
	if e.opts.DryRun != nil {
		e.opts.DryRun(&Preview{Op: "stop", Notes: []string{}, Steps: []PreviewStep{stopPreview(name, pids, grace)}})
		return nil
	}
	return stopProcesses(e.NetnsPath(name), pids, grace)
}
