package link

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Deleting a namespace does not delete its veths at once: the kernel's
// cleanup of the namespace (cleanup_net, on a work queue) frees them some
// 20-30 ms later, in one batch for every namespace deleted meanwhile. A
// command that returned then would leave host veths visible for a moment
// after it said they were gone. Departures lets it wait for them once,
// after deleting every namespace, instead of deleting each veth itself
// (a wait of that length per veth).

// goneTimeout bounds the wait for the kernel to free a batch of links.
const goneTimeout = 5 * time.Second

// Departures watches a set of host links until the kernel has deleted
// them, through the link notifications (RTNLGRP_LINK) of s's namespace.
type Departures struct {
	s    *Sock
	fd   int
	left map[int]string // ifindex → name
}

// WatchDepartures subscribes to link notifications, then finds the links
// called names (a missing one is already gone). Subscribing first means no
// deletion between the lookup and the wait is missed. Equivalent to:
// `ip monitor link`, started before `ip link show NAME`.
func WatchDepartures(s *Sock, names []string) (*Departures, error) {
	d := &Departures{s: s, fd: -1, left: map[int]string{}}
	if len(names) == 0 {
		return d, nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("ip monitor link: socket: %w", err)
	}
	// Room for the notifications of a thousand links going at once; as
	// root the limit can be passed (SO_RCVBUFFORCE). If it cannot, an
	// overflow only means the remaining links are looked up (see Wait).
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20) // best effort, as above
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
		closeFd(fd)
		return nil, fmt.Errorf("ip monitor link: bind: %w", err)
	}
	d.fd = fd
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	if len(names) <= 8 {
		for _, n := range names {
			l, ok, err := s.Link(n)
			if err != nil {
				d.Close()
				return nil, err
			}
			if ok {
				d.left[l.Index] = l.Name
			}
		}
	} else {
		all, err := s.Links()
		if err != nil {
			d.Close()
			return nil, err
		}
		for _, l := range all {
			if want[l.Name] {
				d.left[l.Index] = l.Name
			}
		}
	}
	return d, nil
}

// Wait returns once every watched link is gone, or fails after
// goneTimeout naming those still there.
func (d *Departures) Wait() error {
	deadline := time.Now().Add(goneTimeout)
	buf := make([]byte, 64<<10)
	for len(d.left) > 0 {
		n, _, err := unix.Recvfrom(d.fd, buf, 0)
		switch {
		case err == nil:
			d.read(buf[:n])
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost: ask for each remaining link.
			if err := d.lookup(); err != nil {
				return err
			}
			continue
		case !errors.Is(err, unix.EAGAIN):
			return fmt.Errorf("ip monitor link: %w", err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			if err := d.lookup(); err != nil || len(d.left) == 0 {
				return err
			}
			var still []string
			for _, name := range d.left {
				still = append(still, name)
			}
			return fmt.Errorf("host %s %s still there %s after %s namespace was deleted: a process holds the namespace open", plural(len(still), "veth", "veths"), strings.Join(still, ", "), goneTimeout, plural(len(still), "its", "their"))
		}
		pfd := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("ip monitor link: poll: %w", err)
		}
	}
	return nil
}

// read crosses off the links whose deletion the notifications in b report.
func (d *Departures) read(b []byte) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return // a malformed datagram reports nothing; lookup settles the rest
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_DELLINK && len(m.Data) >= unix.SizeofIfInfomsg {
			delete(d.left, int(int32(native.Uint32(m.Data[4:8]))))
		}
	}
}

// lookup asks the kernel for each remaining link by index.
func (d *Departures) lookup() error {
	for index, name := range d.left {
		ok, err := d.s.HasIndex(index, name)
		if err != nil {
			return err
		}
		if !ok {
			delete(d.left, index)
		}
	}
	return nil
}

// Close ends the subscription.
func (d *Departures) Close() {
	if d.fd >= 0 {
		closeFd(d.fd)
		d.fd = -1
	}
}

// closeFd closes a descriptor this package opened and used only to read.
// Linux releases the descriptor whatever close returns, and nothing was
// written through it that an error could have lost.
func closeFd(fd int) { _ = unix.Close(fd) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
