package cnet

// Tier 3: the engine against the real kernel, inside the test sandbox.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// cnetBin is the cnet command, built for the name server (`cnet __dns`).
var cnetBin string

func TestMain(m *testing.M) {
	testenv.MainBuilding(m, testenv.Binary{Pkg: "./cmd/cnet", To: &cnetBin})
}

// realEngine returns an engine on the sandbox's kernel with a fresh state
// dir. At cleanup it removes whatever the test left and checks that the
// sandbox is back to how the test found it.
func realEngine(t *testing.T) *Engine {
	t.Helper()
	testenv.RequirePrivileged(t)
	before := testenv.Snapshot(t)
	opts := Root(t.TempDir())
	opts.DNSCommand = []string{cnetBin, "__dns"}
	e, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Notify = func(msg string) { t.Log("notify: " + msg) }
	t.Cleanup(func() {
		e.opts.Hook = nil
		cs, _ := e.Containers()
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		if len(names) > 0 {
			if err := e.RemoveContainers(names, RemoveOptions{Force: true, Grace: time.Second}); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		nets, _ := e.Networks()
		for _, n := range nets {
			if err := e.RemoveNetwork(n.Name, true); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		testenv.WaitSnapshot(t, before)
	})
	return e
}

// serveIn starts an HTTP server on :port inside the namespace at path; its
// handler answers with the caller's address.
func serveIn(t *testing.T, path string, port int) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(path, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewEncoder(w).Encode(map[string]string{"remote": r.RemoteAddr, "path": r.URL.Path}); err != nil {
			t.Errorf("echo: %v", err)
		}
	})}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("echo server: %v", err)
		}
	}()
	t.Cleanup(func() { testenv.Close(t, "srv", srv) })
}

func inNs(name string, argv ...string) (string, error) {
	return testenv.Try("ip", append([]string{"netns", "exec", name}, argv...)...)
}

func pingOK(t *testing.T, from, to string) {
	t.Helper()
	argv := []string{"ping", "-c1", "-W2", to}
	var out string
	var err error
	if from == "host" {
		out, err = testenv.Try(argv[0], argv[1:]...)
	} else {
		out, err = inNs(from, argv...)
	}
	if err != nil {
		t.Errorf("ping %s -> %s failed: %v\n%s", from, to, err, out)
	}
}

func pingFails(t *testing.T, from, to string) {
	t.Helper()
	if out, err := inNs(from, "ping", "-c1", "-W1", to); err == nil {
		t.Errorf("ping %s -> %s succeeded, want it blocked\n%s", from, to, out)
	}
}

