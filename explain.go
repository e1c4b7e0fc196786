package cnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/explain"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/kernel"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/state"
)

// Explanation is Explain's answer: the hops a packet takes and the
// verdict (Reachable, Dropped with a Cause and a Fix, or Leaves).
type (
	Explanation = explain.Result
	Hop         = explain.Hop
	HopStep     = explain.Step
)

// Verdicts of an Explanation.
const (
	Reachable = explain.Reachable
	Dropped   = explain.Dropped
	Leaves    = explain.Leaves
)

// Explain tells why src can or cannot reach dst. src is "host", a
// container, or a namespace under /run/netns; dst is
// DST[:PORT][/tcp|udp], DST a container, an IPv4 address or "host"
// (host:PORT, a port published on the host). It follows the packet
// through each namespace with the kernel's own answers (`ip route get`
// in the namespace, the links, the bridge, the neighbours, the sockets,
// the sysctls), runs cnet's firewall and other tables' forward chains
// over it, and changes nothing. It takes only the shared lock, so it runs
// beside other readers, and no operation changes the machine meanwhile.
func (e *Engine) Explain(src, dst string) (*Explanation, error) {
	if err := explain.CheckSource(src); err != nil {
		return nil, err
	}
	t, err := explain.ParseTarget(dst)
	if err != nil {
		return nil, err
	}
	if e.requireRoot && os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	w := &explain.World{}
	var ports []model.PortElem
	st, err := state.OpenShared(e.opts.StateDir, e.opts.RunDir)
	switch {
	case errors.Is(err, state.ErrNoState): // nothing created yet: only the host and namespaces
	case err != nil:
		return nil, err
	default:
		defer e.closeStore(st) // the shared lock is held until the walk is done
		err := st.View(func(tx *state.Tx) error {
			var err error
			if w.Networks, err = tx.Networks(); err != nil {
				return err
			}
			if w.Containers, err = tx.Containers(); err != nil {
				return err
			}
			if ports, err = tx.PortElems(); err != nil {
				return err
			}
			if tx.HasIntents() {
				w.Notes = append(w.Notes, "an operation was interrupted and not yet resolved, so the kernel may differ from state: `cnet gc` resolves it")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}

	k := kernel.New(e.opts.netnsDir, e.opts.filesDir, names.FileMarker(e.instance))
	defer k.Close()
	spaces := map[string]string{}
	hints := kernel.ProbeHints{Containers: map[string]bool{}, Addrs: map[netip.Addr][]string{}, Peers: map[string]string{}}
	for _, c := range w.Containers {
		spaces[c.Name] = c.NetnsRef()
		hints.Containers[c.Name] = true
		for _, ep := range c.Endpoints {
			hints.Addrs[ep.Addr] = append(hints.Addrs[ep.Addr], c.Name)
			hints.Peers[ep.HostIf] = c.Name
		}
	}
	others, err := netns.List(e.opts.netnsDir)
	if err != nil {
		return nil, err
	}
	for _, name := range others {
		if _, ok := spaces[name]; !ok && k.NetnsState(name) == netns.Bound {
			spaces[name] = name
			w.Spaces = append(w.Spaces, name)
		}
	}
	if c := findContainer(w.Containers, src); c != nil && k.NetnsState(c.NetnsRef()) != netns.Bound {
		return nil, errs.NotFound("namespace of container", src, "it is gone: `cnet gc` releases the container")
	}

	// The anti-spoofing entries too, so that CheckFirewall compares both
	// tables with state.
	rs := firewall.FromState(w.Networks, ports).WithGuards(w.Containers)
	if !rs.Empty() {
		present, err := k.FirewallPresent()
		switch {
		case err != nil:
			w.Notes = append(w.Notes, "cannot read cnet's nftables table ("+err.Error()+"): this answer assumes it is as state says")
		case !present:
			rs = firewall.Ruleset{}
			w.Notes = append(w.Notes, "table inet cnet is missing from the kernel, so no NAT, isolation or published port of cnet is in force: `cnet gc` restores it")
		default:
			if problem, err := k.CheckFirewall(rs); err == nil && problem != "" {
				w.Notes = append(w.Notes, fmt.Sprintf("table inet cnet differs from state (%s); this answer assumes the table state describes, which `cnet gc` writes", problem))
			}
		}
	}
	w.Firewall = rs

	probe := k.NewProbe(spaces, hints)
	defer probe.Close()
	return explain.Explain(probe, w, src, t)
}

func findContainer(cs []*model.Container, name string) *model.Container {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}
