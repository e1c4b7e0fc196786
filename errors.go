package cnet

import "github.com/cnetdev/cnet/internal/errs"

// Error kinds. Every error returned by an Engine wraps exactly one; test
// with errors.Is. Detailed errors (InvalidError, ConflictError, ...) carry
// the value at fault and what would be accepted.
var (
	ErrInvalid      = errs.ErrInvalid      // a malformed or out-of-range value
	ErrNotFound     = errs.ErrNotFound     // no such network, container or endpoint
	ErrExists       = errs.ErrExists       // the name is taken
	ErrConflict     = errs.ErrConflict     // overlaps or collides with something else
	ErrBusy         = errs.ErrBusy         // in use: containers attached, processes running
	ErrNotPermitted = errs.ErrNotPermitted // needs root
	ErrNeedsRepair  = errs.ErrNeedsRepair  // a failure could not be fully undone: run GC
	ErrTryAgain     = errs.ErrTryAgain     // the state lock was not granted within Options.LockTimeout
)

// Detailed error types.
type (
	InvalidError  = errs.InvalidError
	NotFoundError = errs.NotFoundError
	ExistsError   = errs.ExistsError
	ConflictError = errs.ConflictError
	BusyError     = errs.BusyError
	RepairError   = errs.RepairError
)