// TestSeedWalkthrough does the seed's two-container setup through the
// library: ping in every direction, HTTP from the other container and
// from the host, and resolv.conf.
func TestSeedWalkthrough(t *testing.T) {
	e := realEngine(t)
	n, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24"), Bridge: "cont-br0"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Gateway.String() != "172.18.0.1" {
		t.Errorf("gateway = %s, want 172.18.0.1", n.Gateway)
	}
	c1, err := e.CreateContainer(ContainerSpec{Name: "container-1", Network: "seed"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := e.CreateContainer(ContainerSpec{Name: "container-2", Network: "seed", DNS: []netip.Addr{netip.MustParseAddr("1.1.1.1")}})
	if err != nil {
		t.Fatal(err)
	}
	ip1, ip2 := c1.Endpoints[0].IP().String(), c2.Endpoints[0].IP().String()
	if ip1 != "172.18.0.2" || ip2 != "172.18.0.3" {
		t.Fatalf("addresses %s %s, want 172.18.0.2 and 172.18.0.3", ip1, ip2)
	}
	// The kernel agrees: bridge, addresses, veth master, routes, lo up.
	link := testenv.Run(t, "ip", "-d", "link", "show", c1.Endpoints[0].HostInterface)
	if !strings.Contains(link, "master cont-br0") || !strings.Contains(link, "state UP") {
		t.Errorf("host veth not up on cont-br0:\n%s", link)
	}
	if out, _ := inNs("container-1", "ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "172.18.0.2/24") {
		t.Errorf("eth0 lacks 172.18.0.2/24:\n%s", out)
	}
	if out, _ := inNs("container-1", "ip", "route"); !strings.Contains(out, "default via 172.18.0.1 dev eth0") {
		t.Errorf("no default route via the gateway:\n%s", out)
	}
	if out, _ := inNs("container-1", "ip", "link", "show", "lo"); !strings.Contains(out, "UP") {
		t.Errorf("lo is not up:\n%s", out)
	}
	if out := testenv.Run(t, "ip", "-4", "addr", "show", "cont-br0"); !strings.Contains(out, "172.18.0.1/24") {
		t.Errorf("bridge lacks the gateway:\n%s", out)
	}
	for _, p := range [][2]string{{"host", ip1}, {"host", ip2}, {"container-1", ip2}, {"container-2", ip1}, {"container-1", "172.18.0.1"}} {
		pingOK(t, p[0], p[1])
	}
	serveIn(t, e.NetnsPath("container-2"), 8000)
	out, err := inNs("container-1", "curl", "-s", "--max-time", "5", "http://"+ip2+":8000/echo")
	if err != nil || !strings.Contains(out, `"remote":"172.18.0.2:`) {
		t.Errorf("curl from container-1: %v %s", err, out)
	}
	out, err = testenv.Try("curl", "-s", "--max-time", "5", "http://"+ip2+":8000/echo")
	if err != nil || !strings.Contains(out, `"remote":"172.18.0.1:`) {
		t.Errorf("curl from the host: %v %s", err, out)
	}
	resolv, _ := os.ReadFile("/etc/netns/container-2/resolv.conf")
	if !strings.Contains(string(resolv), "nameserver 1.1.1.1\n") {
		t.Errorf("resolv.conf of container-2:\n%s", resolv)
	}
	hosts, _ := os.ReadFile("/etc/netns/container-1/hosts")
	if !strings.Contains(string(hosts), "172.18.0.2\tcontainer-1\n") {
		t.Errorf("hosts of container-1:\n%s", hosts)
	}
	// ip netns exec sees the container's files.
	if out, _ := inNs("container-2", "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 1.1.1.1") {
		t.Errorf("ip netns exec does not see the container's resolv.conf:\n%s", out)
	}
}

// internet wires a namespace "inet" to the sandbox host with a veth: the
// host is 198.51.100.254, the far end 198.51.100.1, which has no route
// back to any container subnet. Its HTTP server reports the source address.
func internet(t *testing.T) {
	t.Helper()
	testenv.Run(t, "ip", "netns", "add", "inet")
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "up0")
		testenv.Try("ip", "netns", "del", "inet")
	})
	testenv.Run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "wan0", "netns", "inet")
	testenv.Run(t, "ip", "addr", "add", "198.51.100.254/24", "dev", "up0")
	testenv.Run(t, "ip", "link", "set", "up0", "up")
	testenv.Run(t, "ip", "-n", "inet", "addr", "add", "198.51.100.1/24", "dev", "wan0")
	testenv.Run(t, "ip", "-n", "inet", "link", "set", "wan0", "up")
	testenv.Run(t, "ip", "-n", "inet", "link", "set", "lo", "up")
	serveIn(t, "/run/netns/inet", 80)
}

