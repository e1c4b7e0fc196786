package cnet

// Tier 2: the engine against internal/fakekernel, without root.

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/fakekernel"
	"github.com/cnetdev/cnet/internal/state"
	"github.com/cnetdev/cnet/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// fakeEngine returns an engine on a fresh state dir and a fake machine.
func fakeEngine(t *testing.T) (*Engine, *fakekernel.Kernel) {
	t.Helper()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Open(Options{StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"),
		hostResolv: resolv, systemdResolv: filepath.Join(dir, "none"), bootIDPath: filepath.Join(dir, "boot_id")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "boot_id"), []byte("boot-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := fakekernel.New()
	e.newKernel = func() machine { return k }
	e.requireRoot = false
	e.instance = "test01" // stable marks for golden files
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.now = func() time.Time { return clock }
	return e, k
}

// dumpState renders committed state for before/after comparisons.
func dumpState(t *testing.T, e *Engine) string {
	t.Helper()
	var b strings.Builder
	st, err := state.Open(e.opts.StateDir, e.opts.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "st", st)
	if err := st.View(func(tx *state.Tx) error {
		nets, _ := tx.Networks()
		for _, n := range nets {
			fmt.Fprintf(&b, "network %+v attached=%v\n", *n, tx.Attached(n.Name))
		}
		cs, _ := tx.Containers()
		for _, c := range cs {
			fmt.Fprintf(&b, "container %s adopted=%v dns=%v lab=%q forwarding=%v\n", c.Name, c.Adopted, c.DNS, c.Lab, c.Forwarding)
			for _, ep := range c.Endpoints {
				fmt.Fprintf(&b, "  %+v\n", ep)
			}
			for _, l := range c.Links {
				fmt.Fprintf(&b, "  link %+v\n", l)
			}
			for _, r := range c.Routes {
				fmt.Fprintf(&b, "  route %+v\n", r)
			}
		}
		ins, _ := tx.Intents()
		fmt.Fprintf(&b, "intents=%d\n", len(ins))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func goldenLines(t *testing.T, name string, lines []string) {
	t.Helper()
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("commands differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustPorts(specs ...string) []PortMapping {
	var out []PortMapping
	for _, s := range specs {
		ms, err := ParsePorts(s)
		if err != nil {
			panic(err)
		}
		out = append(out, ms...)
	}
	return out
}

// TestPortsGolden walks the life of published ports.
func TestPortsGolden(t *testing.T) {
	e, k := fakeEngine(t)
	var lines []string
	step := func(title string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		lines = append(lines, "# "+title)
		lines = append(lines, k.Lines()...)
	}
	_, err := e.CreateNetwork(NetworkSpec{Name: "front", Subnet: mustPrefix("172.18.0.0/24")})
	step("cnet network create front --subnet 172.18.0.0/24", err)
	_, err = e.CreateNetwork(NetworkSpec{Name: "back", Subnet: mustPrefix("172.19.0.0/24")})
	step("cnet network create back --subnet 172.19.0.0/24", err)
	c, err := e.CreateContainer(ContainerSpec{Name: "web", Network: "front", Ports: mustPorts("8080:80", "127.0.0.1:5353:53/udp")})
	step("cnet create web --network front -p 8080:80 -p 127.0.0.1:5353:53/udp", err)
	if got := fmt.Sprint(c.Ports); got != "[0.0.0.0:8080->80/tcp 127.0.0.1:5353->53/udp]" {
		t.Errorf("ports = %s", got)
	}
	_, err = e.Publish("web", mustPorts("9000-9001:90-91"))
	step("cnet publish web 9000-9001:90-91", err)
	_, err = e.Unpublish("web", mustPorts("127.0.0.1:5353:53/udp"))
	step("cnet unpublish web 127.0.0.1:5353:53/udp", err)
	_, err = e.Connect(ConnectSpec{Network: "back", Container: "web", IP: netip.Addr{}})
	step("cnet connect back web", err)
	step("cnet disconnect front web", e.Disconnect("front", "web"))
	cs, _ := e.Containers()
	if got := fmt.Sprint(cs[0].Ports); got != "[0.0.0.0:8080->80/tcp 0.0.0.0:9000->90/tcp 0.0.0.0:9001->91/tcp]" || cs[0].Ports[0].Address.String() != "172.19.0.2" {
		t.Errorf("after moving to back: %+v", cs[0].Ports)
	}
	step("cnet rm web", e.RemoveContainers([]string{"web"}, RemoveOptions{}))
	goldenLines(t, "ports.golden", lines)
}

// TestHairpinFollowsPorts: hairpin goes on with a container's first
// published port and off with its last, and no publish or unpublish in
// between touches it.
func TestHairpinFollowsPorts(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "front", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "web", Network: "front"}); err != nil {
		t.Fatal(err)
	}
	k.Lines()
	hairpin := func(what string, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := ""
		for _, l := range k.Lines() {
			if strings.Contains(l, "hairpin") {
				got += l
			}
		}
		if !strings.Contains(got, want) || (want == "" && got != "") {
			t.Errorf("%s: hairpin lines %q, want %q", what, got, want)
		}
	}
	_, err := e.Publish("web", mustPorts("9000-9001:90-91"))
	hairpin("first publish", err, "hairpin on")
	_, err = e.Publish("web", mustPorts("9002:92"))
	hairpin("second publish", err, "")
	_, err = e.Unpublish("web", mustPorts("9000-9001:90-91"))
	hairpin("unpublish with one left", err, "")
	_, err = e.Unpublish("web", mustPorts("9002:92"))
	hairpin("unpublish of the last", err, "hairpin off")
}

// TestSeedGolden walks the seed's scenario and compares every command the
// engine ran with a golden file.
func TestSeedGolden(t *testing.T) {
	e, k := fakeEngine(t)
	var lines []string
	step := func(title string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		lines = append(lines, "# "+title)
		lines = append(lines, k.Lines()...)
	}
	_, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24"), Bridge: "cont-br0"})
	step("cnet network create seed --subnet 172.18.0.0/24 --bridge cont-br0", err)
	c1, err := e.CreateContainer(ContainerSpec{Name: "container-1", Network: "seed"})
	step("cnet create container-1 --network seed", err)
	c2, err := e.CreateContainer(ContainerSpec{Name: "container-2", Network: "seed"})
	step("cnet create container-2 --network seed", err)
	if got := c1.Endpoints[0].Address.String(); got != "172.18.0.2/24" {
		t.Errorf("container-1 address = %s, want 172.18.0.2/24", got)
	}
	if got := c2.Endpoints[0].Address.String(); got != "172.18.0.3/24" {
		t.Errorf("container-2 address = %s, want 172.18.0.3/24", got)
	}
	_, err = e.CreateNetwork(NetworkSpec{Name: "back", Internal: true})
	step("cnet network create back --internal", err)
	_, err = e.Connect(ConnectSpec{Network: "back", Container: "container-2", IP: netip.Addr{}})
	step("cnet connect back container-2", err)
	step("cnet disconnect seed container-2", e.Disconnect("seed", "container-2"))
	step("cnet rm container-1 container-2", e.RemoveContainers([]string{"container-1", "container-2"}, RemoveOptions{}))
	step("cnet network rm back", e.RemoveNetwork("back", false))
	step("cnet network rm seed", e.RemoveNetwork("seed", false))
	goldenLines(t, "seed.golden", lines)
	if snap := k.Snapshot(); snap != "firewall:\nforwarding=true\ndns: stopped\n" {
		t.Errorf("machine not empty after teardown:\n%s", snap)
	}
}

// TestDefaultNetworkOnFirstUse: create without --network makes "cnet"
// (bridge cnet0) from the pool, once.
func TestDefaultNetworkOnFirstUse(t *testing.T) {
	e, k := fakeEngine(t)
	k.HostRoutes = []netip.Prefix{mustPrefix("10.89.0.0/24")} // the pool's first /24 is in use on the host
	a, err := e.CreateContainer(ContainerSpec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Endpoints[0]; got.Network != "cnet" || got.Bridge != "cnet0" || got.Address.String() != "10.89.1.2/24" {
		t.Errorf("got %+v, want network cnet on cnet0 with 10.89.1.2/24", got)
	}
	b, err := e.CreateContainer(ContainerSpec{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Endpoints[0].Address.String(); got != "10.89.1.3/24" {
		t.Errorf("second container got %s, want 10.89.1.3/24", got)
	}
	nets, _ := e.Networks()
	if len(nets) != 1 {
		t.Errorf("got %d networks, want only the default one", len(nets))
	}
}

// Idempotence: once the machine matches state, GC changes nothing; and a
// repeated create is refused without touching anything.
func TestIdempotent(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "n1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1"}); err != nil {
		t.Fatal(err)
	}
	k.Lines()
	for i := 0; i < 2; i++ {
		r, err := e.GC(false)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Actions) != 0 {
			t.Errorf("gc run %d acted on a clean machine: %+v", i+1, r.Actions)
		}
		if lines := k.Lines(); len(lines) != 0 {
			t.Errorf("gc run %d recorded mutations: %v", i+1, lines)
		}
	}
	before := dumpState(t, e)
	if _, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1"}); !errors.Is(err, ErrExists) {
		t.Errorf("second create: got %v, want ErrExists", err)
	}
	if _, err := e.CreateNetwork(NetworkSpec{Name: "n1"}); !errors.Is(err, ErrExists) {
		t.Errorf("second network create: got %v, want ErrExists", err)
	}
	if _, err := e.Connect(ConnectSpec{Network: "n1", Container: "a", IP: netip.Addr{}}); !errors.Is(err, ErrExists) {
		t.Errorf("second connect: got %v, want ErrExists", err)
	}
	if lines := k.Lines(); len(lines) != 0 {
		t.Errorf("refused operations changed the machine: %v", lines)
	}
	if after := dumpState(t, e); after != before {
		t.Errorf("refused operations changed state:\n%s\nwant:\n%s", after, before)
	}
}

// scenario is a mutating operation on a prepared machine.
type scenario struct {
	name  string
	setup func(e *Engine) error
	op    func(e *Engine) error
}

// routerSetup: two networks, a router on both, a host on each, and a
// direct link from the router to a third host.
func routerSetup(e *Engine) error {
	for _, n := range []NetworkSpec{{Name: "n1", Subnet: mustPrefix("172.18.1.0/24")}, {Name: "n2", Subnet: mustPrefix("172.18.2.0/24")}} {
		if _, err := e.CreateNetwork(n); err != nil {
			return err
		}
	}
	for _, c := range []ContainerSpec{{Name: "r", Network: "n1", Forwarding: true}, {Name: "h1", Network: "n1"}, {Name: "h2", Network: "n2"}, {Name: "h3", Network: "n2"}} {
		if _, err := e.CreateContainer(c); err != nil {
			return err
		}
	}
	_, err := e.Connect(ConnectSpec{Network: "n2", Container: "r"})
	return err
}

func linkR3(e *Engine) error {
	_, err := e.CreateLink(LinkSpec{A: LinkEnd{Container: "r", Interface: "p3", Address: mustPrefix("10.0.3.1/30"), Egress: 1e6},
		B: LinkEnd{Container: "h3", Address: mustPrefix("10.0.3.2/30")}})
	return err
}

var scenarios = []scenario{
	{"create router", func(e *Engine) error {
		_, err := e.CreateNetwork(NetworkSpec{Name: "n1"})
		return err
	}, func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "r", Network: "n1", Forwarding: true, Egress: 5e6, Lab: "lab1"})
		return err
	}},
	{"link", routerSetup, linkR3},
	{"unlink", func(e *Engine) error {
		if err := routerSetup(e); err != nil {
			return err
		}
		if err := linkR3(e); err != nil {
			return err
		}
		_, err := e.SetRoutes("h3", []Route{{To: mustPrefix("172.18.1.0/24"), Via: netip.MustParseAddr("10.0.3.1")}})
		return err
	}, func(e *Engine) error { return e.RemoveLink("r", "p3") }},
	{"routes", func(e *Engine) error {
		if err := routerSetup(e); err != nil {
			return err
		}
		_, err := e.SetRoutes("h1", []Route{{To: mustPrefix("10.9.0.0/16"), Via: netip.MustParseAddr("172.18.1.2")}})
		return err
	}, func(e *Engine) error {
		_, err := e.SetRoutes("h1", []Route{{To: mustPrefix("172.18.2.0/24"), Via: netip.MustParseAddr("172.18.1.2")}})
		return err
	}},
	{"rm linked", func(e *Engine) error {
		if err := routerSetup(e); err != nil {
			return err
		}
		if err := linkR3(e); err != nil {
			return err
		}
		_, err := e.SetRoutes("h3", []Route{{To: mustPrefix("172.18.1.0/24"), Via: netip.MustParseAddr("10.0.3.1")}})
		return err
	}, func(e *Engine) error { return e.RemoveContainers([]string{"r"}, RemoveOptions{}) }},
	{"network create", nil, func(e *Engine) error {
		_, err := e.CreateNetwork(NetworkSpec{Name: "n1", Subnet: mustPrefix("172.18.0.0/24")})
		return err
	}},
	{"create with default network", nil, func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a"})
		return err
	}},
	{"create", func(e *Engine) error {
		_, err := e.CreateNetwork(NetworkSpec{Name: "n1"})
		return err
	}, func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1"})
		return err
	}},
	{"connect", func(e *Engine) error {
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n1", Internal: true}); err != nil {
			return err
		}
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n2"}); err != nil {
			return err
		}
		_, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1"})
		return err
	}, func(e *Engine) error {
		_, err := e.Connect(ConnectSpec{Network: "n2", Container: "a", IP: netip.Addr{}})
		return err
	}},
	{"disconnect", func(e *Engine) error {
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n1"}); err != nil {
			return err
		}
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n2"}); err != nil {
			return err
		}
		if _, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1"}); err != nil {
			return err
		}
		_, err := e.Connect(ConnectSpec{Network: "n2", Container: "a", IP: netip.Addr{}})
		return err
	}, func(e *Engine) error { return e.Disconnect("n1", "a") }},
	{"rm", func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a"})
		return err
	}, func(e *Engine) error { return e.RemoveContainers([]string{"a"}, RemoveOptions{}) }},
	{"rm two", func(e *Engine) error {
		if _, err := e.CreateContainer(ContainerSpec{Name: "a"}); err != nil {
			return err
		}
		_, err := e.CreateContainer(ContainerSpec{Name: "b"})
		return err
	}, func(e *Engine) error { return e.RemoveContainers([]string{"a", "b"}, RemoveOptions{}) }},
	{"create with ports", func(e *Engine) error {
		_, err := e.CreateNetwork(NetworkSpec{Name: "n1"})
		return err
	}, func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1", Ports: mustPorts("8080:80", "127.0.0.1:5353:53/udp")})
		return err
	}},
	{"publish", func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a"})
		return err
	}, func(e *Engine) error {
		_, err := e.Publish("a", mustPorts("9000-9001:90-91"))
		return err
	}},
	{"unpublish", func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a", Ports: mustPorts("8080:80", "8443:443")})
		return err
	}, func(e *Engine) error {
		_, err := e.Unpublish("a", mustPorts("8080:80"))
		return err
	}},
	{"disconnect moves ports", func(e *Engine) error {
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n1"}); err != nil {
			return err
		}
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n2"}); err != nil {
			return err
		}
		if _, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1", Ports: mustPorts("8080:80")}); err != nil {
			return err
		}
		_, err := e.Connect(ConnectSpec{Network: "n2", Container: "a", IP: netip.Addr{}})
		return err
	}, func(e *Engine) error { return e.Disconnect("n1", "a") }},
	{"rm with ports", func(e *Engine) error {
		_, err := e.CreateContainer(ContainerSpec{Name: "a", Ports: mustPorts("8080:80/udp")})
		return err
	}, func(e *Engine) error { return e.RemoveContainers([]string{"a"}, RemoveOptions{}) }},
	{"network rm --force", func(e *Engine) error {
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n1"}); err != nil {
			return err
		}
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n2"}); err != nil {
			return err
		}
		if _, err := e.CreateContainer(ContainerSpec{Name: "a", Network: "n1"}); err != nil {
			return err
		}
		_, err := e.Connect(ConnectSpec{Network: "n2", Container: "a", IP: netip.Addr{}})
		return err
	}, func(e *Engine) error { return e.RemoveNetwork("n1", true) }},
	{"network rm --force three", func(e *Engine) error {
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n1"}); err != nil {
			return err
		}
		if _, err := e.CreateNetwork(NetworkSpec{Name: "n2"}); err != nil {
			return err
		}
		for _, name := range []string{"a", "b", "c"} {
			if _, err := e.CreateContainer(ContainerSpec{Name: name, Network: "n1"}); err != nil {
				return err
			}
		}
		_, err := e.Connect(ConnectSpec{Network: "n2", Container: "b"})
		return err
	}, func(e *Engine) error { return e.RemoveNetwork("n1", true) }},
}

