package cnet

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/state"
)

// machine is what the engine needs from the kernel and the file system.
// internal/kernel implements it; internal/fakekernel records it for tests
// that run without root.
type machine interface {
	plan.Facts
	EnsureNetns(model.NetnsSpec) error
	RemoveNetns(model.NetnsSpec) error
	// NetnsID reads the identity of the namespace bound at /run/netns/NAME.
	NetnsID(name string) (model.NetnsID, error)
	EnsureBridge(model.BridgeSpec) error
	RemoveBridge(model.BridgeSpec) error
	EnsureEndpoint(model.EndpointSpec) error
	RemoveEndpoint(model.EndpointSpec) error
	// RemoveEndpoints deletes many endpoints in one kernel batch; if one
	// is not cnet's, it deletes none.
	RemoveEndpoints([]model.EndpointSpec) error
	// RemoveNamespaces deletes many namespaces; if one is not cnet's, it
	// deletes none.
	RemoveNamespaces([]model.NetnsSpec) error
	EnsureRoute(model.RouteSpec) error
	RemoveRoute(model.RouteSpec) error
	EnsureLink(model.LinkSpec) error
	RemoveLink(model.LinkSpec) error
	SyncFirewall(firewall.Ruleset) error
	FirewallPresent() (bool, error)
	// AddPorts and DelPorts change the DNAT maps in one batch each;
	// FlushConntrack then deletes the ports' stale flows, a request of
	// its own.
	AddPorts([]model.PortElem) error
	DelPorts([]model.PortElem) error
	FlushConntrack(ps []model.PortElem, published bool) error
	SetHairpin(hostIf string, on bool) error
	LinkMAC(name string) string
	DNSRunning() bool
	DNSStart(dns.Snapshot) error
	DNSApply(dns.Change) error
	DNSSync(dns.Snapshot) error
	DNSStop() error
	// DNSStale lists name servers of this instance that lost their
	// control socket; DNSKill stops one.
	DNSStale() []int
	DNSKill(pid int) error
	WriteFiles(*model.FilesSpec) error
	RemoveFiles(name string) error
	SetForwarding(on bool) (bool, error)
	Close()

	// What `cnet gc` inspects.
	CheckBridge(model.BridgeSpec) (string, error)
	CheckEndpoint(model.EndpointSpec) (string, error)
	CheckLink(model.LinkSpec) (string, error)
	CheckFirewall(firewall.Ruleset) (string, error)
	ForwardDrops() ([]string, error)
	MarkedLinks() (map[string]string, error)
	// MarkedNetns returns the namespaces carrying a cnet mark, and why
	// each other odd entry (not a namespace, mark unreadable) is left.
	MarkedNetns() (marked map[string]string, left []string, err error)
	// MarkedFiles returns the /etc/netns directories holding files cnet
	// wrote, and why each link found there is left alone.
	MarkedFiles() (marked, left []string)
	FilesPresent(name string) bool
}

var errNotRoot = fmt.Errorf("cnet manages network namespaces, links and nftables, which needs root: %w (run it with sudo)", errs.ErrNotPermitted)

// session is one open state store and kernel handle set, for the length
// of one public call.
type session struct {
	e  *Engine
	st *state.Store
	k  machine
	// notices are messages for the user about changes the operation made
	// (ip_forward switched on), told only once it commits: a rolled-back
	// operation changed nothing to tell.
	notices []string
}

func (e *Engine) openSession() (*session, error) {
	if e.requireRoot && os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	st, err := state.OpenWithin(e.opts.StateDir, e.opts.RunDir, e.opts.LockTimeout)
	if errors.Is(err, state.ErrLocked) {
		return nil, fmt.Errorf("%w (waited %s): %w", err, e.opts.LockTimeout, errs.ErrTryAgain)
	}
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("%w: %w (run it with sudo)", err, errs.ErrNotPermitted)
		}
		return nil, err
	}
	return &session{e: e, st: st, k: e.newKernel()}, nil
}

func (s *session) close() {
	s.k.Close()
	s.e.closeStore(s.st)
}

// closeStore closes a state store and tells the user if that failed.
// Every change was written and synced when its transaction committed, so
// a failed close loses nothing; it can only mean the descriptor or the
// mapping was already broken, which the user should hear about.
func (e *Engine) closeStore(st *state.Store) {
	if err := st.Close(); err != nil {
		e.opts.Notify(fmt.Sprintf("closing the state database %s: %v", e.opts.StateDir, err))
	}
}

