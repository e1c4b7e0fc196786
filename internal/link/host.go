package link

import (
	"fmt"

	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/faults"
)

// HasAddr reports whether a is assigned to an interface of h's namespace.
// Equivalent to: `ip -4 addr show to A`.
func HasAddr(h *netlink.Handle, a netip.Addr) (bool, error) {
	addrs, err := AddrList(h, nil, unix.AF_INET)
	if err != nil {
		return false, fmt.Errorf("ip -4 addr show: %w", err)
	}
	for _, x := range addrs {
		if x.IP.Equal(a.AsSlice()) {
			return true, nil
		}
	}
	return false, nil
}

// SetHairpin turns hairpin mode on or off on a bridge port, so a frame
// that came in through it may go back out through it: a container reaching
// its own published port through the host. Equivalent to:
// `bridge link set dev NAME hairpin on`.
func SetHairpin(h *netlink.Handle, name string, on bool) error {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		if on {
			return fmt.Errorf("bridge link set dev %s hairpin on: no such link", name)
		}
		return nil // gone with its endpoint: nothing left to turn off
	}
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetHairpin(l, on); err != nil {
		return fmt.Errorf("bridge link set dev %s hairpin %v: %w", name, on, err)
	}
	faults.Point()
	return nil
}
