package cnet

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/script"
	"github.com/cnetdev/cnet/internal/state"
)

// Preview is an operation as cnet would carry it out: the steps of its
// plan, each as the ip, nft and shell commands a person would type. With
// Options.DryRun set, mutating methods hand one to DryRun instead of
// changing anything.
//
// The steps are the very ones the operation would run, rendered rather
// than executed, so a preview cannot drift from what cnet does. The
// commands leave out cnet's ownership marks (link aliases, the first line
// of /etc/netns files): what they build is not cnet's.
type Preview struct {
	Op string `json:"op"`
	// Notes say what could make the real operation differ: an interrupted
	// operation that it would first finish or undo, a reboot after which
	// it would first re-create networks, another table's drop policy.
	Notes []string      `json:"notes"`
	Steps []PreviewStep `json:"steps"`
}

// PreviewStep is one step as shell commands: its kind (netns, bridge,
// endpoint, route, files, firewall, forwarding, ports, hairpin, dns,
// processes), its action (add, del, set), what it does in words, and the
// commands. A command may span lines (a here-document).
type PreviewStep = script.Step

// Script renders the preview as a shell script that `sh -e` runs, with
// title as its first comment.
func (p *Preview) Script(title string) string {
	var b strings.Builder
	_ = script.Write(&b, title, p.Notes, p.Steps) // a strings.Builder never fails a write
	return b.String()
}

// mutateOrPreview runs build's plan, or with Options.DryRun previews it
// after the steps in pre.
func (e *Engine) mutateOrPreview(pre []PreviewStep, build func(env *plan.Env) (*plan.Plan, error)) (*plan.Plan, error) {
	if e.opts.DryRun != nil {
		p, err := e.preview(pre, build)
		if err == nil && e.rehearsal {
			err = e.record(p) // the read-only store is closed by now
		}
		return p, err
	}
	p, err := e.mutate(build)
	if err == nil {
		for _, w := range p.Warnings {
			e.opts.Notify("warning: " + w)
		}
	}
	return p, err
}

