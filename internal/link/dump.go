package link

import (
	"github.com/vishvananda/netlink"

	"github.com/cnetdev/cnet/internal/nlreq"
)

// The raw list methods of vishvananda/netlink are forbidden outside this
// file (forbidigo in .golangci.yml): each is taken here through
// nlreq.Dump, which takes a dump again when the kernel reports it as
// interrupted.

// LinkList lists the links of h's namespace (with h nil, of the calling
// thread's namespace). Equivalent to: `ip link show`.
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	if h == nil {
		return nlreq.Dump(netlink.LinkList)
	}
	return nlreq.Dump(h.LinkList)
}

// AddrList lists the addresses of family on l (every link when nil).
// Equivalent to: `ip addr show [dev NAME]`.
func AddrList(h *netlink.Handle, l netlink.Link, family int) ([]netlink.Addr, error) {
	return nlreq.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, family) })
}

// RouteList lists the routes of family through l (every route of the
// main table when nil). Equivalent to: `ip route show [dev NAME]`.
func RouteList(h *netlink.Handle, l netlink.Link, family int) ([]netlink.Route, error) {
	return nlreq.Dump(func() ([]netlink.Route, error) { return h.RouteList(l, family) })
}

// RouteListFiltered lists the routes that match filter in the fields of
// mask. Equivalent to: `ip route show table all` (and the like).
func RouteListFiltered(h *netlink.Handle, family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return nlreq.Dump(func() ([]netlink.Route, error) { return h.RouteListFiltered(family, filter, mask) })
}

// NeighList lists the neighbour entries of family on the link with index.
// Equivalent to: `ip neigh show dev NAME`.
func NeighList(h *netlink.Handle, index, family int) ([]netlink.Neigh, error) {
	return nlreq.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(index, family) })
}

// QdiscList lists the queueing disciplines of l.
// Equivalent to: `tc qdisc show dev NAME`.
func QdiscList(h *netlink.Handle, l netlink.Link) ([]netlink.Qdisc, error) {
	return nlreq.Dump(func() ([]netlink.Qdisc, error) { return h.QdiscList(l) })
}

// ConntrackTableList lists the flows of a conntrack table.
// Equivalent to: `conntrack -L`.
func ConntrackTableList(h *netlink.Handle, table netlink.ConntrackTableType, family netlink.InetFamily) ([]*netlink.ConntrackFlow, error) {
	return nlreq.Dump(func() ([]*netlink.ConntrackFlow, error) { return h.ConntrackTableList(table, family) })
}
