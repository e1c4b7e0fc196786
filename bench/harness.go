package main

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what one run measures.
type Config struct {
	// Ns are the container counts at which setup and teardown are
	// reported; the largest is how many containers each tool creates.
	Ns []int
	// Reps is how many create+remove pairs are timed for N=1.
	Reps int
	// Window is how many consecutive containers are sampled around each
	// larger N (91..110 for N=100 with 20).
	Window int
	// Tools limits the per-container comparison to these tools (default:
	// all of them).
	Tools []string
	// Bulk is how many containers the concurrency and bulk-removal
	// figures use; Workers is how many parallel `cnet create` workers.
	Bulk, Workers int
	// DataSeconds and DataReps: length of each iperf3 and wrk run, and
	// how many runs of each (the median is reported).
	DataSeconds, DataReps int
	// Mappings is how many published ports the ports part adds;
	// PortBudget bounds the time each tool spends adding them.
	Mappings   int
	PortBudget time.Duration
	// DNSRecords is how many container names the name servers hold;
	// DNSSeconds the length of each dnsperf run, DNSRate the fixed query
	// rate of the latency runs.
	DNSRecords, DNSSeconds, DNSRate int
	// SoakCycles is how many create+rm cycles the soak runs.
	SoakCycles int
	// CnetBin and EchoBin are the cnet and echo-server binaries; FloorBin
	// is cnetfloor, the floor as a command.
	CnetBin, EchoBin, FloorBin string
	// Root is cnet's state directory; it must be empty and on a real disk.
	Root string
	// HostNS holds the inodes of the machine's own "net" and "mnt"
	// namespaces, which the run refuses to use.
	HostNS map[string]uint64
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// Stat summarises timings of one operation.
type Stat struct {
	Median, P95 time.Duration
	Samples     int
}

// Row is one tool at one N.
type Row struct {
	N               int
	Setup, Teardown Stat
}

// ToolResult is everything measured for one tool.
type ToolResult struct {
	Name string
	// Err says why the tool has no numbers; empty when it ran.
	Err  string
	Rows []Row
	// Growth is the median at the largest N divided by the median at the
	// smallest, for setup and for teardown.
	GrowthSetup, GrowthTeardown float64
	// Filled is how many containers were created one after another, and
	// FillTime the sum of their setup times.
	Filled   int
	FillTime time.Duration
}

// Results is one run.
type Results struct {
	Start, End time.Time
	Host       []string
	Ns         []int
	Tools      []*ToolResult
	Cnet       CnetFigures
	Data       DataPath
	Ports      *PortsResult
	DNS        *DNSResult
	// CNI is ADD and DEL per container for each CNI plugin.
	CNI  []*ToolResult
	Soak *SoakResult
	// Problems are failures outside the per-tool table, and anything the
	// final clean-up found left behind.
	Problems []string
}

func (r *Results) tool(name string) *ToolResult {
	for _, t := range r.Tools {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// tool is one way of giving a namespace a veth on a bridge.
type tool interface {
	name() string
	// check returns a *missingError when a binary the tool needs is absent.
	check() error
	// prepare makes the network (bridge, NAT) the containers join.
	prepare() error
	create(s slot) error
	remove(s slot) error
	// finish removes the network.
	finish() error
}

// slot is one container: its name, the address tools that take a static
// address give it, and a number unique within the run for link names.
type slot struct {
	name string
	ip   netip.Addr
	id   int
}

// missingError names the package that brings a missing binary.
type missingError struct{ binary, pkg string }

func (e *missingError) Error() string {
	return fmt.Sprintf("%s not found: apt-get install -y %s", e.binary, e.pkg)
}

// nthAddr returns the subnet's base address plus n.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// window returns the container numbers sampled for N: size consecutive
// ones centred on N, shifted to stay within 1..max.
func window(n, max, size int) (lo, hi int) {
	lo, hi = n-size/2+1, n+size/2
	if hi > max {
		hi, lo = max, max-size+1
	}
	if lo < 1 {
		lo, hi = 1, min(size, max)
	}
	return lo, hi
}

func summarize(ds []time.Duration) Stat {
	if len(ds) == 0 {
		return Stat{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	rank := int(math.Ceil(0.95*float64(len(s)))) - 1
	return Stat{Median: med, P95: s[max(rank, 0)], Samples: len(s)}
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// measure runs the per-container comparison for one tool: Reps
// create+remove pairs on an empty network for N=1, then containers
// 1..max one after another and their removal in reverse order.
// onFull, if set, runs when all max containers exist.
// n1 is one tool's N=1 figures, timed in turns with the other tools: a
// create and a remove per round, or the error that stopped it.
type n1 struct {
	setup, teardown []time.Duration
	err             error
}

// inTurns times N=1 for every tool side by side. Each prepares its
// network; then, round after round, every tool creates and removes its
// one container, the order rotating each round, so that drift in the
// machine's speed (other work on a shared host, the kernel's deferred
// cleanup) falls on all of them alike; then each removes its network
// again. A tool that fails drops out, and the others go on.
func inTurns(cfg *Config, ts []tool, subnets []netip.Prefix, prefixes []string) map[string]*n1 {
	maxN := slices.Max(cfg.Ns)
	out := map[string]*n1{}
	var active []int
	for i, t := range ts {
		out[t.name()] = &n1{}
		if err := t.check(); err != nil {
			out[t.name()].err = err
			continue
		}
		if err := t.prepare(); err != nil {
			out[t.name()].err = fmt.Errorf("preparing the network: %w", err)
			note(t.finish())
			continue
		}
		active = append(active, i)
	}
	for r := 1; r <= cfg.Reps; r++ {
		for k := range active {
			i := active[(k+r)%len(active)]
			t, res := ts[i], out[ts[i].name()]
			if res.err != nil {
				continue
			}
			s := slot{name: fmt.Sprintf("%s-r%d", prefixes[i], r), ip: nthAddr(subnets[i], 2), id: maxN + r}
			res.err = func() error {
				st, isStaged := t.(staged)
				if isStaged {
					if err := st.before(s); err != nil {
						return fmt.Errorf("before create %s: %w", s.name, err)
					}
					defer func() { note(st.after(s)) }()
				}
				d, err := timed(func() error { return t.create(s) })
				if err != nil {
					return fmt.Errorf("create %s: %w", s.name, err)
				}
				res.setup = append(res.setup, d)
				if d, err = timed(func() error { return t.remove(s) }); err != nil {
					return fmt.Errorf("remove %s: %w", s.name, err)
				}
				res.teardown = append(res.teardown, d)
				return nil
			}()
		}
	}
	for _, i := range active {
		if err := ts[i].finish(); err != nil && out[ts[i].name()].err == nil {
			out[ts[i].name()].err = fmt.Errorf("removing the network: %w", err)
		}
	}
	return out
}

// measure times one tool: N=1 (timed here, unless the figures come from
// inTurns), then containers 1..max N one after another and back.
func measure(cfg *Config, t tool, subnet netip.Prefix, prefix string, onFull func(), turns *n1) (res *ToolResult) {
	res = &ToolResult{Name: t.name()}
	if turns != nil && turns.err != nil {
		res.Err = turns.err.Error()
		return res
	}
	if err := t.check(); err != nil {
		res.Err = err.Error()
		return res
	}
	maxN := slices.Max(cfg.Ns)
	live := map[string]slot{}
	st, isStaged := t.(staged)
	// prepared: before ran, create not yet (or it failed).
	prepared := map[string]slot{}
	fail := func(err error) *ToolResult {
		res.Err, res.Rows = err.Error(), nil
		for _, s := range live {
			note(t.remove(s))
			prepared[s.name] = s
		}
		if isStaged {
			for _, s := range prepared {
				note(st.after(s))
			}
		}
		note(t.finish())
		return res
	}
	if err := t.prepare(); err != nil {
		return fail(fmt.Errorf("preparing the network: %w", err))
	}
	create := func(s slot) (time.Duration, error) {
		if isStaged {
			if err := st.before(s); err != nil {
				return 0, fmt.Errorf("before create %s: %w", s.name, err)
			}
			prepared[s.name] = s
		}
		d, err := timed(func() error { return t.create(s) })
		if err != nil {
			return 0, fmt.Errorf("create %s: %w", s.name, err)
		}
		delete(prepared, s.name)
		live[s.name] = s
		return d, nil
	}
	remove := func(s slot) (time.Duration, error) {
		d, err := timed(func() error { return t.remove(s) })
		if err != nil {
			return 0, fmt.Errorf("remove %s: %w", s.name, err)
		}
		delete(live, s.name)
		if isStaged {
			if err := st.after(s); err != nil {
				return 0, fmt.Errorf("after remove %s: %w", s.name, err)
			}
		}
		return d, nil
	}

	// N=1: the only container on the network, created and removed Reps times.
	var repSetup, repTeardown []time.Duration
	if turns != nil {
		repSetup, repTeardown = turns.setup, turns.teardown
	} else if slices.Contains(cfg.Ns, 1) {
		for r := 1; r <= cfg.Reps; r++ {
			s := slot{name: fmt.Sprintf("%s-r%d", prefix, r), ip: nthAddr(subnet, 2), id: maxN + r}
			d, err := create(s)
			if err != nil {
				return fail(err)
			}
			repSetup = append(repSetup, d)
			if d, err = remove(s); err != nil {
				return fail(err)
			}
			repTeardown = append(repTeardown, d)
		}
	}
	slots := make([]slot, maxN+1)
	setup := make([]time.Duration, maxN+1)
	teardown := make([]time.Duration, maxN+1)
	for i := 1; i <= maxN; i++ {
		slots[i] = slot{name: fmt.Sprintf("%s-%d", prefix, i), ip: nthAddr(subnet, i+1), id: i}
		d, err := create(slots[i])
		if err != nil {
			return fail(err)
		}
		setup[i] = d
		res.Filled, res.FillTime = i, res.FillTime+d
		if i%250 == 0 {
			cfg.Log("  %s: %d containers", t.name(), i)
		}
	}
	if onFull != nil {
		onFull()
	}
	for i := maxN; i >= 1; i-- {
		d, err := remove(slots[i])
		if err != nil {
			return fail(err)
		}
		teardown[i] = d
	}
	if err := t.finish(); err != nil {
		return fail(fmt.Errorf("removing the network: %w", err))
	}
	for _, n := range cfg.Ns {
		row := Row{N: n}
		if n == 1 && len(repSetup) > 0 {
			row.Setup, row.Teardown = summarize(repSetup), summarize(repTeardown)
		} else {
			lo, hi := window(n, maxN, cfg.Window)
			row.Setup, row.Teardown = summarize(setup[lo:hi+1]), summarize(teardown[lo:hi+1])
		}
		res.Rows = append(res.Rows, row)
	}
	first, last := res.Rows[0], res.Rows[len(res.Rows)-1]
	if len(res.Rows) > 1 && first.Setup.Median > 0 && first.Teardown.Median > 0 {
		res.GrowthSetup = float64(last.Setup.Median) / float64(first.Setup.Median)
		res.GrowthTeardown = float64(last.Teardown.Median) / float64(first.Teardown.Median)
	}
	return res
}

// checkSandbox refuses to run in the machine's own network or mount
// namespace (host holds their inodes, by name; zero: read them from PID
// 1), or without private tmpfs over /run/netns and /etc/netns.
func checkSandbox(host map[string]uint64) error {
	for _, ns := range []string{"net", "mnt"} {
		self, err := inode("/proc/self/ns/" + ns)
		if err != nil {
			return err
		}
		outside := host[ns]
		if outside == 0 {
			if outside, err = inode("/proc/1/ns/" + ns); err != nil {
				return fmt.Errorf("cannot tell whether this is a sandbox (%v): use scripts/bench.sh (make bench)", err)
			}
		}
		if self == outside {
			return fmt.Errorf("refusing to run in the machine's own %s namespace: use scripts/bench.sh (make bench)", ns)
		}
	}
	for _, d := range []string{"/run/netns", "/etc/netns"} {
		var fs unix.Statfs_t
		if err := unix.Statfs(d, &fs); err != nil {
			return fmt.Errorf("%s: %w (mount a tmpfs there inside the sandbox)", d, err)
		}
		if fs.Type != unix.TMPFS_MAGIC {
			return fmt.Errorf("refusing to run: %s is not a private tmpfs", d)
		}
	}
	return nil
}

func inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// scratch is a private tmpfs for the peers' state (CNI IPAM leases,
// netavark's config dir), unmounted and removed at the end.
type scratch struct{ dir string }

func newScratch() (*scratch, error) {
	dir, err := os.MkdirTemp("", "cnetbench-")
	if err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"); err != nil {
		note(os.Remove(dir))
		return nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return &scratch{dir: dir}, nil
}

func (s *scratch) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *scratch) close() error {
	return errors.Join(unix.Unmount(s.dir, unix.MNT_DETACH), os.Remove(s.dir))
}
