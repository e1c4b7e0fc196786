// Package link makes bridges, veth pairs, addresses and routes through
// netlink handles bound to a namespace (netlink.NewHandleAt), so no thread
// ever switches namespace here. Addresses come in as netip types and are
// converted to net.IPNet only inside this package.
package link

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/faults"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
)

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// owned reports whether l is the link mark names (see names.Owns).
func owned(l netlink.Link, alias, mark string) bool {
	return names.Owns(alias, l.Attrs().Group, mark)
}

// Lookup returns the link called name and its cnet mark, if any.
func Lookup(h *netlink.Handle, name string) (l netlink.Link, mark string, err error) {
	l, err = h.LinkByName(name)
	if isNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("ip link show %s: %w", name, err)
	}
	return l, l.Attrs().Alias, nil
}

// EnsureBridge creates a network's bridge, or accepts an existing one that
// carries the same mark. Equivalent to:
//
//	ip link add NAME address MAC mtu MTU up type bridge
//	ip link set NAME alias MARK
//	ip addr add GATEWAY/LEN dev NAME
//	sysctl -w net.ipv4.conf.NAME.route_localnet=1
//
// route_localnet lets connections to a port published on 127.0.0.1 leave
// through the bridge after DNAT; cnet's raw_prerouting rule keeps it from
// exposing the host's loopback services (CVE-2020-8558).
//
// The kernel ignores IFLA_IFALIAS when it creates a link, so the mark is a
// second request; the bridge is born in the mark's group (names.Group),
// so a bridge left without its mark by a crash between the two is still
// recognised, and marked or removed.
func EnsureBridge(h *netlink.Handle, b model.BridgeSpec) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{
		Name:         b.Name,
		MTU:          b.MTU,
		HardwareAddr: names.MAC(b.Gateway.Addr()),
		Flags:        net.FlagUp,
		TxQLen:       -1,
		Group:        names.Group(b.Mark),
	}}
	err := h.LinkAdd(br)
	if err == nil {
		faults.Point()
		err = setAlias(h, br, b.Mark)
	} else if errors.Is(err, unix.EEXIST) {
		l, mark, lerr := Lookup(h, b.Name)
		if lerr != nil {
			return lerr
		}
		if l == nil || l.Type() != "bridge" || !owned(l, mark, b.Mark) {
			return errs.Conflict("bridge name", b.Name, describe(l, mark), "choose another --bridge")
		}
		if mark != b.Mark {
			if err := setAlias(h, l, b.Mark); err != nil {
				return err
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("ip link set %s up: %w", b.Name, err)
		}
		faults.Point()
		err = nil
		br.Attrs().Index = l.Attrs().Index
	}
	if err != nil {
		return fmt.Errorf("ip link add %s type bridge: %w", b.Name, err)
	}
	addr := &netlink.Addr{IPNet: ipnet(b.Gateway)}
	if err := h.AddrAdd(br, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ip addr add %s dev %s: %w", b.Gateway, b.Name, err)
	}
	faults.Point()
	return SetRouteLocalnet(b.Name)
}

// DisableIPv6 turns IPv6 off on an interface of the calling thread's
// namespace; a kernel without IPv6 has nothing to turn off.
// Equivalent to: `sysctl -w net.ipv6.conf.NAME.disable_ipv6=1`.
func DisableIPv6(ifname string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("1\n"), 0o644)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sysctl -w net.ipv6.conf.%s.disable_ipv6=1: %w", ifname, err)
	}
	faults.Point()
	return nil
}

func routeLocalnetPath(ifname string) string {
	return "/proc/sys/net/ipv4/conf/" + ifname + "/route_localnet"
}

// SetRouteLocalnet turns route_localnet on for an interface.
// Equivalent to: `sysctl -w net.ipv4.conf.NAME.route_localnet=1`.
func SetRouteLocalnet(ifname string) error {
	if err := os.WriteFile(routeLocalnetPath(ifname), []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl -w net.ipv4.conf.%s.route_localnet=1: %w", ifname, err)
	}
	faults.Point()
	return nil
}

// RouteLocalnet reports whether route_localnet is on for an interface.
func RouteLocalnet(ifname string) bool {
	v, err := os.ReadFile(routeLocalnetPath(ifname))
	return err == nil && strings.TrimSpace(string(v)) == "1"
}

func describe(l netlink.Link, mark string) string {
	if l == nil {
		return "nothing"
	}
	if mark == "" {
		return fmt.Sprintf("an existing %s link that cnet did not create", l.Type())
	}
	return fmt.Sprintf("an existing %s link marked %q", l.Type(), mark)
}