var errInjected = errors.New("injected failure")

// TestRollbackAtEveryStep injects a failure after each step of each
// operation. The machine and state must end as they were, and the undo
// commands must touch the done objects in exactly reverse order.
func TestRollbackAtEveryStep(t *testing.T) {
	for _, sc := range scenarios {
		steps := countSteps(t, sc)
		for fail := 0; fail <= steps; fail++ {
			t.Run(fmt.Sprintf("%s/after-step-%d", sc.name, fail), func(t *testing.T) {
				e, k := fakeEngine(t)
				if sc.setup != nil {
					if err := sc.setup(e); err != nil {
						t.Fatal(err)
					}
				}
				k.Lines()
				before, beforeState := k.Snapshot(), dumpState(t, e)
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
					// Failed past the point of no return (a namespace was
					// deleted): the next command must finish the operation.
					checkFinishes(t, e, k, sc)
					return
				}
				if after := k.Snapshot(); after != before {
					t.Errorf("machine changed:\n%s\nwant:\n%s", after, before)
				}
				if after := dumpState(t, e); after != beforeState {
					t.Errorf("state changed:\n%s\nwant:\n%s", after, beforeState)
				}
				checkReverse(t, k.Ops)
			})
		}
	}
}

// TestFailInsideSteps fails each kernel change of each operation in turn
// (fakekernel's Fail: the changes of the same step before it are done,
// e.g. a ports step's nft batch before its conntrack flush). The machine
// and state must end as they were, or, past the point of no return, the
// next command must finish the operation. (A failed nft element batch is
// made good by rebuilding the table, so that operation completes.)
func TestFailInsideSteps(t *testing.T) {
	for _, sc := range scenarios {
		e0, k0 := fakeEngine(t)
		if sc.setup != nil {
			if err := sc.setup(e0); err != nil {
				t.Fatal(err)
			}
		}
		changes := 0
		k0.Fail = func(string) error { changes++; return nil }
		if err := sc.op(e0); err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		for fail := 1; fail <= changes; fail++ {
			t.Run(fmt.Sprintf("%s/change-%d", sc.name, fail), func(t *testing.T) {
				e, k := fakeEngine(t)
				if sc.setup != nil {
					if err := sc.setup(e); err != nil {
						t.Fatal(err)
					}
				}
				before, beforeState := k.Snapshot(), dumpState(t, e)
				n, failed := 0, ""
				k.Fail = func(line string) error {
					if n++; n == fail {
						failed = line
						return errInjected
					}
					return nil
				}
				err := sc.op(e)
				k.Fail = nil
				if err == nil && strings.HasPrefix(failed, "nft ") && strings.Contains(failed, " element ") {
					// A failed element batch is made good by rebuilding
					// the table: the operation completes.
					if got, want := k.Snapshot(), k0.Snapshot(); got != want {
						t.Errorf("failing %q, then rebuilding: machine:\n%s\nwant:\n%s", failed, got, want)
					}
					return
				}
				if !errors.Is(err, errInjected) {
					t.Fatalf("failing %q: got %v, want the injected failure", failed, err)
				}
				if errors.Is(err, ErrNeedsRepair) {
					checkFinishes(t, e, k, sc)
					return
				}
				if after := k.Snapshot(); after != before {
					t.Errorf("failing %q: machine changed:\n%s\nwant:\n%s", failed, after, before)
				}
				if after := dumpState(t, e); after != beforeState {
					t.Errorf("failing %q: state changed:\n%s\nwant:\n%s", failed, after, beforeState)
				}
			})
		}
	}
}

