package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/nlreq"
)

// Port is one port of a bridge, as the bridge's link dump reports it.
type Port struct {
	Index int
	Name  string
}

// BridgePorts lists the ports of the bridge with index master. It reads
// the kernel's bridge-port dump (RTM_GETLINK for AF_BRIDGE), whose
// messages carry the port's name and master but no statistics, so it
// costs a fraction of a full link dump. Equivalent to:
// `bridge link show master BRIDGE`.
func (s *Sock) BridgePorts(master int) ([]Port, error) {
	var err error
	for range nlreq.DumpRetries {
		var out []Port
		req := &nl.NetlinkRequest{
			NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.RTM_GETLINK, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP},
			Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s.h},
		}
		req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
		err = nlreq.Execute(req, unix.NETLINK_ROUTE, unix.RTM_NEWLINK, func(m []byte) bool {
			if len(m) < unix.SizeofIfInfomsg {
				return true
			}
			p := Port{Index: int(int32(native.Uint32(m[4:8])))}
			of := 0
			nlreq.EachAttr(m[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
				switch typ {
				case unix.IFLA_IFNAME:
					p.Name = nlreq.CString(v)
				case unix.IFLA_MASTER:
					if len(v) == 4 {
						of = int(native.Uint32(v))
					}
				}
			})
			if of == master && p.Index != master && p.Name != "" {
				out = append(out, p)
			}
			return true
		})
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("bridge link show: %w", err)
}

// Peer is what sits behind one bridge port: for a veth, its peer's name,
// MAC and IPv4 addresses, and the id of the namespace it lives in (-1:
// the socket's own).
type Peer struct {
	// Alias is the port's own alias (a cnet mark, for cnet's veths).
	Alias string
	Veth  bool
	NsID  int
	Name  string
	MAC   net.HardwareAddr
	Addrs []netip.Addr
}

// PortPeer reads what is behind the port with index: if it is a veth, its
// peer (found through IFLA_LINK and IFLA_LINK_NETNSID) with its MAC and
// addresses, read from outside the peer's namespace. When skip, asked
// with the port's alias, says so, it reads no further and returns the
// alias alone. Equivalent to: `ip -d link show dev PORT`, then `ip -n NS
// addr show dev PEER`.
func (s *Sock) PortPeer(index int, skip func(alias string) bool) (Peer, error) {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	echo, err := s.execEcho(unix.RTM_GETLINK, 0, unix.RTM_NEWLINK, msg)
	if isNotFound(err) {
		return Peer{NsID: -1}, nil // the port went away since the dump
	}
	if err != nil {
		return Peer{}, fmt.Errorf("ip link show index %d: %w", index, err)
	}
	p := Peer{NsID: -1}
	peerIndex := 0
	for _, m := range echo {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		nlreq.EachAttr(m[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
			switch typ {
			case unix.IFLA_LINK:
				if len(v) == 4 {
					peerIndex = int(native.Uint32(v))
				}
			case unix.IFLA_LINK_NETNSID:
				if len(v) == 4 {
					p.NsID = int(int32(native.Uint32(v)))
				}
			case unix.IFLA_IFALIAS:
				p.Alias = nlreq.CString(v)
			case unix.IFLA_LINKINFO:
				nlreq.EachAttr(v, func(typ uint16, v []byte) {
					if typ == nl.IFLA_INFO_KIND && nlreq.CString(v) == "veth" {
						p.Veth = true
					}
				})
			}
		})
	}
	if skip(p.Alias) || !p.Veth || peerIndex == 0 {
		return Peer{Alias: p.Alias, NsID: -1}, nil
	}
	msg = nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(peerIndex)
	data := []nl.NetlinkRequestData{msg}
	if p.NsID >= 0 {
		data = append(data, nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(p.NsID))))
	}
	echo, err = s.execEcho(unix.RTM_GETLINK, 0, unix.RTM_NEWLINK, data...)
	if isNotFound(err) || errors.Is(err, unix.EINVAL) {
		// The peer went away meanwhile, or its namespace is being torn
		// down (the kernel no longer resolves its id: EINVAL), and the
		// port with it: nothing is held there any more.
		return Peer{Alias: p.Alias, NsID: -1}, nil
	}
	if err != nil {
		return Peer{}, fmt.Errorf("ip link show index %d in netns id %d: %w", peerIndex, p.NsID, err)
	}
	for _, m := range echo {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		nlreq.EachAttr(m[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
			switch typ {
			case unix.IFLA_IFNAME:
				p.Name = nlreq.CString(v)
			case unix.IFLA_ADDRESS:
				p.MAC = slices.Clone(net.HardwareAddr(v))
			}
		})
	}
	p.Addrs, err = addrsIn(p.NsID, peerIndex)
	if errors.Is(err, unix.EINVAL) {
		return Peer{Alias: p.Alias, NsID: -1}, nil // torn down meanwhile, as above
	}
	return p, err
}

