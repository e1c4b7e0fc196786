package plan

import (
	"fmt"
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

// checkPorts refuses mappings that collide with each other, with other
// containers' mappings, or with a process listening on the host, or that
// name an address the host does not have.
func checkPorts(env *Env, c *model.Container, want []model.PortMapping) error {
	for i, m := range want {
		spec := ports.Format(m)
		for _, prev := range want[:i] {
			if ports.Overlaps(prev, m) {
				return errs.Conflict("published port", spec, ports.Format(prev), "the same host socket is asked for twice")
			}
		}
		for _, have := range c.Ports {
			if ports.Overlaps(have, m) {
				return errs.Exists("published port", spec, "container %s already publishes %s", c.Name, ports.Format(have))
			}
		}
		for _, h := range env.View.PortHolders(m.Proto, m.HostPort) {
			if h.Container == c.Name {
				continue
			}
			if held := (model.PortMapping{Proto: m.Proto, HostIP: h.HostIP, HostPort: m.HostPort}); ports.Overlaps(held, m) {
				return errs.Conflict("published port", spec, fmt.Sprintf("container %s (%s:%d/%s)", h.Container, h.HostIP, m.HostPort, m.Proto),
					"choose another host port or address; 0.0.0.0 claims the port on every address")
			}
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
		holder, err := env.Facts.Listener(m.Proto, m.HostIP, m.HostPort)
		if err != nil {
			return err
		}
		if holder != "" {
			return errs.Conflict("host port", fmt.Sprintf("%s:%d/%s", m.HostIP, m.HostPort, m.Proto), holder,
				"it is already in use on the host; choose another host port")
		}
	}
	return nil
}

// planPublish adds mappings to c (modified in place) with their steps.
func planPublish(env *Env, p *Plan, c *model.Container, want []model.PortMapping) error {
	if len(want) == 0 {
		return nil
	}
	t := c.Target()
	if t == nil {
		return errs.Conflict("published port", ports.Format(want[0]), "container "+c.Name+" having no network with a path beyond its bridge",
			"connect it to a network that is not --internal first")
	}
	if err := checkPorts(env, c, want); err != nil {
		return err
	}
	if len(c.Ports) == 0 {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindHairpin, Action: model.Add, HostIf: t.HostIf})
	}
	old := len(c.Ports)
	c.Ports = append(c.Ports, want...)
	p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Add, Ports: Elems(c)[old:]})
	p.Changes.PutContainer(c)
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
	if err := planPublish(env, p, c, want); err != nil {
		return nil, err
	}
	p.Container = c
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
	c = c.Clone()
	var gone []model.PortMapping
	for _, m := range drop {
		i := slices.Index(c.Ports, m)
		if i < 0 {
			return nil, errs.NotFound("published port", ports.Format(m), "container %s publishes %s", container, formatAll(c.Ports))
		}
		gone = append(gone, m)
		c.Ports = slices.Delete(c.Ports, i, i+1)
	}
	p := &Plan{Op: "unpublish", Direction: model.Rollforward, Container: c}
	planUnpublish(p, c, gone)
	p.Changes.PutContainer(c)
	return p, notePlanNetworks(env, p, c)
}

// planUnpublish removes the elements of gone, which c (already without
// them) published to its current target.
func planUnpublish(p *Plan, c *model.Container, gone []model.PortMapping) {
	if len(gone) == 0 {
		return
	}
	was := &model.Container{Endpoints: c.Endpoints, Ports: gone}
	p.Steps = append(p.Steps, model.Step{Kind: model.KindPorts, Action: model.Del, Ports: Elems(was)})
	if t := c.Target(); t != nil && len(c.Ports) == 0 {
		p.Steps = append(p.Steps, model.Step{Kind: model.KindHairpin, Action: model.Del, HostIf: t.HostIf})
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

// PortsAfter returns the published ports once ch is committed: those of
// the containers ch does not touch, and those of its new records.
func PortsAfter(v View, current []model.PortElem, ch model.Changes) ([]model.PortElem, error) {
	drop := map[model.PortElem]bool{}
	for name := range ch.Containers {
		old, err := v.Container(name)
		if err != nil {
			return nil, err
		}
		for _, e := range Elems(old) {
			drop[e] = true
		}
	}
	var out []model.PortElem
	for _, e := range current {
		if !drop[e] {
			out = append(out, e)
		}
	}
	for _, c := range ch.Containers {
		out = append(out, Elems(c)...)
	}
	return out, nil
}