// checkFinishes runs GC and compares the result with a clean run of the
// same scenario.
func checkFinishes(t *testing.T, e *Engine, k *fakekernel.Kernel, sc scenario) {
	t.Helper()
	e.opts.Hook = nil
	if _, err := e.GC(false); err != nil {
		t.Fatal(err)
	}
	e0, k0 := fakeEngine(t)
	if sc.setup != nil {
		if err := sc.setup(e0); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.op(e0); err != nil {
		t.Fatal(err)
	}
	if got, want := k.Snapshot(), k0.Snapshot(); got != want {
		t.Errorf("after gc the machine is not in the after state:\n%s\nwant:\n%s", got, want)
	}
	if got, want := dumpState(t, e), dumpState(t, e0); got != want {
		t.Errorf("after gc the state is not the after state:\n%s\nwant:\n%s", got, want)
	}
}

// countSteps runs the scenario once on a fake machine and counts the hook
// calls.
func countSteps(t *testing.T, sc scenario) int {
	e, _ := fakeEngine(t)
	return stepsOf(t, e, sc)
}

// stepsOf runs the scenario on e and counts the steps of its operation.
func stepsOf(t *testing.T, e *Engine, sc scenario) int {
	t.Helper()
	if sc.setup != nil {
		if err := sc.setup(e); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	e.opts.Hook = func(string, int) error { n++; return nil }
	if err := sc.op(e); err != nil {
		t.Fatalf("%s: %v", sc.name, err)
	}
	return n - 1 // the hook also runs at step 0, after the intent
}

// checkReverse: the objects touched while undoing are the objects touched
// while doing, in reverse order.
func checkReverse(t *testing.T, ops []fakekernel.Op) {
	t.Helper()
	var objs []string
	for _, o := range ops {
		objs = append(objs, o.Object)
	}
	half := len(objs) / 2
	if len(objs)%2 != 0 {
		t.Fatalf("odd number of mutations, undo cannot mirror do: %v", ops)
	}
	for i := 0; i < half; i++ {
		if objs[i] != objs[len(objs)-1-i] {
			t.Fatalf("undo order is not the reverse of do order: %v", objs)
		}
	}
}

// TestCrashRecovery simulates a process dying after each step (no undo
// runs; the intent stays), then checks that the next command resolves it:
// creations roll back to the state before, removals roll forward to the
// state after.
func TestCrashRecovery(t *testing.T) {
	for _, sc := range scenarios {
		steps := countSteps(t, sc)
		// The states before and after the operation.
		e0, k0 := fakeEngine(t)
		if sc.setup != nil {
			if err := sc.setup(e0); err != nil {
				t.Fatal(err)
			}
		}
		beforeMachine, beforeState := k0.Snapshot(), dumpState(t, e0)
		if err := sc.op(e0); err != nil {
			t.Fatal(err)
		}
		afterMachine, afterState := k0.Snapshot(), dumpState(t, e0)
		for crash := 0; crash <= steps; crash++ {
			t.Run(fmt.Sprintf("%s/crash-after-step-%d", sc.name, crash), func(t *testing.T) {
				e, k := fakeEngine(t)
				if sc.setup != nil {
					if err := sc.setup(e); err != nil {
						t.Fatal(err)
					}
				}
				e.opts.Hook = func(op string, step int) error {
					if step == crash {
						panic(errCrash)
					}
					return nil
				}
				func() {
					defer func() {
						if r := recover(); r != errCrash {
							t.Fatalf("got %v, want the simulated crash", r)
						}
					}()
					_ = sc.op(e) // never returns: the hook panics with errCrash
				}()
				e.opts.Hook = nil
				if _, err := e.GC(false); err != nil {
					t.Fatal(err)
				}
				m, s := k.Snapshot(), dumpState(t, e)
				switch {
				case m == beforeMachine && s == beforeState:
				case m == afterMachine && s == afterState:
				default:
					t.Errorf("after recovery the machine is neither before nor after:\n%s\n%s\nbefore:\n%s\n%s\nafter:\n%s\n%s",
						m, s, beforeMachine, beforeState, afterMachine, afterState)
				}
			})
		}
	}
}

var errCrash = errors.New("simulated crash")

// TestNameServerGoneMidCommand: a name server that is gone when a
// command sends it its change is started with every record, the change
// included, and the command succeeds.
func TestNameServerGoneMidCommand(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "front", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "web", Network: "front"}); err != nil {
		t.Fatal(err)
	}
	if k.Names == nil {
		t.Fatal("the name server is not running after the first container")
	}
	// The server dies after the command has checked on it, before its
	// change is sent (step 0 runs once the intent is written).
	e.opts.Hook = func(op string, step int) error {
		if op == "create" && step == 0 {
			k.Names = nil
		}
		return nil
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "api", Network: "front"}); err != nil {
		t.Fatal(err)
	}
	if k.Names == nil {
		t.Fatal("the name server was not started again")
	}
	for _, name := range []string{"web", "api"} {
		if _, ok := k.Names.Containers[name]; !ok {
			t.Errorf("the restarted name server lacks %s: %s", name, k.Names.String())
		}
	}
}

