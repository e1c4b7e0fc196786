// Package kernel is the real machine behind cnet's engine: it carries out
// steps with netlink, nftables and files, and answers planning questions
// from the live kernel. internal/fakekernel is its recording twin.
package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/conntrack"
	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/faults"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/sockdiag"
)

// Kernel operates on the network namespace of the calling process (the
// "host") and on the named namespaces under NetnsDir.
type Kernel struct {
	NetnsDir string // /run/netns
	FilesDir string // /etc/netns
	Marker   string // first line of files cnet writes
	// DNSDir is where the name server keeps its socket and snapshot, and
	// DNSCommand how it is started (the directory is appended).
	DNSDir     string
	DNSCommand []string

	host     *netlink.Handle
	hostSock *link.Sock
	ctSock   *nl.NetlinkSocket // netfilter socket, for conntrack
	diag     *nl.NetlinkSocket // sock_diag socket in the host namespace
	ns       map[string]*netns.NS
}

// New returns a Kernel; handles open on first use.
func New(netnsDir, filesDir, marker string) *Kernel {
	return &Kernel{NetnsDir: netnsDir, FilesDir: filesDir, Marker: marker, ns: map[string]*netns.NS{}}
}

// Close releases every handle.
func (k *Kernel) Close() {
	if k.host != nil {
		k.host.Close()
		k.host = nil
	}
	k.hostSock.Close()
	k.hostSock = nil
	if k.diag != nil {
		k.diag.Close()
		k.diag = nil
	}
	if k.ctSock != nil {
		k.ctSock.Close()
		k.ctSock = nil
	}
	for name, n := range k.ns {
		n.Close()
		delete(k.ns, name)
	}
}

// Host returns a netlink handle in the host namespace.
func (k *Kernel) Host() (*netlink.Handle, error) {
	if k.host == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink socket: %w", err)
		}
		k.host = h
	}
	return k.host, nil
}

// HostSock returns a raw netlink socket in the host namespace.
func (k *Kernel) HostSock() (*link.Sock, error) {
	if k.hostSock == nil {
		s, err := link.OpenSock()
		if err != nil {
			return nil, err
		}
		k.hostSock = s
	}
	return k.hostSock, nil
}

// Netns returns the open namespace called name.
func (k *Kernel) Netns(name string) (*netns.NS, error) {
	if n, ok := k.ns[name]; ok {
		return n, nil
	}
	n, err := netns.Open(k.NetnsDir, name)
	if err != nil {
		return nil, err
	}
	k.ns[name] = n
	return n, nil
}

// netnsMark returns the alias of lo in the namespace bound at name. It
// asks from the host, through the id the host has for the namespace
// (every container with an endpoint has one), so nothing switches
// namespace; only a namespace without an id is read from inside, as
// netns.Mark does. Equivalent to: `ip -n NAME link show lo`.
func (k *Kernel) netnsMark(name string) (string, error) {
	_, fd, err := netns.OpenFd(k.NetnsDir, name)
	if err != nil {
		return "", err
	}
	defer netns.CloseFd(fd)
	if s, err := k.HostSock(); err == nil {
		if id, err := s.NsID(fd); err == nil && id >= 0 {
			if lo, ok, err := s.LinkIn(id, "lo"); err == nil && ok {
				return lo.Alias, nil
			}
		}
	}
	return netns.Mark(k.NetnsDir, name)
}

func (k *Kernel) forget(name string) {
	if n, ok := k.ns[name]; ok {
		n.Close()
		delete(k.ns, name)
	}
}

// EnsureNetns creates a namespace, or accepts one that carries s.Mark.
func (k *Kernel) EnsureNetns(s model.NetnsSpec) error {
	// Inside the new namespace: ip link set lo alias MARK up (lo is ifindex 1).
	n, err := netns.Create(k.NetnsDir, s.Name, func(route *nl.SocketHandle) error {
		return link.SockOn(route).SetLink(1, "lo", s.Mark, true)
	})
	if errors.Is(err, unix.EEXIST) {
		mark, merr := k.netnsMark(s.Name)
		if merr != nil || mark != s.Mark {
			return errs.Conflict("namespace", s.Name, "a namespace cnet did not create", "")
		}
	} else if err != nil {
		return fmt.Errorf("ip netns add %s: %w", s.Name, err)
	} else {
		k.forget(s.Name)
		k.ns[s.Name] = n
	}
	if s.Forwarding {
		return k.setNetnsForwarding(s.Name)
	}
	return nil
}

