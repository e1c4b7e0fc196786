package cnet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/fakekernel"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/plan"
)

// TestRefusals walks every refusal of the core operations. Each must name
// the bad value, say what is accepted, wrap the right kind, and change
// neither the machine nor the state.
func TestRefusals(t *testing.T) {
	type tc struct {
		name  string
		stage func(k *fakekernel.Kernel)
		op    func(e *Engine) error
		kind  error
		says  []string // substrings the message must contain
	}
	ip := netip.MustParseAddr
	createNet := func(spec NetworkSpec) func(e *Engine) error {
		return func(e *Engine) error { _, err := e.CreateNetwork(spec); return err }
	}
	create := func(spec ContainerSpec) func(e *Engine) error {
		return func(e *Engine) error { _, err := e.CreateContainer(spec); return err }
	}
	publish := func(name string, specs ...string) func(e *Engine) error {
		return func(e *Engine) error { _, err := e.Publish(name, mustPorts(specs...)); return err }
	}
	cases := []tc{
		{"container name with slash", nil, create(ContainerSpec{Name: "a/b", Network: "base"}), ErrInvalid, []string{`"a/b"`, "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}"}},
		{"container name dotdot", nil, create(ContainerSpec{Name: "..", Network: "base"}), ErrInvalid, []string{`".."`, "starting with a letter or digit"}},
		{"container name too long", nil, create(ContainerSpec{Name: strings.Repeat("x", 64), Network: "base"}), ErrInvalid, []string{"1-63 characters"}},
		{"network name invalid", nil, createNet(NetworkSpec{Name: "-n"}), ErrInvalid, []string{`"-n"`}},
		{"subnet not masked", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("172.30.0.5/24")}), ErrInvalid, []string{"172.30.0.5/24", "did you mean 172.30.0.0/24"}},
		{"subnet too small", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("172.30.0.0/31")}), ErrInvalid, []string{"/8 to /30"}},
		{"subnet ipv6", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("fd00::/64")}), ErrInvalid, []string{"fd00::/64", "IPv4"}},
		{"subnet link-local", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("169.254.0.0/16")}), ErrInvalid, []string{"169.254.0.0/16", "link-local", "want a private range"}},
		{"subnet overlaps network", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("172.29.0.0/16")}), ErrConflict, []string{"172.29.0.0/16", "network base"}},
		{"subnet overlaps host route", func(k *fakekernel.Kernel) { k.HostRoutes = []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24")} },
			createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("192.168.0.0/16")}), ErrConflict, []string{"192.168.0.0/16", "192.168.7.0/24 already on the host"}},
		{"gateway outside subnet", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("172.30.0.0/24"), Gateway: ip("172.31.0.1")}), ErrInvalid, []string{"172.31.0.1", "inside 172.30.0.0/24"}},
		{"gateway is broadcast", nil, createNet(NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("172.30.0.0/24"), Gateway: ip("172.30.0.255")}), ErrInvalid, []string{"172.30.0.255", "172.30.0.1 to 172.30.0.254"}},
		{"bridge name too long", nil, createNet(NetworkSpec{Name: "n", Bridge: "a-very-long-bridge"}), ErrInvalid, []string{"a-very-long-bridge", "at most 15 bytes"}},
		{"bridge held by a foreign link", func(k *fakekernel.Kernel) { k.Links["br-lan"] = &fakekernel.Link{Kind: "bridge"} },
			createNet(NetworkSpec{Name: "n", Bridge: "br-lan"}), ErrConflict, []string{"br-lan", "cnet did not create"}},
		{"bridge used by another network", nil, createNet(NetworkSpec{Name: "n", Bridge: "cnet-base"}), ErrConflict, []string{"cnet-base", "network base"}},
		{"mtu out of range", nil, createNet(NetworkSpec{Name: "n", MTU: 70000}), ErrInvalid, []string{"70000", "68 to 65535"}},
		{"duplicate network", nil, createNet(NetworkSpec{Name: "base"}), ErrExists, []string{`"base"`}},
		{"duplicate container", nil, create(ContainerSpec{Name: "c1", Network: "base"}), ErrExists, []string{`"c1"`}},
		{"namespace made outside cnet", func(k *fakekernel.Kernel) { k.Netns["theirs"] = &fakekernel.Namespace{} },
			create(ContainerSpec{Name: "theirs", Network: "base"}), ErrExists, []string{"theirs", "cnet connect"}},
		{"unknown network", nil, create(ContainerSpec{Name: "c2", Network: "nope"}), ErrNotFound, []string{`"nope"`, "cnet network create nope"}},
		{"ip outside subnet", nil, create(ContainerSpec{Name: "c2", Network: "base", IP: ip("10.1.1.1")}), ErrInvalid, []string{"10.1.1.1", "inside 172.29.0.0/16"}},
		{"ip is the network address", nil, create(ContainerSpec{Name: "c2", Network: "base", IP: ip("172.29.0.0")}), ErrInvalid, []string{"172.29.0.0", "network address"}},
		{"ip is broadcast", nil, create(ContainerSpec{Name: "c2", Network: "base", IP: ip("172.29.255.255")}), ErrInvalid, []string{"172.29.255.255", "broadcast"}},
		{"ip is the gateway", nil, create(ContainerSpec{Name: "c2", Network: "base", IP: ip("172.29.0.1")}), ErrInvalid, []string{"172.29.0.1", "gateway"}},
		{"ip taken", nil, create(ContainerSpec{Name: "c2", Network: "base", IP: ip("172.29.0.2")}), ErrConflict, []string{"172.29.0.2", "container c1"}},
		{"ip live on the bridge, held by no container", stageByHand,
			create(ContainerSpec{Name: "c2", Network: "base", IP: ip("172.29.0.9")}), ErrConflict, []string{"172.29.0.9", "eth0 in namespace byhand", "bridge port vethhand", "live on bridge cnet-base"}},
		{"ip whose MAC is live on the bridge", stageByHand,
			create(ContainerSpec{Name: "c2", Network: "base", IP: ip("172.29.0.7")}), ErrConflict, []string{"172.29.0.7", "02:63:ac:1d:00:07", "bridge port tap0"}},
		{"create with a taken port changes nothing", nil, create(ContainerSpec{Name: "c2", Network: "base", Ports: mustPorts("8080:80")}), ErrConflict, []string{"8080:80/tcp"}},
		{"network full", nil, func(e *Engine) error {
			_, err := e.CreateContainer(ContainerSpec{Name: "c9", Network: "tiny"})
			return err
		}, ErrConflict, []string{"tiny", "10.99.0.0/30 is full"}},
		{"bridge full", nil, func(e *Engine) error {
			old := plan.MaxBridgePorts
			plan.MaxBridgePorts = 1 // base holds c1 already
			defer func() { plan.MaxBridgePorts = old }()
			_, err := e.CreateContainer(ContainerSpec{Name: "c3", Network: "base"})
			return err
		}, ErrConflict, []string{"network base", "at most 1 ports", "another network"}},
		{"port taken by another container", nil, publish("c1", "8080:80"), ErrConflict, []string{"8080:80/tcp", "container cx"}},
		{"0.0.0.0 against a specific address", nil, publish("c1", "9090:90"), ErrConflict, []string{"9090:90/tcp", "container cx (172.29.0.1:9090/tcp)"}},
		{"port asked twice", nil, publish("c1", "7000:70", "7000:71"), ErrConflict, []string{"7000:71/tcp", "asked for twice"}},
		{"port published already", nil, publish("cx", "8080:80"), ErrExists, []string{"8080:80/tcp", "already publishes"}},
		{"host port held by a process", func(k *fakekernel.Kernel) { k.Listening = map[string]string{"tcp 0.0.0.0:22": "sshd (pid 42)"} },
			publish("c1", "22:2222"), ErrConflict, []string{"0.0.0.0:22/tcp", "sshd (pid 42)"}},
		{"host address not on the host", nil, publish("c1", "192.0.2.99:80:80"), ErrInvalid, []string{"192.0.2.99", "assigned to this host"}},
		{"publish on an internal-only container", nil, publish("c0", "8080:80"), ErrConflict, []string{"no network with a path beyond its bridge"}},
		{"unpublish what is not published", nil, func(e *Engine) error { _, err := e.Unpublish("cx", mustPorts("1:1")); return err },
			ErrNotFound, []string{"1:1/tcp", "cx publishes"}},
		{"disconnect the ports' only network", nil, func(e *Engine) error { return e.Disconnect("base", "cx") },
			ErrBusy, []string{"cx", "unpublish them first"}},
		{"pool exhausted", func(k *fakekernel.Kernel) { k.HostRoutes = []netip.Prefix{netip.MustParsePrefix("10.89.0.0/16")} },
			createNet(NetworkSpec{Name: "n"}), ErrConflict, []string{"10.89.0.0/16", "pass --subnet"}},
		{"connect unknown container", nil, func(e *Engine) error {
			_, err := e.Connect(ConnectSpec{Network: "base", Container: "ghost", IP: netip.Addr{}})
			return err
		},
			ErrNotFound, []string{`"ghost"`, "ip netns add ghost"}},
		{"connect unknown network", nil, func(e *Engine) error {
			_, err := e.Connect(ConnectSpec{Network: "nope", Container: "c1", IP: netip.Addr{}})
			return err
		},
			ErrNotFound, []string{`"nope"`}},
		{"connect twice", nil, func(e *Engine) error {
			_, err := e.Connect(ConnectSpec{Network: "base", Container: "c1", IP: netip.Addr{}})
			return err
		},
			ErrExists, []string{"c1 on base"}},
		{"disconnect not connected", nil, func(e *Engine) error { return e.Disconnect("tiny", "c1") },
			ErrNotFound, []string{"not connected to network tiny"}},
		{"rm unknown, nothing removed", nil, func(e *Engine) error { return e.RemoveContainers([]string{"c1", "ghost"}, RemoveOptions{}) },
			ErrNotFound, []string{"ghost", "nothing was removed"}},
		{"network rm with containers", nil, func(e *Engine) error { return e.RemoveNetwork("base", false) },
			ErrBusy, []string{"base", "c1", "--force"}},
		{"network rm unknown", nil, func(e *Engine) error { return e.RemoveNetwork("nope", false) },
			ErrNotFound, []string{`"nope"`}},
	}
	for _, c := range cases {
		for _, dryRun := range []bool{false, true} {
			name := c.name
			if dryRun {
				name += " (dry run)"
			}
			t.Run(name, func(t *testing.T) { checkRefusal(t, c.stage, c.op, c.kind, c.says, dryRun) })
		}
	}
}

