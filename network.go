package cnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/state"
)

// NetworkSpec asks for a network. Zero fields are chosen for you: the
// first free /24 of the pool, its first host address as gateway, bridge
// cnet-NAME, MTU 1500.
type NetworkSpec struct {
	Name     string
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Bridge   string
	Internal bool
	// NoDNS turns off cnet's name server for the network.
	NoDNS bool
	MTU   int
	// RangeStart and RangeEnd, when set, bound the addresses given out
	// automatically, as a CNI host-local range does.
	RangeStart, RangeEnd netip.Addr
	// Lab names the lab file the network belongs to, if any.
	Lab string
}

// Network is a bridge with a subnet.
type Network struct {
	Name       string       `json:"name"`
	Bridge     string       `json:"bridge"`
	Subnet     netip.Prefix `json:"subnet"`
	Gateway    netip.Addr   `json:"gateway"`
	Internal   bool         `json:"internal"`
	DNS        bool         `json:"dns"`
	MTU        int          `json:"mtu"`
	Created    time.Time    `json:"created"`
	Containers []string     `json:"containers"`
	Lab        string       `json:"lab,omitempty"`
	// Warnings, from CreateNetwork only, say what in the request is
	// probably a mistake (a documentation subnet, say); each was also
	// sent to Options.Notify.
	Warnings []string `json:"warnings,omitempty"`
}

func publicNetwork(n *model.Network, attached []string) *Network {
	if attached == nil {
		attached = []string{}
	}
	return &Network{Name: n.Name, Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway,
		Internal: n.Internal, DNS: !n.NoDNS, MTU: n.MTU, Created: n.Created, Containers: attached, Lab: n.Lab}
}

// CreateNetwork creates a bridge with the gateway address on it, NAT for
// its subnet (unless Internal), and isolation from other networks.
// Equivalent to:
//
//	ip link add BRIDGE type bridge && ip addr add GATEWAY/LEN dev BRIDGE && ip link set BRIDGE up
//	nft add element inet cnet masq { SUBNET }   (and the other sets)
//	sysctl -w net.ipv4.ip_forward=1
func (e *Engine) CreateNetwork(spec NetworkSpec) (*Network, error) {
	p, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.CreateNetwork(env, plan.NetworkReq(spec))
	})
	if err != nil {
		return nil, err
	}
	e.warnForwardPolicy(p.Network)
	n := publicNetwork(p.Network, nil)
	n.Warnings = p.Warnings
	return n, nil
}

// RemoveNetwork deletes a network. It refuses while containers are
// attached unless force, which disconnects them first.
func (e *Engine) RemoveNetwork(name string, force bool) error {
	_, err := e.mutateOrPreview(nil, func(env *plan.Env) (*plan.Plan, error) {
		return plan.RemoveNetwork(env, name, force)
	})
	return err
}

// Networks lists every network, by name.
func (e *Engine) Networks() ([]*Network, error) {
	var out []*Network
	err := e.read(func(tx *state.Tx) error {
		nets, err := tx.Networks()
		for _, n := range nets {
			out = append(out, publicNetwork(n, tx.Attached(n.Name)))
		}
		return err
	})
	return out, err
}

// Network returns one network.
func (e *Engine) Network(name string) (*Network, error) {
	var out *Network
	err := e.read(func(tx *state.Tx) error {
		n, err := tx.Network(name)
		if err != nil {
			return err
		}
		if n == nil {
			return notFound("network", name, "see `cnet network ls`")
		}
		out = publicNetwork(n, tx.Attached(name))
		return nil
	})
	return out, err
}

// read runs fn against committed state under the shared lock. If a dead
// process left work unfinished, or the machine rebooted, it first takes
// the exclusive lock and recovers.
func (e *Engine) read(fn func(tx *state.Tx) error) error {
	if e.opts.DryRun != nil { // recover nothing, create nothing
		return e.view(fn)
	}
	if e.requireRoot && os.Geteuid() != 0 {
		return errNotRoot
	}
	st, err := state.OpenShared(e.opts.StateDir, e.opts.RunDir)
	if errors.Is(err, state.ErrNoState) {
		return fn(nil)
	}
	if err != nil {
		return err
	}
	var stale bool
	if err := st.View(func(tx *state.Tx) error {
		id := e.bootID()
		stale = tx.HasIntents() || id != "" && tx.BootID() != "" && tx.BootID() != id || e.dnsDown(tx)
		return nil
	}); err != nil {
		e.closeStore(st)
		return fmt.Errorf("read state: %w", err)
	}
	if stale {
		e.closeStore(st)
		// A reader that cannot take the exclusive lock reads without
		// recovering; one whose recovery cannot read stops.
		if s, err := e.openSession(); err == nil {
			msgs, err := s.recover()
			for _, msg := range msgs {
				e.opts.Notify(msg)
			}
			s.close()
			if err != nil {
				return err
			}
		}
		if st, err = state.OpenShared(e.opts.StateDir, e.opts.RunDir); err != nil {
			return err
		}
	}
	defer e.closeStore(st)
	return st.View(fn)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinNames(names []string) string { return strings.Join(names, ", ") }
