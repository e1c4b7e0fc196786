package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/cnetdev/cnet/bench/floorkit"
	"github.com/vishvananda/netlink"
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

// netnsDir is where named namespaces are bound.
const netnsDir = floorkit.NetnsDir

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

func (f *floor) create(s slot) error {
	return floorkit.Create(s.name, fmt.Sprintf("fl%d", s.id), f.br.Attrs().Index,
		netip.PrefixFrom(s.ip, f.subnet.Bits()), nthAddr(f.subnet, 1))
}

func (f *floor) remove(s slot) error { return floorkit.Remove(s.name) }

func (f *floor) finish() error {
	if f.br == nil {
		return nil
	}
	return netlink.LinkDel(f.br)
}

// floorCLI is the same kernel work as floor, one cnetfloor process per
// container: the floor of a whole command, process start-up included.
type floorCLI struct {
	floor
	bin string
}

func (f *floorCLI) name() string { return "floor-cli" }
func (f *floorCLI) check() error {
	if _, err := os.Stat(f.bin); err != nil {
		return fmt.Errorf("%s: %w (scripts/bench.sh builds it: go build -o bin/cnetfloor ./bench/cnetfloor)", f.bin, err)
	}
	return nil
}

func (f *floorCLI) create(s slot) error {
	return run(f.bin, "add", s.name, fmt.Sprintf("fc%d", s.id), f.bridge,
		netip.PrefixFrom(s.ip, f.subnet.Bits()).String(), nthAddr(f.subnet, 1).String())
}

func (f *floorCLI) remove(s slot) error { return run(f.bin, "del", s.name) }
