package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestSmoke runs the whole harness at N=5 with short data-path runs and
// requires a number from every part. A peer that is not installed fails
// the test with the package to install.
func TestSmoke(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, need := range []struct {
		bin, pkg string
		also     []string
	}{
		{"ip", "iproute2", nil},
		{"nft", "nftables", nil},
		{"iptables", "iptables", nil},
		{"iperf3", "iperf3", nil},
		{"wrk", "wrk", nil},
		{"bash", "bash", nil},
		{"netavark", "netavark", []string{"/usr/lib/podman/netavark"}},
		{filepath.Join(cniDir, "bridge"), "containernetworking-plugins", []string{filepath.Join(cniDir, "bridge")}},
		{filepath.Join(cniDir, "host-local"), "containernetworking-plugins", []string{filepath.Join(cniDir, "host-local")}},
		{filepath.Join(cniDir, "portmap"), "containernetworking-plugins", []string{filepath.Join(cniDir, "portmap")}},
		{"aardvark-dns", "aardvark-dns", []string{"/usr/lib/podman/aardvark-dns"}},
		{"dnsperf", "dnsperf", nil},
		{"dnsmasq", "dnsmasq-base", []string{"/usr/sbin/dnsmasq"}},
	} {
		if _, ok := lookPath(need.bin, need.also...); !ok {
			t.Fatalf("%s not found: apt-get install -y %s", need.bin, need.pkg)
		}
	}
	// The peers' own state directories, where they exist, stay in the sandbox.
	for _, d := range []string{"/run/cni", "/var/lib/cni", "/run/containers", "/var/lib/containers", "/run/netavark"} {
		if _, err := os.Stat(d); err == nil {
			if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
				t.Fatalf("mount tmpfs on %s: %v", d, err)
			}
		}
	}

	bin := t.TempDir()
	cfg := Config{
		Ns: []int{1, 5}, Reps: 3, Window: 20, Bulk: 10, Workers: 4, DataSeconds: 1, DataReps: 1,
		Mappings: 40, PortBudget: time.Minute, DNSRecords: 50, DNSSeconds: 1, DNSRate: 500, SoakCycles: 6,
		CnetBin: filepath.Join(bin, "cnet"), EchoBin: filepath.Join(bin, "echo-server"), FloorBin: filepath.Join(bin, "cnetfloor"),
		Root: t.TempDir(), HostNS: hostNamespaces(t), Log: t.Logf,
	}
	// cnet and echo-server are built in their own module (the repository
	// root, with its go.mod), as make build builds them; cnetfloor in this one.
	for _, b := range []struct{ out, dir, pkg string }{
		{cfg.CnetBin, "..", "./cmd/cnet"}, {cfg.EchoBin, "..", "./cmd/echo-server"}, {cfg.FloorBin, ".", "./cnetfloor"},
	} {
		if out, err := exec.Command(goTool(), "build", "-C", b.dir, "-o", b.out, b.pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build -C %s %s: %v\n%s", b.dir, b.pkg, err, out)
		}
	}

	start := time.Now()
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("harness ran in %s\n%s", time.Since(start).Round(time.Millisecond), res.Markdown())

	if len(res.Tools) != len(toolNames) {
		t.Errorf("measured %d tools, want %d (%v)", len(res.Tools), len(toolNames), toolNames)
	}
	for _, tr := range res.Tools {
		if tr.Err != "" {
			t.Errorf("%s produced no numbers: %s", tr.Name, tr.Err)
			continue
		}
		if len(tr.Rows) != 2 {
			t.Errorf("%s: %d rows, want 2 (N=1 and N=5)", tr.Name, len(tr.Rows))
		}
		for _, row := range tr.Rows {
			if row.Setup.Median <= 0 || row.Setup.P95 < row.Setup.Median || row.Teardown.Median <= 0 || row.Teardown.Samples == 0 {
				t.Errorf("%s N=%d: implausible figures %+v", tr.Name, row.N, row)
			}
		}
		if tr.GrowthSetup <= 0 || tr.GrowthTeardown <= 0 {
			t.Errorf("%s: no growth figures", tr.Name)
		}
	}
	c := res.Cnet
	if c.SequentialRate <= 0 || len(c.ParallelRate) != 2 || c.RmAll <= 0 || c.NetRmForce <= 0 {
		t.Errorf("cnet figures missing: %+v", c)
	}
	if c.RSS1 <= 0 || c.RSSMax <= 0 || c.DBBytes <= 0 || c.MemErr != "" {
		t.Errorf("memory figures missing: %+v", c)
	}
	if res.Data.Err != "" {
		t.Errorf("data path: %s", res.Data.Err)
	}
	if len(res.Data.Paths) != 3 {
		t.Errorf("data path: %d topologies, want 3", len(res.Data.Paths))
	}
	for _, p := range res.Data.Paths {
		if p.Err != "" || p.MedianGbps() <= 0 || p.MedianRPS() <= 0 {
			t.Errorf("data path %s: %.2f Gbit/s, %.0f requests/s, error %q", p.Name, p.MedianGbps(), p.MedianRPS(), p.Err)
		}
	}
	checkParts(t, res, cfg)
	if len(res.Problems) > 0 {
		t.Errorf("problems:\n%s", strings.Join(res.Problems, "\n"))
	}
	checkSVG(t, res.SVG())
}