// TestMasquerade: a container reaches a host beyond that has no route
// back, so the reply can only come because the source was rewritten to
// the host's address.
func TestMasquerade(t *testing.T) {
	e := realEngine(t)
	internet(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "out", Subnet: mustPrefix("172.20.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "client", Network: "out"}); err != nil {
		t.Fatal(err)
	}
	out, err := inNs("client", "curl", "-s", "--max-time", "5", "http://198.51.100.1/")
	if err != nil || !strings.Contains(out, `"remote":"198.51.100.254:`) {
		t.Fatalf("curl beyond the host: %v %q, want it seen from 198.51.100.254", err, out)
	}
	// Proof the rule is what does it: without the table, no reply comes back.
	testenv.Run(t, "nft", "delete", "table", "inet", "cnet")
	if out, err := inNs("client", "curl", "-s", "--max-time", "2", "http://198.51.100.1/"); err == nil {
		t.Errorf("reached beyond the host without masquerade: %s", out)
	}
	if r, err := e.GC(false); err != nil || len(r.Actions) != 1 {
		t.Fatalf("gc after the table was deleted: %v %+v", err, r)
	}
	if out, err := inNs("client", "curl", "-s", "--max-time", "5", "http://198.51.100.1/"); err != nil {
		t.Errorf("gc did not bring masquerade back: %v %s", err, out)
	}
}

// TestIsolationAndInternal: nothing is forwarded between two networks in
// either direction, even with routes that point at each other; an
// internal network reaches nothing beyond its bridge and nothing reaches in.
func TestIsolationAndInternal(t *testing.T) {
	e := realEngine(t)
	internet(t)
	for _, s := range []NetworkSpec{
		{Name: "red", Subnet: mustPrefix("172.21.0.0/24")},
		{Name: "blue", Subnet: mustPrefix("172.22.0.0/24")},
		{Name: "vault", Subnet: mustPrefix("172.23.0.0/24"), Internal: true},
	} {
		if _, err := e.CreateNetwork(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []ContainerSpec{{Name: "r", Network: "red"}, {Name: "b", Network: "blue"}, {Name: "v", Network: "vault"}, {Name: "v2", Network: "vault"}} {
		if _, err := e.CreateContainer(c); err != nil {
			t.Fatal(err)
		}
	}
	pingOK(t, "r", "172.21.0.1")
	pingOK(t, "b", "172.22.0.1")
	pingFails(t, "r", "172.22.0.2")
	pingFails(t, "b", "172.21.0.2")
	// Routes straight at the other network change nothing.
	testenv.Run(t, "ip", "-n", "r", "route", "add", "172.22.0.0/24", "via", "172.21.0.1")
	pingFails(t, "r", "172.22.0.2")
	// Internal: its members talk, the host reaches it, nothing else does.
	pingOK(t, "v", "172.23.0.3")
	pingOK(t, "host", "172.23.0.2")
	if out, err := inNs("v", "ip", "route"); err != nil || strings.Contains(out, "default") {
		t.Errorf("internal container has a default route: %s", out)
	}
	testenv.Run(t, "ip", "-n", "v", "route", "add", "default", "via", "172.23.0.1")
	pingFails(t, "v", "198.51.100.1")
	pingFails(t, "v", "172.21.0.2")
	pingFails(t, "r", "172.23.0.2")
	testenv.Run(t, "ip", "-n", "inet", "route", "add", "172.23.0.0/24", "via", "198.51.100.254")
	pingFails(t, "inet", "172.23.0.2")
	// The LAN side cannot reach an unpublished container even with a route.
	testenv.Run(t, "ip", "-n", "inet", "route", "add", "172.21.0.0/24", "via", "198.51.100.254")
	pingFails(t, "inet", "172.21.0.2")
}

// TestRollbackRealKernel injects a failure after every step of every
// operation and checks that links, addresses, routes, namespaces,
// /etc/netns and the ruleset are exactly as before.
func TestRollbackRealKernel(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, sc := range scenarios {
		var steps int
		t.Run(sc.name+"/count", func(t *testing.T) { steps = stepsOf(t, realEngine(t), sc) })
		for fail := 0; fail <= steps; fail++ {
			t.Run(fmt.Sprintf("%s/after-step-%d", sc.name, fail), func(t *testing.T) {
				e := realEngine(t)
				if sc.setup != nil {
					if err := sc.setup(e); err != nil {
						t.Fatal(err)
					}
				}
				before := testenv.Snapshot(t)
				e.opts.Hook = func(op string, step int) error {
					if step == fail {
						return errInjected
					}
					return nil
				}
				err := sc.op(e)
				if !errors.Is(err, errInjected) {
					t.Fatalf("got %v, want the injected failure", err)
				}
				if errors.Is(err, ErrNeedsRepair) {
					e.opts.Hook = nil
					if _, err := e.GC(false); err != nil {
						t.Fatal(err)
					}
					return // finished forward; cleanup checks nothing leaked
				}
				testenv.WaitSnapshot(t, before)
			})
		}
	}
}

// TestNetworkRmForceBatch: `network rm --force` deletes the endpoints of
// every attached container as one group, and nothing else: a veth someone
// else put on the network's bridge and a link of their own stay, and no
// link is left in a group.
func TestNetworkRmForceBatch(t *testing.T) {
	e := realEngine(t)
	n, err := e.CreateNetwork(NetworkSpec{Name: "wide", Subnet: mustPrefix("172.18.0.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	var hostIfs []string
	for _, name := range []string{"a", "b", "c", "d"} {
		c, err := e.CreateContainer(ContainerSpec{Name: name, Network: "wide"})
		if err != nil {
			t.Fatal(err)
		}
		hostIfs = append(hostIfs, c.Endpoints[0].HostInterface)
	}
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "theirs0")
		testenv.Try("ip", "link", "del", "other0")
	})
	testenv.Run(t, "ip", "link", "add", "theirs0", "type", "veth", "peer", "name", "theirs1")
	testenv.Run(t, "ip", "link", "set", "theirs0", "master", n.Bridge, "up")
	testenv.Run(t, "ip", "link", "add", "other0", "type", "bridge")
	if err := e.RemoveNetwork("wide", true); err != nil {
		t.Fatal(err)
	}
	for _, h := range hostIfs {
		if _, err := testenv.Try("ip", "link", "show", "dev", h); err == nil {
			t.Errorf("host veth %s is still there", h)
		}
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if out, _ := inNs(name, "ip", "-o", "link"); strings.Contains(out, "eth0") {
			t.Errorf("%s still has eth0:\n%s", name, out)
		}
	}
	for _, l := range []string{"theirs0", "theirs1", "other0"} {
		if _, err := testenv.Try("ip", "link", "show", "dev", l); err != nil {
			t.Errorf("%s, not cnet's, was deleted", l)
		}
	}
	var links []struct {
		Ifname string `json:"ifname"`
		Group  string `json:"group"`
	}
	if err := json.Unmarshal([]byte(testenv.Run(t, "ip", "-j", "link", "show")), &links); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Group != "default" {
			t.Errorf("%s is left in group %s", l.Ifname, l.Group)
		}
	}
}

// TestAdoptNamespace: a namespace made with `ip netns add` is connected,
// used, and left standing (with its own files) when cnet removes it.
func TestAdoptNamespace(t *testing.T) {
	e := realEngine(t)
	testenv.Run(t, "ip", "netns", "add", "theirs")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "theirs") })
	if err := os.MkdirAll("/etc/netns/theirs", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/netns/theirs/resolv.conf", []byte("nameserver 9.9.9.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Logged(t, `os.RemoveAll("/etc/netns/theirs")`, os.RemoveAll("/etc/netns/theirs")) })
	if _, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Connect(ConnectSpec{Network: "seed", Container: "theirs", IP: netip.MustParseAddr("172.18.0.9")})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Adopted || c.Endpoints[0].Interface != "eth0" {
		t.Errorf("got %+v, want adopted with eth0", c)
	}
	pingOK(t, "host", "172.18.0.9")
	if err := e.RemoveContainers([]string{"theirs"}, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if netns.Stat("/run/netns", "theirs") != netns.Bound {
		t.Fatal("cnet rm deleted a namespace it did not create")
	}
	if out, _ := inNs("theirs", "ip", "-br", "link"); strings.Contains(out, "eth0") {
		t.Errorf("endpoint left in the adopted namespace:\n%s", out)
	}
	if b, _ := os.ReadFile("/etc/netns/theirs/resolv.conf"); string(b) != "nameserver 9.9.9.9\n" {
		t.Errorf("the namespace's own resolv.conf was changed: %q", b)
	}
	if _, err := os.Stat("/etc/netns/theirs/hosts"); !os.IsNotExist(err) {
		t.Errorf("cnet's hosts file left behind: %v", err)
	}
}

