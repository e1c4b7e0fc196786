package link

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/faults"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
)

// DirectEnd is one end of a direct link: the namespace it lives in, as a
// netlink handle and a descriptor, and what the end should be.
type DirectEnd struct {
	H    *netlink.Handle
	Fd   int
	Name string // the namespace's name, for messages
	Spec model.LinkEndSpec
}

// EnsureDirect creates a veth pair between two containers, end A born in
// A's namespace and end B in B's (no bridge, no move), both marked, up and
// addressed, with their egress limits. An existing pair that carries the
// mark is accepted and configured. Equivalent to:
//
//	ip -n A link add IF_A address MAC_A mtu MTU type veth peer name IF_B address MAC_B mtu MTU netns B
//	ip -n A link set IF_A alias MARK; ip -n B link set IF_B alias MARK
//	ip -n A link set IF_A up; ip -n B link set IF_B up
//	ip -n A addr add ADDR_A dev IF_A; ip -n B addr add ADDR_B dev IF_B
//	tc -n A qdisc replace dev IF_A root tbf rate RATE ...   (if limited)
func EnsureDirect(a, b DirectEnd, mtu int, mark string) error {
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: a.Spec.Interface, MTU: mtu, Group: names.Group(mark)},
		PeerName:  b.Spec.Interface, PeerMTU: uint32(mtu), PeerNamespace: netlink.NsFd(b.Fd),
	}
	if a.Spec.Addr.IsValid() { // as endpoints: the MAC follows the address
		v.HardwareAddr, v.PeerHardwareAddr = names.MAC(a.Spec.Addr.Addr()), names.MAC(b.Spec.Addr.Addr())
	}
	err := a.H.LinkAdd(v)
	if err == nil {
		faults.Point()
	}
	if errors.Is(err, unix.EEXIST) {
		l, got, lerr := Lookup(a.H, a.Spec.Interface)
		if lerr != nil {
			return lerr
		}
		if l == nil {
			return errs.Conflict("interface", b.Spec.Interface, "an existing interface in namespace "+b.Name, "")
		}
		if !owned(l, got, mark) {
			return errs.Conflict("interface", a.Spec.Interface, "in namespace "+a.Name+": "+describe(l, got), "")
		}
	} else if err != nil {
		return fmt.Errorf("ip -n %s link add %s type veth peer name %s netns %s: %w", a.Name, a.Spec.Interface, b.Spec.Interface, b.Name, err)
	}
	for _, end := range []DirectEnd{a, b} {
		l, err := end.H.LinkByName(end.Spec.Interface)
		if err != nil {
			return fmt.Errorf("find %s in netns %s: %w", end.Spec.Interface, end.Name, err)
		}
		if l.Attrs().Alias != mark {
			if err := end.H.LinkSetAlias(l, mark); err != nil {
				return fmt.Errorf("ip -n %s link set %s alias %s: %w", end.Name, end.Spec.Interface, mark, err)
			}
			faults.Point()
		}
		if err := end.H.LinkSetUp(l); err != nil {
			return fmt.Errorf("ip -n %s link set %s up: %w", end.Name, end.Spec.Interface, err)
		}
		faults.Point()
		if end.Spec.Addr.IsValid() {
			if err := end.H.AddrAdd(l, &netlink.Addr{IPNet: ipnet(end.Spec.Addr)}); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("ip -n %s addr add %s dev %s: %w", end.Name, end.Spec.Addr, end.Spec.Interface, err)
			}
			faults.Point()
		}
		if end.Spec.Egress > 0 {
			if err := SetEgress(end.H, end.Name, l, end.Spec.Egress); err != nil {
				return err
			}
		}
	}
	return nil
}

