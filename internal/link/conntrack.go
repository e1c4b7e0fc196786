package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/model"
)

// perPortDumps is how many mappings FlushConntrack looks up one by one.
// Each lookup is a dump the kernel filters, so only the mapping's own
// flows are copied out, however many others the namespace tracks; but
// each walks the kernel's whole hash table, so for more mappings one
// dump of every flow, matched here, costs less.
const perPortDumps = 4

// FlushConntrack deletes connection-tracking entries of published ports,
// through s (a NETLINK_NETFILTER socket) or, for many ports at once, h.
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
func FlushConntrack(s *nl.NetlinkSocket, h *netlink.Handle, ps []model.PortElem, published bool) error {
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
		return flushAll(h, filters)
	}
	for _, f := range filters {
		if err := f.flush(s); err != nil {
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

	nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

	filterIPSrc    = 1 << 0
	filterIPDst    = 1 << 1
	filterProtoNum = 1 << 3
	filterDstPort  = 1 << 5
)

// flush lists the filter's flows, with the kernel filtering them, and
// deletes each. A kernel older than the filter lists every flow; each is
// matched here again, so that only costs time.
func (f flowFilter) flush(s *nl.NetlinkSocket) error {
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
	flows, err := collect(req, unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return err
	}
	var errs []error
	for _, raw := range flows {
		if len(raw) < 4 || !f.matches(raw[4:]) {
			continue
		}
		del := ctRequest(s, nl.IPCTNL_MSG_CT_DELETE, unix.NLM_F_ACK)
		del.AddRawData(raw[4:]) // the flow's own attributes name it
		if err := execute(del, unix.NETLINK_NETFILTER, 0, nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// matches reports whether a flow's attributes (after its nfgenmsg) fall
// under the filter.
func (f flowFilter) matches(attrs []byte) bool {
	var orig, reply tuple
	as, err := nl.ParseRouteAttr(attrs)
	if err != nil {
		return false
	}
	for _, a := range as {
		switch a.Attr.Type & nlaTypeMask {
		case nl.CTA_TUPLE_ORIG:
			orig = parseTuple(a.Value)
		case nl.CTA_TUPLE_REPLY:
			reply = parseTuple(a.Value)
		}
	}
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
	as, _ := nl.ParseRouteAttr(b)
	for _, a := range as {
		inner, _ := nl.ParseRouteAttr(a.Value)
		switch a.Attr.Type & nlaTypeMask {
		case nl.CTA_TUPLE_IP:
			for _, x := range inner {
				addr, ok := netip.AddrFromSlice(x.Value)
				switch x.Attr.Type & nlaTypeMask {
				case nl.CTA_IP_V4_SRC:
					if ok {
						t.src = addr
					}
				case nl.CTA_IP_V4_DST:
					if ok {
						t.dst = addr
					}
				}
			}
		case nl.CTA_TUPLE_PROTO:
			for _, x := range inner {
				switch x.Attr.Type & nlaTypeMask {
				case nl.CTA_PROTO_NUM:
					if len(x.Value) == 1 {
						t.proto = x.Value[0]
					}
				case nl.CTA_PROTO_DST_PORT:
					if len(x.Value) == 2 {
						t.dport = binary.BigEndian.Uint16(x.Value)
					}
				}
			}
		}
	}
	return t
}

// flushAll deletes the flows under any of fs with one dump of every flow.
func flushAll(h *netlink.Handle, fs []flowFilter) error {
	var filters []netlink.CustomConntrackFilter
	for _, f := range fs {
		cf := &netlink.ConntrackFilter{}
		if err := cf.AddProtocol(f.proto); err != nil {
			return err
		}
		if err := cf.AddPort(netlink.ConntrackOrigDstPort, f.port); err != nil {
			return err
		}
		if f.replySrc.IsValid() {
			if err := cf.AddIP(netlink.ConntrackReplySrcIP, f.replySrc.AsSlice()); err != nil {
				return err
			}
		}
		if f.origDst.IsValid() {
			if err := cf.AddIP(netlink.ConntrackOrigDstIP, f.origDst.AsSlice()); err != nil {
				return err
			}
		}
		filters = append(filters, cf)
	}
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("conntrack -D: %w", err)
	}
	return nil
}