// preview plans an operation exactly as mutate would, against committed
// state and the live kernel, so every refusal still happens, and renders
// its steps. It changes nothing: the state is opened read-only, under the
// shared lock only when the lock file exists, no intent is written and
// nothing is recovered.
func (e *Engine) preview(pre []PreviewStep, build func(env *plan.Env) (*plan.Plan, error)) (*plan.Plan, error) {
	st, err := e.openReadOnly()
	if err != nil {
		return nil, err
	}
	if st != nil {
		defer e.closeStore(st)
	}
	s := &session{e: e, st: st, k: e.newKernel()}
	defer s.k.Close()
	pv := &Preview{Notes: []string{}, Steps: append([]PreviewStep{}, pre...)}
	var p *plan.Plan
	err = viewState(st, func(tx *state.Tx) error {
		if tx.HasIntents() {
			pv.Notes = append(pv.Notes, "an operation interrupted by a crash is pending: the real command would first finish or undo it (see `cnet gc --dry-run`), which can change what it does")
		}
		if id := e.bootID(); id != "" && tx.BootID() != "" && tx.BootID() != id {
			pv.Notes = append(pv.Notes, "the machine rebooted since cnet last ran: the real command would first re-create the networks in its state")
		}
		var err error
		if p, err = build(s.env(tx)); err != nil {
			return err
		}
		if e.checking {
			// Nobody reads the preview, and rendering it reads the whole
			// state (the ruleset, every name): a check of many operations
			// would cost the square of their number.
			return nil
		}
		env := script.Env{FilesDir: e.opts.filesDir, Marker: names.FileMarker(e.instance)}
		if slices.ContainsFunc(p.Steps, func(st model.Step) bool { return st.Kind == model.KindFirewall }) {
			if env.Firewall, err = rulesetAfter(tx, p.Changes); err != nil {
				return err
			}
		}
		if slices.ContainsFunc(p.Steps, func(st model.Step) bool { return st.Kind == model.KindDNS }) {
			if env.DNS, err = s.dnsPreview(tx, p.Changes); err != nil {
				return err
			}
		}
		pv.Steps = append(pv.Steps, script.Render(p.Steps, env)...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if e.checking {
		return p, nil
	}
	pv.Op = p.Op
	for _, w := range p.Warnings {
		pv.Notes = append(pv.Notes, "warning: "+w)
	}
	if n := p.Network; n != nil && !n.Internal && p.Changes.Networks[n.Name] != nil { // a network is created
		pv.Notes = append(pv.Notes, s.forwardWarnings()...)
	}
	e.opts.DryRun(pv)
	return p, nil
}

// openReadOnly opens committed state without changing anything, or
// returns nil when cnet has never run here.
func (e *Engine) openReadOnly() (*state.Store, error) {
	st, err := state.OpenReadOnly(e.opts.StateDir, e.opts.RunDir, e.opts.LockTimeout)
	switch {
	case errors.Is(err, state.ErrNoState):
		return nil, nil
	case errors.Is(err, state.ErrLocked):
		return nil, fmt.Errorf("%w (waited %s): %w", err, e.opts.LockTimeout, errs.ErrTryAgain)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("%w: %w (run it with sudo)", err, errs.ErrNotPermitted)
	}
	return st, err
}

// viewState runs fn on committed state; a nil store reads as empty.
func viewState(st *state.Store, fn func(tx *state.Tx) error) error {
	if st == nil {
		return fn(nil)
	}
	return st.View(fn)
}

// view runs fn against committed state without recovering anything and
// without creating the lock file, for dry runs.
func (e *Engine) view(fn func(tx *state.Tx) error) error {
	st, err := e.openReadOnly()
	if err != nil {
		return err
	}
	if st != nil {
		defer e.closeStore(st)
	}
	return viewState(st, fn)
}

// dnsPreview says, in words, what the name server would do once ch
// commits: it has no ip or nft equivalent.
func (s *session) dnsPreview(tx *state.Tx, ch model.Changes) ([]string, error) {
	v, err := dnsViewOf(tx, ch, true)
	if err != nil {
		return nil, err
	}
	running := s.k.DNSRunning()
	if len(v.nets) == 0 {
		if running {
			return []string{"cnet stops its name server: no network serves names any more"}, nil
		}
		return []string{"nothing for the name server to do: no network serves names"}, nil
	}
	var out []string
	if !running {
		out = append(out, "cnet starts its name server (`cnet __dns`, logging to RUNDIR/dns/server.log) with every record")
	}
	slices.SortFunc(v.nets, func(a, b *model.Network) int { return strings.Compare(a.Name, b.Name) })
	var where []string
	for _, n := range v.nets {
		where = append(where, fmt.Sprintf("%s (%s)", n.Gateway, n.Name))
	}
	out = append(out, "it answers on port 53, udp and tcp, of "+strings.Join(where, ", ")+"; other names go to the host's nameservers")
	for _, n := range v.change.SetNetworks {
		out = append(out, fmt.Sprintf("network %s: names NAME and NAME.%s.cnet of its containers", n.Name, n.Name))
	}
	for _, n := range v.change.DelNetworks {
		out = append(out, fmt.Sprintf("network %s: no names any more", n))
	}
	serving := map[string]bool{}
	for _, n := range v.nets {
		serving[n.Name] = true
	}
	for _, c := range v.change.SetContainers {
		var recs []string
		for _, ep := range c.Endpoints {
			if serving[ep.Network] {
				nm := append([]string{c.Name}, ep.Aliases...)
				recs = append(recs, fmt.Sprintf("%s -> %s on %s", strings.Join(nm, ", "), ep.Addr, ep.Network))
			}
		}
		if len(recs) == 0 {
			recs = []string{"no names"}
		}
		out = append(out, "container "+c.Name+": "+strings.Join(recs, "; "))
	}
	for _, c := range v.change.DelContainers {
		out = append(out, "container "+c+": its names go")
	}
	return out, nil
}
