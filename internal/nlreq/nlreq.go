// Package nlreq carries out the netlink requests cnet builds itself
// (link listings, conntrack dumps and deletes, sock_diag dumps): one
// executor with a pooled receive buffer, its reply reader, and Dump, the
// retry of a dump the kernel reports as interrupted.
package nlreq

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/faults"
)

// Every request cnet builds itself goes through Execute, not through
// nl.NetlinkRequest.ExecuteIter. The two speak the same protocol; the
// difference is where the reply lands. ExecuteIter reads each datagram
// into a 64 KiB array on the calling goroutine's stack, so the first
// request a goroutine makes grows its stack to 128 KiB and clears 64 KiB
// of it, and every later one clears 64 KiB again. In a command that lives
// for some 20 ms on a machine where a page fault costs 15-40 µs, that
// first request cost about 0.7 ms on the goroutine that builds a new
// namespace. Execute reads into a heap buffer kept between requests.
//
// Upstreamable: to vishvananda/netlink, whose ExecuteIter could read into
// a pooled heap buffer the same way (as here) instead of its 64 KiB stack
// array, saving every caller's first request the stack growth and each
// later one the clearing.

// recvBufSize bounds one datagram: the kernel fills a dump's datagrams
// up to the largest buffer a reader has offered, at most 32 KiB, and a
// single reply is smaller still.
const recvBufSize = 64 << 10

var recvBufs = sync.Pool{New: func() any { b := make([]byte, recvBufSize); return &b }}

// recvTimeout is how long a reply may take, as for the library's own
// requests.
var recvTimeout = time.Duration(nl.SocketTimeoutTv.Nano())

// errorReport is NLMSGERR_ATTR_MSG: the kernel's text for an error, sent
// when the socket asked for extended acks.
const errorReport = 1

// Execute sends req on its socket for proto and passes each reply of type
// resType (every type when 0) to f until the kernel's ack, error or end
// of dump; once f returns false the rest is read and dropped. f's slice
// is valid only during the call. A dump the kernel marks as interrupted
// returns nl.ErrDumpInterrupted after the last message.
func Execute(req *nl.NetlinkRequest, proto int, resType uint16, f func([]byte) bool) error {
	h, ok := req.Sockets[proto]
	if !ok || h == nil || h.Socket == nil {
		return fmt.Errorf("netlink request without a socket for protocol %d", proto)
	}
	s := h.Socket
	s.Lock()
	defer s.Unlock()
	req.Seq = atomic.AddUint32(&h.Seq, 1)
	if err := s.Send(req); err != nil {
		return err
	}
	pid, err := s.GetPid()
	if err != nil {
		return err
	}
	bp := recvBufs.Get().(*[]byte)
	defer recvBufs.Put(bp)
	buf := *bp
	fd := s.GetFd()
	interrupted := false
	for {
		n, err := recv(fd, buf)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq || m.Header.Pid != pid {
				continue // an earlier request's late reply, or a notification
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				if err := ackError(m); err != nil {
					return err
				}
				if interrupted {
					return nl.ErrDumpInterrupted
				}
				if mutates(proto, req.Type) {
					faults.Point()
				}
				return nil
			}
			if resType != 0 && m.Header.Type != resType {
				continue
			}
			if f != nil && !f(m.Data) {
				f = nil
			}
			if m.Header.Flags&unix.NLM_F_MULTI == 0 {
				if interrupted {
					return nl.ErrDumpInterrupted
				}
				return nil
			}
		}
	}
}

// mutates reports whether a request of type typ changes the kernel (a
// new, delete or set, not a get or a dump).
func mutates(proto int, typ uint16) bool {
	switch proto {
	case unix.NETLINK_ROUTE: // RTM_NEW*, RTM_DEL*, RTM_GET*, RTM_SET* in fours
		return (typ-unix.RTM_BASE)%4 != 2
	case unix.NETLINK_NETFILTER:
		return typ&0xff != nl.IPCTNL_MSG_CT_GET
	}
	return false
}

// Collect is Execute that keeps a copy of every reply.
func Collect(req *nl.NetlinkRequest, proto int, resType uint16) ([][]byte, error) {
	var out [][]byte
	err := Execute(req, proto, resType, func(m []byte) bool {
		out = append(out, append([]byte(nil), m...))
		return true
	})
	return out, err
}

// recv reads one datagram from the kernel into buf. cnet's sockets are
// non-blocking (the library opens them so); the kernel answers a request
// while it is being sent, so the reply is almost always waiting, and
// otherwise recv waits for it with poll.
func recv(fd int, buf []byte) (int, error) {
	deadline := time.Now().Add(recvTimeout)
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return 0, unix.EAGAIN
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
				return 0, err
			}
			continue
		case err != nil:
			return 0, err
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != nl.PidKernel {
			continue // only the kernel answers requests
		}
		if n < unix.NLMSG_HDRLEN {
			return 0, fmt.Errorf("short netlink reply (%d bytes)", n)
		}
		return n, nil
	}
}

// ackError turns an NLMSG_ERROR or NLMSG_DONE message into its error (nil
// for an ack or a plain end of dump), with the kernel's text when it sent
// one.
func ackError(m syscall.NetlinkMessage) error {
	if len(m.Data) < 4 {
		if m.Header.Type == unix.NLMSG_DONE {
			return nil
		}
		return errors.New("short netlink error message")
	}
	errno := int32(native.Uint32(m.Data[0:4]))
	if errno == 0 {
		return nil
	}
	err := error(syscall.Errno(-errno))
	rest := m.Data[4:]
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 || len(rest) < unix.SizeofNlMsghdr {
		return err
	}
	// Skip the request the kernel echoes back (its header only, with
	// NLM_F_CAPPED), then read the attributes.
	reqLen := int(native.Uint32(rest[0:4]))
	if m.Header.Flags&unix.NLM_F_CAPPED != 0 {
		reqLen = unix.SizeofNlMsghdr
	}
	reqLen = (reqLen + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
	if reqLen > len(rest) {
		return err
	}
	EachAttr(rest[reqLen:], func(typ uint16, v []byte) {
		if typ == errorReport {
			err = fmt.Errorf("%w: %s", err, CString(v))
		}
	})
	return err
}

// EachAttr calls fn with the type (without the nested and byte-order
// flags) and the value of each netlink attribute in b, in place: unlike
// nl.ParseRouteAttr it allocates nothing. It stops at the first malformed
// attribute.
func EachAttr(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= unix.SizeofRtAttr {
		alen := int(native.Uint16(b[0:2]))
		if alen < unix.SizeofRtAttr || alen > len(b) {
			return
		}
		fn(native.Uint16(b[2:4])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofRtAttr:alen])
		next := (alen + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if next > len(b) {
			return
		}
		b = b[next:]
	}
}

var native = nl.NativeEndian()

// CString is a NUL-terminated attribute value as a string.
func CString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