// TestGCRepairsAndOrphans: gc re-creates a deleted bridge and re-attaches
// endpoints, releases a container whose namespace was deleted by hand,
// removes this instance's orphans and leaves everything else alone.
func TestGCRepairsAndOrphans(t *testing.T) {
	e := realEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	withoutContainers := testenv.Snapshot(t)
	for _, n := range []string{"a", "b"} {
		if _, err := e.CreateContainer(ContainerSpec{Name: n, Network: "seed"}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Run(t, "ip", "link", "del", "cnet-seed")
	testenv.Run(t, "ip", "netns", "del", "b")
	// An orphan of ours, one of another cnet instance, and a stranger.
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "vethother")
		testenv.Try("ip", "link", "del", "stranger")
	})
	testenv.Run(t, "ip", "link", "add", "vethorphan", "type", "bridge")
	testenv.Run(t, "ip", "link", "set", "vethorphan", "alias", "cnet/"+e.instance+"/ep/gone/seed")
	testenv.Run(t, "ip", "link", "add", "vethother", "type", "bridge")
	testenv.Run(t, "ip", "link", "set", "vethother", "alias", "cnet/ffffff/ep/x/y")
	testenv.Run(t, "ip", "link", "add", "stranger", "type", "bridge")
	dry, err := e.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Actions) == 0 {
		t.Fatal("dry run found nothing")
	}
	r, err := e.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	var did []string
	for _, a := range r.Actions {
		if a.Error != "" {
			t.Errorf("gc failed: %+v", a)
		}
		did = append(did, a.Action+" "+a.Object)
	}
	got := strings.Join(did, "\n")
	for _, want := range []string{"repair network seed", "repair endpoint a on seed", "release container b", "remove link vethorphan"} {
		if !strings.Contains(got, want) {
			t.Errorf("gc did not %q; it did:\n%s", want, got)
		}
	}
	if len(dry.Actions) != len(r.Actions) {
		t.Errorf("dry run listed %d actions, gc did %d", len(dry.Actions), len(r.Actions))
	}
	for _, l := range []string{"vethother", "stranger"} {
		if _, err := testenv.Try("ip", "link", "show", l); err != nil {
			t.Errorf("gc removed %s, which is not this instance's", l)
		}
	}
	pingOK(t, "host", "172.18.0.2")
	if again, _ := e.GC(false); len(again.Actions) != 0 {
		t.Errorf("second gc still acts: %+v", again.Actions)
	}
	// With the containers gone, the network is exactly as it was made.
	testenv.Run(t, "ip", "link", "del", "vethother")
	testenv.Run(t, "ip", "link", "del", "stranger")
	if err := e.RemoveContainers([]string{"a"}, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitSnapshot(t, withoutContainers)
}