// TestCNIPortsOwnedByRuntime: a CNI ADD publishes a host port a process
// holds (the runtime's own reservation, as Podman's conmon holds it); a
// CLI publish onto a held port is still refused.
func TestCNIPortsOwnedByRuntime(t *testing.T) {
	e, k := fakeEngine(t)
	k.Listening = map[string]string{"tcp 0.0.0.0:8080": "conmon (pid 7)", "tcp 0.0.0.0:8081": "conmon (pid 7)"}
	k.Netns["/run/netns/pod"] = &fakekernel.Namespace{Links: map[string]netip.Prefix{}, Static: map[string]bool{}}
	_, err := e.AttachCNI(CNIAttach{ContainerID: "podid", IfName: "eth0", Netns: "/run/netns/pod", DefaultRoute: true,
		Network: NetworkSpec{Name: "podman", Subnet: netip.MustParsePrefix("10.88.0.0/16"), NoDNS: true}, Ports: mustPorts("8080:80")})
	if err != nil {
		t.Fatalf("CNI ADD with the runtime holding its port: %v", err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "cli", Network: "podman"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Publish("cli", mustPorts("8081:80")); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "conmon (pid 7)") {
		t.Errorf("cnet publish onto a held port: %v, want a conflict naming the holder", err)
	}
}

// TestRemoveCheckedByIdentity: a container records its namespace's
// identity at create, and rm deletes by it, whatever the container wrote
// into its lo's alias.
func TestRemoveCheckedByIdentity(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateContainer(ContainerSpec{Name: "c1", Network: "none"}); err != nil {
		t.Fatal(err)
	}
	k.Netns["c1"].Mark = "cnet/test01/ns/someone-else"
	if err := e.RemoveContainers([]string{"c1"}, RemoveOptions{}); err != nil {
		t.Fatalf("rm after lo's alias was rewritten: %v", err)
	}
	if _, ok := k.Netns["c1"]; ok {
		t.Error("namespace c1 is still there")
	}
}