// RemoveNetns deletes a namespace if it is the one cnet made (or an
// empty mount point left by an interrupted create), and waits until the
// kernel has freed its host veths. Anything else at its path (a symbolic
// link, a directory, a file with content, another mount) is not cnet's
// and is refused, left in place.
func (k *Kernel) RemoveNetns(s model.NetnsSpec) error {
	k.forget(s.Name)
	if err := k.checkNetnsOwned(s); err != nil {
		return err
	}
	if err := k.delGuards(s.Guards); err != nil {
		return err
	}
	gone, err := k.watchVeths([]model.NetnsSpec{s})
	if err != nil {
		return err
	}
	defer gone.Close()
	if err := netns.Remove(k.NetnsDir, s.Name); err != nil {
		return fmt.Errorf("ip netns del %s: %w", s.Name, err)
	}
	return gone.Wait()
}

// checkNetnsOwned returns nil when what is at s's path may be removed:
// the namespace cnet made (checkOwned), an empty mount point, or nothing.
func (k *Kernel) checkNetnsOwned(s model.NetnsSpec) error {
	path := filepath.Join(k.NetnsDir, s.Name)
	switch netns.Stat(k.NetnsDir, s.Name) {
	case netns.Missing, netns.Incomplete:
		return nil
	case netns.Bound:
		return k.checkOwned(s, "left in place")
	default:
		return errs.Conflict("namespace path", path, netns.Describe(k.NetnsDir, s.Name), "cnet did not make it and leaves it in place; remove it yourself if it is not needed")
	}
}

