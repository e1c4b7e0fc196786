package link

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/nlreq"
)

// Deleting a link costs the kernel a wait for every CPU to leave the
// network stack (synchronize_net, some 20-30 ms), whatever the number of
// links the request deletes. One request can delete many links: every
// link of an interface group (RTM_DELLINK with IFLA_GROUP and no index),
// which the kernel tears down as one batch (unregister_netdevice_many).
// RemoveLinks uses that to delete a thousand veths for the price of one.

// LinkInfo is what a link dump says about one link.
type LinkInfo struct {
	Index int
	Name  string
	Alias string
	Group uint32
	// PeerNsID is the id, in this namespace, of the namespace the link's
	// peer (a veth's other end) lives in; -1 when it lives here or has
	// none.
	PeerNsID int
}

// Links lists the links of the socket's namespace with their index, name,
// alias and group, taken again while the kernel reports the dump as
// interrupted (see Dump). Equivalent to: `ip -d link show`.
func (s *Sock) Links() ([]LinkInfo, error) {
	out, err := nlreq.Dump(func() ([]LinkInfo, error) {
		var out []LinkInfo
		req := &nl.NetlinkRequest{
			NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.RTM_GETLINK, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP},
			Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s.h},
		}
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		err := nlreq.Execute(req, unix.NETLINK_ROUTE, unix.RTM_NEWLINK, func(m []byte) bool {
			if l, ok := parseLinkInfo(m); ok {
				out = append(out, l)
			}
			return true
		})
		return out, err
	})
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	return out, nil
}

