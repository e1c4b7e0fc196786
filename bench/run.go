package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/cnetdev/cnet/internal/link"
	"golang.org/x/sys/unix"
)

// Parts of a run that -only can select besides the tool names.
const (
	partBulk  = "bulk"
	partData  = "datapath"
	partPorts = "ports"
	partDNS   = "dns"
	partCNI   = "cni"
	partSoak  = "soak"
)

var partNames = []string{partBulk, partData, partPorts, partDNS, partCNI, partSoak}

var toolNames = []string{"cnet-cli", "cnet-lib", "seed-ip", "cni-bridge", "netavark", "floor", "floor-cli"}

func (cfg *Config) wants(part string) bool {
	return len(cfg.Tools) == 0 || slices.Contains(cfg.Tools, part)
}

// Run measures everything cfg asks for. It must run inside the sandbox
// (fresh network and mount namespaces, tmpfs on /run/netns and
// /etc/netns); it leaves no namespace, link, file or process behind.
func Run(cfg Config) (*Results, error) {
	if err := checkSandbox(cfg.HostNS); err != nil {
		return nil, err
	}
	if len(cfg.Ns) == 0 || slices.Min(cfg.Ns) < 1 || slices.Max(cfg.Ns) > 1000 {
		return nil, fmt.Errorf("-n wants container counts between 1 and 1000 (a bridge holds at most 1023 ports), got %v", cfg.Ns)
	}
	for _, t := range cfg.Tools {
		if !slices.Contains(toolNames, t) && !slices.Contains(partNames, t) {
			return nil, fmt.Errorf("unknown part %q: want one of %s, %s", t, strings.Join(toolNames, ", "), strings.Join(partNames, ", "))
		}
	}
	if (cfg.wants(partData) || cfg.wants(partPorts) || cfg.wants(partDNS)) && cfg.DataReps < 1 {
		return nil, fmt.Errorf("-data-reps %d: want at least 1 run", cfg.DataReps)
	}
	if cfg.wants(partPorts) && cfg.Mappings < 2 {
		return nil, fmt.Errorf("-mappings %d: want at least 2 (one for each of the two services)", cfg.Mappings)
	}
	if cfg.wants(partDNS) && (cfg.DNSRecords < 1 || cfg.DNSSeconds < 1 || cfg.DNSRate < 1) {
		return nil, fmt.Errorf("-dns-records, -dns-seconds and -dns-rate want positive numbers, got %d, %d, %d", cfg.DNSRecords, cfg.DNSSeconds, cfg.DNSRate)
	}
	if cfg.wants(partSoak) && cfg.SoakCycles < 1 {
		return nil, fmt.Errorf("-soak %d: want at least 1 cycle", cfg.SoakCycles)
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if entries, err := os.ReadDir(cfg.Root); err != nil {
		return nil, fmt.Errorf("cnet state directory: %w", err)
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("cnet state directory %s is not empty", cfg.Root)
	}
	slices.Sort(cfg.Ns)
	cfg.Ns = slices.Compact(cfg.Ns)
	maxN := slices.Max(cfg.Ns)
	if maxN == 1 {
		// With only N=1 asked for, the fill is one container.
		cfg.Window = 1
	}

	sc, err := newScratch()
	if err != nil {
		return nil, err
	}
	defer func() { note(sc.close()) }()
	loadStart := loadavg()
	res := &Results{Start: time.Now(), Ns: cfg.Ns, Host: hostInfo(cfg)}

	cli := &cnetCLI{bin: cfg.CnetBin, root: cfg.Root, network: "bcli",
		subnet: netip.MustParsePrefix("10.71.0.0/16"), maxRSS: map[string]int64{}}
	runs := []struct {
		t      tool
		subnet string
		prefix string
		onFull func()
	}{
		{cli, "10.71.0.0/16", "bcli", func() { res.Cnet.DBBytes = fileSize(stateDB(cfg.Root)) }},
		{&cnetLib{bin: cfg.CnetBin, root: cfg.Root, network: "blib", subnet: netip.MustParsePrefix("10.72.0.0/16")}, "10.72.0.0/16", "blib", nil},
		{&seedIP{bridge: "seedbr0", vethPrefix: "s", subnet: netip.MustParsePrefix("10.73.0.0/16")}, "10.73.0.0/16", "seed", nil},
		{&cniBridge{subnet: netip.MustParsePrefix("10.74.0.0/16"), dataDir: sc.path("cni")}, "10.74.0.0/16", "cni", nil},
		{&netavark{subnet: netip.MustParsePrefix("10.75.0.0/16"), bridge: "nvbr0", configDir: sc.path("netavark")}, "10.75.0.0/16", "nv", nil},
		{&floor{bridge: "floorbr0", subnet: netip.MustParsePrefix("10.76.0.0/16")}, "10.76.0.0/16", "floor", nil},
		{&floorCLI{floor{bridge: "floorbr1", subnet: netip.MustParsePrefix("10.77.0.0/16")}, cfg.FloorBin}, "10.77.0.0/16", "floorc", nil},
	}
	// N=1 first, every tool in turn, round by round.
	var turns map[string]*n1
	if slices.Contains(cfg.Ns, 1) {
		var ts []tool
		var subnets []netip.Prefix
		var prefixes []string
		for _, r := range runs {
			if cfg.wants(r.t.name()) {
				ts, subnets, prefixes = append(ts, r.t), append(subnets, netip.MustParsePrefix(r.subnet)), append(prefixes, r.prefix)
			}
		}
		if len(ts) > 0 {
			cfg.Log("N=1: %d rounds of one create and remove per tool, the tools in turn", cfg.Reps)
			turns = inTurns(&cfg, ts, subnets, prefixes)
			if err := waitNoVeths(2 * time.Minute); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("after N=1: %v", err))
			}
		}
	}
	for _, r := range runs {
		if !cfg.wants(r.t.name()) {
			continue
		}
		cfg.Log("%s: %d containers one after another", r.t.name(), maxN)
		start := time.Now()
		tr := measure(&cfg, r.t, netip.MustParsePrefix(r.subnet), r.prefix, r.onFull, turns[r.t.name()])
		res.Tools = append(res.Tools, tr)
		if tr.Err != "" {
			cfg.Log("  %s: %s", r.t.name(), tr.Err)
		} else {
			cfg.Log("  %s done in %s", r.t.name(), time.Since(start).Round(time.Second))
		}
		if err := waitNoVeths(2 * time.Minute); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("after %s: %v", r.t.name(), err))
		}
	}
	if tr := res.tool("cnet-cli"); tr != nil && tr.Err == "" {
		cnetMemory(cli, "bcli", &res.Cnet, maxN)
		res.Cnet.SequentialRate = float64(tr.Filled) / tr.FillTime.Seconds()
	}
	if cfg.wants(partBulk) {
		cfg.Log("cnet: %d creates from %d parallel workers, bulk removal", cfg.Bulk, cfg.Workers)
		measureCnetBulk(&cfg, &res.Cnet)
	}
	if cfg.wants(partData) {
		cfg.Log("data path: iperf3 and wrk, %d runs of %d s", cfg.DataReps, cfg.DataSeconds)
		res.Data = measureDataPath(&cfg)
	}
	if cfg.wants(partPorts) {
		cfg.Log("published ports: %d mappings, data path %d runs of %d s", cfg.Mappings, cfg.DataReps, cfg.DataSeconds)
		res.Ports = measurePorts(&cfg, sc)
	}
	if cfg.wants(partDNS) {
		cfg.Log("dns: %d records, dnsperf %d runs of %d s", cfg.DNSRecords, cfg.DataReps, cfg.DNSSeconds)
		res.DNS = measureDNS(&cfg, sc)
	}
	if cfg.wants(partCNI) {
		for _, r := range cniTools(&cfg, sc) {
			cfg.Log("cni %s: ADD and DEL of %d containers", r.t.name(), maxN)
			tr := measure(&cfg, r.t, netip.MustParsePrefix(r.subnet), r.prefix, nil, nil)
			res.CNI = append(res.CNI, tr)
			if tr.Err != "" {
				cfg.Log("  %s: %s", r.t.name(), tr.Err)
			}
			if err := waitNoVeths(2 * time.Minute); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("after cni %s: %v", r.t.name(), err))
			}
		}
	}
	if cfg.wants(partSoak) {
		cfg.Log("soak: %d create+rm cycles", cfg.SoakCycles)
		res.Soak = measureSoak(&cfg)
		if len(res.Soak.Leaks) > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("soak: %d leaked objects (listed in the soak section)", len(res.Soak.Leaks)))
		}
	}
	res.Problems = append(res.Problems, sweep()...)
	res.End = time.Now()
	res.Host = append(res.Host, "load average (1, 5, 15 min) at the start: "+loadStart+", at the end: "+loadavg())
	return res, nil
}

