package link

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/nlreq"
)

// Sock is a route netlink socket bound to the namespace of the thread
// that opened it. Requests that vishvananda/netlink's Handle spreads over
// several round trips are built here with its nl package and sent as one.
type Sock struct{ h *nl.SocketHandle }

// OpenSock opens a route netlink socket in the calling thread's namespace.
func OpenSock() (*Sock, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	_ = s.SetExtAck(true) // the kernel's reason joins the error; a kernel without extended acks still gives the errno
	return &Sock{h: &nl.SocketHandle{Socket: s}}, nil
}

// SockOn wraps a socket someone else owns (a namespace's, see
// netns.NS.Route); whoever opened it closes it.
func SockOn(h *nl.SocketHandle) *Sock { return &Sock{h: h} }

// Close closes the socket.
func (s *Sock) Close() {
	if s != nil && s.h != nil {
		s.h.Close()
	}
}

func (s *Sock) exec(typ uint16, flags int, data ...nl.NetlinkRequestData) error {
	_, err := s.execEcho(typ, flags, 0, data...)
	return err
}

// execEcho sends one request and returns the replies of type resType
// (the kernel's echo of what it made, with NLM_F_ECHO).
func (s *Sock) execEcho(typ uint16, flags int, resType uint16, data ...nl.NetlinkRequestData) ([][]byte, error) {
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: typ, Flags: uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags)},
		Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s.h},
	}
	for _, d := range data {
		req.AddData(d)
	}
	return nlreq.Collect(req, unix.NETLINK_ROUTE, resType)
}

// SetLink changes an existing link, found by index if index > 0, else by
// name: its alias (if mark is not empty) and its up state, in one request.
// Equivalent to: `ip link set dev NAME alias MARK up`.
func (s *Sock) SetLink(index int, name, mark string, up bool) error {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	if up {
		msg.Change, msg.Flags = unix.IFF_UP, unix.IFF_UP
	}
	data := []nl.NetlinkRequestData{msg}
	if index == 0 {
		data = append(data, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	}
	if mark != "" {
		data = append(data, nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(mark)))
	}
	if err := s.exec(unix.RTM_NEWLINK, 0, data...); err != nil {
		return fmt.Errorf("ip link set %s alias %s up: %w", name, mark, err)
	}
	return nil
}

// VethSpec is one veth pair to create in one request.
type VethSpec struct {
	Name        string // host end
	MTU         int
	Master      int // ifindex of the bridge
	PeerName    string
	PeerMAC     []byte
	PeerNetnsFd int
	Group       uint32 // the host end's interface group (IFLA_GROUP), set at creation
}

// AddVeth creates a veth pair whose host end is on its bridge, still
// down, and whose peer is born inside another namespace, in one request,
// and returns the peer's ifindex in its namespace (0 when the kernel does
// not echo new links, before Linux 6.3: then look it up by name).
// Equivalent to:
//
//	ip link add NAME mtu MTU master BRIDGE group GROUP type veth \
//	    peer name PEER address MAC mtu MTU netns NS
//
// The peer cannot be born up: the kernel refuses to open one half of a
// pair before the other exists (ENOTCONN). Nor can its ifindex be chosen:
// when the one asked for is taken, the kernel silently picks another.
//
// Upstreamable: to vishvananda/netlink, whose LinkAdd (v1.3.1) creates
// the link, looks it up by name for its index and then sets MasterIndex
// in a request of its own ("can't set master during create"); the kernel
// takes IFLA_MASTER in the RTM_NEWLINK that creates the veth, so one
// request would do, and its echo would give the peer's ifindex too.
func (s *Sock) AddVeth(v VethSpec) (peerIndex int, err error) {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	data := []nl.NetlinkRequestData{
		msg,
		nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.Name)),
		nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU))),
		nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.Master))),
	}
	if v.Group != 0 {
		data = append(data, nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(v.Group)))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.PeerName))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU)))
	peer.AddRtAttr(unix.IFLA_ADDRESS, v.PeerMAC)
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(v.PeerNetnsFd)))
	data = append(data, info)
	echo, err := s.execEcho(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ECHO, unix.RTM_NEWLINK, data...)
	if err != nil {
		return 0, err
	}
	for _, m := range echo {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		nlreq.EachAttr(m[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
			if typ == unix.IFLA_LINK && len(v) == 4 {
				peerIndex = int(native.Uint32(v))
			}
		})
		if peerIndex > 0 {
			return peerIndex, nil
		}
	}
	return 0, nil
}

var native = nl.NativeEndian()

// AddAddr adds an address to a link, by index.
// Equivalent to: `ip addr add PREFIX dev NAME`.
func (s *Sock) AddAddr(index int, p netip.Prefix) error {
	family := unix.AF_INET
	if p.Addr().Is6() {
		family = unix.AF_INET6
	}
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(index)
	msg.Prefixlen = uint8(p.Bits())
	addr := p.Addr().AsSlice()
	data := []nl.NetlinkRequestData{msg, nl.NewRtAttr(unix.IFA_LOCAL, addr), nl.NewRtAttr(unix.IFA_ADDRESS, addr)}
	if p.Addr().Is4() && p.Bits() < 31 { // brd +, as the library's AddrAdd sets it
		a := p.Addr().As4()
		brd := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
		data = append(data, nl.NewRtAttr(unix.IFA_BROADCAST, binary.BigEndian.AppendUint32(nil, brd)))
	}
	return s.exec(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, data...)
}

// ReplaceDefaultRoute adds or replaces the default route of the main
// table: through gw on the link with index, preferring source src when
// it is valid. Equivalent to: `ip route replace default via GW dev NAME
// [src SRC]`.
func (s *Sock) ReplaceDefaultRoute(index int, gw, src netip.Addr) error {
	msg := nl.NewRtMsg() // main table, proto boot, scope universe, unicast
	msg.Family = unix.AF_INET
	if gw.Is6() {
		msg.Family = unix.AF_INET6
	}
	data := []nl.NetlinkRequestData{msg,
		nl.NewRtAttr(unix.RTA_GATEWAY, gw.AsSlice()),
		nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(index)))}
	if src.IsValid() {
		data = append(data, nl.NewRtAttr(unix.RTA_PREFSRC, src.AsSlice()))
	}
	return s.exec(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, data...)
}