// RemoveDirect deletes a direct link through whichever end is still
// there (deleting one end of a veth pair deletes both); a missing pair is
// success, an end with another mark is left alone and reported.
// Equivalent to: `ip -n A link del IF_A`.
func RemoveDirect(ends []DirectEnd, mark string) error {
	for _, end := range ends {
		if end.H == nil {
			continue
		}
		l, got, err := Lookup(end.H, end.Spec.Interface)
		if err != nil {
			return err
		}
		if l == nil {
			continue
		}
		if !owned(l, got, mark) {
			return errs.Conflict("interface", end.Spec.Interface, "in namespace "+end.Name+": "+describe(l, got), "left in place")
		}
		if err := end.H.LinkDel(l); err != nil && !isNotFound(err) {
			return fmt.Errorf("ip -n %s link del %s: %w", end.Name, end.Spec.Interface, err)
		}
		faults.Point()
		return nil
	}
	return nil
}

// Token-bucket shaping: a burst of at least 10 ms at the rate (and never
// below a 64 KiB, so one TSO segment always fits), and at most 50 ms of
// queue behind it, as the CNI bandwidth plugin and `tc` examples do.
const (
	tbfLatencyMs = 50
	tbfMinBurst  = 64 << 10
)

// SetEgress shapes what leaves l to rate bits/s with a token bucket.
// Equivalent to:
//
//	tc -n NS qdisc replace dev IF root handle 1: tbf rate RATEbit burst BURST latency 50ms
func SetEgress(h *netlink.Handle, nsName string, l netlink.Link, rate uint64) error {
	bytes := rate / 8
	if bytes == 0 {
		bytes = 1
	}
	burst := max(bytes/100, tbfMinBurst)
	limit := bytes*tbfLatencyMs/1000 + burst
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       bytes,
		Limit:      uint32(min(limit, 1<<32-1)),
		Buffer:     netlink.Xmittime(bytes, uint32(min(burst, 1<<32-1))),
	}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("tc -n %s qdisc replace dev %s root tbf rate %dbit: %w", nsName, l.Attrs().Name, rate, err)
	}
	faults.Point()
	return nil
}

// Egress returns the rate in bits/s of the token bucket at the root of
// l, or 0. Equivalent to: `tc -n NS qdisc show dev IF root`.
func Egress(h *netlink.Handle, l netlink.Link) (uint64, error) {
	qs, err := QdiscList(h, l)
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if t, ok := q.(*netlink.Tbf); ok && t.Parent == netlink.HANDLE_ROOT {
			return t.Rate * 8, nil
		}
	}
	return 0, nil
}

// EnsureStaticRoute adds or replaces a route inside a container to dst via
// gw; the kernel picks the interface that reaches gw. Equivalent to:
// `ip -n NS route replace DST via GW`.
func EnsureStaticRoute(ns *netlink.Handle, nsName string, dst netip.Prefix, gw netip.Addr) error {
	r := &netlink.Route{Dst: ipnet(dst), Gw: gw.AsSlice()}
	if err := ns.RouteReplace(r); err != nil {
		return fmt.Errorf("ip -n %s route replace %s via %s: %w", nsName, dst, gw, err)
	}
	faults.Point()
	return nil
}

// RemoveStaticRoute deletes the route to dst via gw if present.
// Equivalent to: `ip -n NS route del DST via GW`.
func RemoveStaticRoute(ns *netlink.Handle, nsName string, dst netip.Prefix, gw netip.Addr) error {
	r := &netlink.Route{Dst: ipnet(dst), Gw: gw.AsSlice()}
	if err := ns.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENETUNREACH) {
		return fmt.Errorf("ip -n %s route del %s via %s: %w", nsName, dst, gw, err)
	}
	faults.Point()
	return nil
}

// SetNetnsForwarding writes net.ipv4.ip_forward=1 in the namespace the
// calling thread is in (call it inside netns.Do). Equivalent to:
// `ip netns exec NS sysctl -w net.ipv4.ip_forward=1`.
func SetNetnsForwarding() error {
	if err := os.WriteFile(ForwardingPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl -w net.ipv4.ip_forward=1: %w", err)
	}
	return nil
}