// sweep removes anything left in the sandbox and reports it. The peers'
// firewall leftovers (empty iptables chains) are expected and flushed
// silently; cnet's table is not.
func sweep() []string {
	var left []string
	if entries, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range entries {
			p := filepath.Join(netnsDir, e.Name())
			left = append(left, "namespace "+p)
			note(unix.Unmount(p, unix.MNT_DETACH))
			note(os.Remove(p))
		}
	}
	if entries, err := os.ReadDir("/etc/netns"); err == nil {
		for _, e := range entries {
			left = append(left, "directory /etc/netns/"+e.Name())
			note(os.RemoveAll(filepath.Join("/etc/netns", e.Name())))
		}
	}
	if links, err := link.LinkList(nil); err == nil {
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				left = append(left, "link "+l.Attrs().Name)
				note(netlink.LinkDel(l))
			}
		}
	}
	if _, err := exec.LookPath("nft"); err == nil {
		if out, err := output("nft", "list", "tables"); err == nil && strings.Contains(string(out), "inet cnet") {
			left = append(left, "nftables table inet cnet")
		}
		note(run("nft", "flush", "ruleset"))
	}
	for i := range left {
		left[i] = "left behind: " + left[i]
	}
	return left
}

// hostInfo describes the machine and the versions measured.
func hostInfo(cfg Config) []string {
	var info []string
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info = append(info, "kernel "+unix.ByteSliceToString(uts.Release[:]))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				info = append(info, fmt.Sprintf("%d x %s", runtime.NumCPU(), strings.TrimSpace(v)))
				break
			}
		}
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				info = append(info, strings.Trim(v, `"`))
			}
		}
	}
	info = append(info, "cnet built with "+goVersion(cfg.CnetBin))
	if out, err := output("git", "-C", filepath.Dir(cfg.CnetBin), "describe", "--always", "--dirty"); err == nil {
		info = append(info, "cnet commit "+strings.TrimSpace(string(out)))
	}
	if out, err := output("dpkg-query", "-W", "-f", "${Package} ${Version}\n",
		"iproute2", "iptables", "containernetworking-plugins", "netavark", "aardvark-dns", "dnsmasq-base", "dnsperf", "iperf3", "wrk"); err == nil || len(out) > 0 {
		var pkgs []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.Contains(line, " ") && !strings.HasPrefix(line, "dpkg-query") {
				pkgs = append(pkgs, line)
			}
		}
		info = append(info, strings.Join(pkgs, ", "))
	}
	return info
}

func goVersion(bin string) string {
	out, err := output("go", "version", bin)
	if err != nil {
		return runtime.Version()
	}
	if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), ": "); ok {
		return v
	}
	return runtime.Version()
}

// loadavg tells how busy the machine was: other work on it skews timings.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
