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

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/nsfiles"
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
	defer unix.Close(fd)
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

// RemoveNetns deletes a namespace if it carries s.Mark (or is an empty
// mount point left by an interrupted create). Anything else at its path
// (a symbolic link, a directory, a file with content, another mount) is
// not cnet's and is refused, left in place.
func (k *Kernel) RemoveNetns(s model.NetnsSpec) error {
	k.forget(s.Name)
	if err := k.checkNetnsOwned(s); err != nil {
		return err
	}
	if err := k.delGuards(s.Guards); err != nil {
		return err
	}
	if err := netns.Remove(k.NetnsDir, s.Name); err != nil {
		return fmt.Errorf("ip netns del %s: %w", s.Name, err)
	}
	return nil
}

// checkNetnsOwned returns nil when what is at s's path may be removed: a
// namespace carrying s.Mark, an empty mount point, or nothing.
func (k *Kernel) checkNetnsOwned(s model.NetnsSpec) error {
	path := filepath.Join(k.NetnsDir, s.Name)
	switch netns.Stat(k.NetnsDir, s.Name) {
	case netns.Missing, netns.Incomplete:
		return nil
	case netns.Bound:
		mark, err := k.netnsMark(s.Name)
		if err != nil {
			return err
		}
		if mark != s.Mark {
			return errs.Conflict("namespace", s.Name, "a namespace cnet did not create", "left in place")
		}
		return nil
	default:
		return errs.Conflict("namespace path", path, netns.Describe(k.NetnsDir, s.Name), "cnet did not make it and leaves it in place; remove it yourself if it is not needed")
	}
}

func (k *Kernel) addGuards(gs []model.GuardSpec) error {
	if len(gs) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return firewall.AddGuards(c, gs)
}

func (k *Kernel) delGuards(gs []model.GuardSpec) error {
	if len(gs) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return firewall.DelGuards(c, gs)
}

// RemoveNamespaces deletes many namespaces that carry their marks (or are
// empty mount points left by interrupted creates). Every namespace is
// checked before the first is deleted, so one that is not cnet's stops
// them all; and so the checks do not queue behind the kernel's cleanup of
// the namespaces already deleted, which holds the lock they need.
// Equivalent to: `ip netns del NAME` for each.
func (k *Kernel) RemoveNamespaces(specs []model.NetnsSpec) error {
	for _, s := range specs {
		k.forget(s.Name)
		if err := k.checkNetnsOwned(s); err != nil {
			return fmt.Errorf("%w; nothing was deleted", err)
		}
	}
	var guards []model.GuardSpec
	for _, s := range specs {
		guards = append(guards, s.Guards...)
	}
	if err := k.delGuards(guards); err != nil {
		return err
	}
	var errList []error
	for _, s := range specs {
		if err := netns.Remove(k.NetnsDir, s.Name); err != nil {
			errList = append(errList, fmt.Errorf("ip netns del %s: %w", s.Name, err))
		}
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
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return firewall.Sync(c, rs)
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
func (k *Kernel) HostPrefixes(skip map[string]bool) ([]netip.Prefix, error) {
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
	links, err := n.Link.LinkList()
	if err != nil {
		return nil, fmt.Errorf("ip -n %s link show: %w", name, err)
	}
	out := make([]string, len(links))
	for i, l := range links {
		out[i] = l.Attrs().Name
	}
	return out, nil
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
	case mark != b.Mark:
		return "", errs.Conflict("bridge name", b.Name, "a link cnet did not create", "remove or rename it, then run `cnet gc` again")
	case l.Attrs().Flags&net.FlagUp == 0:
		return "bridge " + b.Name + " is down", nil
	}
	addrs, err := h.AddrList(l, unix.AF_INET)
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
	addrs, err := n.Link.AddrList(l, unix.AF_INET)
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
		routes, err := n.Link.RouteList(l, unix.AF_INET)
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
	defer c.CloseLasting()
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
	links, err := h.LinkList()
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

// AddPorts adds published ports to the DNAT maps in one batch, then clears
// stale connection-tracking entries for their host ports.
func (k *Kernel) AddPorts(ps []model.PortElem) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := firewall.AddPorts(c, ps); err != nil {
		return err
	}
	s, err := k.conntrack()
	if err != nil {
		return err
	}
	return link.FlushConntrack(s, ps, true)
}

// DelPorts deletes published ports from the DNAT maps in one batch, then
// the connection-tracking entries they created.
func (k *Kernel) DelPorts(ps []model.PortElem) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := firewall.DelPorts(c, ps); err != nil {
		return err
	}
	s, err := k.conntrack()
	if err != nil {
		return err
	}
	return link.FlushConntrack(s, ps, false)
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

// Listener describes the host process holding proto ip:port, through
// sock_diag. Equivalent to: `ss -Hlnp[tu] sport = :PORT`.
func (k *Kernel) Listener(proto string, ip netip.Addr, port uint16) (string, error) {
	if k.diag == nil {
		s, err := netns.DiagSocket(nil)
		if err != nil {
			return "", err
		}
		k.diag = s
	}
	return link.Listener(k.diag, proto, ip, port)
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
	return bindConflict(err)
}

// DNSApply sends the name server a change.
func (k *Kernel) DNSApply(c dns.Change) error { return bindConflict(k.dns().Apply(c)) }

// DNSSync replaces the name server's records.
func (k *Kernel) DNSSync(s dns.Snapshot) error { return bindConflict(k.dns().Sync(s)) }

// bindConflict turns a gateway the name server cannot listen on into a
// conflict that says what holds it.
func bindConflict(err error) error {
	var be *dns.BindError
	if errors.As(err, &be) {
		return dnsConflict("cnet's name server cannot listen on " + strings.Join(be.Addrs, ", ") + ": " + be.Error() +
			"; free the port, or create the network with --no-dns")
	}
	return err
}

type dnsConflict string

func (e dnsConflict) Error() string { return string(e) }
func (e dnsConflict) Unwrap() error { return errs.ErrConflict }

// DNSStop stops the name server.
func (k *Kernel) DNSStop() error { return k.dns().Stop() }

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
