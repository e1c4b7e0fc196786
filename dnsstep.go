package cnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/state"
)

// dnsCommand is how the name server is started: `cnet __dns DIR`.
func dnsCommand(opts Options) []string {
	if len(opts.DNSCommand) > 0 {
		return opts.DNSCommand
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "cnet" {
		return []string{exe, "__dns"}
	}
	if path, err := exec.LookPath("cnet"); err == nil {
		return []string{path, "__dns"}
	}
	return nil
}

func dnsNet(n *model.Network) dns.Net {
	return dns.Net{Name: n.Name, Gateway: n.Gateway, Subnet: n.Subnet, Bridge: n.Bridge}
}

// dnsCtr is a container's records. internal tells which networks are
// --internal: a container on those alone gets nothing forwarded.
func dnsCtr(c *model.Container, internal map[string]bool) dns.Ctr {
	out := dns.Ctr{Name: c.Name, Isolated: len(c.Endpoints) > 0}
	for _, ep := range c.Endpoints {
		out.Endpoints = append(out.Endpoints, dns.Ep{Network: ep.Network, Addr: ep.Addr, Aliases: ep.Aliases})
		if !internal[ep.Network] {
			out.Isolated = false
		}
	}
	return out
}

// internalNets returns which of nets are --internal.
func internalNets(nets []*model.Network) map[string]bool {
	m := map[string]bool{}
	for _, n := range nets {
		if n.Internal {
			m[n.Name] = true
		}
	}
	return m
}

// dnsView is the name server's side of a state: its networks, and the
// records that a plan's changes touch.
type dnsView struct {
	nets   []*model.Network // DNS-enabled
	change dns.Change
}

// dns returns the view of the state after the plan's changes (after) or
// of committed state.
func (r rulesets) dns(after bool) (v dnsView, err error) {
	err = r.s.st.View(func(tx *state.Tx) error {
		v, err = dnsViewOf(tx, r.ch, after)
		return err
	})
	return v, err
}

// dnsViewOf is dnsView read from tx: after ch commits, or as committed.
func dnsViewOf(tx *state.Tx, ch model.Changes, after bool) (v dnsView, err error) {
	nets, err := tx.Networks()
	if err != nil {
		return v, err
	}
	if after {
		nets = applyNetworks(nets, ch)
	}
	internal := internalNets(nets)
	for _, n := range nets {
		if !n.NoDNS {
			v.nets = append(v.nets, n)
		}
	}
	for _, name := range sortedKeys(ch.Networks) {
		n := ch.Networks[name]
		if !after {
			if n, err = tx.Network(name); err != nil {
				return v, err
			}
		}
		if n == nil || n.NoDNS {
			v.change.DelNetworks = append(v.change.DelNetworks, name)
		} else {
			v.change.SetNetworks = append(v.change.SetNetworks, dnsNet(n))
		}
	}
	for _, name := range sortedKeys(ch.Containers) {
		c := ch.Containers[name]
		if !after {
			if c, err = tx.Container(name); err != nil {
				return v, err
			}
		}
		if c == nil {
			v.change.DelContainers = append(v.change.DelContainers, name)
		} else {
			v.change.SetContainers = append(v.change.SetContainers, dnsCtr(c, internal))
		}
	}
	return v, nil
}

// dnsSnapshot is every record of committed state, with ch applied.
func (s *session) dnsSnapshot(ch model.Changes) (snap dns.Snapshot, err error) {
	err = s.st.View(func(tx *state.Tx) error {
		nets, err := tx.Networks()
		if err != nil {
			return err
		}
		nets = applyNetworks(nets, ch)
		internal := internalNets(nets)
		for _, n := range nets {
			if !n.NoDNS {
				snap.Networks = append(snap.Networks, dnsNet(n))
			}
		}
		cs, err := tx.Containers()
		if err != nil {
			return err
		}
		for _, c := range cs {
			if _, changed := ch.Containers[c.Name]; !changed {
				snap.Containers = append(snap.Containers, dnsCtr(c, internal))
			}
		}
		for _, c := range ch.Containers {
			if c != nil {
				snap.Containers = append(snap.Containers, dnsCtr(c, internal))
			}
		}
		return nil
	})
	snap.Upstreams = nsfiles.HostServers(s.e.opts.hostResolv)
	return snap, err
}

// syncDNS brings the name server in line with a state: stopped when no
// network wants it, started with every record when it is not running,
// else sent only what the plan changes.
func (s *session) syncDNS(r rulesets, after bool) error {
	v, err := r.dns(after)
	if err != nil {
		return err
	}
	if len(v.nets) == 0 {
		return s.k.DNSStop()
	}
	if v.change.Empty() {
		if s.k.DNSRunning() {
			return nil
		}
	} else if err := s.k.DNSApply(v.change); !errors.Is(err, dns.ErrNotRunning) {
		// Sent (or refused) in one exchange; only a server that is not
		// there at all is started below.
		return err
	}
	ch := r.ch
	if !after {
		ch = model.Changes{}
	}
	snap, err := s.dnsSnapshot(ch)
	if err != nil {
		return err
	}
	return s.k.DNSStart(snap)
}

// dnsDead reports whether networks want the name server and it is not
// running.
func (s *session) dnsDead() (bool, error) {
	v, err := rulesets{s: s}.dns(false)
	if err != nil || len(v.nets) == 0 {
		return false, err
	}
	return !s.k.DNSRunning(), nil
}

// reviveDNS restarts the name server if networks want it and it died.
func (s *session) reviveDNS() (string, error) {
	if dead, err := s.dnsDead(); err != nil || !dead {
		return "", err
	}
	snap, err := s.dnsSnapshot(model.Changes{})
	if err != nil {
		return "", err
	}
	if err := s.k.DNSStart(snap); err != nil {
		return "", fmt.Errorf("restart the dns server: %w", err)
	}
	return "restarted the dns server, which was not running", nil
}

// dnsDown reports whether a network wants the name server and it does not
// answer; a reader only says so, the next mutating call restarts it.
func (e *Engine) dnsDown(tx *state.Tx) bool {
	nets, err := tx.Networks()
	if err != nil {
		// Only a notice depends on it; the reader's own read of the
		// networks fails with this error and reports it.
		return false
	}
	for _, n := range nets {
		if !n.NoDNS {
			k := e.newKernel()
			defer k.Close()
			return !k.DNSRunning()
		}
	}
	return false
}
