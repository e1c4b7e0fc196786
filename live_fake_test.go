package cnet

import (
	"net/netip"
	"testing"

	"github.com/cnetdev/cnet/internal/fakekernel"
	"github.com/cnetdev/cnet/internal/model"
)

// TestAddressesLiveOnTheBridgeAreSkipped: automatic addresses skip what
// is live behind the bridge's ports without a container in state: an
// address held by a veth's peer, and an address whose MAC (as cnet
// derives it) was learned there. Ports of cnet's own endpoints are not
// asked about.
func TestAddressesLiveOnTheBridgeAreSkipped(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "base", Subnet: netip.MustParsePrefix("172.29.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	c1, err := e.CreateContainer(ContainerSpec{Name: "c1", Network: "base"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c1.Endpoints[0].IP(); got != netip.MustParseAddr("172.29.0.2") {
		t.Fatalf("c1 got %s, want 172.29.0.2", got)
	}
	// By hand: .3 on a veth, and .4's MAC behind a tap.
	k.Netns["byhand"] = &fakekernel.Namespace{Links: map[string]netip.Prefix{"eth0": netip.MustParsePrefix("172.29.0.3/24")}}
	k.Links["vethhand"] = &fakekernel.Link{Kind: "veth", Master: "cnet-base", PeerNS: "byhand", Peer: "eth0"}
	k.Links["tap0"] = &fakekernel.Link{Kind: "tap", Master: "cnet-base", Learned: []model.Holder{{MAC: "02:63:ac:1d:00:04", Who: "a host behind bridge port tap0"}}}
	c2, err := e.CreateContainer(ContainerSpec{Name: "c2", Network: "base"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c2.Endpoints[0].IP(), netip.MustParseAddr("172.29.0.5"); got != want {
		t.Errorf("c2 got %s, want %s (.3 and .4's MAC are live on the bridge)", got, want)
	}
	if got := c2.Endpoints[0].MAC; got != "02:63:ac:1d:00:05" {
		t.Errorf("c2's MAC is %s, want 02:63:ac:1d:00:05", got)
	}
	// Once the hand-made ones go, the lowest free address is used again.
	delete(k.Links, "vethhand")
	delete(k.Links, "tap0")
	c3, err := e.CreateContainer(ContainerSpec{Name: "c3", Network: "base"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c3.Endpoints[0].IP(), netip.MustParseAddr("172.29.0.3"); got != want {
		t.Errorf("c3 got %s, want %s", got, want)
	}
}