// addrsIn lists the IPv4 addresses of the link with index in the
// namespace the host knows by nsid (-1: the host's own). Naming another
// namespace in an address dump (IFA_TARGET_NETNSID) needs a socket with
// strict checking, so this opens one of its own. Equivalent to:
// `ip -n NS -4 addr show dev IF`.
func addrsIn(nsid, index int) ([]netip.Addr, error) {
	sock, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer sock.Close()
	if err := unix.SetsockoptInt(sock.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return nil, fmt.Errorf("netlink strict checking: %w", err)
	}
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.RTM_GETADDR, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP},
		Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}},
	}
	msg := nl.NewIfAddrmsg(unix.AF_INET)
	msg.Index = uint32(index)
	req.AddData(msg)
	if nsid >= 0 {
		req.AddData(nl.NewRtAttr(unix.IFA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	}
	var out []netip.Addr
	err = nlreq.Execute(req, unix.NETLINK_ROUTE, unix.RTM_NEWADDR, func(m []byte) bool {
		if len(m) < unix.SizeofIfAddrmsg || int(native.Uint32(m[4:8])) != index {
			return true
		}
		nlreq.EachAttr(m[unix.SizeofIfAddrmsg:], func(typ uint16, v []byte) {
			if typ == unix.IFA_LOCAL {
				if a, ok := netip.AddrFromSlice(v); ok {
					out = append(out, a)
				}
			}
		})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("ip -4 addr show index %d in netns id %d: %w", index, nsid, err)
	}
	return out, nil
}

// Learned is one MAC the bridge learned on a port, with the address the
// host's neighbour table gives it on the bridge, if any.
type Learned struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
}

// LearnedOn lists the MACs bridge (index br) learned on port (index), and
// the addresses the neighbour table on the bridge pairs with them: what
// sits behind a port that is not a veth (a tap, a NIC). Equivalent to:
// `bridge fdb show brport PORT dynamic` and `ip neigh show dev BRIDGE`.
func LearnedOn(h *netlink.Handle, br, port int) ([]Learned, error) {
	fdb, err := NeighList(h, port, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("bridge fdb show brport index %d: %w", port, err)
	}
	neigh, err := NeighList(h, br, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("ip neigh show dev index %d: %w", br, err)
	}
	var out []Learned
	for _, f := range fdb {
		if f.State&netlink.NUD_PERMANENT != 0 || f.Flags&netlink.NTF_SELF != 0 || len(f.HardwareAddr) != 6 {
			continue // the port's own address, not a host behind it
		}
		l := Learned{MAC: f.HardwareAddr}
		for _, n := range neigh {
			if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || n.HardwareAddr.String() != f.HardwareAddr.String() {
				continue
			}
			if a, ok := netip.AddrFromSlice(n.IP.To4()); ok {
				l.Addr = a
			}
		}
		out = append(out, l)
	}
	return out, nil
}
