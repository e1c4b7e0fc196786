// Command cnetfloor is the floor of a whole command on this machine: the
// kernel work of giving one container a network (package floorkit) in a
// process of its own, with nothing else linked in. The benchmark runs one
// per container, as it runs one `cnet create` per container.
//
//	cnetfloor add NAME HOSTIF BRIDGE ADDR/BITS GATEWAY
//	cnetfloor del NAME
package main

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/cnetdev/cnet/bench/floorkit"
	"github.com/vishvananda/netlink"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cnetfloor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 6 && args[0] == "add":
		addr, err := netip.ParsePrefix(args[4])
		if err != nil {
			return err
		}
		gw, err := netip.ParseAddr(args[5])
		if err != nil {
			return err
		}
		br, err := netlink.LinkByName(args[3])
		if err != nil {
			return fmt.Errorf("bridge %s: %w", args[3], err)
		}
		return floorkit.Create(args[1], args[2], br.Attrs().Index, addr, gw)
	case len(args) == 2 && args[0] == "del":
		return floorkit.Remove(args[1])
	}
	return fmt.Errorf("usage: cnetfloor add NAME HOSTIF BRIDGE ADDR/BITS GATEWAY | cnetfloor del NAME")
}
