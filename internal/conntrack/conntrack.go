// Package conntrack deletes the connection-tracking entries of published
// ports, with dumps the kernel filters (CTA_FILTER) or one dump of every
// flow matched here.
package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/nlreq"
)

// perPortDumps is how many mappings Flush looks up one by one.
// Each lookup is a dump the kernel filters, so only the mapping's own
// flows are copied out, however many others the namespace tracks; but
// each walks the kernel's whole hash table, so for more mappings one
// dump of every flow, matched here, costs less.
const perPortDumps = 4

// Flush deletes connection-tracking entries of published ports,
// through s (a NETLINK_NETFILTER socket).
//
// Unpublishing (published false) deletes the entries the mapping created,
// so a flow (UDP above all, which never ends by itself) does not keep
// reaching the container: `conntrack -D -p PROTO --orig-port-dst HOSTPORT
// --reply-src ADDR`.
//
// Publishing deletes every entry for the host port (and address): a
// datagram sent while nothing was published leaves an entry without NAT
// that would otherwise keep the flow off the new mapping:
// `conntrack -D -p PROTO --orig-port-dst HOSTPORT [--orig-dst HOSTIP]`.
func Flush(s *nl.NetlinkSocket, ps []model.PortElem, published bool) error {
	filters := make([]flowFilter, 0, len(ps))
	for _, p := range ps {
		f := flowFilter{proto: unix.IPPROTO_TCP, port: p.HostPort}
		if p.Proto == "udp" {
			f.proto = unix.IPPROTO_UDP
		}
		switch {
		case !published:
			f.replySrc = p.Addr
		case !p.HostIP.IsUnspecified():
			f.origDst = p.HostIP
		}
		filters = append(filters, f)
	}
	if len(filters) > perPortDumps {
		if err := flushMatching(s, ctRequest(s, nl.IPCTNL_MSG_CT_GET, unix.NLM_F_DUMP), filters); err != nil {
			return fmt.Errorf("conntrack -D: %w", err)
		}
		return nil
	}
	for _, f := range filters {
		if err := flushMatching(s, f.dumpRequest(s), []flowFilter{f}); err != nil {
			return fmt.Errorf("conntrack -D %s: %w", f, err)
		}
	}
	return nil
}

// flowFilter is the flows of one mapping: protocol and original
// destination port, and the original destination address or the reply
// source address when valid.
type flowFilter struct {
	proto             uint8
	port              uint16
	origDst, replySrc netip.Addr
}

func (f flowFilter) String() string {
	s := fmt.Sprintf("-p %d --orig-port-dst %d", f.proto, f.port)
	if f.origDst.IsValid() {
		s += " --orig-dst " + f.origDst.String()
	}
	if f.replySrc.IsValid() {
		s += " --reply-src " + f.replySrc.String()
	}
	return s
}

// Attributes and flags of the kernel's dump filter (linux 5.8,
// include/uapi/linux/netfilter/nfnetlink_conntrack.h and
// net/netfilter/nf_internals.h).
const (
	ctaFilter           = 25
	ctaFilterOrigFlags  = 1
	ctaFilterReplyFlags = 2

	filterIPSrc    = 1 << 0
	filterIPDst    = 1 << 1
	filterProtoNum = 1 << 3
	filterDstPort  = 1 << 5
)

// dumpRequest asks for the filter's flows, with the kernel filtering
// them. A kernel older than the filter lists every flow; flushMatching
// matches each again, so that only costs time.
//
// Upstreamable: to vishvananda/netlink, whose ConntrackTableList dumps
// and decodes every flow of the table, leaving the filtering (its
// ConntrackFilter) to the caller; a dump carrying CTA_FILTER (Linux 5.8)
// has the kernel copy out only the flows asked for, so deleting one
// mapping's flows costs the same however many others the machine tracks.
func (f flowFilter) dumpRequest(s *nl.NetlinkSocket) *nl.NetlinkRequest {
	req := ctRequest(s, nl.IPCTNL_MSG_CT_GET, unix.NLM_F_DUMP)
	orig := nl.NewRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_ORIG, nil)
	origFlags, replyFlags := uint32(filterProtoNum|filterDstPort), uint32(0)
	if f.origDst.IsValid() {
		ip := orig.AddRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_IP, nil)
		ip.AddRtAttr(nl.CTA_IP_V4_DST, f.origDst.AsSlice())
		origFlags |= filterIPDst
	}
	proto := orig.AddRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_PROTO, nil)
	proto.AddRtAttr(nl.CTA_PROTO_NUM, []byte{f.proto})
	proto.AddRtAttr(nl.CTA_PROTO_DST_PORT, binary.BigEndian.AppendUint16(nil, f.port))
	req.AddData(orig)
	if f.replySrc.IsValid() {
		reply := nl.NewRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_REPLY, nil)
		ip := reply.AddRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_IP, nil)
		ip.AddRtAttr(nl.CTA_IP_V4_SRC, f.replySrc.AsSlice())
		req.AddData(reply)
		replyFlags |= filterIPSrc
	}
	filter := nl.NewRtAttr(unix.NLA_F_NESTED|ctaFilter, nil)
	filter.AddRtAttr(ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, origFlags))
	filter.AddRtAttr(ctaFilterReplyFlags, binary.NativeEndian.AppendUint32(nil, replyFlags))
	req.AddData(filter)
	return req
}

