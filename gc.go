package cnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/state"
)

// GCAction is one thing GC did (or, in a dry run, would do).
type GCAction struct {
	Action string `json:"action"` // "recover", "repair", "release", "remove"
	Object string `json:"object"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"`
}

// GCReport lists what GC found.
type GCReport struct {
	DryRun   bool       `json:"dry_run"`
	Actions  []GCAction `json:"actions"`
	Warnings []string   `json:"warnings"`
}

// GC makes the machine match state: it finishes operations interrupted by
// a crash, re-creates what networks lack (bridge, gateway address, the
// firewall table after someone flushed the ruleset), re-creates missing
// endpoints and files, releases containers whose namespace is gone, and
// removes orphans carrying this instance's mark. It never touches objects
// without the mark. With dryRun it only reports.
func (e *Engine) GC(dryRun bool) (*GCReport, error) {
	s, err := e.openSession()
	if err != nil {
		return nil, err
	}
	defer s.close()
	r := &GCReport{DryRun: dryRun, Actions: []GCAction{}, Warnings: []string{}}
	act := func(a GCAction, fix func() error) {
		if !dryRun {
			if err := fix(); err != nil {
				a.Error = err.Error()
			}
		}
		r.Actions = append(r.Actions, a)
	}
	// A name server of this instance that lost its control socket still
	// holds port 53 on its gateways, where no command can update it and
	// no new server can listen: stop it before one is started.
	for _, pid := range s.k.DNSStale() {
		act(GCAction{Action: "remove", Object: fmt.Sprintf("dns server (pid %d)", pid),
			Reason: "a cnet name server that lost its control socket: it holds port 53 and nothing can update its records"},
			func() error { return s.k.DNSKill(pid) })
	}
	// A failed read of state or of the kernel stops gc there: what it
	// would decide from a partial picture is removal of what it missed.
	if dryRun {
		err := s.st.View(func(tx *state.Tx) error {
			ins, err := tx.Intents()
			for _, in := range ins {
				verb := "undo"
				if in.Direction == model.Rollforward {
					verb = "finish"
				}
				r.Actions = append(r.Actions, GCAction{Action: "recover", Object: in.Op,
					Reason: fmt.Sprintf("%s the operation interrupted in process %d", verb, in.PID)})
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read unfinished operations: %w", err)
		}
		// What recover does for real: restart a name server that died.
		if dead, err := s.dnsDead(); err != nil {
			r.Warnings = append(r.Warnings, "could not tell whether the dns server runs: "+err.Error())
		} else if dead {
			r.Actions = append(r.Actions, GCAction{Action: "recover", Object: "dns server",
				Reason: "not running (nothing listens on its control socket): restart it with every record"})
		}
	} else {
		msgs, err := s.recover()
		for _, msg := range msgs {
			r.Actions = append(r.Actions, GCAction{Action: "recover", Object: "state", Reason: msg})
		}
		if err != nil {
			return nil, err
		}
	}
	nets, containers, err := s.load()
	if err != nil {
		return nil, err
	}
	hostIfs := map[string]bool{}
	for _, c := range containers {
		for _, ep := range c.Endpoints {
			hostIfs[ep.HostIf] = true
		}
	}
	netByName := map[string]*model.Network{}
	bridges := map[string]bool{}
	for _, n := range nets {
		netByName[n.Name] = n
		bridges[n.Bridge] = true
		spec := s.bridgeSpec(n)
		problem, err := s.k.CheckBridge(spec)
		if err != nil {
			r.Actions = append(r.Actions, GCAction{Action: "repair", Object: "network " + n.Name, Reason: "cannot repair", Error: err.Error()})
			continue
		}
		if problem != "" {
			act(GCAction{Action: "repair", Object: "network " + n.Name, Reason: problem}, func() error { return s.k.EnsureBridge(spec) })
		}
	}
	var release []string
	byName := map[string]*model.Container{}
	present := map[string]netns.State{}
	for _, c := range containers {
		byName[c.Name] = c
		st := s.k.NetnsState(c.NetnsRef())
		if st == netns.Unknown {
			return nil, fmt.Errorf("gc: cannot tell whether the namespace of container %s (%s) is there: stopped, nothing more changed", c.Name, e.netnsOf(c))
		}
		present[c.Name] = st
	}
	for _, c := range containers {
		switch present[c.Name] {
		case netns.Missing, netns.Incomplete:
			release = append(release, c.Name)
			continue
		case netns.Foreign:
			r.Warnings = append(r.Warnings, fmt.Sprintf("container %s: %s is %s; left alone, and the container kept: remove that path, and gc releases the container",
				c.Name, e.netnsOf(c), netns.Foreign))
			continue
		}
		for _, ep := range c.Endpoints {
			n := netByName[ep.Network]
			if n == nil {
				continue
			}
			spec := s.endpointSpec(c, n, ep)
			problem, err := s.k.CheckEndpoint(spec)
			if err != nil {
				r.Actions = append(r.Actions, GCAction{Action: "repair", Object: "endpoint " + c.Name + " on " + n.Name, Reason: "cannot repair", Error: err.Error()})
				continue
			}
			if problem != "" {
				act(GCAction{Action: "repair", Object: "endpoint " + c.Name + " on " + n.Name, Reason: problem},
					func() error { return s.k.EnsureEndpoint(spec) })
			}
		}
		for _, l := range c.Links {
			peer := byName[l.Peer]
			if peer == nil || l.Peer < c.Name && s.k.NetnsState(peer.NetnsRef()) == netns.Bound {
				continue // checked from the peer's side
			}
			if s.k.NetnsState(peer.NetnsRef()) != netns.Bound {
				continue // the peer is released below, and its end with it
			}
			spec := plan.LinkSpec(e.instance, c, peer, l)
			obj := fmt.Sprintf("link %s:%s to %s:%s", c.Name, l.Interface, l.Peer, l.PeerIf)
			problem, err := s.k.CheckLink(spec)
			if err != nil {
				r.Actions = append(r.Actions, GCAction{Action: "repair", Object: obj, Reason: "cannot repair", Error: err.Error()})
				continue
			}
			if problem != "" {
				act(GCAction{Action: "repair", Object: obj, Reason: problem}, func() error { return s.k.EnsureLink(spec) })
			}
		}
		if c.CNI == nil && !s.k.FilesPresent(c.Name) {
			var f *model.FilesSpec
			if err := s.st.View(func(tx *state.Tx) error {
				f = plan.Files(tx, names.FileMarker(e.instance), c, nsfiles.ReadUpstream(e.opts.hostResolv, e.opts.systemdResolv))
				return nil
			}); err != nil {
				return nil, err
			}
			act(GCAction{Action: "repair", Object: "files of " + c.Name, Reason: nsfiles.Dir + "/" + c.Name + " is incomplete"},
				func() error { return s.k.WriteFiles(f) })
		}
	}
	for _, name := range release {
		act(GCAction{Action: "release", Object: "container " + name, Reason: "its namespace is gone; its addresses are released"},
			func() error { return s.release(name) })
	}

	// After releases, so their published ports are not expected.
	var portElems []model.PortElem
	var left []*model.Container
	if err := s.st.View(func(tx *state.Tx) error {
		var err error
		if portElems, err = tx.PortElems(); err != nil {
			return err
		}
		left, err = tx.Containers()
		return err
	}); err != nil {
		// Without them, the rebuilt table would lack their published
		// ports and anti-spoofing entries: check nothing rather than that.
		return nil, fmt.Errorf("read containers for the firewall check: %w", err)
	}
	// A dry run expects what a real one leaves: no guards for released
	// containers.
	left = slices.DeleteFunc(left, func(c *model.Container) bool { return slices.Contains(release, c.Name) })
	rs := firewall.FromState(nets, portElems).WithGuards(left)
	if problem, err := s.k.CheckFirewall(rs); err != nil {
		r.Warnings = append(r.Warnings, "cannot read the firewall: "+err.Error())
	} else if problem != "" {
		act(GCAction{Action: "repair", Object: "firewall table inet " + firewall.Table, Reason: problem}, func() error { return s.k.SyncFirewall(rs) })
	}

	known := map[string]bool{}
	for _, c := range containers {
		known[c.Name] = true
	}
	links, err := s.k.MarkedLinks()
	if err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(links) {
		m, _ := names.ParseMark(links[name])
		if m.Instance != e.instance {
			continue
		}
		orphan := m.Kind == "net" && (netByName[m.Name] == nil || netByName[m.Name].Bridge != name) ||
			m.Kind == "ep" && !hostIfs[name]
		if orphan {
			mark := links[name]
			act(GCAction{Action: "remove", Object: "link " + name, Reason: "orphan marked " + mark},
				func() error { return s.k.RemoveBridge(model.BridgeSpec{Name: name, Mark: mark}) })
		}
	}
	spaces, odd, err := s.k.MarkedNetns()
	if err != nil {
		return nil, err
	}
	r.Warnings = append(r.Warnings, odd...)
	for _, name := range sortedKeys(spaces) {
		if known[name] {
			continue
		}
		mark := spaces[name]
		// Only this instance's mark for this very name: a namespace
		// whose mark names another is not an orphan of this path.
		if m, _ := names.ParseMark(mark); m.Instance == e.instance && m.Kind == "ns" && m.Name == name {
			act(GCAction{Action: "remove", Object: "namespace " + name, Reason: "orphan namespace marked " + mark},
				func() error { return s.k.RemoveNetns(model.NetnsSpec{Name: name, Mark: mark}) })
		}
	}
	marked, oddFiles := s.k.MarkedFiles()
	r.Warnings = append(r.Warnings, oddFiles...)
	for _, name := range marked {
		if !known[name] {
			act(GCAction{Action: "remove", Object: nsfiles.Dir + "/" + name, Reason: "files of a container cnet no longer has"},
				func() error { return s.k.RemoveFiles(name) })
		}
	}
	if len(nets) > 0 {
		r.Warnings = append(r.Warnings, s.forwardWarnings()...)
	}
	if !dryRun && s.k.DNSRunning() {
		// Whatever the server holds, it now holds exactly what state says.
		snap, err := s.dnsSnapshot(model.Changes{})
		if err != nil {
			return nil, err
		}
		if len(snap.Networks) > 0 {
			if err := s.k.DNSSync(snap); err != nil {
				r.Warnings = append(r.Warnings, "could not refresh the dns server: "+err.Error())
			}
		}
	}
	return r, nil
}

// load reads every network and container.
func (s *session) load() (nets []*model.Network, containers []*model.Container, err error) {
	err = s.st.View(func(tx *state.Tx) error {
		if nets, err = tx.Networks(); err != nil {
			return err
		}
		if containers, err = tx.Containers(); err != nil {
			return err
		}
		for _, c := range containers {
			c.Ports = tx.ContainerPorts(c.Name)
		}
		return nil
	})
	return nets, containers, err
}

// release forgets a container whose namespace is gone.
func (s *session) release(name string) error {
	if err := s.k.RemoveFiles(name); err != nil {
		return err
	}
	s.e.removeLog(name)
	return s.st.Update(true, func(tx *state.Tx) error {
		var ch model.Changes
		c, err := tx.Container(name)
		if err != nil || c == nil {
			return err
		}
		for _, l := range c.Links { // the peers' ends went with the namespace
			peer, err := tx.Container(l.Peer)
			if err != nil {
				return err
			}
			if prev, ok := ch.Containers[l.Peer]; ok {
				peer = prev
			}
			if peer != nil {
				if peer, err = plan.Unlinked(tx, peer, name); err != nil {
					return err
				}
				ch.PutContainer(peer)
			}
		}
		ch.DelContainer(name)
		return tx.Apply(ch)
	})
}

func (s *session) bridgeSpec(n *model.Network) model.BridgeSpec {
	return plan.BridgeSpec(s.e.instance, n)
}

func (s *session) endpointSpec(c *model.Container, n *model.Network, ep model.Endpoint) model.EndpointSpec {
	return plan.EndpointSpec(s.e.instance, c, n, ep)
}

// afterReboot runs on the first command after the boot ID changed:
// bridges and the firewall come back from state, and containers whose
// namespaces vanished with the reboot release their addresses.
func (s *session) afterReboot() ([]string, error) {
	nets, containers, err := s.load()
	if err != nil {
		return nil, fmt.Errorf("after reboot: %w", err)
	}
	present := map[string]netns.State{}
	for _, c := range containers {
		st := s.k.NetnsState(c.NetnsRef())
		if st == netns.Unknown {
			return nil, fmt.Errorf("after reboot: cannot tell whether the namespace of container %s (%s) is there", c.Name, s.e.netnsOf(c))
		}
		present[c.Name] = st
	}
	var out, failed []string
	forward := false
	for _, n := range nets {
		if err := s.k.EnsureBridge(s.bridgeSpec(n)); err != nil {
			failed = append(failed, fmt.Sprintf("network %s: %v", n.Name, err))
		}
		forward = forward || !n.Internal
	}
	for _, c := range containers {
		if st := present[c.Name]; st == netns.Missing || st == netns.Incomplete {
			if err := s.release(c.Name); err != nil {
				failed = append(failed, fmt.Sprintf("container %s: %v", c.Name, err))
				continue
			}
			out = append(out, fmt.Sprintf("the machine rebooted: released container %s (its namespace is gone)", c.Name))
		}
	}
	if err := s.sync(rulesets{s: s}.before); err != nil { // after releases: their ports are gone
		failed = append(failed, "firewall: "+err.Error())
	}
	if forward {
		if _, err := s.k.SetForwarding(true); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(nets) > 0 {
		out = append(out, fmt.Sprintf("the machine rebooted: re-created %d network(s)", len(nets)))
	}
	if len(failed) > 0 {
		// Keep the old boot ID so the next command tries again.
		return append(out, "after reboot, could not restore: "+errors.Join(errorsOf(failed)...).Error()), nil
	}
	if err := s.st.Update(true, s.markBoot); err != nil {
		// The next command restores again: every step is an ensure.
		out = append(out, "after reboot, could not record the boot: "+err.Error())
	}
	return out, nil
}

func errorsOf(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return out
}

// forwardWarnings explains other tools' forward chains that drop
// container traffic, such as Docker's iptables FORWARD policy DROP.
func (s *session) forwardWarnings() []string {
	drops, err := s.k.ForwardDrops()
	if err != nil {
		return nil // reading other tables is best effort; cnet's own rules are unaffected
	}
	var out []string
	for _, d := range drops {
		out = append(out, fmt.Sprintf("%s has policy drop (Docker sets this): it drops container traffic forwarded "+
			"to and from cnet networks, whatever cnet allows; add accept rules for cnet bridges there, or set the policy to accept", d))
	}
	return out
}

func (e *Engine) warnForwardPolicy(n *model.Network) {
	if n == nil || n.Internal || e.opts.DryRun != nil { // a preview carries its own warnings
		return
	}
	s, err := e.openSession()
	if err != nil {
		return
	}
	defer s.close()
	for _, w := range s.forwardWarnings() {
		e.opts.Notify(w)
	}
}

func (e *Engine) removeLog(container string) {
	// A container without a detached process has no log.
	if err := os.Remove(e.LogPath(container)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.opts.Notify(fmt.Sprintf("could not remove the log of %s: %v", container, err))
	}
}