// delVeths deletes, in one kernel batch, the host veths of the bound
// namespaces' endpoints: the links of the recorded names whose peers live
// in those namespaces, which would die with them anyway. Deleted in a
// request of cnet's own, they go under the RTNL lock with expedited
// grace periods, instead of waiting for the kernel's cleanup of the
// namespaces. Equivalent to: `ip link del group G` for the veths (see
// link.RemoveLinks).
func (k *Kernel) delVeths(specs []model.NetnsSpec) error {
	hs, err := k.HostSock()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	ids := map[int]bool{}
	for _, s := range specs {
		if len(s.Guards) == 0 {
			continue
		}
		_, fd, err := netns.OpenFd(k.NetnsDir, s.Name)
		if err != nil {
			return err
		}
		id, err := hs.NsID(fd)
		netns.CloseFd(fd)
		if err != nil {
			return err
		}
		if id < 0 {
			continue // no link joins it to the host
		}
		ids[id] = true
		for _, g := range s.Guards {
			want[g.HostIf] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	all, err := hs.Links()
	if err != nil {
		return err
	}
	var doomed []link.Owned
	for _, l := range all {
		if want[l.Name] && l.PeerNsID >= 0 && ids[l.PeerNsID] {
			doomed = append(doomed, link.Owned{Name: l.Name, Mark: l.Alias})
		}
	}
	return link.RemoveLinks(hs, doomed)
}

// earlyVethDelete is the number of host veths from which deleting them
// before the namespaces (delVeths) is cheaper than waiting for the
// kernel's namespace cleanup to free them: measured, a single veth costs
// more deleted than waited for, two or more cost less (docs/benchmarks.md).
const earlyVethDelete = 2

func countGuards(specs []model.NetnsSpec) int {
	n := 0
	for _, s := range specs {
		n += len(s.Guards)
	}
	return n
}

// watchVeths starts watching the host veths of the endpoints of bound
// namespaces about to be deleted (their guards name the veths), which the
// kernel frees some 20-30 ms after the namespaces go; Wait on the result
// returns once they are gone, so that nothing a command removed is
// visible once it returns. One wait serves every namespace of a batch.
// (A process that holds a namespace open keeps it, and its veths, alive:
// the wait then fails after link.goneTimeout, naming the veths. A
// namespace already unmounted is not waited for again.)
func (k *Kernel) watchVeths(specs []model.NetnsSpec) (*link.Departures, error) {
	var names []string
	for _, s := range specs {
		for _, g := range s.Guards {
			names = append(names, g.HostIf)
		}
	}
	if len(names) == 0 {
		return link.WatchDepartures(nil, nil)
	}
	hs, err := k.HostSock()
	if err != nil {
		return nil, err
	}
	return link.WatchDepartures(hs, names)
}

// checkOwned refuses to delete the namespace bound at s.Name unless it
// is the one s describes: the one whose identity cnet recorded when it
// made it (s.ID), or, for a record from before identities were kept, one
// whose lo carries s.Mark. The identity comes first because the mark is
// an alias any process inside the namespace may rewrite: a container
// could otherwise keep cnet from removing it, or dress up as another.
func (k *Kernel) checkOwned(s model.NetnsSpec, hint string) error {
	if s.ID != nil {
		id, err := k.NetnsID(s.Name)
		if err != nil {
			return err
		}
		if id != *s.ID {
			return errs.Conflict("namespace", s.Name,
				fmt.Sprintf("another namespace than the one cnet created (%s, recorded %s)", id, *s.ID), "%s", hint)
		}
		return nil
	}
	mark, err := k.netnsMark(s.Name)
	if err != nil {
		return err
	}
	if mark != s.Mark {
		return errs.Conflict("namespace", s.Name, "a namespace cnet did not create", "%s", hint)
	}
	return nil
}

// NetnsID returns the identity of the namespace bound at name: the
// device and inode of its nsfs file. Equivalent to:
// `stat -L -c %d:%i /run/netns/NAME`.
func (k *Kernel) NetnsID(name string) (model.NetnsID, error) {
	path, fd, err := netns.OpenFd(k.NetnsDir, name)
	if err != nil {
		return model.NetnsID{}, err
	}
	defer netns.CloseFd(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return model.NetnsID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return model.NetnsID{Dev: st.Dev, Ino: st.Ino}, nil
}

func (k *Kernel) addGuards(gs []model.GuardSpec) error {
	if len(gs) == 0 {
		return nil
	}
	return firewall.AddGuards(gs)
}

func (k *Kernel) delGuards(gs []model.GuardSpec) error {
	if len(gs) == 0 {
		return nil
	}
	return firewall.DelGuards(gs)
}

// RemoveNamespaces deletes many namespaces that carry their marks (or are
// empty mount points left by interrupted creates). Every namespace is
// checked before the first is deleted, so one that is not cnet's stops
// them all; and so the checks do not queue behind the kernel's cleanup of
// the namespaces already deleted, which holds the lock they need. Then it
// waits, once for all, until the kernel has freed their host veths (see
// watchVeths). Equivalent to: `ip netns del NAME` for each, then `ip
// monitor link` until every host veth is deleted.
func (k *Kernel) RemoveNamespaces(specs []model.NetnsSpec) error {
	var bound []model.NetnsSpec
	for _, s := range specs {
		k.forget(s.Name)
		if err := k.checkNetnsOwned(s); err != nil {
			return fmt.Errorf("%w; nothing was deleted", err)
		}
		if netns.Stat(k.NetnsDir, s.Name) == netns.Bound {
			bound = append(bound, s)
		}
	}
	var guards []model.GuardSpec
	for _, s := range specs {
		guards = append(guards, s.Guards...)
	}
	if err := k.delGuards(guards); err != nil {
		return err
	}
	gone, err := k.watchVeths(bound)
	if err != nil {
		return err
	}
	defer gone.Close()
	if countGuards(bound) >= earlyVethDelete {
		if err := k.delVeths(bound); err != nil {
			return err
		}
	}
	var errList []error
	for _, s := range specs {
		if err := netns.Remove(k.NetnsDir, s.Name); err != nil {
			errList = append(errList, fmt.Errorf("ip netns del %s: %w", s.Name, err))
		}
	}
	if len(errList) == 0 {
		errList = append(errList, gone.Wait())
	}
	return errors.Join(errList...)
}

// EnsureBridge creates a network's bridge.
func (k *Kernel) EnsureBridge(b model.BridgeSpec) error {
	h, err := k.Host()
	if err != nil {
		return err
	}
	return link.EnsureBridge(h, b)
}

// RemoveBridge deletes a network's bridge.
func (k *Kernel) RemoveBridge(b model.BridgeSpec) error {
	h, err := k.Host()
	if err != nil {
		return err
	}
	return link.RemoveLink(h, b.Name, b.Mark)
}

// EnsureEndpoint creates an endpoint's veth pair, limits its egress (tc
// tbf) when asked, and adds its anti-spoofing entry (firewall.AddGuards).
func (k *Kernel) EnsureEndpoint(ep model.EndpointSpec) error {
	h, err := k.Host()
	if err != nil {
		return err
	}
	hs, err := k.HostSock()
	if err != nil {
		return err
	}
	n, err := k.Netns(ep.Netns)
	if err != nil {
		return err
	}
	route, err := n.Route()
	if err != nil {
		return err
	}
	if err := link.EnsureEndpoint(h, hs, link.SockOn(route), n.Fd(), ep); err != nil {
		return err
	}
	if ep.Egress != 0 {
		l, err := n.Link.LinkByName(ep.ContainerIf)
		if err != nil {
			return fmt.Errorf("find %s in netns %s: %w", ep.ContainerIf, ep.Netns, err)
		}
		if err := link.SetEgress(n.Link, ep.Netns, l, ep.Egress); err != nil {
			return err
		}
	}
	// Frames from the container must carry its MAC and address.
	return k.addGuards([]model.GuardSpec{ep.Guard()})
}

// RemoveEndpoint deletes an endpoint's veth pair through its host end,
// and its anti-spoofing entry.
func (k *Kernel) RemoveEndpoint(ep model.EndpointSpec) error {
	h, err := k.Host()
	if err != nil {
		return err
	}
	if err := k.delGuards([]model.GuardSpec{ep.Guard()}); err != nil {
		return err
	}
	return link.RemoveLink(h, ep.HostIf, ep.Mark)
}

// RemoveEndpoints deletes many endpoints' veth pairs, through their host
// ends, in one kernel batch (see link.RemoveLinks).
func (k *Kernel) RemoveEndpoints(eps []model.EndpointSpec) error {
	s, err := k.HostSock()
	if err != nil {
		return err
	}
	want := make([]link.Owned, len(eps))
	guards := make([]model.GuardSpec, len(eps))
	for i, ep := range eps {
		want[i] = link.Owned{Name: ep.HostIf, Mark: ep.Mark}
		guards[i] = ep.Guard()
	}
	if err := k.delGuards(guards); err != nil {
		return err
	}
	return link.RemoveLinks(s, want)
}

// EnsureRoute sets a container's default route, or a static route.
func (k *Kernel) EnsureRoute(r model.RouteSpec) error {
	n, err := k.Netns(r.Netns)
	if err != nil {
		return err
	}
	if r.Dst.IsValid() {
		return link.EnsureStaticRoute(n.Link, r.Netns, r.Dst, r.Gateway)
	}
	route, err := n.Route()
	if err != nil {
		return err
	}
	s := link.SockOn(route)
	dev, ok, err := s.Link(r.Dev)
	if err == nil && !ok {
		err = unix.ENODEV
	}
	if err != nil {
		return fmt.Errorf("find %s in netns %s: %w", r.Dev, r.Netns, err)
	}
	return link.EnsureDefaultRoute(s, r.Netns, dev.Index, r.Dev, r.Gateway, r.Src)
}

// RemoveRoute deletes a container's default route through r.Dev, or a
// static route.
func (k *Kernel) RemoveRoute(r model.RouteSpec) error {
	n, err := k.Netns(r.Netns)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Dst.IsValid() {
		return link.RemoveStaticRoute(n.Link, r.Netns, r.Dst, r.Gateway)
	}
	return link.RemoveDefaultRoute(n.Link, r.Netns, r.Dev)
}

// SyncFirewall replaces cnet's nftables table.
func (k *Kernel) SyncFirewall(rs firewall.Ruleset) error {
	return firewall.Sync(rs)
}

// WriteFiles writes /etc/netns/NAME.
func (k *Kernel) WriteFiles(f *model.FilesSpec) error { return nsfiles.Write(k.FilesDir, k.Marker, f) }

// RemoveFiles removes /etc/netns/NAME.
func (k *Kernel) RemoveFiles(name string) error { return nsfiles.Remove(k.FilesDir, k.Marker, name) }

// SetForwarding switches net.ipv4.ip_forward.
func (k *Kernel) SetForwarding(on bool) (bool, error) { return link.SetForwarding(on) }

// Forwarding reports whether net.ipv4.ip_forward is on.
func (k *Kernel) Forwarding() bool { return link.Forwarding() }

// HostPrefixes lists the host's addresses and routes.
func (k *Kernel) HostPrefixes(skip func(link string) bool) ([]netip.Prefix, error) {
	h, err := k.Host()
	if err != nil {
		return nil, err
	}
	return link.HostPrefixes(h, skip)
}

// Link reports whether a host link exists and its alias.
func (k *Kernel) Link(name string) (bool, string, error) {
	h, err := k.Host()
	if err != nil {
		return false, "", err
	}
	l, alias, err := link.Lookup(h, name)
	return l != nil, alias, err
}

// NetnsState reports what is bound at NetnsDir/name.
func (k *Kernel) NetnsState(name string) netns.State { return netns.Stat(k.NetnsDir, name) }

// NetnsLinks lists the interfaces inside a namespace.
func (k *Kernel) NetnsLinks(name string) ([]string, error) {
	n, err := k.Netns(name)
	if err != nil {
		return nil, err
	}
	links, err := link.LinkList(n.Link)
	if err != nil {
		return nil, fmt.Errorf("ip -n %s link show: %w", name, err)
	}
	out := make([]string, len(links))
	for i, l := range links {
		out[i] = l.Attrs().Name
	}
	return out, nil
}

// BridgeHolders lists the addresses and MACs in use behind the ports of
// bridge that ours does not claim: for a veth, its peer's MAC and
// addresses, read from the host through the peer's namespace id; for
// any other port, the MACs the bridge learned on it and the addresses the
// host's neighbour table pairs with them. Ports cnet made cost one
// bridge-port dump and nothing more. Equivalent to: `bridge link show
// master BRIDGE`, then, for each other port, `ip -n NS addr show dev
// PEER` or `bridge fdb show brport PORT` with `ip neigh show dev BRIDGE`.
func (k *Kernel) BridgeHolders(bridge string, ours func(port, alias string) bool) ([]model.Holder, error) {
	s, err := k.HostSock()
	if err != nil {
		return nil, err
	}
	br, ok, err := s.Link(bridge)
	if err != nil || !ok {
		return nil, err // no bridge yet: nothing behind it
	}
	ports, err := s.BridgePorts(br.Index)
	if err != nil {
		return nil, err
	}
	var out []model.Holder
	for _, p := range ports {
		if ours(p.Name, "") {
			continue
		}
		skip := func(alias string) bool { return ours(p.Name, alias) }
		peer, err := s.PortPeer(p.Index, skip)
		if err != nil {
			return nil, err
		}
		if skip(peer.Alias) {
			continue
		}
		if !peer.Veth {
			h, err := k.Host()
			if err != nil {
				return nil, err
			}
			learned, err := link.LearnedOn(h, br.Index, p.Index)
			if err != nil {
				return nil, err
			}
			for _, l := range learned {
				out = append(out, model.Holder{Addr: l.Addr, MAC: l.MAC.String(), Who: "a host behind bridge port " + p.Name + ", which is not a cnet endpoint"})
			}
			continue
		}
		who := fmt.Sprintf("%s %s, behind bridge port %s, which is not a cnet endpoint", peer.Name, k.nsName(peer.NsID), p.Name)
		mac := ""
		if len(peer.MAC) > 0 {
			mac = peer.MAC.String()
		}
		if len(peer.Addrs) == 0 {
			out = append(out, model.Holder{MAC: mac, Who: who})
		}
		for _, a := range peer.Addrs {
			out = append(out, model.Holder{Addr: a, MAC: mac, Who: who})
		}
	}
	return out, nil
}

// nsName says where the namespace the host knows by nsid is bound: "in
// namespace NAME" for one under NetnsDir, else a description.
func (k *Kernel) nsName(nsid int) string {
	if nsid < 0 {
		return "on the host"
	}
	s, err := k.HostSock()
	if err != nil {
		return fmt.Sprintf("in the namespace with id %d", nsid)
	}
	all, _ := netns.List(k.NetnsDir) // unreadable: described by id below
	for _, name := range all {
		_, fd, err := netns.OpenFd(k.NetnsDir, name)
		if err != nil {
			continue
		}
		id, err := s.NsID(fd)
		netns.CloseFd(fd)
		if err == nil && id == nsid {
			return "in namespace " + name
		}
	}
	return fmt.Sprintf("in a namespace not bound under %s (id %d)", k.NetnsDir, nsid)
}

// FirewallPresent reports whether cnet's table exists.
func (k *Kernel) FirewallPresent() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	return firewall.Exists(c)
}

// CheckBridge describes what a network's bridge lacks ("" when complete).
func (k *Kernel) CheckBridge(b model.BridgeSpec) (string, error) {
	h, err := k.Host()
	if err != nil {
		return "", err
	}
	l, mark, err := link.Lookup(h, b.Name)
	if err != nil {
		return "", err
	}
	switch {
	case l == nil:
		return "bridge " + b.Name + " is missing", nil
	case !names.Owns(mark, l.Attrs().Group, b.Mark):
		return "", errs.Conflict("bridge name", b.Name, "a link cnet did not create", "remove or rename it, then run `cnet gc` again")
	case mark != b.Mark:
		return "bridge " + b.Name + " lacks its mark " + b.Mark, nil
	case l.Attrs().Flags&net.FlagUp == 0:
		return "bridge " + b.Name + " is down", nil
	}
	addrs, err := link.AddrList(h, l, unix.AF_INET)
	if err != nil {
		return "", fmt.Errorf("ip addr show %s: %w", b.Name, err)
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); a.IP.Equal(b.Gateway.Addr().AsSlice()) && ones == b.Gateway.Bits() {
			if !link.RouteLocalnet(b.Name) {
				return "bridge " + b.Name + " has route_localnet off", nil
			}
			return "", nil
		}
	}
	return "bridge " + b.Name + " lacks its gateway address " + b.Gateway.String(), nil
}

// CheckEndpoint describes what an endpoint lacks ("" when complete): its
// host veth, its place on the bridge, its up state.
func (k *Kernel) CheckEndpoint(ep model.EndpointSpec) (string, error) {
	h, err := k.Host()
	if err != nil {
		return "", err
	}
	l, mark, err := link.Lookup(h, ep.HostIf)
	if err != nil {
		return "", err
	}
	if l == nil || mark != ep.Mark {
		return "veth " + ep.HostIf + " is missing", nil
	}
	br, _, err := link.Lookup(h, ep.Bridge)
	if err != nil {
		return "", err
	}
	if br == nil || l.Attrs().MasterIndex != br.Attrs().Index {
		return "veth " + ep.HostIf + " is not on bridge " + ep.Bridge, nil
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return "veth " + ep.HostIf + " is down", nil
	}
	return k.checkInside(ep)
}

// checkInside describes what the container end of an endpoint lacks: the
// interface up, its address, the default route through it.
func (k *Kernel) checkInside(ep model.EndpointSpec) (string, error) {
	n, err := k.Netns(ep.Netns)
	if err != nil {
		return "", err
	}
	l, err := n.Link.LinkByName(ep.ContainerIf)
	if err != nil {
		return ep.ContainerIf + " is missing in " + ep.Netns, nil
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return ep.ContainerIf + " is down in " + ep.Netns, nil
	}
	addrs, err := link.AddrList(n.Link, l, unix.AF_INET)
	if err != nil {
		return "", fmt.Errorf("ip -n %s addr show %s: %w", ep.Netns, ep.ContainerIf, err)
	}
	found := false
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		found = found || a.IP.Equal(ep.Addr.Addr().AsSlice()) && ones == ep.Addr.Bits()
	}
	if !found {
		return ep.ContainerIf + " lacks " + ep.Addr.String() + " in " + ep.Netns, nil
	}
	if ep.DefaultRoute {
		routes, err := link.RouteList(n.Link, l, unix.AF_INET)
		if err != nil {
			return "", fmt.Errorf("ip -n %s route show dev %s: %w", ep.Netns, ep.ContainerIf, err)
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(ep.Gateway.AsSlice()) {
				return "", nil
			}
		}
		return "no default route via " + ep.Gateway.String() + " in " + ep.Netns, nil
	}
	return "", nil
}

