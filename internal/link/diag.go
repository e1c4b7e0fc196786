package link

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// BoundSocket is a listening TCP socket or an unconnected UDP one.
type BoundSocket struct {
	Addr  netip.Addr // IPv4, or :: for a dual-stack IPv6 socket
	Port  uint16
	Inode uint32
}

// Socket states sock_diag filters on (include/net/tcp_states.h).
const (
	tcpListen = 10
	tcpClose  = 7 // an unconnected UDP socket
)

// BoundSockets lists, through sock_diag on s (a NETLINK_INET_DIAG socket,
// which answers for the namespace it was opened in), the sockets that
// take new connections or datagrams on port: TCP in LISTEN, UDP bound but
// not connected, IPv4 and IPv6. Asking for those states only keeps the
// kernel to its listening table instead of every connection. Equivalent
// to: `ss -Hln[tu] sport = :PORT`.
func BoundSockets(s *nl.NetlinkSocket, proto string, port uint16) ([]BoundSocket, error) {
	req := diagReq{protocol: unix.IPPROTO_TCP, states: 1 << tcpListen, sport: port}
	if proto == "udp" {
		req.protocol, req.states = unix.IPPROTO_UDP, 1<<tcpClose
	}
	var out []BoundSocket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req.family = family
		nreq := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
		nreq.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_INET_DIAG: {Socket: s}}
		nreq.AddData(&req)
		var perr error
		err := nreq.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(msg []byte) bool {
			b, ok := parseDiagMsg(msg)
			if !ok {
				perr = fmt.Errorf("short sock_diag message (%d bytes)", len(msg))
				return false
			}
			if b.Port == port {
				out = append(out, b)
			}
			return true
		})
		if err == nil {
			err = perr
		}
		if err != nil {
			return nil, fmt.Errorf("ss -ln%c sport = :%d: %w", proto[0], port, err)
		}
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
