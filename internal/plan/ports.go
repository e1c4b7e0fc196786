package plan

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/ports"
)

// Elems returns the DNAT elements of a container's published ports: to the
// address of its default-route endpoint.
func Elems(c *model.Container) []model.PortElem {
	if c == nil {
		return nil
	}
	t := c.Target()
	if t == nil {
		return nil
	}
	out := make([]model.PortElem, 0, len(c.Ports))
	for _, m := range c.Ports {
		out = append(out, model.PortElem{Proto: m.Proto, HostIP: m.HostIP, HostPort: m.HostPort, Addr: t.Addr, Port: m.Port})
	}
	return out
}

// WithPorts returns c with its published ports loaded.
func WithPorts(v View, c *model.Container) *model.Container {
	if c == nil {
		return nil
	}
	c = c.Clone()
	c.Ports = v.ContainerPorts(c.Name)
	return c
}

// checkPorts refuses mappings that collide with each other, with
// published ports (the container's own or others'), or with a process
// listening on the host (unless the runtime owns the host socket), or
// that name an address the host does not have. Its cost does not depend
// on how many ports are published, and grows linearly with len(want):
// earlier mappings are found by protocol and port, and the host's
// sockets are read once per protocol.
func checkPorts(env *Env, c *model.Container, want []model.PortMapping, runtimeOwned bool) error {
	type socket struct {
		proto string
		port  uint16
	}
	asked := map[socket][]model.PortMapping{}
	listening := map[string]model.PortHolders{}
	for _, m := range want {
		spec := ports.Format(m)
		k := socket{m.Proto, m.HostPort}
		for _, prev := range asked[k] {
			if ports.Overlaps(prev, m) {
				return errs.Conflict("published port", spec, ports.Format(prev), "the same host socket is asked for twice")
			}
		}
		asked[k] = append(asked[k], m)
		for _, h := range env.View.PortHolders(m.Proto, m.HostPort) {
			held := model.PortMapping{Proto: m.Proto, HostIP: h.HostIP, HostPort: m.HostPort}
			if !ports.Overlaps(held, m) {
				continue
			}
			if h.Container == c.Name {
				return errs.Exists("published port", spec, "container %s already publishes %s:%d/%s", c.Name, h.HostIP, m.HostPort, m.Proto)
			}
			return errs.Conflict("published port", spec, fmt.Sprintf("container %s (%s:%d/%s)", h.Container, h.HostIP, m.HostPort, m.Proto),
				"choose another host port or address; 0.0.0.0 claims the port on every address")
		}
		if m.HostIP != ports.Any && !m.HostIP.IsLoopback() {
			ok, err := env.Facts.HostHasAddr(m.HostIP)
			if err != nil {
				return err
			}
			if !ok {
				return errs.Invalid("host address", m.HostIP.String(), "want 0.0.0.0, 127.0.0.1 or an address assigned to this host (see `ip -4 addr`)")
			}
		}
		if runtimeOwned {
			// A runtime's port mapping (CNI portMappings): the runtime owns
			// the host socket and may hold it itself to reserve the port
			// (Podman's conmon does), so a listener there is no conflict.
			continue
		}
		l, ok := listening[m.Proto]
		if !ok {
			var err error
			if l, err = env.Facts.Listeners(m.Proto); err != nil {
				return err
			}
			listening[m.Proto] = l
		}
		if holder := l.Holder(m.HostIP, m.HostPort); holder != "" {
			return errs.Conflict("host port", fmt.Sprintf("%s:%d/%s", m.HostIP, m.HostPort, m.Proto), holder,
				"it is already in use on the host; choose another host port")
		}
	}
	return nil
}

// planPublish publishes want on c; published says c has ports already,
// runtimeOwned that a container runtime owns the host sockets (CNI).
// Only the new mappings are written: the container record is untouched.
func planPublish(env *Env, p *Plan, c *model.Container, want []model.PortMapping, published, runtimeOwned bool) error {
	if len(want) == 0 {
		return nil
	}
	t := c.Target()
	if t == nil {
		return errs.Conflict("published port", ports.Format(want[0]), "container "+c.Name+" having no network with a path beyond its bridge",
			"connect it to a network that is not --internal first")
	}
	if err := checkPorts(env, c, want, runtimeOwned); err != nil {
		return err
	}
	if !published {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindHairpin, Action: model.Add, HostIf: t.HostIf})
	}
	added := &model.Container{Endpoints: c.Endpoints, Ports: want}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Add, Ports: Elems(added)})
	for _, m := range want {
		p.Changes.AddPort(c.Name, m)
	}
	c.Ports = append(c.Ports, want...)
	return nil
}

