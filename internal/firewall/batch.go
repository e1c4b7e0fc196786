package firewall

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Large tables. A ruleset with 65,535 published ports is one
// transaction of some 2.4 MB. Two limits stand in its way, and a batch
// is built around both (the nft tool does the same):
//
//   - An element list is one netlink attribute, whose length field has
//     16 bits: a list longer than 64 KiB (some 1,800 mappings) wraps it,
//     and the kernel then reads only the first few hundred elements and
//     reports success. So each set's elements go in messages of at most
//     maxListBytes, all in the one batch.
//   - The batch is one sendmsg, which netlink refuses with EMSGSIZE when
//     it exceeds the socket's send buffer (net.core.wmem_default, 208 KiB:
//     some 5,500 mappings). The kernel acknowledges every message, and
//     echoes a failed one, into the receive buffer of the same size: when
//     they overflow it, the batch is applied but recvmsg reports ENOBUFS.
//     So before it sends, a batch raises both buffers to what it needs.
//
// The transaction stays one: the kernel applies it whole or not at all.

// maxListBytes bounds the element list of one message: half the
// attribute's limit, so that a misjudged element size cannot reach it.
const maxListBytes = 32 << 10

// Wire sizes used to bound a batch: the messages other than element
// lists (tables, sets, chains, rules: about 20 KiB today) and, per
// element message, its headers and the set's and table's names; per
// acknowledgement, the kernel's allocation for it.
const (
	fixedBytes   = 256 << 10
	chunkHeader  = 128
	ackTruesize  = 1 << 10
	fixedAcks    = 128
	sockOverhead = 32 // netlink_sendmsg refuses len > sk_sndbuf - 32
)

// A batch is one nftables transaction on a connection of its own: set
// elements are queued in messages of bounded size, and the socket's
// buffers are sized for the whole before the one Flush sends it.
type batch struct {
	conn   *nftables.Conn
	bytes  int // element lists queued, on the wire
	chunks int // element messages queued
}

// newBatch opens a batch; opts choose the namespace (nftables.WithNetNSFd).
// The connection is not lasting: it is dialled, and its buffers sized,
// when the batch is sent.
func newBatch(opts []nftables.ConnOption) (*batch, error) {
	b := &batch{}
	conn, err := nftables.New(append(slices.Clip(opts), nftables.WithSockOptions(b.sizeSocket))...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	b.conn = conn
	return b, nil
}

// elemBytes is the size of e in an element list as google/nftables
// encodes it (makeElemList): the element's nest header, its interval-end
// flags, its key, key end and data, each nested around a value padded
// to 4 bytes. cnet's elements carry nothing else.
func elemBytes(e nftables.SetElement) int {
	n := 4 + 8 + align4(len(e.Key))
	if e.IntervalEnd {
		n += 8
	}
	if len(e.KeyEnd) > 0 {
		n += 8 + align4(len(e.KeyEnd))
	}
	if len(e.Val) > 0 {
		n += 8 + align4(len(e.Val))
	}
	return n
}

func align4(n int) int { return (n + 3) &^ 3 }

// chunks splits vals into runs whose element lists fit maxListBytes.
// The elements of an interval (a start and its end) are never parted.
func chunks(vals []nftables.SetElement) [][]nftables.SetElement {
	var out [][]nftables.SetElement
	start, size := 0, 0
	for i, e := range vals {
		n := elemBytes(e)
		if size+n > maxListBytes && i > start && !e.IntervalEnd {
			out = append(out, vals[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(vals) {
		out = append(out, vals[start:])
	}
	return out
}

// add queues vals for s. Equivalent to `nft add element ...`.
func (b *batch) add(s *nftables.Set, vals []nftables.SetElement) error {
	return b.each(vals, func(c []nftables.SetElement) error { return b.conn.SetAddElements(s, c) })
}

// del queues the deletion of vals from s. Equivalent to
// `nft delete element ...`.
func (b *batch) del(s *nftables.Set, vals []nftables.SetElement) error {
	return b.each(vals, func(c []nftables.SetElement) error { return b.conn.SetDeleteElements(s, c) })
}

func (b *batch) each(vals []nftables.SetElement, queue func([]nftables.SetElement) error) error {
	for _, c := range chunks(vals) {
		if err := queue(c); err != nil {
			return err
		}
		b.tally(c)
	}
	return nil
}

// tally counts one element message of c in the batch's size. Elements
// queued another way (an anonymous set's, which AddSet sends with the
// set itself) are counted with it too.
func (b *batch) tally(c []nftables.SetElement) {
	b.chunks++
	b.bytes += chunkHeader
	for _, e := range c {
		b.bytes += elemBytes(e)
	}
}

// sendBuffer and recvBuffer bound what the batch sends and what the
// kernel answers: an acknowledgement per message, and room for a copy of
// each that fails (the kernel goes on checking the rest after one fails)
// at twice its size, as a kernel that ignored NETLINK_CAP_ACK would send.
// Too small, the answers overflow it and recvmsg reports ENOBUFS instead
// of the error.
func (b *batch) sendBuffer() int { return fixedBytes + b.bytes + sockOverhead }
func (b *batch) recvBuffer() int { return 2*b.sendBuffer() + (fixedAcks+b.chunks)*ackTruesize }

// sizeSocket raises the socket's buffers to what the batch needs, where
// the default is smaller. Equivalent to setsockopt SO_SNDBUFFORCE and
// SO_RCVBUFFORCE, which nft uses for large rulesets too. Without
// CAP_NET_ADMIN in the initial user namespace it falls back to SO_SNDBUF
// and SO_RCVBUF, capped by net.core.wmem_max and rmem_max; a batch that
// still does not fit is refused here, naming the sysctl.
func (b *batch) sizeSocket(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("nftables socket: %w", err)
	}
	var errs []error
	ctl := rc.Control(func(fd uintptr) {
		errs = append(errs,
			raise(int(fd), unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, b.sendBuffer(), "net.core.wmem_max"),
			raise(int(fd), unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, b.recvBuffer(), "net.core.rmem_max"))
		// A failed message's acknowledgement carries its header, not the
		// whole message (up to maxListBytes, which the kernel must then
		// allocate in one piece). Equivalent to setsockopt
		// NETLINK_CAP_ACK, as iproute2's tools set it.
		if err := unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
			errs = append(errs, fmt.Errorf("setsockopt nftables socket NETLINK_CAP_ACK: %w", err))
		}
	})
	return errors.Join(append(errs, ctl)...)
}

// raise makes the socket's buffer opt at least need bytes. The kernel
// doubles what it is given (for its bookkeeping) and reports the
// doubled figure.
func raise(fd, opt, force, need int, sysctl string) error {
	have, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	if err != nil {
		return fmt.Errorf("getsockopt nftables socket: %w", err)
	}
	if have >= need {
		return nil
	}
	want := (need + 1) / 2
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, want); err != nil {
		if !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setsockopt nftables socket buffer to %d bytes: %w", need, err)
		}
		// Not privileged for the forced size: ask within the sysctl's cap.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, want); err != nil {
			return fmt.Errorf("setsockopt nftables socket buffer to %d bytes: %w", need, err)
		}
	}
	if have, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); err != nil {
		return fmt.Errorf("getsockopt nftables socket: %w", err)
	}
	if have < need {
		return fmt.Errorf("the nftables batch needs a %d-byte socket buffer and the kernel allows %d: raise %s", need, have, sysctl)
	}
	return nil
}