// CheckFirewall describes how the live table differs from rs. One
// netlink socket serves every set and chain it reads.
func (k *Kernel) CheckFirewall(rs firewall.Ruleset) (string, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return "", err
	}
	defer func() { _ = c.CloseLasting() }() // a socket only read from: closing it loses nothing
	return firewall.Check(c, rs)
}

// ForwardDrops lists other tables' forward chains with policy drop.
func (k *Kernel) ForwardDrops() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	return firewall.ForeignForwardDrop(c)
}

// MarkedLinks returns host links whose alias is a cnet mark, by name.
func (k *Kernel) MarkedLinks() (map[string]string, error) {
	h, err := k.Host()
	if err != nil {
		return nil, err
	}
	links, err := link.LinkList(h)
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	out := map[string]string{}
	for _, l := range links {
		if _, ok := names.ParseMark(l.Attrs().Alias); ok {
			out[l.Attrs().Name] = l.Attrs().Alias
		}
	}
	return out, nil
}

// MarkedNetns returns the namespaces under NetnsDir whose lo carries a
// cnet mark, by name. Every other entry is left alone; left says why for
// each that is not a namespace at all (a symbolic link, a regular file, a
// directory) or whose mark cannot be read, since gc reports them. An empty
// file from an interrupted create is not returned: the create's intent
// record names it, and recovery removes it.
func (k *Kernel) MarkedNetns() (marked map[string]string, left []string, err error) {
	all, err := netns.List(k.NetnsDir)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", k.NetnsDir, err)
	}
	marked = map[string]string{}
	for _, name := range all {
		path := filepath.Join(k.NetnsDir, name)
		switch netns.Stat(k.NetnsDir, name) {
		case netns.Bound:
			mark, err := k.netnsMark(name)
			if err != nil {
				left = append(left, fmt.Sprintf("%s: cannot read its mark (%s); left alone", path, err))
				continue
			}
			if _, ok := names.ParseMark(mark); ok {
				marked[name] = mark
			}
		case netns.Missing: // gone since the listing
		default:
			left = append(left, fmt.Sprintf("%s is %s, not a namespace cnet made; left alone", path, netns.Describe(k.NetnsDir, name)))
		}
	}
	return marked, left, nil
}

