// Package sockdiag asks the kernel, through sock_diag, which sockets
// listen on or are bound to a port, and names the processes that hold
// them.
package sockdiag

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/nlreq"
)

// BoundSocket is a listening TCP socket or an unconnected UDP one.
type BoundSocket struct {
	Addr  netip.Addr // IPv4, or :: for a dual-stack IPv6 socket
	Port  uint16
	Inode uint32
}

// Socket states sock_diag filters on (include/net/tcp_states.h).
const (
	tcpEstablished = 1 // a connected UDP socket
	tcpClose       = 7 // an unconnected UDP socket
	tcpListen      = 10
)

// BoundSockets lists, through sock_diag on s (a NETLINK_INET_DIAG socket,
// which answers for the namespace it was opened in), the sockets that
// take new connections or datagrams on port: TCP in LISTEN, UDP bound but
// not connected, IPv4 and IPv6. Asking for those states only keeps the
// kernel to its listening table instead of every connection. Equivalent
// to: `ss -Hln[tu] sport = :PORT`.
func BoundSockets(s *nl.NetlinkSocket, proto string, port uint16) ([]BoundSocket, error) {
	return boundSockets(s, proto, port, 1<<tcpClose)
}

// Listener describes the process listening on (tcp) or bound to (udp,
// connected or not) port on ip or on every address, in the namespace of
// s (a NETLINK_INET_DIAG socket), as "PROGRAM (pid N)", "a process" when
// it cannot be named, or "" when there is none. Only listening sockets
// and bound UDP ones on port are asked for, so the kernel walks its
// listening table, not every connection on the machine. Equivalent to:
// `ss -Hlnp[tu] sport = :PORT`.
func Listener(s *nl.NetlinkSocket, proto string, ip netip.Addr, port uint16) (string, error) {
	socks, err := boundSockets(s, proto, port, 1<<tcpClose|1<<tcpEstablished)
	if err != nil {
		return "", err
	}
	return Bound{port: socks}.Holder(ip, port), nil
}

// ListenerProcess is Listener as the holder's program name and PID; the
// PID is 0 when nothing holds the port or its process cannot be found.
// Equivalent to: `ss -Hlnp[tu] sport = :PORT`.
func ListenerProcess(s *nl.NetlinkSocket, proto string, ip netip.Addr, port uint16) (comm string, pid int, err error) {
	socks, err := boundSockets(s, proto, port, 1<<tcpClose|1<<tcpEstablished)
	if err != nil {
		return "", 0, err
	}
	inodes := Bound{port: socks}.inodes(ip, port)
	if len(inodes) == 0 {
		return "", 0, nil
	}
	comm, pid = ownerProcess(inodes)
	return comm, pid, nil
}

// Bound is one protocol's listening (tcp) or bound (udp) sockets, by port.
type Bound map[uint16][]BoundSocket

// Listeners lists proto's listening or bound sockets on every port, in
// one dump per address family, whatever the number of ports asked about
// later: the kernel walks its whole listening table for a dump filtered
// by port too, so checking many ports one dump each costs that many
// walks. Equivalent to: `ss -Hlnp[tu]`.
func Listeners(s *nl.NetlinkSocket, proto string) (Bound, error) {
	socks, err := boundSockets(s, proto, 0, 1<<tcpClose|1<<tcpEstablished)
	if err != nil {
		return nil, err
	}
	b := Bound{}
	for _, sk := range socks {
		b[sk.Port] = append(b[sk.Port], sk)
	}
	return b, nil
}

// Holder describes the process holding port on ip or on every address,
// as Listener does, or "" when there is none.
func (b Bound) Holder(ip netip.Addr, port uint16) string {
	inodes := b.inodes(ip, port)
	if len(inodes) == 0 {
		return ""
	}
	return owner(inodes)
}

// inodes are the socket inodes holding port on ip or on every address.
func (b Bound) inodes(ip netip.Addr, port uint16) []string {
	var inodes []string
	for _, sk := range b[port] {
		if sk.Addr.IsUnspecified() || ip.IsUnspecified() || sk.Addr == ip {
			inodes = append(inodes, strconv.FormatUint(uint64(sk.Inode), 10))
		}
	}
	return inodes
}

// boundSockets lists proto's sockets on port (0: every port): TCP in
// LISTEN, UDP in udpStates.
func boundSockets(s *nl.NetlinkSocket, proto string, port uint16, udpStates uint32) ([]BoundSocket, error) {
	req := diagReq{protocol: unix.IPPROTO_TCP, states: 1 << tcpListen, sport: port}
	if proto == "udp" {
		req.protocol, req.states = unix.IPPROTO_UDP, udpStates
	}
	var out []BoundSocket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req.family = family
		found, err := nlreq.Dump(func() ([]BoundSocket, error) {
			var found []BoundSocket
			nreq := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
			nreq.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_INET_DIAG: {Socket: s}}
			nreq.AddData(&req)
			var perr error
			err := nlreq.Execute(nreq, unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(msg []byte) bool {
				b, ok := parseDiagMsg(msg)
				if !ok {
					perr = fmt.Errorf("short sock_diag message (%d bytes)", len(msg))
					return false
				}
				if port == 0 || b.Port == port {
					found = append(found, b)
				}
				return true
			})
			if err == nil {
				err = perr
			}
			return found, err
		})
		if err != nil {
			return nil, fmt.Errorf("ss -ln%c sport = :%d: %w", proto[0], port, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// diagReq is struct inet_diag_req_v2 with only the source port of its
// socket id set: the kernel skips sockets on other ports.
type diagReq struct {
	family, protocol uint8
	states           uint32
	sport            uint16
}

func (r *diagReq) Len() int { return 56 }

func (r *diagReq) Serialize() []byte {
	b := make([]byte, 56)
	b[0], b[1] = r.family, r.protocol
	binary.NativeEndian.PutUint32(b[4:], r.states)
	binary.BigEndian.PutUint16(b[8:], r.sport) // idiag_sport, network order
	return b
}

// parseDiagMsg reads struct inet_diag_msg: family, state, timer,
// retrans, the socket id (ports, addresses, interface, cookie), expires,
// queues, uid, inode.
func parseDiagMsg(m []byte) (BoundSocket, bool) {
	if len(m) < 72 {
		return BoundSocket{}, false
	}
	b := BoundSocket{Port: binary.BigEndian.Uint16(m[4:]), Inode: binary.NativeEndian.Uint32(m[68:])}
	switch m[0] {
	case unix.AF_INET:
		b.Addr = netip.AddrFrom4([4]byte(m[8:12]))
	case unix.AF_INET6:
		b.Addr = netip.AddrFrom16([16]byte(m[8:24])).Unmap()
	default:
		return BoundSocket{}, false
	}
	return b, true
}
