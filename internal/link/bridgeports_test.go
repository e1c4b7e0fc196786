package link

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/plan"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestBridgeHoldsMaxBridgePorts: the kernel takes exactly
// plan.MaxBridgePorts ports on one bridge and refuses the next with
// EXFULL, so cnet's refusal comes at the kernel's limit, not before it
// and not after.
func TestBridgeHoldsMaxBridgePorts(t *testing.T) {
	testenv.RequirePrivileged(t)
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-max"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	// The peers live in a namespace of their own: deleting it deletes
	// every pair in one kernel batch, where deleting a thousand veths one
	// by one takes half a minute.
	testenv.Run(t, "ip", "netns", "add", "br-max-peers")
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "br-max-peers")
		testenv.Try("ip", "link", "del", "br-max")
	})
	peers, err := netns.GetFromName("br-max-peers")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "peers", &peers)
	master := br.Attrs().Index
	add := func(i int) error {
		return h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vm%d", i), MasterIndex: master},
			PeerName: fmt.Sprintf("vp%d", i), PeerNamespace: netlink.NsFd(peers)})
	}
	for i := range plan.MaxBridgePorts {
		if err := add(i); err != nil {
			t.Fatalf("port %d of %d: %v", i+1, plan.MaxBridgePorts, err)
		}
	}
	if err := add(plan.MaxBridgePorts); !errors.Is(err, unix.EXFULL) {
		t.Fatalf("port %d: got %v, want EXFULL (the bridge is full)", plan.MaxBridgePorts+1, err)
	}
}