// MarkedFiles returns the /etc/netns directories holding files cnet wrote.
// Links there are left alone, and left says so for each.
func (k *Kernel) MarkedFiles() (marked, left []string) { return nsfiles.Marked(k.FilesDir, k.Marker) }

// FilesPresent reports whether both files of a container exist, as
// regular files.
func (k *Kernel) FilesPresent(name string) bool { return nsfiles.Present(k.FilesDir, name) }

// AddPorts adds published ports to the DNAT maps in one batch (atomic:
// when it fails, nothing changed).
func (k *Kernel) AddPorts(ps []model.PortElem) error {
	return firewall.AddPorts(ps)
}

// DelPorts deletes published ports from the DNAT maps in one batch
// (atomic: when it fails, nothing changed).
func (k *Kernel) DelPorts(ps []model.PortElem) error {
	return firewall.DelPorts(ps)
}

// FlushConntrack deletes the connection-tracking entries of ports' host
// ports: once published, the stale flows that would bypass the new DNAT;
// once unpublished, the flows the mapping created (see
// conntrack.Flush).
func (k *Kernel) FlushConntrack(ps []model.PortElem, published bool) error {
	s, err := k.conntrack()
	if err != nil {
		return err
	}
	return conntrack.Flush(s, ps, published)
}

func (k *Kernel) conntrack() (*nl.NetlinkSocket, error) {
	if k.ctSock == nil {
		s, err := nl.GetNetlinkSocketAt(vnetns.None(), vnetns.None(), unix.NETLINK_NETFILTER)
		if err != nil {
			return nil, fmt.Errorf("netfilter netlink socket: %w", err)
		}
		k.ctSock = s
	}
	return k.ctSock, nil
}

