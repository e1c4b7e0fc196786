// Package floorkit is the least a program can do to give one container a
// network, with netlink directly and nothing else: no state, no files, no
// checks. The benchmark uses it in process (the floor of the kernel work)
// and from the cnetfloor command, one process per container (the floor of
// a whole command on the same machine).
package floorkit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces are bound, as `ip netns` does.
const NetnsDir = "/run/netns"

// NewNamedNetns makes a network namespace bound at /run/netns/NAME with lo
// up (`ip netns add NAME; ip -n NAME link set lo up`), and returns a
// netlink handle inside it and its file descriptor.
func NewNamedNetns(name string) (*netlink.Handle, netns.NsHandle, error) {
	type result struct {
		h   *netlink.Handle
		fd  netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer func() { _ = orig.Close() }() // closing a namespace handle: nothing written through it
		path := filepath.Join(NetnsDir, name)
		r := func() (r result) {
			file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
			if err != nil {
				return result{err: err}
			}
			_ = file.Close() // cleanup on a path that already fails
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				_ = os.Remove(path) // cleanup on a path that already fails
				return result{err: fmt.Errorf("unshare: %w", err)}
			}
			self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
				_ = os.Remove(path) // cleanup on a path that already fails
				return result{err: fmt.Errorf("bind %s: %w", path, err)}
			}
			if r.fd, err = netns.Get(); err != nil {
				return result{err: err}
			}
			if r.h, err = netlink.NewHandle(); err != nil {
				_ = r.fd.Close() // cleanup on a path that already fails
				return result{err: err}
			}
			lo, err := r.h.LinkByName("lo")
			if err == nil {
				err = r.h.LinkSetUp(lo)
			}
			if err != nil {
				r.h.Close()
				_ = r.fd.Close() // cleanup on a path that already fails
				return result{err: err}
			}
			return r
		}()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- r
	}()
	r := <-done
	return r.h, r.fd, r.err
}

// Create gives the namespace NAME (made here) a veth whose peer is born
// inside it as eth0, the host end on the bridge with index bridge and up,
// addr on eth0, eth0 up and a default route through gw:
//
//	ip netns add NAME; ip -n NAME link set lo up
//	ip link add HOSTIF master BR up type veth peer eth0 netns NAME
//	ip -n NAME addr add ADDR dev eth0; ip -n NAME link set eth0 up
//	ip -n NAME route add default via GW
func Create(name, hostIf string, bridge int, addr netip.Prefix, gw netip.Addr) error {
	h, fd, err := NewNamedNetns(name)
	if err != nil {
		return err
	}
	// The handle's socket and fd keep the namespace alive: close both.
	defer h.Close()
	defer func() { _ = fd.Close() }() // closing a namespace handle: nothing written through it
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostIf, MasterIndex: bridge, Flags: net.FlagUp, TxQLen: -1},
		PeerName:      "eth0",
		PeerTxQLen:    -1,
		PeerNamespace: netlink.NsFd(fd),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth: %w", err)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}
	if err := h.AddrAdd(eth0, a); err != nil {
		return err
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return err
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()})
}

// Remove unbinds and deletes the namespace NAME (`ip netns del NAME`); the
// kernel deletes its veth with it.
func Remove(name string) error {
	path := filepath.Join(NetnsDir, name)
	return errors.Join(unix.Unmount(path, unix.MNT_DETACH), os.Remove(path))
}