// flushMatching takes the dump req asks for and deletes each flow under
// any of filters. Each flow's tuples are read once, without decoding the rest
// of it (counters, timeouts, marks), and looked up by protocol and port,
// so one dump of every flow the machine tracks stays cheap however many
// mappings it serves. A dump the kernel reports as interrupted (flows
// changed meanwhile) is taken again, and after nlreq.DumpRetries the flows it
// did list are deleted, as the best that can be done.
func flushMatching(s *nl.NetlinkSocket, req *nl.NetlinkRequest, filters []flowFilter) error {
	type key struct {
		proto uint8
		port  uint16
	}
	byKey := map[key][]flowFilter{}
	for _, f := range filters {
		byKey[key{f.proto, f.port}] = append(byKey[key{f.proto, f.port}], f)
	}
	var doomed [][]byte
	var err error
	for range nlreq.DumpRetries {
		doomed = doomed[:0]
		err = nlreq.Execute(req, unix.NETLINK_NETFILTER, 0, func(m []byte) bool {
			if len(m) < 4 {
				return true
			}
			orig, reply := parseFlow(m[4:]) // after struct nfgenmsg
			for _, f := range byKey[key{orig.proto, orig.dport}] {
				if f.covers(orig, reply) {
					doomed = append(doomed, append([]byte(nil), m[4:]...))
					break
				}
			}
			return true
		})
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, nl.ErrDumpInterrupted) {
		return err
	}
	var errs []error
	for _, attrs := range doomed {
		del := ctRequest(s, nl.IPCTNL_MSG_CT_DELETE, unix.NLM_F_ACK)
		del.AddRawData(attrs) // the flow's own attributes name it
		if err := nlreq.Execute(del, unix.NETLINK_NETFILTER, 0, nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err) // gone meanwhile is fine
		}
	}
	return errors.Join(errs...)
}

// ctRequest is a conntrack request on s for IPv4 flows.
func ctRequest(s *nl.NetlinkSocket, op, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_CTNETLINK<<8|op, flags)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_INET, Version: nl.NFNETLINK_V0})
	return req
}

// parseFlow reads a flow's original and reply tuples from its attributes
// (after its nfgenmsg); a flow it cannot read has zero tuples, which no
// filter covers. It allocates nothing: a dump can hold tens of thousands
// of flows, and a command does not collect its garbage.
func parseFlow(attrs []byte) (orig, reply tuple) {
	nlreq.EachAttr(attrs, func(typ uint16, v []byte) {
		switch typ {
		case nl.CTA_TUPLE_ORIG:
			orig = parseTuple(v)
		case nl.CTA_TUPLE_REPLY:
			reply = parseTuple(v)
		}
	})
	return orig, reply
}

// covers reports whether a flow with these tuples falls under the filter.
func (f flowFilter) covers(orig, reply tuple) bool {
	return orig.proto == f.proto && orig.dport == f.port &&
		(!f.origDst.IsValid() || orig.dst == f.origDst) &&
		(!f.replySrc.IsValid() || reply.src == f.replySrc)
}

type tuple struct {
	src, dst netip.Addr
	proto    uint8
	dport    uint16
}

func parseTuple(b []byte) tuple {
	var t tuple
	nlreq.EachAttr(b, func(typ uint16, v []byte) {
		switch typ {
		case nl.CTA_TUPLE_IP:
			nlreq.EachAttr(v, func(typ uint16, v []byte) {
				addr, ok := netip.AddrFromSlice(v)
				switch {
				case !ok:
				case typ == nl.CTA_IP_V4_SRC:
					t.src = addr
				case typ == nl.CTA_IP_V4_DST:
					t.dst = addr
				}
			})
		case nl.CTA_TUPLE_PROTO:
			nlreq.EachAttr(v, func(typ uint16, v []byte) {
				switch {
				case typ == nl.CTA_PROTO_NUM && len(v) == 1:
					t.proto = v[0]
				case typ == nl.CTA_PROTO_DST_PORT && len(v) == 2:
					t.dport = binary.BigEndian.Uint16(v)
				}
			})
		}
	})
	return t
}