// SetHairpin switches hairpin mode on an endpoint's bridge port.
func (k *Kernel) SetHairpin(hostIf string, on bool) error {
	h, err := k.Host()
	if err != nil {
		return err
	}
	return link.SetHairpin(h, hostIf, on)
}

// HostHasAddr reports whether an address is assigned to the host.
func (k *Kernel) HostHasAddr(a netip.Addr) (bool, error) {
	h, err := k.Host()
	if err != nil {
		return false, err
	}
	return link.HasAddr(h, a)
}

// Listeners reads the host's listening and bound sockets of proto,
// through sock_diag. Equivalent to: `ss -Hlnp[tu]`.
func (k *Kernel) Listeners(proto string) (model.PortHolders, error) {
	if k.diag == nil {
		s, err := netns.DiagSocket(nil)
		if err != nil {
			return nil, err
		}
		k.diag = s
	}
	return sockdiag.Listeners(k.diag, proto)
}

func (k *Kernel) dns() dns.Client { return dns.Client{Dir: k.DNSDir} }

// DNSRunning reports whether the name server runs: whether it listens on
// its control socket. One too busy to answer at once still runs; starting
// another would only fight it for port 53.
func (k *Kernel) DNSRunning() bool { return k.dns().Listening() }

// DNSStart starts the name server with every record, or, when one turns
// out to be running already, gives it every record.
func (k *Kernel) DNSStart(s dns.Snapshot) error {
	if len(k.DNSCommand) == 0 {
		return errors.New("cnet's name server runs as `cnet __dns`, and no cnet command was found: " +
			"put cnet in PATH, set Options.DNSCommand, or create networks with --no-dns")
	}
	err := k.dns().Start(k.DNSCommand, s)
	if errors.Is(err, dns.ErrAlreadyRunning) {
		err = k.dns().Sync(s)
	}
	return point(bindConflict(err))
}