// stageByHand puts on base's bridge what cnet's state does not know: a
// veth whose peer, eth0 in namespace byhand, holds 172.29.0.9 (as a
// --dry-run script run by hand leaves it), and a tap behind which the
// MAC cnet would give 172.29.0.7 was learned.
func stageByHand(k *fakekernel.Kernel) {
	k.Netns["byhand"] = &fakekernel.Namespace{Links: map[string]netip.Prefix{"eth0": netip.MustParsePrefix("172.29.0.9/16")}}
	k.Links["vethhand"] = &fakekernel.Link{Kind: "veth", Master: "cnet-base", PeerNS: "byhand", Peer: "eth0", PeerMAC: "02:63:ac:1d:00:09"}
	k.Links["tap0"] = &fakekernel.Link{Kind: "tap", Master: "cnet-base",
		Learned: []model.Holder{{MAC: "02:63:ac:1d:00:07", Who: "a host behind bridge port tap0, which is not a cnet endpoint"}}}
}

// checkRefusal stages the base machine, runs op (as a dry run, if asked)
// and requires the refusal, with neither machine nor state changed.
func checkRefusal(t *testing.T, stage func(k *fakekernel.Kernel), op func(e *Engine) error, kind error, says []string, dryRun bool) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "base", Subnet: netip.MustParsePrefix("172.29.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateNetwork(NetworkSpec{Name: "tiny", Subnet: netip.MustParsePrefix("10.99.0.0/30"), Internal: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "c1", Network: "base"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "c0", Network: "tiny"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "cx", Network: "base", Ports: mustPorts("8080:80", "172.29.0.1:9090:90")}); err != nil {
		t.Fatal(err)
	}
	if stage != nil {
		stage(k)
	}
	k.Lines()
	before, beforeState := k.Snapshot(), dumpState(t, e)
	run := e
	var previews *[]*Preview
	if dryRun {
		run, previews = dry(e)
	}
	err := op(run)
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
	if previews != nil && len(*previews) > 0 {
		t.Errorf("a refused dry run printed a preview: %+v", (*previews)[0])
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not mention %q", err, s)
		}
	}
	if lines := k.Lines(); len(lines) > 0 {
		t.Errorf("refusal changed the machine: %v", lines)
	}
	if after := k.Snapshot(); after != before {
		t.Errorf("machine changed:\n%s\nwant:\n%s", after, before)
	}
	if after := dumpState(t, e); after != beforeState {
		t.Errorf("state changed:\n%s\nwant:\n%s", after, beforeState)
	}
}
