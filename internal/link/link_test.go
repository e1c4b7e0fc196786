package link

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestEnsureEndpoint creates an endpoint in one request and checks it with
// ip: the host end up on the bridge with its mark, the peer up in the
// namespace with its MAC, address and default route. A second call changes
// nothing; the peer is configured even when the ifindex the kernel would
// naturally give it is taken.
func TestEnsureEndpoint(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.Run(t, "ip", "link", "add", "br-t", "type", "bridge")
	testenv.Run(t, "ip", "addr", "add", "10.9.0.1/24", "dev", "br-t")
	testenv.Run(t, "ip", "link", "set", "br-t", "up")
	testenv.Run(t, "ip", "netns", "add", "ept")
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "ept")
		testenv.Try("ip", "link", "del", "br-t")
		testenv.Try("ip", "link", "del", "vethtest2")
	})
	host, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	fd, err := unix.Open("/run/netns/ept", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { testenv.Logged(t, "close fd", unix.Close(fd)) }()
	inside, err := nl.GetNetlinkSocketAt(netns.NsHandle(fd), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	nsh := SockOn(&nl.SocketHandle{Socket: inside})
	ep := model.EndpointSpec{Netns: "ept", HostIf: "vethtest1", ContainerIf: "eth0", Bridge: "br-t",
		Addr: netip.MustParsePrefix("10.9.0.2/24"), Gateway: netip.MustParseAddr("10.9.0.1"), MTU: 1400,
		DefaultRoute: true, Mark: "cnet/t/ep/ept/n"}
	for i := 0; i < 2; i++ {
		if err := EnsureEndpoint(host, sock, nsh, fd, ep); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		// The host end is a bridge port without IPv6; the container end keeps it.
		if out := testenv.Run(t, "sysctl", "-n", "net.ipv6.conf.vethtest1.disable_ipv6"); strings.TrimSpace(out) != "1" {
			t.Errorf("call %d: IPv6 on the host end: disable_ipv6=%s", i+1, out)
		}
	}
	hostLink := testenv.Run(t, "ip", "-d", "link", "show", "vethtest1")
	for _, want := range []string{"master br-t", "state UP", "mtu 1400", "alias cnet/t/ep/ept/n"} {
		if !strings.Contains(hostLink, want) {
			t.Errorf("host end lacks %q:\n%s", want, hostLink)
		}
	}
	if out := testenv.Run(t, "ip", "-6", "addr", "show", "dev", "vethtest1"); strings.TrimSpace(out) != "" {
		t.Errorf("the host end has IPv6 addresses:\n%s", out)
	}
	if out := testenv.Run(t, "ip", "netns", "exec", "ept", "sysctl", "-n", "net.ipv6.conf.eth0.disable_ipv6"); strings.TrimSpace(out) != "0" {
		t.Errorf("IPv6 in the container: disable_ipv6=%s", out)
	}
	peer := testenv.Run(t, "ip", "-n", "ept", "link", "show", "eth0")
	for _, want := range []string{"2: eth0", "state UP", "mtu 1400", "link/ether 02:63:0a:09:00:02"} {
		if !strings.Contains(peer, want) {
			t.Errorf("peer lacks %q:\n%s", want, peer)
		}
	}
	if out := testenv.Run(t, "ip", "-n", "ept", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.9.0.2/24 brd 10.9.0.255") {
		t.Errorf("peer address:\n%s", out)
	}
	if out := testenv.Run(t, "ip", "-n", "ept", "route"); !strings.Contains(out, "default via 10.9.0.1 dev eth0 src 10.9.0.2") {
		t.Errorf("routes:\n%s", out)
	}
	// ifindex 3 taken in the namespace: eth1 gets another, and only eth1 is configured.
	testenv.Run(t, "ip", "-n", "ept", "link", "add", "squat", "index", "3", "type", "bridge")
	ep2 := ep
	ep2.HostIf, ep2.ContainerIf, ep2.Addr, ep2.DefaultRoute = "vethtest2", "eth1", netip.MustParsePrefix("10.9.0.3/24"), false
	if err := EnsureEndpoint(host, sock, nsh, fd, ep2); err != nil {
		t.Fatal(err)
	}
	if out := testenv.Run(t, "ip", "-n", "ept", "-4", "addr", "show", "eth1"); !strings.Contains(out, "10.9.0.3/24") || !strings.Contains(out, "UP") {
		t.Errorf("eth1 after an index collision:\n%s\n%s", out, testenv.Run(t, "ip", "-n", "ept", "addr"))
	}
	if out := testenv.Run(t, "ip", "-n", "ept", "-4", "addr", "show", "squat"); strings.Contains(out, "10.9.0.3") {
		t.Errorf("eth1's address landed on another link:\n%s", out)
	}
	// A link with the name but another mark is refused, not adopted.
	ep3 := ep
	ep3.Mark = "cnet/other/ep/x/y"
	if err := EnsureEndpoint(host, sock, nsh, fd, ep3); err == nil {
		t.Error("accepted a host veth with another mark")
	}
	if err := RemoveLink(host, "vethtest1", ep.Mark); err != nil {
		t.Fatal(err)
	}
	if linkExists("vethtest1") {
		t.Errorf("vethtest1 still present after RemoveLink")
	}
}

// TestAddVethEchoesPeerIndex: the peer ifindex AddVeth returns is the one
// the kernel gave the peer (on Linux 6.3 and later, which echo new links).
func TestAddVethEchoesPeerIndex(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.Run(t, "ip", "link", "add", "br-e", "type", "bridge")
	testenv.Run(t, "ip", "netns", "add", "echo")
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "echo")
		testenv.Try("ip", "link", "del", "br-e")
	})
	testenv.Run(t, "ip", "-n", "echo", "link", "add", "taken", "type", "bridge") // shifts the next free index
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	fd, err := unix.Open("/run/netns/echo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { testenv.Logged(t, "close fd", unix.Close(fd)) }()
	br, err := netlink.LinkByName("br-e")
	if err != nil {
		t.Fatal(err)
	}
	got, err := sock.AddVeth(VethSpec{Name: "vethecho", MTU: 1500, Master: br.Attrs().Index, PeerName: "eth0",
		PeerMAC: []byte{2, 0, 0, 0, 0, 1}, PeerNetnsFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Ifindex int    `json:"ifindex"`
		Ifname  string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(testenv.Run(t, "ip", "-j", "-n", "echo", "link", "show", "eth0")), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show eth0: %v %+v", err, links)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", unix.ByteSliceToString(uts.Release[:]), err)
	}
	echoes := major > 6 || major == 6 && minor >= 3
	switch {
	case got == links[0].Ifindex:
	case got == 0 && !echoes:
	default:
		t.Errorf("AddVeth returned peer index %d, the kernel gave %d (kernel %d.%d)", got, links[0].Ifindex, major, minor)
	}
}