// TestReboot: after the boot ID changes (namespaces and links gone), the
// first command re-creates networks and releases containers.
func TestReboot(t *testing.T) {
	e := realEngine(t)
	boot := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(boot, []byte("boot-a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.opts.bootIDPath = boot
	if _, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "seed", Ports: []PortMapping{{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, Port: 80}}}); err != nil {
		t.Fatal(err)
	}
	// "Reboot": the kernel forgets everything, the disk does not.
	testenv.Run(t, "ip", "netns", "del", "a")
	testenv.Run(t, "ip", "link", "del", "cnet-seed")
	testenv.Run(t, "nft", "flush", "ruleset")
	if err := os.WriteFile(boot, []byte("boot-b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A read restores nothing: it lists committed state and says the
	// reboot is pending.
	var notes []string
	e.opts.Notify = func(msg string) { notes = append(notes, msg) }
	cs, err := e.Containers()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != "a" {
		t.Errorf("a read after the reboot lists %+v, want a, as committed", cs)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "the machine rebooted since cnet last ran: the next change or `cnet gc` re-creates") {
		t.Errorf("notices %q do not say the reboot is pending", notes)
	}
	if _, err := testenv.Try("ip", "link", "show", "cnet-seed"); err == nil {
		t.Error("a read re-created the bridge")
	}
	// The next change restores first. The address and the port are free
	// again.
	c, err := e.CreateContainer(ContainerSpec{Name: "a2", Network: "seed", Ports: []PortMapping{{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, Port: 80}}})
	if err != nil || c.Endpoints[0].IP().String() != "172.18.0.2" {
		t.Errorf("got %v %+v, want 172.18.0.2 reused", err, c)
	}
	if cs, err := e.Containers(); err != nil || len(cs) != 1 || cs[0].Name != "a2" {
		t.Errorf("after the restore: %v %+v, want a2 alone (a did not survive the reboot)", err, cs)
	}
	if out, err := testenv.Try("ip", "-4", "addr", "show", "cnet-seed"); err != nil || !strings.Contains(out, "172.18.0.1/24") {
		t.Errorf("bridge not back after reboot: %v %s", err, out)
	}
	if out, _ := testenv.Try("nft", "list", "table", "inet", "cnet"); !strings.Contains(out, "172.18.0.0/24") {
		t.Errorf("firewall not back after reboot:\n%s", out)
	}
	// Nothing is left for gc: state and machine agree.
	if r, err := e.GC(true); err != nil || len(r.Actions) != 0 {
		t.Errorf("after the reboot gc would act: %v %+v", err, r)
	}
}

// TestRealRefusals: refusals that depend on the live kernel change nothing.
func TestRealRefusals(t *testing.T) {
	e := realEngine(t)
	t.Cleanup(func() {
		testenv.Try("ip", "link", "del", "br-lan")
		testenv.Try("ip", "link", "del", "uplink")
	})
	testenv.Run(t, "ip", "link", "add", "br-lan", "type", "bridge")
	testenv.Run(t, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer")
	testenv.Run(t, "ip", "addr", "add", "192.168.50.10/24", "dev", "uplink")
	testenv.Run(t, "ip", "link", "set", "uplink", "up")
	testenv.Run(t, "ip", "link", "set", "uplink-peer", "up")
	testenv.Run(t, "ip", "route", "add", "10.44.0.0/16", "via", "192.168.50.1")
	before := testenv.Snapshot(t)
	cases := []struct {
		spec NetworkSpec
		kind error
		says string
	}{
		{NetworkSpec{Name: "n", Bridge: "br-lan"}, ErrConflict, "br-lan"},
		{NetworkSpec{Name: "n", Subnet: mustPrefix("192.168.50.0/25")}, ErrConflict, "192.168.50.0/24 already on the host"},
		{NetworkSpec{Name: "n", Subnet: mustPrefix("10.44.8.0/24")}, ErrConflict, "10.44.0.0/16 already on the host"},
	}
	for _, c := range cases {
		_, err := e.CreateNetwork(c.spec)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: got %v, want %v mentioning %q", c.spec, err, c.kind, c.says)
		}
	}
	if after := testenv.Snapshot(t); after != before {
		t.Errorf("refusals changed the sandbox:\n%s\nwant:\n%s", after, before)
	}
	// The pool skips what the host uses.
	testenv.Run(t, "ip", "route", "add", "10.89.0.0/24", "via", "192.168.50.1")
	n, err := e.CreateNetwork(NetworkSpec{Name: "auto"})
	if err != nil || n.Subnet.String() != "10.89.1.0/24" {
		t.Errorf("got %v %+v, want 10.89.1.0/24", err, n)
	}
}

// TestIntraNetworkSkipsNftables: traffic between two containers on one
// network is switched by the bridge. Without br_netfilter's
// bridge-nf-call-iptables/ip6tables it never reaches cnet's chains; with
// them (built into some kernels, on by default) the forward hook sees
// bridged packets, and cnet's first rule accepts them with one set lookup:
// counters placed after that rule stay at zero. The counters count only
// the containers' packets. Traffic routed between
// networks moves the counters, which shows the probe works.
func TestIntraNetworkSkipsNftables(t *testing.T) {
	e := realEngine(t)
	sysctls := []string{"/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables"}
	for _, p := range sysctls {
		old, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("this kernel has no br_netfilter sysctls (%v): the test covers both of their settings", err)
		}
		t.Cleanup(func() { testenv.Logged(t, "os.WriteFile(p, old, 0o644)", os.WriteFile(p, old, 0o644)) })
	}
	if _, err := e.CreateNetwork(NetworkSpec{Name: "flat", Subnet: mustPrefix("172.24.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateNetwork(NetworkSpec{Name: "other", Subnet: mustPrefix("172.25.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []ContainerSpec{{Name: "a", Network: "flat"}, {Name: "b", Network: "flat"}, {Name: "c", Network: "other"}} {
		if _, err := e.CreateContainer(c); err != nil {
			t.Fatal(err)
		}
	}
	serveIn(t, e.NetnsPath("b"), 8000)
	counts := func() []string {
		var out []string
		for _, l := range strings.Split(testenv.Run(t, "nft", "list", "table", "inet", "cnet"), "\n") {
			if i := strings.Index(l, "counter packets "); i >= 0 {
				out = append(out, strings.Fields(l[i:])[2])
			}
		}
		return out
	}
	for _, mode := range []struct {
		sysctl string
		probes [][]string // nft rule positions for the counters
	}{
		{"0", [][]string{{"insert", "rule", "inet", "cnet", "forward"}, {"insert", "rule", "inet", "cnet", "postrouting"}}},
		{"1", [][]string{{"add", "rule", "inet", "cnet", "forward", "index", "0"}}},
	} {
		for _, p := range sysctls {
			if err := os.WriteFile(p, []byte(mode.sysctl), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Run(t, "nft", "delete", "table", "inet", "cnet")
		if _, err := e.GC(false); err != nil { // rebuilds the table, without counters
			t.Fatal(err)
		}
		for _, probe := range mode.probes {
			// Only the containers' own packets: the host's IPv6 chatter on
			// the bridge (router solicitations, MLD reports) leaves
			// through postrouting whenever its timers fire.
			testenv.Run(t, "nft", append(probe, "ip", "saddr", "{", "172.24.0.2,", "172.24.0.3", "}", "counter")...)
		}
		for i := 0; i < 3; i++ {
			pingOK(t, "a", "172.24.0.3")
		}
		if out, err := inNs("a", "curl", "-s", "--max-time", "5", "http://172.24.0.3:8000/"); err != nil {
			t.Fatalf("curl a -> b: %v %s", err, out)
		}
		for _, c := range counts() {
			if c != "0" {
				t.Errorf("bridge-nf-call=%s: intra-network traffic reached cnet's probes %v:\n%s", mode.sysctl, mode.probes,
					testenv.Run(t, "nft", "list", "table", "inet", "cnet"))
				break
			}
		}
		pingFails(t, "a", "172.25.0.2")
		if c := counts(); c[0] == "0" {
			t.Errorf("bridge-nf-call=%s: routed traffic did not reach the first probe: %v", mode.sysctl, c)
		}
	}
}
