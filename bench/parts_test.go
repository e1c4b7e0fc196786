package main

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPortSpecs(t *testing.T) {
	got := strings.Join(portSpecs([][2]int{{15201, 5201}, {18000, 8000}, {20000, 20000}, {20001, 20001}, {20002, 20002}, {30000, 8000}}), " ")
	want := "15201:5201 18000:8000 20000-20002:20000-20002 30000:8000"
	if got != want {
		t.Errorf("portSpecs = %q, want %q", got, want)
	}
}

// TestLeaksSince: everything the end has beyond the start is named; what
// went away, and the meta bucket's counters, are not leaks.
func TestLeaksSince(t *testing.T) {
	before := inventory{
		links: []string{"bridge cnet-bsoak", "device lo"}, netns: []string{}, etcNetns: []string{},
		nft:     "table inet cnet {\n\tset bridges {\n\t\telements = { \"cnet-bsoak\" }\n\t}\n}\n",
		buckets: map[string]int{"containers": 0, "addrs/bsoak": 0, "meta": 3, "networks": 1},
	}
	if l := before.leaksSince(before); len(l) != 0 {
		t.Errorf("no change reported as leaks: %v", l)
	}
	after := before
	after.links = []string{"bridge cnet-bsoak", "device lo", "veth veth1234567"}
	after.netns = []string{"soak-7"}
	after.etcNetns = []string{"soak-7"}
	after.nft = strings.Replace(before.nft, `"cnet-bsoak"`, `"cnet-bsoak", "veth1234567"`, 1)
	after.buckets = map[string]int{"containers": 1, "addrs/bsoak": 1, "meta": 9, "networks": 1}
	leaks := after.leaksSince(before)
	for _, want := range []string{"link veth veth1234567", "namespace /run/netns/soak-7", "directory /etc/netns/soak-7",
		"nftables tables inet cnet and bridge cnet differ", "state bucket containers: 1 keys", "state bucket addrs/bsoak: 1 keys"} {
		found := false
		for _, l := range leaks {
			found = found || strings.Contains(l, want)
		}
		if !found {
			t.Errorf("leaks lack %q: %v", want, leaks)
		}
	}
	if len(leaks) != 6 {
		t.Errorf("%d leaks, want 6: %v", len(leaks), leaks)
	}
	gone := before
	gone.links = []string{"device lo"}
	if l := gone.leaksSince(before); len(l) != 0 {
		t.Errorf("a removed link reported as a leak: %v", l)
	}
}

