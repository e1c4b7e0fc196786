package main

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

// floor is the least a program can do for one container, in process,
// with netlink directly: a named namespace (unshare + bind mount, as
// `ip netns add` does) with lo up, a veth whose peer is born inside it,
// master + up, the address, the peer up and the default route. No state,
// no files, no checks: the cost of the kernel work itself.
type floor struct {
	bridge string
	subnet netip.Prefix
	br     netlink.Link
}

const netnsDir = "/run/netns"

func (f *floor) name() string { return "floor" }
func (f *floor) check() error { return nil }

func (f *floor) prepare() error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: f.bridge, TxQLen: -1}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", f.bridge, err)
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: nthAddr(f.subnet, 1).AsSlice(), Mask: net.CIDRMask(f.subnet.Bits(), 32)}}
	if err := netlink.AddrAdd(br, gw); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return err
	}
	var err error
	f.br, err = netlink.LinkByName(f.bridge)
	return err
}

// newNamedNetns makes a network namespace bound at /run/netns/NAME with
// lo up, and returns a handle for it and its file descriptor.
func newNamedNetns(name string) (*netlink.Handle, netns.NsHandle, error) {
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
		defer orig.Close()
		path := filepath.Join(netnsDir, name)
		r := func() (r result) {
			file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
			if err != nil {
				return result{err: err}
			}
			file.Close()
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				os.Remove(path)
				return result{err: fmt.Errorf("unshare: %w", err)}
			}
			self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
				os.Remove(path)
				return result{err: fmt.Errorf("bind %s: %w", path, err)}
			}
			if r.fd, err = netns.Get(); err != nil {
				return result{err: err}
			}
			if r.h, err = netlink.NewHandle(); err != nil {
				r.fd.Close()
				return result{err: err}
			}
			lo, err := r.h.LinkByName("lo")
			if err == nil {
				err = r.h.LinkSetUp(lo)
			}
			if err != nil {
				r.h.Close()
				r.fd.Close()
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

func (f *floor) create(s slot) error {
	h, fd, err := newNamedNetns(s.name)
	if err != nil {
		return err
	}
	// The handle's socket and fd keep the namespace alive: close both.
	defer h.Close()
	defer fd.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("fl%d", s.id), MasterIndex: f.br.Attrs().Index, Flags: net.FlagUp, TxQLen: -1},
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
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.ip.AsSlice(), Mask: net.CIDRMask(f.subnet.Bits(), 32)}}
	if err := h.AddrAdd(eth0, addr); err != nil {
		return err
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return err
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: nthAddr(f.subnet, 1).AsSlice()})
}

func (f *floor) remove(s slot) error {
	path := filepath.Join(netnsDir, s.name)
	return errors.Join(unix.Unmount(path, unix.MNT_DETACH), os.Remove(path))
}

func (f *floor) finish() error {
	if f.br == nil {
		return nil
	}
	return netlink.LinkDel(f.br)
}
