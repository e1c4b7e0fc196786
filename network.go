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

// read runs fn against committed state under the shared lock. It changes
// nothing: an operation a dead process left unfinished, a reboot since
// cnet last ran and a name server that died are left for the next
// mutating call or GC, and each is told once through Options.Notify.
func (e *Engine) read(fn func(tx *state.Tx) error) error {
	if e.opts.DryRun != nil { // create nothing, not even the lock file
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
	defer e.closeStore(st)
	return st.View(func(tx *state.Tx) error {
		for _, msg := range e.pendingRepairs(tx) {
			e.notifyOnce(msg)
		}
		return fn(tx)
	})
}

// pendingRepairs says what the next mutating call or GC would recover
// before its own work: interrupted operations, a reboot, a dead name
// server. A reader reports these and reads committed state as it is.
func (e *Engine) pendingRepairs(tx *state.Tx) []string {
	var out []string
	ins, err := tx.Intents()
	if err != nil {
		out = append(out, fmt.Sprintf("an interrupted operation is pending, but its record does not read (%s): `cnet gc` reports it", err.Error()))
	}
	for _, in := range ins {
		verb := "undoes"
		if in.Direction == model.Rollforward {
			verb = "finishes"
		}
		out = append(out, fmt.Sprintf("an interrupted operation (%s by pid %d) is pending: the next change or `cnet gc` %s it", intentName(in), in.PID, verb))
	}
	if id := e.bootID(); id != "" && tx.BootID() != "" && tx.BootID() != id {
		out = append(out, "the machine rebooted since cnet last ran: the next change or `cnet gc` re-creates the networks in its state")
	}
	if e.dnsDown(tx) {
		out = append(out, "the name server is not running: the next change or `cnet gc` restarts it")
	}
	return out
}

// intentName is an intent's operation and the objects it changes:
// "create web".
func intentName(in *model.Intent) string {
	objs := append(sortedKeys(in.Changes.Containers), sortedKeys(in.Changes.Networks)...)
	objs = slices.Compact(objs)
	if len(objs) == 0 {
		return in.Op
	}
	return in.Op + " " + joinNames(objs)
}

// notifyOnce sends msg to Options.Notify unless this engine already did.
func (e *Engine) notifyOnce(msg string) {
	if n := e.noticed; n != nil {
		n.mu.Lock()
		seen := n.seen[msg]
		n.seen[msg] = true
		n.mu.Unlock()
		if seen {
			return
		}
	}
	e.opts.Notify(msg)
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