func (s *session) env(tx *state.Tx) *plan.Env {
	return &plan.Env{
		Instance: s.e.instance,
		View:     tx,
		Facts:    s.k,
		Upstream: nsfiles.ReadUpstream(s.e.opts.hostResolv, s.e.opts.systemdResolv),
		Pool:     s.e.opts.Pool,
		PoolBits: s.e.opts.PoolBits,
		Now:      s.e.now().UTC(),
	}
}

// mutate runs one transaction: recover what a dead process left, plan
// under the lock, write the intent, apply the steps, commit.
func (e *Engine) mutate(build func(env *plan.Env) (*plan.Plan, error)) (*plan.Plan, error) {
	s, err := e.openSession()
	if err != nil {
		return nil, err
	}
	defer s.close()
	msgs, err := s.recover()
	for _, msg := range msgs {
		e.opts.Notify(msg)
	}
	if err != nil {
		return nil, err
	}
	return s.apply(build)
}

func (s *session) apply(build func(env *plan.Env) (*plan.Plan, error)) (*plan.Plan, error) {
	var (
		p  *plan.Plan
		in model.Intent
	)
	s.notices = nil
	err := s.st.Update(false, func(tx *state.Tx) error {
		var err error
		if p, err = build(s.env(tx)); err != nil {
			return err
		}
		if len(p.Steps) == 0 {
			return nil
		}
		in = model.Intent{Op: p.Op, Direction: p.Direction, Steps: p.Steps, Changes: p.Changes, PID: os.Getpid(), Started: s.e.now().UTC()}
		return tx.PutIntent(&in)
	})
	if err != nil {
		return nil, err
	}
	rs := rulesets{s: s, ch: p.Changes}
	if err := s.hook(p.Op, 0); err != nil {
		return nil, s.abort(p, &in, nil, rs, err)
	}
	for i, step := range p.Steps {
		done := p.Steps[:i+1] // pushed before Do: undo must be safe even if Do half ran
		err := s.do(step, rs)
		if err != nil && atomic(step.Kind) {
			done = p.Steps[:i] // its one request failed: it changed nothing
		}
		if err == nil {
			err = s.hook(p.Op, i+1)
		}
		if err != nil {
			if irreversible(done) {
				// Past the point of no return: leave the intent, which
				// the next command or `cnet gc` rolls forward.
				return nil, &errs.RepairError{Op: p.Op, Cause: err, Rollback: errors.New("a namespace was already deleted, so the operation can only be finished")}
			}
			return nil, s.abort(p, &in, done, rs, err)
		}
	}
	if err := s.recordNetnsIDs(p); err != nil {
		return nil, s.abort(p, &in, p.Steps, rs, err)
	}
	err = s.st.Update(true, func(tx *state.Tx) error {
		if err := tx.Apply(p.Changes); err != nil {
			return err
		}
		if err := s.markBoot(tx); err != nil {
			return err
		}
		if in.ID != 0 {
			return tx.DelIntent(in.ID)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("commit state: %w", err)
		if irreversible(p.Steps) {
			return nil, &errs.RepairError{Op: p.Op, Cause: err, Rollback: errors.New("a namespace was already deleted, so the operation can only be finished")}
		}
		return nil, s.abort(p, &in, p.Steps, rs, err)
	}
	for _, msg := range s.notices {
		s.e.opts.Notify(msg)
	}
	s.notices = nil
	return p, nil
}

// recordNetnsIDs stores, in the records p commits, the identity of each
// namespace p created, so that removing it later checks that identity and
// not the mark on its lo, which any process inside can rewrite.
func (s *session) recordNetnsIDs(p *plan.Plan) error {
	for _, st := range p.Steps {
		if st.Kind != model.KindNetns || st.Action != model.Add {
			continue
		}
		c := p.Changes.Containers[st.Netns.Name]
		if c == nil {
			continue
		}
		id, err := s.k.NetnsID(st.Netns.Name)
		if err != nil {
			return fmt.Errorf("identify namespace %s: %w", st.Netns.Name, err)
		}
		c.NetnsID = &id
	}
	return nil
}

// rulesets gives the firewall as it is in committed state (before the
// operation) and as it will be once ch commits (after). Committed state
// does not change while the lock is held, so both can be read late, and
// only the steps that need them do.
type rulesets struct {
	s  *session
	ch model.Changes
	// recovering is set when resolving a dead process's intent: it is not
	// known which steps ran, so undo rebuilds rather than inverts.
	recovering bool
}

func (r rulesets) before() (rs firewall.Ruleset, err error) {
	err = r.s.st.View(func(tx *state.Tx) error {
		nets, err := tx.Networks()
		if err != nil {
			return err
		}
		ports, err := tx.PortElems()
		if err != nil {
			return err
		}
		cs, err := tx.Containers()
		rs = firewall.FromState(nets, ports).WithGuards(cs)
		return err
	})
	return rs, err
}

func (r rulesets) after() (rs firewall.Ruleset, err error) {
	err = r.s.st.View(func(tx *state.Tx) error {
		rs, err = rulesetAfter(tx, r.ch)
		return err
	})
	return rs, err
}

// rulesetAfter is the firewall once ch commits on top of tx.
func rulesetAfter(tx *state.Tx, ch model.Changes) (firewall.Ruleset, error) {
	nets, err := tx.Networks()
	if err != nil {
		return firewall.Ruleset{}, err
	}
	elems, err := tx.PortElems()
	if err != nil {
		return firewall.Ruleset{}, err
	}
	ports, err := plan.PortsAfter(tx, elems, ch)
	if err != nil {
		return firewall.Ruleset{}, err
	}
	cs, err := tx.Containers()
	return firewall.FromState(applyNetworks(nets, ch), ports).WithGuards(applyContainers(cs, ch)), err
}

func (s *session) sync(rs func() (firewall.Ruleset, error)) error {
	r, err := rs()
	if err != nil {
		return err
	}
	return s.k.SyncFirewall(r)
}

// atomic reports whether a step of this kind is one kernel request (one
// nftables batch, one write), so that when it fails nothing changed and
// there is nothing to undo. (A DNS step is not: the server may start and
// then fail to listen. Nor is a ports step: its nft batch is followed by
// the deletion of the ports' stale flows, which can fail after the batch
// changed the maps.)
func atomic(k model.Kind) bool {
	switch k {
	case model.KindFirewall, model.KindForwarding, model.KindHairpin:
		return true
	}
	return false
}

// irreversible reports whether done deleted a namespace: its processes'
// network is gone for good, so the operation can only go forward.
func irreversible(done []model.Step) bool {
	for _, st := range done {
		if (st.Kind == model.KindNetns || st.Kind == model.KindNamespaces) && st.Action == model.Del {
			return true
		}
	}
	return false
}

func (s *session) hook(op string, step int) error {
	if s.e.opts.Hook == nil {
		return nil
	}
	return s.e.opts.Hook(op, step)
}

// abort undoes done in reverse and drops the intent. If the undo fails too,
// the intent stays for the next command or `cnet gc`.
func (s *session) abort(p *plan.Plan, in *model.Intent, done []model.Step, rs rulesets, cause error) error {
	var undoErrs []error
	for i := len(done) - 1; i >= 0; i-- {
		if err := s.undo(done[i], rs); err != nil {
			undoErrs = append(undoErrs, fmt.Errorf("undo %s %s: %w", done[i].Action, done[i].Kind, err))
		}
	}
	if len(undoErrs) > 0 {
		return &errs.RepairError{Op: p.Op, Cause: cause, Rollback: errors.Join(undoErrs...)}
	}
	if in.ID != 0 {
		if err := s.st.Update(false, func(tx *state.Tx) error { return tx.DelIntent(in.ID) }); err != nil {
			return &errs.RepairError{Op: p.Op, Cause: cause, Rollback: err}
		}
	}
	return cause
}

// do applies one step.
func (s *session) do(st model.Step, rs rulesets) error {
	put, take := s.object(st, rs)
	if st.Action == model.Del {
		return take()
	}
	return put()
}

// undo reverses one step.
func (s *session) undo(st model.Step, rs rulesets) error {
	put, take := s.object(st, rs)
	if st.Action == model.Del {
		return put()
	}
	return take()
}

// object returns the two operations on a step's object: put makes it as
// the step wants (or, for a Del step, puts it back as it was), take takes
// it away (or, for a Set step, back to its previous content).
func (s *session) object(st model.Step, rs rulesets) (put, take func() error) {
	k := s.k
	switch st.Kind {
	case model.KindNetns:
		if st.Action == model.Del {
			// Deleting a namespace is the point of no return: its
			// processes' network is gone and cannot be made again. It is
			// always a plan's last step, and a failure after it rolls
			// forward (see irreversible), so this undo never runs.
			return func() error { return nil }, func() error { return k.RemoveNetns(*st.Netns) }
		}
		return func() error { return k.EnsureNetns(*st.Netns) }, func() error { return k.RemoveNetns(*st.Netns) }
	case model.KindBridge:
		return func() error { return k.EnsureBridge(*st.Bridge) }, func() error { return k.RemoveBridge(*st.Bridge) }
	case model.KindNamespaces: // Del only, like the single namespace above
		return func() error { return nil }, func() error { return k.RemoveNamespaces(st.Namespaces) }
	case model.KindEndpoint:
		return func() error { return k.EnsureEndpoint(*st.Endpoint) }, func() error { return k.RemoveEndpoint(*st.Endpoint) }
	case model.KindEndpoints:
		// Del only: the batch is deleted at once; putting it back makes
		// each endpoint again, in reverse order.
		return func() error {
				var errs []error
				for i := len(st.Endpoints) - 1; i >= 0; i-- {
					errs = append(errs, k.EnsureEndpoint(st.Endpoints[i]))
				}
				return errors.Join(errs...)
			}, func() error {
				return k.RemoveEndpoints(st.Endpoints)
			}
	case model.KindRoute:
		return func() error { return k.EnsureRoute(*st.Route) }, func() error { return k.RemoveRoute(*st.Route) }
	case model.KindLink:
		return func() error { return k.EnsureLink(*st.Link) }, func() error { return k.RemoveLink(*st.Link) }
	case model.KindFiles:
		write := func(f *model.FilesSpec) func() error {
			return func() error {
				if f == nil {
					return k.RemoveFiles(st.Files.Name)
				}
				return k.WriteFiles(f)
			}
		}
		if st.Action == model.Del {
			return write(st.Prev), func() error { return k.RemoveFiles(st.Files.Name) }
		}
		return write(st.Files), write(st.Prev)
	case model.KindFirewall:
		return func() error { return s.sync(rs.after) }, func() error { return s.sync(rs.before) }
	case model.KindPorts:
		// Elements are added or deleted in one batch, so the cost of a
		// mapping does not grow with their number. If a batch fails (the
		// table was flushed behind cnet's back, or an element is already
		// there or gone), the whole table is rebuilt as it must be. Then
		// the ports' stale flows are deleted, a second request: a step
		// that fails there has changed the maps, so it is not atomic and
		// its undo runs. A live undo is the inverse batch; recovering from
		// a crash, it is a rebuild from committed state.
		batch := func(change func([]model.PortElem) error, fallback func() (firewall.Ruleset, error)) error {
			err := change(st.Ports)
			if err == nil {
				return nil
			}
			if serr := s.sync(fallback); serr != nil {
				return errors.Join(err, fmt.Errorf("rebuild the firewall: %w", serr))
			}
			return nil // the rebuild made the table as it must be
		}
		flushed := func(published bool, change func() error) func() error {
			return func() error {
				if err := change(); err != nil {
					return err
				}
				return k.FlushConntrack(st.Ports, published)
			}
		}
		add := func(fallback func() (firewall.Ruleset, error)) func() error {
			return flushed(true, func() error { return batch(k.AddPorts, fallback) })
		}
		del := func(fallback func() (firewall.Ruleset, error)) func() error {
			return flushed(false, func() error { return batch(k.DelPorts, fallback) })
		}
		if rs.recovering {
			if st.Action == model.Del {
				return flushed(true, func() error { return s.sync(rs.before) }), del(rs.after)
			}
			return add(rs.after), flushed(false, func() error { return s.sync(rs.before) })
		}
		if st.Action == model.Del {
			return add(rs.before), del(rs.after)
		}
		return add(rs.after), del(rs.before)
	case model.KindHairpin:
		return func() error { return k.SetHairpin(st.HostIf, true) }, func() error { return k.SetHairpin(st.HostIf, false) }
	case model.KindDNS:
		return func() error { return s.syncDNS(rs, true) }, func() error { return s.syncDNS(rs, false) }
	case model.KindForwarding:
		return func() error {
				changed, err := k.SetForwarding(true)
				if changed {
					s.notices = append(s.notices, "enabled IPv4 forwarding (net.ipv4.ip_forward=1) so containers can reach beyond the host")
				}
				return err
			}, func() error {
				_, err := k.SetForwarding(false) // planned only when it was off
				return err
			}
	}
	unknown := func() error { return fmt.Errorf("unknown step kind %q", st.Kind) }
	return unknown, unknown
}

// applyContainers returns cs with the container changes of ch applied.
func applyContainers(cs []*model.Container, ch model.Changes) []*model.Container {
	var out []*model.Container
	for _, c := range cs {
		if _, changed := ch.Containers[c.Name]; !changed {
			out = append(out, c)
		}
	}
	for _, c := range ch.Containers {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// applyNetworks returns nets with the network changes of ch applied.
func applyNetworks(nets []*model.Network, ch model.Changes) []*model.Network {
	var out []*model.Network
	for _, n := range nets {
		if _, changed := ch.Networks[n.Name]; !changed {
			out = append(out, n)
		}
	}
	for _, n := range ch.Networks {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (s *session) markBoot(tx *state.Tx) error {
	if id := s.e.bootID(); id != "" && tx.BootID() != id {
		return tx.SetBootID(id)
	}
	return nil
}

// recover resolves intents left by processes that died mid-operation and
// rebuilds networks after a reboot. It reports what it did; failed steps
// are reported and left for `cnet gc`, so one stuck object never blocks
// every command. A failed read of state or of the kernel is an error:
// nothing is decided from it, and the command stops.
func (s *session) recover() ([]string, error) {
	var (
		pending     bool
		bootChanged bool
	)
	if err := s.st.View(func(tx *state.Tx) error {
		pending = tx.HasIntents()
		id := s.e.bootID()
		bootChanged = id != "" && tx.BootID() != "" && tx.BootID() != id
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read state to recover interrupted operations: %w", err)
	}
	var done []string
	if pending {
		msgs, err := s.resolveIntents()
		done = append(done, msgs...)
		if err != nil {
			return done, err
		}
	}
	if bootChanged {
		msgs, err := s.afterReboot()
		done = append(done, msgs...)
		if err != nil {
			return done, err
		}
	}
	if msg, err := s.reviveDNS(); err != nil {
		done = append(done, err.Error())
	} else if msg != "" {
		done = append(done, msg)
	}
	return done, nil
}

func (s *session) resolveIntents() ([]string, error) {
	var intents []*model.Intent
	var nets []*model.Network
	if err := s.st.View(func(tx *state.Tx) error {
		var err error
		if intents, err = tx.Intents(); err != nil {
			return err
		}
		nets, err = tx.Networks()
		return err
	}); err != nil {
		return nil, fmt.Errorf("read the operations interrupted by a crash: %w", err)
	}
	var out []string
	for _, in := range intents {
		var stepErrs []error
		rs := rulesets{s: s, ch: in.Changes, recovering: true}
		if in.Direction == model.Rollforward {
			for _, st := range in.Steps {
				if err := s.do(st, rs); err != nil {
					stepErrs = append(stepErrs, err)
				}
			}
		} else {
			for i := len(in.Steps) - 1; i >= 0; i-- {
				if err := s.undo(in.Steps[i], rs); err != nil {
					stepErrs = append(stepErrs, err)
				}
			}
		}
		if len(stepErrs) > 0 {
			out = append(out, fmt.Sprintf("could not finish interrupted %q (pid %d): %v; run `cnet gc`", in.Op, in.PID, errors.Join(stepErrs...)))
			continue
		}
		err := s.st.Update(true, func(tx *state.Tx) error {
			if in.Direction == model.Rollforward {
				if err := tx.Apply(in.Changes); err != nil {
					return err
				}
			}
			return tx.DelIntent(in.ID)
		})
		if err != nil {
			out = append(out, fmt.Sprintf("could not record recovery of %q: %v", in.Op, err))
			continue
		}
		if in.Direction == model.Rollforward {
			nets = applyNetworks(nets, in.Changes)
			out = append(out, fmt.Sprintf("finished %q interrupted in process %d", in.Op, in.PID))
		} else {
			out = append(out, fmt.Sprintf("undid %q interrupted in process %d", in.Op, in.PID))
		}
	}
	return out, nil
}