// Publish plans `cnet publish`.
func Publish(env *Env, container string, want []model.PortMapping) (*Plan, error) {
	c, err := env.View.Container(container)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errs.NotFound("container", container, "see `cnet ls`")
	}
	p := &Plan{Op: "publish", Direction: model.Rollback}
	c = c.Clone()
	if err := planPublish(env, p, c, want, env.View.PortsAtLeast(container, 1), false); err != nil {
		return nil, err
	}
	p.Container = c // with the new ports only
	return p, notePlanNetworks(env, p, c)
}

// Unpublish plans `cnet unpublish`: each mapping must be one the
// container has.
func Unpublish(env *Env, container string, drop []model.PortMapping) (*Plan, error) {
	c, err := env.View.Container(container)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errs.NotFound("container", container, "see `cnet ls`")
	}
	for i, m := range drop {
		owner, cport, ok := env.View.PortOwner(m.Proto, m.HostPort, m.HostIP)
		if !ok || owner != container || cport != m.Port || slices.Contains(drop[:i], m) {
			return nil, errs.NotFound("published port", ports.Format(m), "container %s publishes %s",
				container, formatAll(env.View.ContainerPorts(container)))
		}
	}
	p := &Plan{Op: "unpublish", Direction: model.Rollforward}
	c = c.Clone()
	c.Ports = drop
	// Every mapping in drop is the container's and none repeats, so none
	// remains unless it has more than len(drop).
	planUnpublish(p, c, !env.View.PortsAtLeast(container, len(drop)+1))
	p.Container = c // with the removed ports only
	return p, notePlanNetworks(env, p, c)
}

// planUnpublish removes the ports in c.Ports; last says none remain.
func planUnpublish(p *Plan, c *model.Container, last bool) {
	if len(c.Ports) == 0 {
		return
	}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Del, Ports: Elems(c)})
	if t := c.Target(); t != nil && last {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindHairpin, Action: model.Del, HostIf: t.HostIf})
	}
	for _, m := range c.Ports {
		p.Changes.DelPort(c.Name, m)
	}
}

func formatAll(ms []model.PortMapping) string {
	if len(ms) == 0 {
		return "nothing"
	}
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ", "
		}
		s += ports.Format(m)
	}
	return s
}

func notePlanNetworks(env *Env, p *Plan, c *model.Container) error {
	for _, ep := range c.Endpoints {
		n, err := env.View.Network(ep.Network)
		if err != nil {
			return err
		}
		if n != nil {
			p.noteNetwork(n)
		}
	}
	return nil
}

// PortsAfter returns the published ports once ch is committed.
func PortsAfter(v View, current []model.PortElem, ch model.Changes) ([]model.PortElem, error) {
	type socket struct {
		proto string
		ip    netip.Addr
		port  uint16
	}
	byKey := map[socket]model.PortElem{}
	for _, e := range current {
		byKey[socket{e.Proto, e.HostIP, e.HostPort}] = e
	}
	target := func(name string) (netip.Addr, error) {
		c, changed := ch.Containers[name]
		if !changed {
			var err error
			if c, err = v.Container(name); err != nil {
				return netip.Addr{}, err
			}
		}
		if c == nil || c.Target() == nil {
			return netip.Addr{}, nil
		}
		return c.Target().Addr, nil
	}
	// Containers whose record changes may have a new target, or be gone.
	for name := range ch.Containers {
		addr, err := target(name)
		if err != nil {
			return nil, err
		}
		for _, m := range v.ContainerPorts(name) {
			k := socket{m.Proto, m.HostIP, m.HostPort}
			delete(byKey, k)
			if addr.IsValid() {
				byKey[k] = model.PortElem{Proto: m.Proto, HostIP: m.HostIP, HostPort: m.HostPort, Addr: addr, Port: m.Port}
			}
		}
	}
	for _, pc := range ch.Ports {
		m := pc.Mapping
		k := socket{m.Proto, m.HostIP, m.HostPort}
		if pc.Del {
			delete(byKey, k)
			continue
		}
		addr, err := target(pc.Container)
		if err != nil {
			return nil, err
		}
		if addr.IsValid() {
			byKey[k] = model.PortElem{Proto: m.Proto, HostIP: m.HostIP, HostPort: m.HostPort, Addr: addr, Port: m.Port}
		}
	}
	out := make([]model.PortElem, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, e)
	}
	return out, nil
}