// DNSApply sends the name server a change.
func (k *Kernel) DNSApply(c dns.Change) error { return point(bindConflict(k.dns().Apply(c))) }

// DNSSync replaces the name server's records.
func (k *Kernel) DNSSync(s dns.Snapshot) error { return point(bindConflict(k.dns().Sync(s))) }

// point passes err on, counting a change for crash tests when it is nil.
func point(err error) error {
	if err == nil {
		faults.Point()
	}
	return err
}

// bindConflict turns a gateway the name server cannot listen on into a
// conflict that says what holds it.
func bindConflict(err error) error {
	var be *dns.BindError
	if errors.As(err, &be) {
		return dnsConflict("cnet's name server cannot listen on " + strings.Join(be.Addrs, ", ") + ": " + be.Error() +
			". To do without cnet's name server there, create the network with --no-dns")
	}
	return err
}

type dnsConflict string

func (e dnsConflict) Error() string { return string(e) }
func (e dnsConflict) Unwrap() error { return errs.ErrConflict }

// DNSStop stops the name server.
func (k *Kernel) DNSStop() error { return point(k.dns().Stop()) }

// DNSStale returns the PIDs of name servers of this instance that lost
// their control socket (see dns.Client.Stale).
func (k *Kernel) DNSStale() []int { return k.dns().Stale() }

// DNSKill stops a stale name server. Equivalent to: `kill PID`.
func (k *Kernel) DNSKill(pid int) error { return k.dns().Kill(pid) }

// LinkMAC returns a host link's MAC address, or "" if it has none.
func (k *Kernel) LinkMAC(name string) string {
	h, err := k.Host()
	if err != nil {
		return ""
	}
	l, _, err := link.Lookup(h, name)
	if err != nil || l == nil {
		return ""
	}
	return l.Attrs().HardwareAddr.String()
}