func setAlias(h *netlink.Handle, l netlink.Link, mark string) error {
	if err := h.LinkSetAlias(l, mark); err != nil {
		return fmt.Errorf("ip link set %s alias %s: %w", l.Attrs().Name, mark, err)
	}
	faults.Point()
	return nil
}

// RemoveLink deletes the link called name if it is mark's (carries it, or
// was left without it in mark's group, see names.Owns). A missing link is
// success; a link with another mark is left alone and reported.
// Equivalent to: `ip link del NAME`.
func RemoveLink(h *netlink.Handle, name, mark string) error {
	l, got, err := Lookup(h, name)
	if err != nil || l == nil {
		return err
	}
	if !owned(l, got, mark) {
		return errs.Conflict("link", name, describe(l, got), "left in place")
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("ip link del %s: %w", name, err)
	}
	faults.Point()
	return nil
}

// EnsureEndpoint creates a veth pair with its peer born inside the
// container's namespace (no move between namespaces), the host end up on
// the bridge, and configures the peer. Equivalent to:
//
//	ip link add HOSTIF mtu MTU master BRIDGE group GROUP type veth \
//	    peer name CIF address MAC index N netns NS
//	sysctl -w net.ipv6.conf.HOSTIF.disable_ipv6=1
//	ip link set HOSTIF alias MARK up
//	ip -n NS link set CIF up
//	ip -n NS addr add ADDR/LEN dev CIF
//	ip -n NS route replace default via GATEWAY dev CIF src ADDR   (if DefaultRoute)
//
// The kernel's echo of the new pair gives the peer's ifindex, so no lookup
// is needed to address it. An existing host end carrying the endpoint's
// mark is accepted and put back on its bridge; so is one left without
// its mark by a process killed after creating it (it was born in the
// mark's group, names.Group), which is then marked.
//
// The host end is a bridge port: it forwards frames and never needs an
// address of its own, so it comes up with IPv6 off. Otherwise each one
// gets a link-local address, routes in the host's IPv6 table and timers,
// and every link coming up or going away walks that table: with a
// thousand endpoints, creating one and deleting them all cost twice as
// much. The container end keeps IPv6 as the kernel sets it up.
func EnsureEndpoint(host *netlink.Handle, hostSock *Sock, ns *Sock, nsFd int, ep model.EndpointSpec) error {
	bridge, ok, err := hostSock.Link(ep.Bridge)
	if err == nil && !ok {
		err = unix.ENODEV
	}
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", ep.Bridge, err)
	}
	v := VethSpec{
		Name: ep.HostIf, MTU: ep.MTU, Master: bridge.Index,
		PeerName: ep.ContainerIf, PeerMAC: mac(ep), PeerNetnsFd: nsFd,
		Group: names.Group(ep.Mark),
	}
	peerIndex, err := hostSock.AddVeth(v)
	switch {
	case err == nil:
		if err := DisableIPv6(ep.HostIf); err != nil {
			return err
		}
		if err := hostSock.SetLink(0, ep.HostIf, ep.Mark, true); err != nil {
			return err
		}
	case errors.Is(err, unix.EEXIST):
		l, mark, lerr := Lookup(host, ep.HostIf)
		if lerr != nil {
			return lerr
		}
		if l == nil { // the host name is free: the peer name is taken inside the container
			return errs.Conflict("interface", ep.ContainerIf, "an existing interface in namespace "+ep.Netns, "")
		}
		if !owned(l, mark, ep.Mark) {
			return errs.Conflict("interface", ep.HostIf, describe(l, mark), "")
		}
		if err := host.LinkSetMasterByIndex(l, bridge.Index); err != nil {
			return fmt.Errorf("ip link set %s master %s: %w", ep.HostIf, ep.Bridge, err)
		}
		faults.Point()
		if err := DisableIPv6(ep.HostIf); err != nil {
			return err
		}
		if err := hostSock.SetLink(l.Attrs().Index, ep.HostIf, ep.Mark, true); err != nil {
			return err
		}
		peerIndex = 0
	default:
		return fmt.Errorf("ip link add %s type veth peer name %s netns %s: %w", ep.HostIf, ep.ContainerIf, ep.Netns, err)
	}
	if peerIndex == 0 {
		peer, ok, err := ns.Link(ep.ContainerIf)
		if err == nil && !ok {
			err = unix.ENODEV
		}
		if err != nil {
			return fmt.Errorf("find %s in netns %s: %w", ep.ContainerIf, ep.Netns, err)
		}
		peerIndex = peer.Index
	}
	if err := ns.SetLink(peerIndex, ep.ContainerIf, "", true); err != nil {
		return fmt.Errorf("ip -n %s link set %s up: %w", ep.Netns, ep.ContainerIf, err)
	}
	if ep.Hairpin {
		if err := SetHairpin(host, ep.HostIf, true); err != nil {
			return err
		}
	}
	if err := ns.AddAddr(peerIndex, ep.Addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ip -n %s addr add %s dev %s: %w", ep.Netns, ep.Addr, ep.ContainerIf, err)
	}
	if ep.DefaultRoute {
		return EnsureDefaultRoute(ns, ep.Netns, peerIndex, ep.ContainerIf, ep.Gateway, ep.Addr.Addr())
	}
	return nil
}

