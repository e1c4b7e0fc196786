package cnet

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/state"
)

// Rehearse runs fn against a rehearsal engine: a scratch copy of the state,
// on which each operation fn calls is previewed through Options.DryRun (as
// with a dry run) and then recorded as if it had been carried out, so the
// next operation plans against the state the previous one would have left.
// The machine and the real state are not changed. It is how a sequence of
// operations (applying a lab file) is shown as one script. DryRun must be
// set.
func (e *Engine) Rehearse(fn func(r *Engine) error) error {
	dir, err := os.MkdirTemp("", "cnet-rehearsal-")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			e.opts.Notify(fmt.Sprintf("could not remove the rehearsal's scratch directory %s: %v", dir, rerr))
		}
	}()
	st, err := e.openReadOnly()
	if err != nil {
		return err
	}
	if st != nil {
		err = st.CopyTo(filepath.Join(dir, state.File))
		e.closeStore(st)
		if err != nil {
			return err
		}
	}
	r := *e
	r.opts.StateDir, r.opts.RunDir = dir, filepath.Join(dir, "run")
	r.rehearsal = true
	return fn(&r)
}

// record commits p's changes to a rehearsal's scratch state.
func (e *Engine) record(p *plan.Plan) error {
	st, err := state.Open(e.opts.StateDir, e.opts.RunDir)
	if err != nil {
		return err
	}
	defer e.closeStore(st)
	return st.Update(false, func(tx *state.Tx) error { return tx.Apply(p.Changes) })
}

// Check rehearses fn as Rehearse does, printing nothing: it returns the
// first refusal the real calls would meet, planned against the state the
// calls before it would leave, and changes nothing. A caller that makes
// several changes in a row (applying a lab file) checks them all this way
// before making the first.
func (e *Engine) Check(fn func(r *Engine) error) error {
	c := *e
	c.opts.DryRun = func(*Preview) {}
	c.checking = true
	return c.Rehearse(fn)
}
