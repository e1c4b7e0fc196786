// Package errs defines the error kinds every cnet refusal and failure
// unwraps to. The public package cnet re-exports them; the CLI maps them
// to exit codes and the CNI plugin to CNI error codes, always through
// errors.Is and never by matching strings.
package errs

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds. Every error cnet returns wraps exactly one of them.
var (
	ErrInvalid      = errors.New("invalid argument")
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrConflict     = errors.New("conflict")
	ErrNotPermitted = errors.New("not permitted")
	ErrNeedsRepair  = errors.New("needs repair: run `cnet gc`")
	ErrBusy         = errors.New("busy")
	ErrTryAgain     = errors.New("try again later")
)

// InvalidError is a refused value: What names the field or flag, Value is
// what was given and Want says what would be accepted.
type InvalidError struct {
	What  string
	Value string
	Want  string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.What, e.Value, e.Want)
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Invalid returns an *InvalidError.
func Invalid(what, value, want string, args ...any) error {
	return &InvalidError{What: what, Value: value, Want: fmt.Sprintf(want, args...)}
}

// NotFoundError says an object named by the user does not exist.
type NotFoundError struct {
	What string
	Name string
	Hint string
}

func (e *NotFoundError) Error() string {
	s := fmt.Sprintf("%s %q not found", e.What, e.Name)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// NotFound returns a *NotFoundError.
func NotFound(what, name, hint string, args ...any) error {
	return &NotFoundError{What: what, Name: name, Hint: fmt.Sprintf(hint, args...)}
}

// ExistsError says the name asked for is already taken by the same kind
// of object.
type ExistsError struct {
	What string
	Name string
	Hint string
}

func (e *ExistsError) Error() string {
	s := fmt.Sprintf("%s %q already exists", e.What, e.Name)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *ExistsError) Unwrap() error { return ErrExists }

// Exists returns an *ExistsError.
func Exists(what, name, hint string, args ...any) error {
	return &ExistsError{What: what, Name: name, Hint: fmt.Sprintf(hint, args...)}
}

// ConflictError says a value collides with something else: an overlapping
// subnet, an address in use, an interface name held by a link cnet did not
// create.
type ConflictError struct {
	What string // "subnet", "address", "bridge name"
	Name string // the value asked for
	With string // what holds it
	Hint string
}

func (e *ConflictError) Error() string {
	s := fmt.Sprintf("%s %s conflicts with %s", e.What, e.Name, e.With)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// Conflict returns a *ConflictError.
func Conflict(what, name, with, hint string, args ...any) error {
	return &ConflictError{What: what, Name: name, With: with, Hint: fmt.Sprintf(hint, args...)}
}

// BusyError says an object cannot be removed yet, e.g. a container with
// processes or a network with containers attached.
type BusyError struct {
	What   string
	Name   string
	Reason string
	Hint   string
}

func (e *BusyError) Error() string {
	s := fmt.Sprintf("%s %q %s", e.What, e.Name, e.Reason)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// RepairError is returned when an operation failed and undoing it failed
// too. The intent record stays, and the next mutating command or `cnet gc`
// finishes the undo.
type RepairError struct {
	Op       string
	Cause    error
	Rollback error
}

func (e *RepairError) Error() string {
	return fmt.Sprintf("%s: %s; undoing it also failed (%s): run `cnet gc` to finish cleaning up",
		e.Op, e.Cause.Error(), e.Rollback.Error())
}

func (e *RepairError) Unwrap() []error { return []error{e.Cause, ErrNeedsRepair} }

// Quote joins values as "a", "b" for messages.
func Quote(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