// checkParts requires a number from every part past the setup table:
// published ports, name servers, CNI ADD/DEL and the soak.
func checkParts(t *testing.T, res *Results, cfg Config) {
	t.Helper()
	if p := res.Ports; p == nil || p.Err != "" || len(p.Tools) != 2 {
		t.Errorf("published ports: %+v", p)
	} else {
		for _, pt := range p.Tools {
			if pt.Err != "" {
				t.Errorf("published ports, %s: %s", pt.Name, pt.Err)
				continue
			}
			if pt.Reached != cfg.Mappings || pt.Cut {
				t.Errorf("published ports, %s: reached %d mappings, want %d", pt.Name, pt.Reached, cfg.Mappings)
			}
			if pt.AddFirst.Median <= 0 || pt.AddMany.Median <= 0 || pt.AddFirst.Samples != cfg.Reps {
				t.Errorf("published ports, %s: add times %+v %+v", pt.Name, pt.AddFirst, pt.AddMany)
			}
			for i := range 2 {
				for _, p := range []*PathResult{pt.Direct[i], pt.Published[i]} {
					if p == nil || p.Err != "" || p.MedianGbps() <= 0 || p.MedianRPS() <= 0 || p.MedianCloseRPS() <= 0 {
						t.Errorf("published ports, %s, stage %d: %+v", pt.Name, i, p)
					}
				}
			}
		}
	}
	if d := res.DNS; d == nil || d.Err != "" || len(d.Servers) != 3 {
		t.Errorf("name servers: %+v", d)
	} else {
		for _, s := range d.Servers {
			if s.Err != "" || s.MedianQPS() <= 0 || s.MedianP99() <= 0 || s.MedianRateP99() <= 0 || s.RSS <= 0 {
				t.Errorf("name server %s: %+v", s.Name, s)
			}
		}
	}
	if len(res.CNI) != 3 {
		t.Errorf("CNI: %d plugins measured, want 3", len(res.CNI))
	}
	for _, tr := range res.CNI {
		if tr.Err != "" || len(tr.Rows) != 2 || tr.GrowthSetup <= 0 {
			t.Errorf("CNI %s: %+v", tr.Name, tr)
		}
	}
	if s := res.Soak; s == nil || s.Err != "" || s.CreateFirst.Median <= 0 || s.RmLast.Median <= 0 ||
		s.DNSRSSFirst <= 0 || s.DNSRSSWarm <= 0 || s.DNSRSSLast <= 0 || s.DBFirst <= 0 || s.CreateRSSLast <= 0 {
		t.Errorf("soak: %+v", s)
	} else if len(s.Leaks) > 0 {
		t.Errorf("soak leaked:\n%s", strings.Join(s.Leaks, "\n"))
	}
	md := res.Markdown()
	for _, want := range []string{"## Published ports", "## Name server", "## CNI ADD and DEL", "## Soak"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestReport renders a made-up run: the tables hold every tool, a tool
// that failed says why, and the plot is well-formed SVG.
func TestReport(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	res := &Results{Start: time.Unix(0, 0), End: time.Unix(100, 0), Ns: []int{1, 100, 1000}}
	for i, name := range toolNames {
		tr := &ToolResult{Name: name, GrowthSetup: 1.5, GrowthTeardown: 1.1, Filled: 1000, FillTime: 10 * time.Second}
		if name == "netavark" {
			tr = &ToolResult{Name: name, Err: "netavark not found: apt-get install -y netavark"}
		} else {
			for j, n := range res.Ns {
				v := float64(i+1) * float64(j+1)
				tr.Rows = append(tr.Rows, Row{N: n, Setup: Stat{ms(v), ms(2 * v), 20}, Teardown: Stat{ms(v / 2), ms(v), 20}})
			}
		}
		res.Tools = append(res.Tools, tr)
	}
	res.Cnet = CnetFigures{Bulk: 1000, Workers: 8, SequentialRate: 50, ParallelRate: []float64{80, 81},
		RmAll: time.Second, NetRmForce: 2 * time.Second, RSS1: 6000, RSSMax: 6100, RSSN: 1000, DBBytes: 3 << 20}
	res.Data = DataPath{Seconds: 5, Reps: 3, Paths: []*PathResult{
		{Name: "cnet", Gbps: []float64{10, 11, 12}, RPS: []float64{100, 110, 120}},
		{Name: "seed", Gbps: []float64{10}, RPS: []float64{100}},
		{Name: "loopback", Err: "iperf3: boom"},
	}}
	md := res.Markdown()
	for _, want := range []string{
		"| cnet-cli   | 1000 | 3.00 ms",
		"did not run (note 1)",
		"1. netavark: netavark not found: apt-get install -y netavark",
		"11.00 Gbit/s", "110%",
		"loopback: iperf3: boom",
		"80 and 81 containers/s",
		"3.0 MiB",
		// Side by side at N=1: cni-bridge 4 ms / cnet-cli 1 ms; cnet-cli
		// 1 ms / floor-cli 7 ms; cnet-lib 2 ms / floor 6 ms.
		"| 1    | cnet-cli vs cni-bridge | x4.0 faster    | x4.0 faster    |",
		"cnet-cli vs floor-cli  | x0.1 the floor",
		"cnet-lib vs floor      | x0.3 the floor",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "cnet-cli vs netavark") {
		t.Errorf("report compares with netavark, which did not run:\n%s", md)
	}
	checkSVG(t, res.SVG())
}

func checkSVG(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	lines := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines == 0 {
		t.Errorf("plot has no lines:\n%s", svg)
	}
}

func TestWindow(t *testing.T) {
	for _, c := range []struct{ n, max, size, lo, hi int }{
		{100, 1000, 20, 91, 110},
		{1000, 1000, 20, 981, 1000},
		{5, 5, 20, 1, 5},
		{1, 1000, 20, 1, 20},
	} {
		if lo, hi := window(c.n, c.max, c.size); lo != c.lo || hi != c.hi {
			t.Errorf("window(%d, %d, %d) = %d..%d, want %d..%d", c.n, c.max, c.size, lo, hi, c.lo, c.hi)
		}
	}
	s := summarize([]time.Duration{5, 1, 4, 2, 3})
	if s.Median != 3 || s.P95 != 5 || s.Samples != 5 {
		t.Errorf("summarize: %+v", s)
	}
}

// hostNamespaces returns the namespaces of the process that made the test
// sandbox, which the harness must not run in.
func hostNamespaces(t *testing.T) map[string]uint64 {
	t.Helper()
	host := map[string]uint64{}
	host["net"], _ = strconv.ParseUint(os.Getenv("CNET_TEST_SANDBOX_PARENT_NETNS"), 10, 64)
	ino, err := inode("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	host["mnt"] = ino
	if host["net"] == 0 {
		t.Fatal("the test sandbox did not say which network namespace it came from")
	}
	return host
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go" // where the project's machines keep it (see the Makefile's PATH)
}

// TestRunRefusesBadCounts: counts a run cannot use are refused, named,
// before anything is built.
func TestRunRefusesBadCounts(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Ns: []int{1}, Tools: []string{"ports"}, DataReps: 0, Mappings: 10}, "-data-reps 0: want at least 1"},
		{Config{Ns: []int{1}, Tools: []string{"datapath"}, DataReps: -2}, "-data-reps -2: want at least 1"},
		{Config{Ns: []int{1}, Tools: []string{"ports"}, DataReps: 1, Mappings: 1}, "-mappings 1: want at least 2"},
		{Config{Ns: []int{1}, Tools: []string{"nosuch"}}, `unknown part "nosuch"`},
	} {
		c.cfg.HostNS, c.cfg.Root = hostNamespaces(t), t.TempDir()
		if _, err := Run(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", c.cfg.Tools, err, c.want)
		}
	}
}
