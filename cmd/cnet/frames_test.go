package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// Raw frames, for what a container with CAP_NET_RAW can send that its
// kernel's own stack would not: VLAN tags, forged ARP. The frames are
// written through an AF_PACKET socket on the container's eth0, inside
// the sandbox.

// vlanTag is one tag before the ether type: TPID 0x8100 (802.1Q) or
// 0x88a8 (802.1ad), and a VLAN ID; VID 0 is a priority tag, which a
// receiving kernel strips and takes the frame as untagged.
type vlanTag struct{ tpid, vid uint16 }

var (
	dot1q   = []vlanTag{{0x8100, 0}}
	dot1ad  = []vlanTag{{0x88a8, 0}}
	qinq    = []vlanTag{{0x88a8, 0}, {0x8100, 0}}
	bcastHW = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func tagsText(tags []vlanTag) string {
	var s []string
	for _, t := range tags {
		s = append(s, fmt.Sprintf("%#04x VID %d", t.tpid, t.vid))
	}
	return strings.Join(s, ", ")
}

// etherFrame is an Ethernet II frame: dst, src, the tags, outer first,
// the ether type and the payload.
func etherFrame(dst, src net.HardwareAddr, tags []vlanTag, etherType uint16, payload []byte) []byte {
	f := append(append([]byte{}, dst...), src...)
	for _, t := range tags {
		f = binary.BigEndian.AppendUint16(f, t.tpid)
		f = binary.BigEndian.AppendUint16(f, t.vid)
	}
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, payload...)
}

// udp4 is an IPv4 packet holding one UDP datagram (UDP checksum 0: none).
func udp4(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	ip := make([]byte, 20, 28+len(data))
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(data)))
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	ip = binary.BigEndian.AppendUint16(ip, sport)
	ip = binary.BigEndian.AppendUint16(ip, dport)
	ip = binary.BigEndian.AppendUint16(ip, uint16(8+len(data)))
	ip = binary.BigEndian.AppendUint16(ip, 0)
	return append(ip, data...)
}

// garp is a gratuitous ARP reply: "addr is at hw", to everyone. A Linux
// neighbour that has an entry for addr takes it at once.
func garp(hw net.HardwareAddr, addr netip.Addr) []byte {
	a := addr.As4()
	p := []byte{0, 1, 8, 0, 6, 4, 0, 2} // Ethernet, IPv4, reply
	p = append(append(p, hw...), a[:]...)
	return append(append(p, hw...), a[:]...)
}

// sendFrame writes frame on interface dev of namespace ns.
// Equivalent to a packet(7) socket: socket(AF_PACKET, SOCK_RAW), sendto.
func sendFrame(ns, dev string, frame []byte) error {
	return netns.Do("/run/netns/"+ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", dev, ns, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: sends only
		if err != nil {
			return fmt.Errorf("packet socket in %s: %w", ns, err)
		}
		defer func() { _ = unix.Close(fd) }() // a socket only sent on, and a send is done when it returns: its close loses nothing
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], frame[:6])
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("send frame on %s in %s: %w", dev, ns, err)
		}
		return nil
	})
}

// hwAddr returns the MAC of dev in namespace ns ("" for the host).
func hwAddr(t *testing.T, ns, dev string) net.HardwareAddr {
	t.Helper()
	var hw net.HardwareAddr
	get := func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("%s in %q: %w", dev, ns, err)
		}
		hw = ifi.HardwareAddr
		return nil
	}
	var err error
	if ns == "" {
		err = get()
	} else {
		err = netns.Do("/run/netns/"+ns, get)
	}
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// spoofedDatagram sends, from container from's eth0 as a raw frame with
// tags, a UDP datagram from src to container to's address:port, and
// reports (nil) whether to received it from src.
func spoofedDatagram(t *testing.T, from, to string, tags []vlanTag, src, dst netip.AddrPort) error {
	var pc net.PacketConn
	err := netns.Do("/run/netns/"+to, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", dst.Port()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "udp listener", pc)
	frame := etherFrame(hwAddr(t, to, "eth0"), hwAddr(t, from, "eth0"), tags, unix.ETH_P_IP,
		udp4(src.Addr(), dst.Addr(), src.Port(), dst.Port(), []byte("spoofed")))
	if err := sendFrame(from, "eth0", frame); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	if err := pc.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("%s received nothing from %s (tags %s): %w", to, src, tagsText(tags), err)
		}
		if a, ok := addr.(*net.UDPAddr); ok && a.AddrPort().Addr().Unmap() == src.Addr() && string(buf[:n]) == "spoofed" {
			return nil
		}
	}
}

// poisonARP sends, from container from's eth0 with tags, a gratuitous
// ARP reply claiming victim for from's MAC, and reports (nil) whether the
// host's neighbour entry for victim on bridge br then names from's MAC.
// It first makes sure the host has a true entry (the host reaches
// victimHTTP), and puts the true one back after.
func poisonARP(t *testing.T, from, br string, tags []vlanTag, victim netip.Addr, victimHTTP string) error {
	if err := httpFrom("", victimHTTP); err != nil {
		t.Fatalf("the host cannot reach %s before the probe: %v", victimHTTP, err)
	}
	mac := hwAddr(t, from, "eth0")
	defer testenv.Try("ip", "neigh", "del", victim.String(), "dev", br) // relearned on next use
	if err := sendFrame(from, "eth0", etherFrame(bcastHW, mac, tags, unix.ETH_P_ARP, garp(mac, victim))); err != nil {
		t.Fatal(err)
	}
	// The kernel takes the frame in its receive path; a poisoned entry
	// shows within milliseconds, so half a second of polling is ample.
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		out := testenv.Run(t, "ip", "neigh", "show", victim.String(), "dev", br)
		if strings.Contains(out, mac.String()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the host's entry for %s stayed %q (tags %s)", victim, strings.TrimSpace(out), tagsText(tags))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linkLocal is the fe80:: address a kernel derives from a MAC (EUI-64).
func linkLocal(hw net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	copy(a[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return netip.AddrFrom16(a)
}
