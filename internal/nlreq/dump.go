package nlreq

import (
	"errors"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// A netlink dump (every link, address, route, neighbour, qdisc) is read
// in several datagrams. When the table changes while it is read, the
// kernel marks the dump as interrupted (NLM_F_DUMP_INTR) and
// vishvananda/netlink returns netlink.ErrDumpInterrupted together with
// results that may miss or repeat entries. Deleting a namespace starts
// exactly such a change: the kernel tears its veths down some 20-30 ms
// later, so a listing taken just after `cnet rm` meets it. Every dump
// cnet takes goes through Dump, which takes it again; the raw list
// methods are forbidden outside internal/link/dump.go (forbidigo in
// .golangci.yml).

// DumpRetries bounds how often a dump that the kernel reports as
// interrupted is taken again.
const DumpRetries = 10

// Dump calls f until it returns anything but an interrupted dump, at most
// DumpRetries times, and returns its last result. An interruption on the
// last try is returned as an error: a partial listing is never passed on
// as complete.
func Dump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range DumpRetries {
		v, err = f()
		if !interrupted(err) {
			return v, err
		}
	}
	var zero T
	return zero, err
}

func interrupted(err error) bool {
	return errors.Is(err, netlink.ErrDumpInterrupted) || errors.Is(err, nl.ErrDumpInterrupted)
}
