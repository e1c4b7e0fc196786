package link

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
// methods are forbidden elsewhere (forbidigo in .golangci.yml).

// dumpRetries bounds how often a dump that the kernel reports as
// interrupted is taken again.
const dumpRetries = 10

// Dump calls f until it returns anything but an interrupted dump, at most
// dumpRetries times, and returns its last result. An interruption on the
// last try is returned as an error: a partial listing is never passed on
// as complete.
func Dump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range dumpRetries {
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

// LinkList lists the links of h's namespace (with h nil, of the calling
// thread's namespace). Equivalent to: `ip link show`.
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	if h == nil {
		return Dump(netlink.LinkList)
	}
	return Dump(h.LinkList)
}

// AddrList lists the addresses of family on l (every link when nil).
// Equivalent to: `ip addr show [dev NAME]`.
func AddrList(h *netlink.Handle, l netlink.Link, family int) ([]netlink.Addr, error) {
	return Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, family) })
}

// RouteList lists the routes of family through l (every route of the
// main table when nil). Equivalent to: `ip route show [dev NAME]`.
func RouteList(h *netlink.Handle, l netlink.Link, family int) ([]netlink.Route, error) {
	return Dump(func() ([]netlink.Route, error) { return h.RouteList(l, family) })
}

// RouteListFiltered lists the routes that match filter in the fields of
// mask. Equivalent to: `ip route show table all` (and the like).
func RouteListFiltered(h *netlink.Handle, family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return Dump(func() ([]netlink.Route, error) { return h.RouteListFiltered(family, filter, mask) })
}

// NeighList lists the neighbour entries of family on the link with index.
// Equivalent to: `ip neigh show dev NAME`.
func NeighList(h *netlink.Handle, index, family int) ([]netlink.Neigh, error) {
	return Dump(func() ([]netlink.Neigh, error) { return h.NeighList(index, family) })
}

// QdiscList lists the queueing disciplines of l.
// Equivalent to: `tc qdisc show dev NAME`.
func QdiscList(h *netlink.Handle, l netlink.Link) ([]netlink.Qdisc, error) {
	return Dump(func() ([]netlink.Qdisc, error) { return h.QdiscList(l) })
}

// ConntrackTableList lists the flows of a conntrack table.
// Equivalent to: `conntrack -L`.
func ConntrackTableList(h *netlink.Handle, table netlink.ConntrackTableType, family netlink.InetFamily) ([]*netlink.ConntrackFlow, error) {
	return Dump(func() ([]*netlink.ConntrackFlow, error) { return h.ConntrackTableList(table, family) })
}
