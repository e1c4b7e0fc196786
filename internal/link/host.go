package link

import (
	"fmt"

	"net/netip"
	"os"
	"strconv"
	"strings"

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

// SocketOwner names the process holding the socket with inode ino, as
// "PROGRAM (pid N)", or "" when no process can be found.
func SocketOwner(ino uint32) string {
	if s := owner([]string{strconv.FormatUint(uint64(ino), 10)}); s != "a process" {
		return s
	}
	return ""
}

// owner names the process holding one of the socket inodes.
func owner(inodes []string) string {
	if comm, pid := ownerProcess(inodes); pid != 0 {
		return fmt.Sprintf("%s (pid %d)", comm, pid)
	}
	return "a process"
}

// ownerProcess returns the name and PID of the process holding one of the
// socket inodes, or PID 0 when none can be found.
func ownerProcess(inodes []string) (comm string, pid int) {
	want := map[string]bool{}
	for _, i := range inodes {
		want["socket:["+i+"]"] = true
	}
	procs, _ := os.ReadDir("/proc")
	buf := make([]byte, 64)
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			n, err := unix.Readlink("/proc/"+p.Name()+"/fd/"+fd.Name(), buf)
			if err == nil && want[string(buf[:n])] {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				pid, _ := strconv.Atoi(p.Name())
				return strings.TrimSpace(string(comm)), pid
			}
		}
	}
	return "", 0
}