// TestPartsReport renders made-up figures of the four parts.
func TestPartsReport(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	path := func(name string, g, r, c float64) *PathResult {
		return &PathResult{Name: name, Gbps: []float64{g}, RPS: []float64{r}, CloseRPS: []float64{c}}
	}
	res := &Results{Start: time.Unix(0, 0), End: time.Unix(100, 0), Ns: []int{1, 1000}}
	res.Ports = &PortsResult{Mappings: 10000, Seconds: 5, Reps: 3, AddReps: 20, Budget: time.Minute, Tools: []*PortTool{
		{Name: "cnet", AddFirst: Stat{ms(10), ms(12), 20}, AddMany: Stat{ms(15), ms(16), 20}, Reached: 10000,
			Direct:    [2]*PathResult{path("direct", 10, 1000, 100), path("direct", 5, 500, 50)},
			Published: [2]*PathResult{path("published", 9.6, 990, 97), path("published", 9.5, 980, 95)}},
		{Name: "portmap", Err: "portmap not found"},
	}}
	res.DNS = &DNSResult{Records: 10000, Seconds: 5, Reps: 3, Rate: 5000, Servers: []*DNSServerResult{
		{Name: "cnet", QPS: []float64{30000}, P99: []float64{0.004}, RateP99: []float64{0.001}, RSS: 20480},
		{Name: "aardvark-dns", QPS: []float64{20000}, P99: []float64{0.008}, RateP99: []float64{0.002}, RSS: 4096},
		{Name: "dnsmasq", Err: "dnsmasq not found"},
	}}
	res.CNI = []*ToolResult{{Name: "cnet", GrowthSetup: 1.1, GrowthTeardown: 1.05, Rows: []Row{
		{N: 1, Setup: Stat{ms(8), ms(9), 20}, Teardown: Stat{ms(5), ms(6), 20}},
		{N: 1000, Setup: Stat{ms(8.8), ms(10), 20}, Teardown: Stat{ms(5.25), ms(6), 20}}}}}
	res.Soak = &SoakResult{Cycles: 10000, Window: 1000, CreateFirst: Stat{ms(10), ms(12), 1000}, CreateLast: Stat{ms(11), ms(13), 1000},
		RmFirst: Stat{ms(5), ms(6), 1000}, RmLast: Stat{ms(5), ms(6), 1000}, CreateRSSFirst: 16384, CreateRSSLast: 16384,
		DNSRSSFirst: 4096, DNSRSSWarm: 8192, DNSRSSLast: 8704, DBFirst: 128 << 10, DBLast: 128 << 10, Leaks: []string{"link veth veth1"}}
	md := res.Markdown()
	for _, want := range []string{
		"| cnet    | 1 per service   | 9.60 / 10.00 Gbit/s       | 96%",
		"| cnet | 10000            | 0s          | 10.0 ms          | 15.0 ms           | x1.50",
		"x1.50",
		// many / one: 9.5 / 9.6; each over its direct: (9.5/5) / (9.6/10).
		"| 99% / 99% / 98%                                    | 198% / 198% / 196%",
		"portmap: portmap not found",
		"| cnet         | 30000           | 150%              | 4.00 ms          | 1.00 ms       | 0    | 20.0 MiB",
		"dnsmasq: dnsmasq not found",
		"| cnet   | 1000 | 8.80 ms",
		"x1.10",
		"| `cnet create`                                              | 10.0 ms  | 11.0 ms  | x1.10",
		"| name server RSS (after the first 1000 cycles / at the end) | 8.0 MiB  | 8.5 MiB  | x1.06",
		"RSS after cycle 1 was 4.0 MiB",
		"Leaked objects (1):",
		"- link veth veth1",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// fakeTool records what inTurns asks of it in a log shared by all the
// fake tools; it fails its create in round failRound (0: never).
type fakeTool struct {
	n         string
	log       *[]string
	failRound int
	round     int
}

func (f *fakeTool) name() string   { return f.n }
func (f *fakeTool) check() error   { return nil }
func (f *fakeTool) prepare() error { *f.log = append(*f.log, f.n+" prepare"); return nil }
func (f *fakeTool) create(s slot) error {
	f.round++
	if f.round == f.failRound {
		return errors.New("no room")
	}
	*f.log = append(*f.log, f.n+" create "+s.name)
	return nil
}
func (f *fakeTool) remove(s slot) error { *f.log = append(*f.log, f.n+" remove "+s.name); return nil }
func (f *fakeTool) finish() error       { *f.log = append(*f.log, f.n+" finish"); return nil }

// TestInTurns: every tool creates and removes its container once a
// round, the order rotating round by round; a tool that fails drops out
// and the others go on; every prepared network is removed at the end.
func TestInTurns(t *testing.T) {
	var log []string
	ts := []tool{&fakeTool{n: "a", log: &log}, &fakeTool{n: "b", log: &log, failRound: 2}, &fakeTool{n: "c", log: &log}}
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	cfg := &Config{Ns: []int{1, 10}, Reps: 3}
	got := inTurns(cfg, ts, []netip.Prefix{subnet, subnet, subnet}, []string{"pa", "pb", "pc"})
	want := []string{
		"a prepare", "b prepare", "c prepare",
		"b create pb-r1", "b remove pb-r1", "c create pc-r1", "c remove pc-r1", "a create pa-r1", "a remove pa-r1",
		"c create pc-r2", "c remove pc-r2", "a create pa-r2", "a remove pa-r2", // b fails in round 2
		"a create pa-r3", "a remove pa-r3", "c create pc-r3", "c remove pc-r3",
		"a finish", "b finish", "c finish",
	}
	if !slices.Equal(log, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
	if n := len(got["a"].setup); n != 3 || len(got["a"].teardown) != 3 || got["a"].err != nil {
		t.Errorf("a: %d setups, %d teardowns, %v; want 3, 3, no error", n, len(got["a"].teardown), got["a"].err)
	}
	if got["b"].err == nil || len(got["b"].setup) != 1 {
		t.Errorf("b: %d setups, %v; want 1 and the error of round 2", len(got["b"].setup), got["b"].err)
	}
}