// EnsureDefaultRoute adds or replaces the default route in a container,
// through the link dev (with its index) on ns, a socket inside it.
// Equivalent to: `ip -n NS route replace default via GATEWAY dev DEV src SRC`.
func EnsureDefaultRoute(ns *Sock, nsName string, index int, dev string, gw, src netip.Addr) error {
	if err := ns.ReplaceDefaultRoute(index, gw, src); err != nil {
		return fmt.Errorf("ip -n %s route replace default via %s dev %s: %w", nsName, gw, dev, err)
	}
	return nil
}

// RemoveDefaultRoute deletes the default route through dev, if present.
// Equivalent to: `ip -n NS route del default dev DEV`.
func RemoveDefaultRoute(ns *netlink.Handle, nsName, dev string) error {
	l, err := ns.LinkByName(dev)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find %s in netns %s: %w", dev, nsName, err)
	}
	routes, err := RouteList(ns, l, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("ip -n %s route show dev %s: %w", nsName, dev, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
			if err := ns.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("ip -n %s route del default dev %s: %w", nsName, dev, err)
			}
			faults.Point()
		}
	}
	return nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// ForwardingPath is the IPv4 forwarding sysctl.
const ForwardingPath = "/proc/sys/net/ipv4/ip_forward"

// Forwarding reports whether net.ipv4.ip_forward is on.
// Equivalent to: `sysctl net.ipv4.ip_forward`.
func Forwarding() bool {
	cur, err := os.ReadFile(ForwardingPath)
	return err == nil && strings.TrimSpace(string(cur)) == "1"
}

// SetForwarding switches net.ipv4.ip_forward and reports whether it
// changed. Equivalent to: `sysctl -w net.ipv4.ip_forward=1` (or 0).
func SetForwarding(on bool) (changed bool, err error) {
	if Forwarding() == on {
		return false, nil
	}
	v := "0\n"
	if on {
		v = "1\n"
	}
	if err := os.WriteFile(ForwardingPath, []byte(v), 0o644); err != nil {
		return false, fmt.Errorf("sysctl -w net.ipv4.ip_forward=%s: %w", strings.TrimSpace(v), err)
	}
	faults.Point()
	return true, nil
}

// HostPrefixes returns the IPv4 prefixes already in use on the host: every
// address's subnet and every route's destination except the default route
// and routes on the links skipLinks reports (cnet's own). Equivalent to
// reading `ip -4 addr` and `ip -4 route show table all`.
func HostPrefixes(h *netlink.Handle, skipLinks func(name string) bool) ([]netip.Prefix, error) {
	links, err := LinkList(h)
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	skip := map[int]bool{}
	for _, l := range links {
		if skipLinks(l.Attrs().Name) {
			skip[l.Attrs().Index] = true
		}
	}
	var out []netip.Prefix
	addrs, err := AddrList(h, nil, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("ip -4 addr show: %w", err)
	}
	for _, a := range addrs {
		if skip[a.LinkIndex] || a.IPNet == nil {
			continue
		}
		if p, ok := toPrefix(a.IPNet); ok && !p.Addr().IsLoopback() {
			out = append(out, p.Masked())
		}
	}
	routes, err := RouteListFiltered(h, unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("ip -4 route show table all: %w", err)
	}
	for _, r := range routes {
		if skip[r.LinkIndex] || r.Dst == nil || r.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		if p, ok := toPrefix(r.Dst); ok && p.Bits() > 0 && !p.Addr().IsLoopback() {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

// mac is the container end's address: the endpoint's own, else derived
// from its IPv4 address.
func mac(ep model.EndpointSpec) net.HardwareAddr {
	if ep.MAC != "" {
		if m, err := net.ParseMAC(ep.MAC); err == nil {
			return m
		}
	}
	return names.MAC(ep.Addr.Addr())
}