// Link returns the link called name, if there is one.
// Equivalent to: `ip -d link show dev NAME`.
func (s *Sock) Link(name string) (LinkInfo, bool, error) {
	echo, err := s.execEcho(unix.RTM_GETLINK, 0, unix.RTM_NEWLINK, nl.NewIfInfomsg(unix.AF_UNSPEC),
		nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	if isNotFound(err) {
		return LinkInfo{}, false, nil
	}
	if err != nil {
		return LinkInfo{}, false, fmt.Errorf("ip link show %s: %w", name, err)
	}
	for _, m := range echo {
		if l, ok := parseLinkInfo(m); ok {
			return l, true, nil
		}
	}
	return LinkInfo{}, false, nil
}

// HasIndex reports whether the link with index still exists under name.
// Equivalent to: `ip link show dev NAME` by index.
func (s *Sock) HasIndex(index int, name string) (bool, error) {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	echo, err := s.execEcho(unix.RTM_GETLINK, 0, unix.RTM_NEWLINK, msg)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ip link show %s: %w", name, err)
	}
	for _, m := range echo {
		if l, ok := parseLinkInfo(m); ok && l.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// parseLinkInfo reads the attributes LinkInfo needs from one RTM_NEWLINK
// message, without decoding the rest (a dump of a thousand veths is
// mostly statistics).
func parseLinkInfo(m []byte) (LinkInfo, bool) {
	if len(m) < unix.SizeofIfInfomsg {
		return LinkInfo{}, false
	}
	l := LinkInfo{Index: int(int32(native.Uint32(m[4:8]))), PeerNsID: -1}
	nlreq.EachAttr(m[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
		switch typ {
		case unix.IFLA_LINK_NETNSID:
			if len(v) == 4 {
				l.PeerNsID = int(int32(native.Uint32(v)))
			}
		case unix.IFLA_IFNAME:
			l.Name = nlreq.CString(v)
		case unix.IFLA_IFALIAS:
			l.Alias = nlreq.CString(v)
		case unix.IFLA_GROUP:
			if len(v) == 4 {
				l.Group = native.Uint32(v)
			}
		}
	})
	return l, l.Index > 0 && l.Name != ""
}

// SetGroup puts a link, by index, into an interface group.
// Equivalent to: `ip link set dev NAME group GROUP`.
func (s *Sock) SetGroup(index int, group uint32) error {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	return s.exec(unix.RTM_NEWLINK, 0, msg, nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
}

// DelGroup deletes every link of an interface group, in one batch.
// Equivalent to: `ip link del group GROUP`.
func (s *Sock) DelGroup(group uint32) error {
	return s.exec(unix.RTM_DELLINK, 0, nl.NewIfInfomsg(unix.AF_UNSPEC), nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
}

// DelIndex deletes a link by index. Equivalent to: `ip link del dev NAME`.
func (s *Sock) DelIndex(index int) error {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	return s.exec(unix.RTM_DELLINK, 0, msg)
}

// Owned names a link and the mark it must carry to be removed.
type Owned struct{ Name, Mark string }

// RemoveLinks deletes the named links (a missing one is success), in one
// kernel batch when there are several. Every link is checked first: if
// one carries another mark, nothing is deleted and the error says which.
// Equivalent to:
//
//	ip link set dev NAME group G    (for each link; G an unused group)
//	ip link del group G
//
// G is a random group above 2^31 that no link used when the links were listed; after
// moving the links into it, the group is listed again and deleted only if
// it holds exactly these links. If another link turned up in it, the links
// go back to their groups and are deleted one by one instead. (Deleting a
// veth deletes its peer, in the same batch.)
func RemoveLinks(s *Sock, want []Owned) error {
	if len(want) == 0 {
		return nil
	}
	if len(want) == 1 { // one link: no need to list them all
		l, ok, err := s.Link(want[0].Name)
		if err != nil || !ok {
			return err
		}
		if err := checkMark(l, want[0]); err != nil {
			return err
		}
		return delOne(s, l)
	}
	all, err := s.Links()
	if err != nil {
		return err
	}
	byName := make(map[string]LinkInfo, len(all))
	used := make(map[uint32]bool)
	for _, l := range all {
		byName[l.Name] = l
		used[l.Group] = true
	}
	var victims []LinkInfo
	for _, w := range want {
		l, ok := byName[w.Name]
		if !ok {
			continue
		}
		if err := checkMark(l, w); err != nil {
			return err
		}
		victims = append(victims, l)
	}
	switch len(victims) {
	case 0:
		return nil
	case 1:
		return delOne(s, victims[0])
	}
	group := unusedGroup(used)
	moved := victims[:0:0]
	for _, v := range victims {
		if err := s.SetGroup(v.Index, group); err != nil {
			if isNotFound(err) {
				continue // gone meanwhile
			}
			return restoreGroups(s, moved, fmt.Errorf("ip link set dev %s group %d: %w", v.Name, group, err))
		}
		moved = append(moved, v)
	}
	if len(moved) == 0 {
		return nil
	}
	if grouped != nil {
		grouped(group)
	}
	members, err := s.Links()
	if err != nil {
		return restoreGroups(s, moved, err)
	}
	mine := make(map[int]LinkInfo, len(moved))
	for _, v := range moved {
		mine[v.Index] = v
	}
	for _, l := range members {
		if v, ok := mine[l.Index]; l.Group == group && (!ok || l.Name != v.Name || l.Alias != v.Alias) {
			// Another link joined the group: never delete what is not ours.
			errs := []error{restoreGroups(s, moved, nil)}
			for _, v := range moved {
				errs = append(errs, delOne(s, v))
			}
			return errors.Join(errs...)
		}
	}
	if err := s.DelGroup(group); err != nil && !isNotFound(err) {
		return restoreGroups(s, moved, fmt.Errorf("ip link del group %d: %w", group, err))
	}
	return nil
}

func checkMark(l LinkInfo, w Owned) error {
	if names.Owns(l.Alias, l.Group, w.Mark) {
		return nil
	}
	with := "an existing link that cnet did not create"
	if l.Alias != "" {
		with = fmt.Sprintf("an existing link marked %q", l.Alias)
	}
	return errs.Conflict("link", w.Name, with, "left in place; nothing was deleted")
}

// grouped, when set by a test, runs once the links are in their group
// and before the group is checked: where another process could add a link.
var grouped func(group uint32)

// unusedGroup picks a random interface group that none of used is in. It
// has the high bit set: iproute2 reads a group as a signed 32-bit number,
// so `ip link set ... group N` cannot put a link into such a group by
// mistake. (Group 0, the default, is never picked: the kernel refuses to
// delete it.)
func unusedGroup(used map[uint32]bool) uint32 {
	for {
		if g := rand.Uint32() | 1<<31; !used[g] {
			return g
		}
	}
}

// restoreGroups puts links back into the groups they were in, as far as
// they still exist (a link that is gone needs no group), and returns
// what it could not put back joined to cause, the failure that made it
// necessary.
func restoreGroups(s *Sock, links []LinkInfo, cause error) error {
	errList := []error{cause}
	for _, l := range links {
		if err := s.SetGroup(l.Index, l.Group); err != nil && !isNotFound(err) {
			errList = append(errList, fmt.Errorf("ip link set dev %s group %d: %w", l.Name, l.Group, err))
		}
	}
	return errors.Join(errList...)
}

func delOne(s *Sock, l LinkInfo) error {
	if err := s.DelIndex(l.Index); err != nil && !isNotFound(err) {
		return fmt.Errorf("ip link del %s: %w", l.Name, err)
	}
	return nil
}

// NsID returns the id this socket's namespace has given the namespace
// open at fd, or -1 when it has given none. The kernel gives one the
// first time a link is made across the two (a veth peer), so every
// container with an endpoint has one on the host. Equivalent to:
// `ip netns list-id`, for one namespace.
func (s *Sock) NsID(fd int) (int, error) {
	echo, err := s.execEcho(unix.RTM_GETNSID, 0, unix.RTM_NEWNSID, nl.NewRtGenMsg(),
		nl.NewRtAttr(unix.NETNSA_FD, nl.Uint32Attr(uint32(fd))))
	if err != nil {
		return -1, fmt.Errorf("ip netns list-id: %w", err)
	}
	id := -1
	for _, m := range echo {
		if len(m) < unix.NLMSG_ALIGNTO {
			continue
		}
		nlreq.EachAttr(m[unix.NLMSG_ALIGNTO:], func(typ uint16, v []byte) { // after struct rtgenmsg, aligned
			if typ == unix.NETNSA_NSID && len(v) == 4 {
				id = int(int32(native.Uint32(v)))
			}
		})
	}
	return id, nil
}

// LinkIn returns the link called name in the namespace this socket's
// namespace knows by nsid, read from outside it: nothing enters the
// namespace. Equivalent to: `ip -n NS -d link show dev NAME`, without
// the switch into NS.
func (s *Sock) LinkIn(nsid int, name string) (LinkInfo, bool, error) {
	echo, err := s.execEcho(unix.RTM_GETLINK, 0, unix.RTM_NEWLINK, nl.NewIfInfomsg(unix.AF_UNSPEC),
		nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)),
		nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(int32(nsid)))))
	if isNotFound(err) {
		return LinkInfo{}, false, nil
	}
	if err != nil {
		return LinkInfo{}, false, fmt.Errorf("ip link show %s in netns id %d: %w", name, nsid, err)
	}
	for _, m := range echo {
		if l, ok := parseLinkInfo(m); ok {
			return l, true, nil
		}
	}
	return LinkInfo{}, false, nil
}
