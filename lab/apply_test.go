package lab

// Convergence against the real kernel, inside the test sandbox.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// cnetBin is the cnet command, for the name server (`cnet __dns`).
var cnetBin string

func TestMain(m *testing.M) {
	testenv.MainBuilding(m, testenv.Binary{Pkg: "../cmd/cnet", To: &cnetBin})
}

// engine returns an engine with fresh state; at cleanup the sandbox must
// be as the test found it.
func engine(t *testing.T) *cnet.Engine {
	t.Helper()
	testenv.RequirePrivileged(t)
	before := testenv.Snapshot(t)
	opts := cnet.Root(t.TempDir())
	opts.DNSCommand = []string{cnetBin, "__dns"}
	e, err := cnet.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs, _ := e.Containers()
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		if len(names) > 0 {
			testenv.Logged(t, "e.RemoveContainers(names, cnet.RemoveOptions{Force: true})", e.RemoveContainers(names, cnet.RemoveOptions{Force: true}))
		}
		ns, _ := e.Networks()
		for _, n := range ns {
			testenv.Logged(t, "e.RemoveNetwork(n.Name, true)", e.RemoveNetwork(n.Name, true))
		}
		testenv.WaitSnapshot(t, before)
	})
	return e
}

func parse(t *testing.T, yaml string) *File {
	t.Helper()
	f, err := Parse("lab.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// apply applies yaml and returns the plan it ran, as lines.
func apply(t *testing.T, e *cnet.Engine, yaml string) []string {
	t.Helper()
	p, err := Diff(e, parse(t, yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(e, nil); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range p.Actions {
		out = append(out, a.Op+" "+a.Kind+" "+a.Object)
	}
	return out
}

func container(t *testing.T, e *cnet.Engine, name string) *cnet.Container {
	t.Helper()
	c, err := e.Container(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantPlan(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const v1 = `
lab: conv
networks:
  front: {subnet: 172.30.1.0/24}
  back: {subnet: 172.30.2.0/24}
containers:
  a:
    networks: [{network: front, ip: 172.30.1.10}]
    ports: ["18080:80"]
  b:
    networks:
      - {network: front, ip: 172.30.1.20}
      - {network: back, ip: 172.30.2.20, aliases: [bee]}
    routes: [{to: 10.77.0.0/24, via: 10.0.0.1}]
links:
  - a: {container: a, interface: p0, ip: 10.0.0.1/30}
    b: {container: b, interface: p0, ip: 10.0.0.2/30}
`

// TestApplyConverges walks one lab through changes: each apply touches
// only what changed, and a second apply changes nothing.
func TestApplyConverges(t *testing.T) {
	e := engine(t)
	wantPlan(t, apply(t, e, v1),
		"create network front", "create network back",
		"create container a", "publish ports a",
		"create container b", "connect endpoint b on back",
		"create link a:p0 -- b:p0", "update routes b")
	wantPlan(t, apply(t, e, v1)) // nothing to do

	a0, b0 := container(t, e, "a"), container(t, e, "b")
	if len(b0.Links) != 1 || b0.Links[0].Peer != "a" || len(b0.Routes) != 1 || a0.Lab != "conv" || len(a0.Ports) != 1 {
		t.Fatalf("a %+v\nb %+v", a0, b0)
	}
	testenv.Run(t, "ip", "netns", "exec", "a", "ping", "-c1", "-W2", "10.0.0.2")
	if out := testenv.Run(t, "ip", "-n", "b", "route", "show", "10.77.0.0/24"); !strings.Contains(out, "via 10.0.0.1") {
		t.Fatalf("route in b: %q", out)
	}

	// A changed address re-creates only that endpoint.
	v2 := strings.Replace(v1, "172.30.2.20", "172.30.2.21", 1)
	wantPlan(t, apply(t, e, v2), "disconnect endpoint b on back", "connect endpoint b on back")
	a1, b1 := container(t, e, "a"), container(t, e, "b")
	if a1.Endpoints[0].HostInterface != a0.Endpoints[0].HostInterface || b1.Endpoints[0].HostInterface != b0.Endpoints[0].HostInterface {
		t.Fatal("an unchanged endpoint was re-created")
	}
	if ep := b1.Endpoint("back"); ep == nil || ep.IP() != netip.MustParseAddr("172.30.2.21") || ep.Interface != "eth1" || !slices.Equal(ep.Aliases, []string{"bee"}) {
		t.Fatalf("b on back: %+v", ep)
	}
	wantPlan(t, apply(t, e, v2))

	// A changed egress limit re-creates that endpoint with a tbf on it.
	v3 := strings.Replace(v2, "aliases: [bee]}", "aliases: [bee], egress: 20mbit}", 1)
	wantPlan(t, apply(t, e, v3), "disconnect endpoint b on back", "connect endpoint b on back")
	if out := testenv.Run(t, "tc", "-n", "b", "qdisc", "show", "dev", "eth1"); !strings.Contains(out, "tbf") || !strings.Contains(out, "20Mbit") {
		t.Fatalf("qdisc on b eth1: %q", out)
	}

	// A changed port publishes the difference.
	v4 := strings.Replace(v3, `"18080:80"`, `"18081:80"`, 1)
	wantPlan(t, apply(t, e, v4), "unpublish ports a", "publish ports a")
	if ps := container(t, e, "a").Ports; len(ps) != 1 || ps[0].HostPort != 18081 {
		t.Fatalf("ports %+v", ps)
	}

	// A changed link is made again; routes through it follow.
	v5 := strings.NewReplacer("10.0.0.1/30", "10.0.9.1/30", "10.0.0.2/30", "10.0.9.2/30", "via: 10.0.0.1", "via: 10.0.9.1").Replace(v4)
	wantPlan(t, apply(t, e, v5), "remove link a:p0 -- b:p0", "create link a:p0 -- b:p0", "update routes b")
	testenv.Run(t, "ip", "netns", "exec", "b", "ping", "-c1", "-W2", "10.0.9.1")

	// A changed subnet re-creates the network and the endpoints on it.
	v6 := strings.NewReplacer("172.30.2.0/24", "172.30.3.0/24", "172.30.2.21", "172.30.3.21").Replace(v5)
	wantPlan(t, apply(t, e, v6), "disconnect endpoint b on back", "remove network back", "replace network back", "connect endpoint b on back")
	if ep := container(t, e, "b").Endpoint("back"); ep == nil || ep.IP() != netip.MustParseAddr("172.30.3.21") {
		t.Fatalf("b on back: %+v", ep)
	}

	// Removing a container from the file removes it, its link with it,
	// and the route that went through that link.
	i := strings.Index(v6, "  a:\n")
	j := strings.Index(v6, "  b:\n")
	v7 := v6[:i] + v6[j:]
	v7 = v7[:strings.Index(v7, "links:")]
	v7 = strings.Replace(v7, "    routes: [{to: 10.77.0.0/24, via: 10.0.9.1}]\n", "", 1)
	wantPlan(t, apply(t, e, v7), "remove container a")
	if b := container(t, e, "b"); len(b.Links) != 0 || len(b.Routes) != 0 {
		t.Fatalf("b kept a's link or route: %+v", b)
	}
	// The kernel tears a deleted namespace down in the background.
	testenv.Eventually(t, 10*time.Second, func() error {
		if out := testenv.Run(t, "ip", "-n", "b", "-br", "link"); strings.Contains(out, "p0") {
			return fmt.Errorf("p0 left in b: %s", out)
		}
		return nil
	})
	wantPlan(t, apply(t, e, v7))

	// Destroy removes everything the lab made.
	p, err := Destroy(e, "conv")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(e, nil); err != nil {
		t.Fatal(err)
	}
	if cs, _ := e.Containers(); len(cs) != 0 {
		t.Fatalf("left %d containers", len(cs))
	}
	if ns, _ := e.Networks(); len(ns) != 0 {
		t.Fatalf("left %d networks", len(ns))
	}
}

// TestApplyStopsAtFirstFailure: the failing object is rolled back, those
// before it stand, and the next apply carries on. (The address y asks for
// is taken after Diff, which would otherwise refuse the file: see
// TestDiffRefusesWhatApplyWould.)
func TestApplyStopsAtFirstFailure(t *testing.T) {
	e := engine(t)
	if _, err := e.CreateNetwork(cnet.NetworkSpec{Name: "ext", Subnet: netip.MustParsePrefix("172.30.5.0/24")}); err != nil {
		t.Fatal(err)
	}
	bad := `
lab: fail
containers:
  x: {networks: [ext]}
  y: {networks: [{network: ext, ip: 172.30.5.10}]}
  z: {networks: [ext]}
`
	p, err := Diff(e, parse(t, bad), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(cnet.ContainerSpec{Name: "theirs", Network: "ext", IP: netip.MustParseAddr("172.30.5.10")}); err != nil {
		t.Fatal(err)
	}
	err = p.Apply(e, nil)
	var se *StepError
	if !errors.As(err, &se) || se.Done != 1 || se.Action.Object != "y" || !errors.Is(err, cnet.ErrConflict) {
		t.Fatalf("got %v, want the create of y to fail after 1 change", err)
	}
	for name, want := range map[string]bool{"x": true, "y": false, "z": false} {
		_, err := e.Container(name)
		if got := err == nil; got != want {
			t.Errorf("container %s exists=%v, want %v (%v)", name, got, want, err)
		}
	}
	if out := testenv.Run(t, "ip", "netns"); strings.Contains(out, "y") {
		t.Fatalf("y's namespace is left: %s", out)
	}
	good := strings.Replace(bad, "172.30.5.10", "172.30.5.11", 1)
	wantPlan(t, apply(t, e, good), "create container y", "create container z")
	wantPlan(t, apply(t, e, good))
}

// TestDiffRefusesWhatApplyWould: a file whose third object the machine
// refuses (its address is another container's) is refused by Diff, at
// that object's line and field, before apply changes anything.
func TestDiffRefusesWhatApplyWould(t *testing.T) {
	e := engine(t)
	if _, err := e.CreateNetwork(cnet.NetworkSpec{Name: "ext", Subnet: netip.MustParsePrefix("172.30.5.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(cnet.ContainerSpec{Name: "theirs", Network: "ext", IP: netip.MustParseAddr("172.30.5.10")}); err != nil {
		t.Fatal(err)
	}
	before := testenv.Snapshot(t)
	for _, tc := range []struct {
		yaml, want string
		kind       error
	}{
		{"lab: fail\nnetworks:\n  mine: {subnet: 172.30.7.0/24}\ncontainers:\n  x: {networks: [ext]}\n  y:\n    networks:\n      - network: ext\n        ip: 172.30.5.10\n",
			"lab.yaml:9: containers.y.networks[0].ip: address 172.30.5.10 conflicts with container theirs", cnet.ErrConflict},
		{"lab: fail\nnetworks:\n  mine: {subnet: 172.30.7.0/24}\n  over:\n    subnet: 172.30.5.128/25\n",
			"lab.yaml:5: networks.over.subnet: subnet 172.30.5.128/25 conflicts with network ext (172.30.5.0/24)", cnet.ErrConflict},
		{"lab: fail\ncontainers:\n  x: {networks: [ext]}\n  y:\n    networks: [ext]\n    routes: [{to: 10.9.0.0/24, via: 10.8.0.1}]\n",
			"lab.yaml:6: containers.y.routes: invalid route gateway \"10.8.0.1\": want an address on one of y's subnets", cnet.ErrInvalid},
	} {
		f, err := Parse("lab.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		_, err = Diff(e, f, nil)
		var fe *Error
		if !errors.As(err, &fe) || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want a file error %q", err, tc.want)
		}
	}
	if after := testenv.Snapshot(t); after != before {
		t.Fatalf("a refused file changed the machine:\n%s", testenv.Diff(after, before))
	}
}

// TestApplyOwnership: a lab never takes or removes what it did not make.
func TestApplyOwnership(t *testing.T) {
	e := engine(t)
	if _, err := e.CreateNetwork(cnet.NetworkSpec{Name: "shared", Subnet: netip.MustParsePrefix("172.30.6.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(cnet.ContainerSpec{Name: "mine", Network: "shared"}); err != nil {
		t.Fatal(err)
	}
	before := testenv.Snapshot(t)
	for _, yaml := range []string{
		"lab: o\ncontainers:\n  mine: {networks: [shared]}\n",
		"lab: o\nnetworks:\n  shared: {}\n",
	} {
		_, err := Diff(e, parse(t, yaml), nil)
		if !errors.Is(err, cnet.ErrConflict) || !strings.Contains(err.Error(), "outside any lab") {
			t.Fatalf("got %v, want a conflict naming the owner", err)
		}
	}
	_, err := Diff(e, parse(t, "lab: o\ncontainers:\n  c: {networks: [nowhere]}\n"), nil)
	if !errors.Is(err, cnet.ErrNotFound) || !strings.Contains(err.Error(), `"nowhere"`) || !strings.Contains(err.Error(), "shared") {
		t.Fatalf("got %v, want not found naming the network and the choices", err)
	}
	if after := testenv.Snapshot(t); after != before {
		t.Fatalf("a refused plan changed the machine:\n%s", after)
	}
	// A lab container on the shared network; destroying the lab leaves
	// the network and the other container.
	apply(t, e, "lab: o\ncontainers:\n  labbed: {networks: [shared]}\n")
	p, err := Destroy(e, "o")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(e, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Container("mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Container("labbed"); !errors.Is(err, cnet.ErrNotFound) {
		t.Fatalf("labbed: %v", err)
	}
	testenv.WaitSnapshot(t, before)
}
