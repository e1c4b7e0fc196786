// Command cnetbench measures cnet against the tools it replaces: the
// seed's iproute2 commands, the CNI bridge plugin, netavark, and a
// netlink-only floor. In one run on one machine it times container setup
// and teardown at several container counts, cnet's parallel and bulk
// operations, its memory, the data path between two containers,
// published ports against the CNI portmap plugin, its name server against
// aardvark-dns and dnsmasq, its CNI ADD and DEL against the bridge plugin
// and netavark, and a create/rm soak, then
// prints one report, writes it as OUT/results.md and plots setup time
// against N as SVG.
//
// It must run as root inside fresh network and mount namespaces with
// tmpfs on /run/netns and /etc/netns: scripts/bench.sh (make bench) sets
// that up. It refuses to run in the machine's own namespaces.
//
//	cnetbench [-n 1,100,1000] [-quick] [-only PART,...] [-mappings 10000]
//	          [-dns-records 10000] [-soak 10000] [-out bench/results] [-svg docs/benchmarks-setup.svg]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() { os.Exit(cnetbench()) }

func cnetbench() int {
	var (
		ns       = flag.String("n", "1,100,1000", "container counts to report setup and teardown at (the largest is how many each tool creates, at most 1000)")
		quick    = flag.Bool("quick", false, "smoke pass: N=1,5, 5 repetitions, 20 bulk containers, 1 s data-path runs once")
		out      = flag.String("out", "bench/results", "directory for results.md")
		svg      = flag.String("svg", "docs/benchmarks-setup.svg", "where to write the setup-time plot (empty: none)")
		cnetBin  = flag.String("cnet", "bin/cnet", "the cnet binary")
		echoBin  = flag.String("echo-server", "bin/echo-server", "the echo-server binary")
		floorBin = flag.String("floor", "bin/cnetfloor", "the cnetfloor binary (floor-cli)")
		root     = flag.String("root", os.Getenv("CNET_ROOT"), "cnet state directory, empty and on a real disk (default: a new directory under /var/tmp, removed at the end)")
		only     = flag.String("only", "", "comma-separated parts to run (default all): cnet-cli, cnet-lib, seed-ip, cni-bridge, netavark, floor, floor-cli, bulk, datapath, ports, dns, cni, soak")
	)
	cfg := Config{Reps: 20, Window: 20, Bulk: 1000, Workers: 8, DataSeconds: 5, DataReps: 3}
	flag.IntVar(&cfg.DataReps, "data-reps", cfg.DataReps, "datapath, ports and dns: runs of each load (the median is reported)")
	flag.IntVar(&cfg.Mappings, "mappings", 10000, "ports: published mappings present for the second set of figures")
	flag.DurationVar(&cfg.PortBudget, "port-budget", 10*time.Minute, "ports: most time each tool may spend adding the mappings (the report says when it stopped short)")
	flag.IntVar(&cfg.DNSRecords, "dns-records", 10000, "dns: container names each server holds")
	flag.IntVar(&cfg.DNSSeconds, "dns-seconds", 5, "dns: length of each dnsperf run")
	flag.IntVar(&cfg.DNSRate, "dns-rate", 5000, "dns: queries/s of the fixed-rate latency runs")
	flag.IntVar(&cfg.SoakCycles, "soak", 10000, "soak: create+rm cycles through the CLI")
	flag.Parse()
	if *quick {
		cfg.Reps, cfg.Bulk, cfg.DataSeconds = 5, 20, 1
		if !flagSet("data-reps") {
			cfg.DataReps = 1
		}
		for name, p := range map[string]*int{"mappings": &cfg.Mappings, "dns-records": &cfg.DNSRecords, "dns-seconds": &cfg.DNSSeconds, "soak": &cfg.SoakCycles} {
			if !flagSet(name) {
				*p = map[string]int{"mappings": 100, "dns-records": 100, "dns-seconds": 1, "soak": 20}[name]
			}
		}
		if !flagSet("n") {
			*ns = "1,5"
		}
	}
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fail(fmt.Errorf("-n %q: want comma-separated container counts", *ns))
		}
		cfg.Ns = append(cfg.Ns, n)
	}
	if *only != "" {
		cfg.Tools = strings.Split(*only, ",")
	}
	var err error
	if cfg.CnetBin, err = filepath.Abs(*cnetBin); err != nil {
		return fail(err)
	}
	if cfg.EchoBin, err = filepath.Abs(*echoBin); err != nil {
		return fail(err)
	}
	if cfg.FloorBin, err = filepath.Abs(*floorBin); err != nil {
		return fail(err)
	}
	// The namespaces the sandbox was made from, recorded by scripts/bench.sh.
	cfg.HostNS = map[string]uint64{}
	for _, f := range strings.Fields(os.Getenv("CNET_BENCH_HOST_NS")) {
		if k, v, ok := strings.Cut(f, ":"); ok {
			cfg.HostNS[k], _ = strconv.ParseUint(v, 10, 64)
		}
	}
	cfg.Root = *root
	if cfg.Root == "" {
		if cfg.Root, err = os.MkdirTemp("/var/tmp", "cnetbench-state-"); err != nil {
			return fail(err)
		}
		defer func() { note(os.RemoveAll(cfg.Root)) }()
	}
	start := time.Now()
	cfg.Log = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	res, err := Run(cfg)
	if err != nil {
		return fail(err)
	}
	report := res.Markdown()
	fmt.Print("\n" + report)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "results.md"), []byte(report), 0o644); err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "\nwrote %s\n", filepath.Join(*out, "results.md"))
	if *svg != "" && len(res.Tools) > 0 {
		if err := os.WriteFile(*svg, []byte(res.SVG()), 0o644); err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *svg)
	}
	if len(res.Problems) > 0 {
		return fail(fmt.Errorf("%d problem(s), listed above", len(res.Problems)))
	}
	return 0
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "cnetbench:", err)
	return 1
}

// note reports an error of a cleanup step on stderr: the run goes on, and
// what the step failed to remove shows up in the next inventory.
func note(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
	}
}
