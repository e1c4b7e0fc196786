package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// opResult is one finished command of the concurrency test.
type opResult struct {
	args  []string
	code  int
	err   string
	start time.Time
	end   time.Time
}

// TestConcurrentMixed: 64 cnet processes at a time, 56 running a random
// mix of create (some with -p), rm, connect, disconnect, publish and
// unpublish over 24 container names on 4 networks, and 8 acting as a
// runtime's CNI ADD and DEL on one of those networks, for at most 60 s.
// Every command either succeeds or is refused as the state at its turn
// demands (not found, exists, conflict, busy); none fails, times out or
// needs repair.
// Afterwards: creates and removals of each name alternate, so the name
// exists exactly when one more create than rm succeeded; no address or
// published port is held twice; every container, endpoint, address and
// port in state is in the kernel, the nftables maps, the anti-spoofing
// sets and the name server, and nothing else is (no orphan link,
// namespace, file or element); and `cnet gc --dry-run` finds nothing to
// do.
func TestConcurrentMixed(t *testing.T) {
	c := newCLI(t)
	const (
		workers    = 56
		cniWorkers = 8
		opsEach    = 8
		bound      = 60 * time.Second
	)
	nets := []string{"n0", "n1", "n2", "n3"}
	for i, n := range nets {
		c.ok("network", "create", n, "--subnet", fmt.Sprintf("10.80.%d.0/24", i))
	}
	pods := make([]string, cniWorkers)
	for i := range pods {
		pods[i] = fmt.Sprintf("pod%d", i)
		testenv.Run(t, "ip", "netns", "add", pods[i])
		t.Cleanup(func() { testenv.Try("ip", "netns", "del", pods[i]) })
	}
	// A runtime waits for its turn as long as the test may run.
	podConf := `{"cniVersion":"1.1.0","name":"n0","type":"cnet","subnet":"10.80.0.0/24","lockTimeout":"90s"}`
	names := make([]string, 24)
	for i := range names {
		names[i] = fmt.Sprintf("c%02d", i)
	}

	deadline := time.Now().Add(bound)
	var mu sync.Mutex
	var results []opResult
	podLast := map[string]string{} // the last successful verb of each pod's own worker
	record := func(r opResult) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < opsEach && time.Now().Before(deadline); i++ {
				name, net := names[rng.IntN(len(names))], nets[rng.IntN(len(nets))]
				port := fmt.Sprintf("%d:80", 8000+rng.IntN(12))
				var args []string
				switch rng.IntN(6) {
				case 0:
					args = []string{"create", name, "--network", net}
					if rng.IntN(3) == 0 {
						args = append(args, "-p", port)
					}
				case 1:
					args = []string{"rm", "-f", name}
				case 2:
					args = []string{"connect", net, name}
				case 3:
					args = []string{"disconnect", net, name}
				case 4:
					args = []string{"publish", name, port}
				case 5:
					args = []string{"unpublish", name, port}
				}
				start := time.Now()
				r := c.run(args...)
				record(opResult{args: args, code: r.code, err: r.stderr, start: start, end: time.Now()})
			}
		}()
	}
	for _, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < opsEach && time.Now().Before(deadline); i++ {
				verb := []string{"ADD", "DEL"}[i%2]
				if i == opsEach-1 && pod < "pod4" {
					verb = "ADD" // half the pods end attached
				}
				start := time.Now()
				r := c.act(cniAct(verb, pod, podConf))
				record(opResult{args: []string{"CNI", verb, pod}, code: r.code, err: r.stdout + r.stderr, start: start, end: time.Now()})
				if r.code == 0 {
					mu.Lock()
					podLast[pod] = verb
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(deadline.Add(30 * time.Second)) {
		t.Errorf("the commands outlived the %s bound by more than 30 s", bound)
	}

	// Every command succeeded or was refused as its turn demanded.
	codes := map[int]int{}
	for _, r := range results {
		codes[r.code]++
		switch r.code {
		case 0, exitNotFound, exitExists, exitConflict:
		case exitBusy:
			// Disconnecting the network a container's published ports
			// go through.
			if !strings.Contains(r.err, "unpublish them first") {
				t.Errorf("cnet %s: exit %d: %s", strings.Join(r.args, " "), r.code, r.err)
			}
		case exitInvalid:
			// Only the refusals that depend on state: publishing on a
			// container without a default route.
			if !strings.Contains(r.err, "route") {
				t.Errorf("cnet %s: exit %d: %s", strings.Join(r.args, " "), r.code, r.err)
			}
		default:
			t.Errorf("cnet %s: exit %d: %s", strings.Join(r.args, " "), r.code, r.err)
		}
	}
	t.Logf("%d commands by %d concurrent processes in %s; exit codes %v", len(results), workers+cniWorkers, time.Since(deadline.Add(-bound)).Round(time.Millisecond), codes)
	testenv.Report(t, "commands", len(results))

	// Creates and removals of one name alternate.
	var cs []cnet.Container
	c.json(&cs, "ls")
	exists := map[string]bool{}
	for _, ct := range cs {
		exists[ct.Name] = true
	}
	for _, name := range names {
		var evs []opResult
		for _, r := range results {
			if r.code == 0 && len(r.args) > 1 && r.args[len(r.args)-1] == name && (r.args[0] == "rm") ||
				r.code == 0 && r.args[0] == "create" && r.args[1] == name {
				evs = append(evs, r)
			}
		}
		creates, rms := 0, 0
		for _, e := range evs {
			if e.args[0] == "create" {
				creates++
			} else {
				rms++
			}
		}
		if d := creates - rms; d != 0 && d != 1 || exists[name] != (d == 1) {
			t.Errorf("%s: %d creates and %d removals succeeded, and it exists=%v: a container was lost or doubled", name, creates, rms, exists[name])
		}
	}
	for _, pod := range pods {
		want := podLast[pod] == "ADD"
		got := slices.ContainsFunc(cs, func(ct cnet.Container) bool { return ct.ContainerID == pod })
		if got != want {
			t.Errorf("%s: attached=%v, but its last successful CNI verb was %q", pod, got, podLast[pod])
		}
	}
	checkStateIsKernel(t, c, cs)
}

// checkStateIsKernel compares what cnet says it has with what the kernel,
// nftables and the name server hold, read independently.
func checkStateIsKernel(t *testing.T, c *cli, cs []cnet.Container) {
	t.Helper()
	var nets []cnet.Network
	c.json(&nets, "network", "ls")
	netOfBridge := map[string]string{}
	for _, n := range nets {
		netOfBridge[n.Bridge] = n.Name
	}

	// State: endpoints and ports, checked for duplicates.
	var want, dns []string
	var ports []string
	addrs := map[netip.Addr]string{}
	hostPorts := map[string]string{}
	for _, ct := range cs {
		for _, ep := range ct.Endpoints {
			want = append(want, fmt.Sprintf("%s %s %s", ct.Netns, ep.Network, ep.Address))
			dns = append(dns, fmt.Sprintf("addr %s container %s network %s", ep.IP(), ct.Name, ep.Network))
			if other, dup := addrs[ep.IP()]; dup {
				t.Errorf("%s and %s both hold %s", ct.Name, other, ep.IP())
			}
			addrs[ep.IP()] = ct.Name
		}
		for _, p := range ct.Ports {
			key := fmt.Sprintf("%s %s:%d", p.Proto, p.HostIP, p.HostPort)
			if other, dup := hostPorts[key]; dup {
				t.Errorf("%s and %s both publish %s", ct.Name, other, key)
			}
			hostPorts[key] = ct.Name
			ports = append(ports, fmt.Sprintf("%d : %s . %d", p.HostPort, p.Address, p.Port))
		}
	}

	// Kernel: every veth on a cnet bridge, and the address of its peer.
	var got []string
	links := ipLinks(t, "")
	bridgePorts := 0
	for _, l := range links {
		if _, ok := netOfBridge[l.Master]; ok && l.Kind == "veth" {
			bridgePorts++
		}
	}
	spaces := strings.Fields(testenv.Run(t, "sh", "-c", "ls /run/netns"))
	var endpoints int
	for _, ct := range cs {
		endpoints += len(ct.Endpoints)
	}
	if bridgePorts != endpoints {
		t.Errorf("the bridges hold %d veths, state has %d endpoints", bridgePorts, endpoints)
	}
	for _, ns := range spaces {
		for _, l := range ipLinks(t, ns) {
			if l.Kind != "veth" {
				continue
			}
			peer := ""
			for _, h := range links {
				if h.Index == l.Link && h.Kind == "veth" {
					peer = h.Master
				}
			}
			for _, a := range l.Addrs {
				got = append(got, fmt.Sprintf("/run/netns/%s %s %s", ns, netOfBridge[peer], a))
			}
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kernel endpoints differ from state (+ kernel, - state):\n%s", testenv.Diff(strings.Join(got, "\n"), strings.Join(want, "\n")))
	}
	// Namespaces: one per container made by cnet, plus the runtime's pods.
	for _, ns := range spaces {
		if !strings.HasPrefix(ns, "pod") && !slices.ContainsFunc(cs, func(ct cnet.Container) bool { return ct.Name == ns }) {
			t.Errorf("namespace %s belongs to no container", ns)
		}
	}
	files := strings.Fields(testenv.Run(t, "sh", "-c", "ls /etc/netns"))
	for _, f := range files {
		if !slices.ContainsFunc(cs, func(ct cnet.Container) bool { return ct.Name == f }) {
			t.Errorf("/etc/netns/%s belongs to no container", f)
		}
	}

	// nftables: the DNAT map holds exactly the published ports, and the
	// anti-spoofing sets exactly each endpoint's veth, with its MAC and
	// address.
	sameSet(t, "DNAT", nftElems(t, "map", "inet", "dnat_tcp_any"), ports)
	var guardVeths, guardMACs, guardIPs, onBridges []string
	for _, ct := range cs {
		for _, ep := range ct.Endpoints {
			guardVeths = append(guardVeths, fmt.Sprintf("%q", ep.HostInterface))
			guardMACs = append(guardMACs, fmt.Sprintf("%q . %s", ep.HostInterface, ep.MAC))
			guardIPs = append(guardIPs, fmt.Sprintf("%q . %s", ep.HostInterface, ep.IP()))
		}
	}
	sameSet(t, "anti-spoofing ports", nftElems(t, "set", "bridge", "ports"), guardVeths)
	sameSet(t, "anti-spoofing portmac", nftElems(t, "set", "bridge", "portmac"), guardMACs)
	sameSet(t, "anti-spoofing portip", nftElems(t, "set", "bridge", "portip"), guardIPs)
	for _, l := range links {
		if _, ok := netOfBridge[l.Master]; ok && l.Kind == "veth" {
			onBridges = append(onBridges, fmt.Sprintf("%q", l.Name))
		}
	}
	sameSet(t, "veths on cnet bridges", onBridges, guardVeths)

	// The name server: one address record per endpoint.
	var served []string
	for _, l := range strings.Split(testenv.DNS(t, c.root+"/run"), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "addr ") {
			served = append(served, l)
		}
	}
	sort.Strings(served)
	sort.Strings(dns)
	if !slices.Equal(served, dns) {
		t.Errorf("name server records differ from state (+ served, - state):\n%s", testenv.Diff(strings.Join(served, "\n"), strings.Join(dns, "\n")))
	}

	var gc struct{ Actions []map[string]any }
	c.json(&gc, "gc", "--dry-run")
	if len(gc.Actions) != 0 {
		t.Errorf("gc --dry-run would act: %v", gc.Actions)
	}
}

// nftElems lists the elements of set or map NAME of cnet's table in
// family, as nft prints them, or none when it does not exist.
func nftElems(t *testing.T, kind, family, name string) []string {
	t.Helper()
	out, err := testenv.Try("nft", "list", kind, family, "cnet", name)
	if err != nil {
		return nil
	}
	i := strings.Index(out, "elements = {")
	if i < 0 {
		return nil
	}
	body := out[i+len("elements = {"):]
	body = body[:strings.Index(body, "}")]
	var elems []string
	for _, e := range strings.Split(body, ",") {
		if e = strings.Join(strings.Fields(e), " "); e != "" {
			elems = append(elems, e)
		}
	}
	return elems
}

// sameSet fails t unless got and want hold the same lines.
func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s: the kernel differs from state (+ kernel, - state):\n%s", what, testenv.Diff(strings.Join(got, "\n"), strings.Join(want, "\n")))
	}
}

// ipLink is one link as `ip -j -4 addr show` reports it.
type ipLink struct {
	Index  int    `json:"ifindex"`
	Link   int    `json:"link_index"`
	Name   string `json:"ifname"`
	Master string `json:"master"`
	Kind   string
	Addrs  []string
}

func ipLinks(t *testing.T, ns string) []ipLink {
	t.Helper()
	args := []string{"-j", "-d", "addr", "show"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	var raw []struct {
		ipLink
		Info struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
		AddrInfo []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
			Len    int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(testenv.Run(t, "ip", args...)), &raw); err != nil {
		t.Fatal(err)
	}
	var out []ipLink
	for _, r := range raw {
		l := r.ipLink
		l.Kind = r.Info.Kind
		for _, a := range r.AddrInfo {
			if a.Family == "inet" {
				l.Addrs = append(l.Addrs, fmt.Sprintf("%s/%d", a.Local, a.Len))
			}
		}
		out = append(out, l)
	}
	return out
}
