// Command cnet gives plain Linux processes Docker-style container
// networking: named network namespaces on Linux bridges, with addresses,
// NAT, isolation and per-container resolv.conf, one command per step.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/cni"
)

// Exit codes. Commands that run a program (exec, run) exit with its status
// instead, and use 125-127 for their own failures, like `docker run`.
const (
	exitOK          = 0
	exitFailure     = 1
	exitInvalid     = 2
	exitNotFound    = 3
	exitExists      = 4
	exitConflict    = 5
	exitBusy        = 6
	exitNotPermit   = 7
	exitNeedsRepair = 8
)

func exitCode(err error) int {
	var se *startError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, cnet.ErrNeedsRepair):
		return exitNeedsRepair
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, cnet.ErrInvalid), errors.Is(err, errUsage):
		return exitInvalid
	case errors.Is(err, cnet.ErrNotFound):
		return exitNotFound
	case errors.Is(err, cnet.ErrExists):
		return exitExists
	case errors.Is(err, cnet.ErrConflict):
		return exitConflict
	case errors.Is(err, cnet.ErrBusy):
		return exitBusy
	case errors.Is(err, cnet.ErrNotPermitted):
		return exitNotPermit
	}
	return exitFailure
}

var errUsage = errors.New("usage")

// usageError marks command-line mistakes cobra reports itself.
type usageError struct{ error }

func (u usageError) Unwrap() []error { return []error{u.error, errUsage} }

func main() {
	// No allocation sampling for the memory profile, which nothing reads:
	// each sample unwinds the stack through tables a short command never
	// otherwise touches.
	runtime.MemProfileRate = 0
	if len(os.Args) > 1 && os.Args[1] == nsexecArg {
		nsexecMain(os.Args[2:]) // never returns
	}
	if len(os.Args) > 1 && os.Args[1] == dnsArg {
		dnsMain(os.Args[2:]) // never returns
	}
	if os.Getenv("CNI_COMMAND") != "" {
		// Installed in a CNI bin dir, cnet is the plugin of type "cnet".
		var dnsCommand []string
		if exe, err := os.Executable(); err == nil {
			dnsCommand = []string{exe, dnsArg}
		}
		cni.Main(dnsCommand, crashHook())
		return
	}
	// A cnet process lives for milliseconds and allocates little: garbage
	// collection would only cost time. The limit keeps a huge `ls` or `gc`
	// bounded.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	if cmd != nil && !cmd.Runnable() && !errors.Is(err, errUsage) {
		// A command that only groups others fails only on what it was
		// given: an unknown subcommand.
		err = usageError{err}
	}
	fmt.Fprintf(os.Stderr, "cnet: %s\n", err)
	if errors.Is(err, errUsage) && cmd != nil {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exitCode(err)
}

// exitStatus is returned by exec and run to exit with the program's status.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
