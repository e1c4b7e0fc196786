package sockdiag

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestListener finds listening and bound sockets through sock_diag and
// names their process (this test); connections and sockets on other
// ports or addresses do not count.
func TestListener(t *testing.T) {
	testenv.RequirePrivileged(t)
	diag, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer diag.Close()
	me := fmt.Sprintf("(pid %d)", os.Getpid())
	holds := func(proto, ip string, port int, want bool) {
		t.Helper()
		got, err := Listener(diag, proto, netip.MustParseAddr(ip), uint16(port))
		if err != nil {
			t.Fatalf("Listener(%s %s:%d): %v", proto, ip, port, err)
		}
		if want && !strings.Contains(got, me) || !want && got != "" {
			t.Errorf("Listener(%s %s:%d) = %q, want this process: %v", proto, ip, port, got, want)
		}
		// One dump of every port tells the same.
		all, err := Listeners(diag, proto)
		if err != nil {
			t.Fatalf("Listeners(%s): %v", proto, err)
		}
		if got := all.Holder(netip.MustParseAddr(ip), uint16(port)); want && !strings.Contains(got, me) || !want && got != "" {
			t.Errorf("Listeners(%s).Holder(%s:%d) = %q, want this process: %v", proto, ip, port, got, want)
		}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "ln", ln)
	port := ln.Addr().(*net.TCPAddr).Port
	holds("tcp", "127.0.0.1", port, true)
	holds("tcp", "0.0.0.0", port, true)
	holds("tcp", "192.0.2.1", port, false) // another address
	holds("udp", "0.0.0.0", port, false)   // another protocol
	holds("tcp", "0.0.0.0", port+1, false) // another port (if free)

	// A connection is not a listener: the client end of one to ln.
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "conn", conn)
	holds("tcp", "0.0.0.0", conn.LocalAddr().(*net.TCPAddr).Port, false)

	// IPv6 [::] takes every address.
	ln6, err := net.Listen("tcp6", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "ln6", ln6)
	holds("tcp", "10.1.2.3", ln6.Addr().(*net.TCPAddr).Port, true)

	// UDP: a bound socket, and a connected one, both hold the port.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "pc", pc)
	holds("udp", "0.0.0.0", pc.LocalAddr().(*net.UDPAddr).Port, true)
	holds("udp", "127.0.0.1", pc.LocalAddr().(*net.UDPAddr).Port, true)
	holds("tcp", "127.0.0.1", pc.LocalAddr().(*net.UDPAddr).Port, false)
	uc, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "uc", uc)
	holds("udp", "127.0.0.1", uc.LocalAddr().(*net.UDPAddr).Port, true)
}
