// Package cnet brings Docker-style bridge networking to plain Linux
// processes. A container is a named network namespace (the kind `ip netns`
// makes), a network is a Linux bridge with a subnet, and an endpoint is a
// veth pair between them. The same engine serves the cnet command, Go
// programs that import this package, and the CNI plugin.
//
//	e, err := cnet.Open(cnet.Options{})
//	n, err := e.CreateNetwork(cnet.NetworkSpec{Name: "blue", Subnet: netip.MustParsePrefix("172.18.0.0/24")})
//	c, err := e.CreateContainer(cnet.ContainerSpec{Name: "web", Network: "blue"})
//
// Every mutating method is one transaction: it takes a host-wide lock,
// validates the request against state and the live kernel, records an
// intent, applies idempotent steps (undoing them in reverse on failure),
// and commits the new state last. A process killed mid-operation leaves an
// intent that the next mutating call, or GC, resolves. Reading methods
// never recover: they read committed state and say what is pending.
package cnet

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/kernel"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/nsfiles"
)

// Default locations.
const (
	DefaultStateDir = "/var/lib/cnet"
	DefaultRunDir   = "/run/cnet"
)

// Options configure an Engine. The zero value uses the default paths.
type Options struct {
	// StateDir holds the bbolt database (default /var/lib/cnet).
	StateDir string
	// RunDir holds the lock and the logs of detached processes (default
	// /run/cnet).
	RunDir string
	// Pool is where networks created without a subnet get one (default
	// 10.89.0.0/16), in subnets of PoolBits (default 24).
	Pool     netip.Prefix
	PoolBits int
	// Notify receives messages for the user: ip_forward switched on, a
	// FORWARD policy that drops container traffic, intents recovered.
	Notify func(msg string)
	// LockTimeout bounds the wait for the host-wide lock (0: wait as long
	// as it takes); past it, operations fail with ErrTryAgain.
	LockTimeout time.Duration
	// DNSCommand starts cnet's name server, with the directory it serves
	// from appended. Default: `cnet __dns`, with cnet found as this
	// program (when it is cnet) or in PATH.
	DNSCommand []string
	// DryRun, if set, makes every mutating method plan its operation as
	// usual, against committed state and the live kernel, and so refuse
	// what it would refuse, then hand the plan to DryRun as commands (a
	// Preview) instead of carrying it out. Results are returned as
	// planned. Nothing changes: no kernel object, file or state record;
	// interrupted operations are not recovered, and the run directory
	// and lock file are not created. GC has its own dry run.
	DryRun func(*Preview)
	// Hook, if set, runs after the intent is written (step 0) and after
	// each step of every mutating operation. An error aborts the operation
	// as if that step had failed. It exists for fault-injection tests.
	Hook func(op string, step int) error

	// Paths shared with iproute2 and the host; overridable only by tests
	// inside this module.
	netnsDir, filesDir, hostResolv, systemdResolv, bootIDPath string
}

// Root returns Options for a single root directory: state in DIR and the
// run dir in DIR/run. This is what `cnet --root DIR` uses.
func Root(dir string) Options {
	return Options{StateDir: dir, RunDir: filepath.Join(dir, "run")}
}

// Engine performs cnet operations. It holds no open resources between
// calls, so many processes can use one state directory at once.
type Engine struct {
	opts     Options
	instance string
	// newKernel is replaced by tier-2 tests with a recording fake.
	newKernel   func() machine
	now         func() time.Time
	requireRoot bool
	// rehearsal: previews are also recorded in (scratch) state; see Rehearse.
	rehearsal bool
	// checking: previews are discarded (Check), so none is rendered.
	checking bool
	// noticed holds what readers already told the user is pending, so
	// each is told once; copies of the engine share it.
	noticed *noticeSet
}

type noticeSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

// Open returns an Engine for opts. It does not touch the machine.
func Open(opts Options) (*Engine, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.RunDir == "" {
		opts.RunDir = DefaultRunDir
	}
	if abs, err := filepath.Abs(opts.StateDir); err == nil {
		opts.StateDir = abs
	}
	if abs, err := filepath.Abs(opts.RunDir); err == nil {
		opts.RunDir = abs
	}
	if !opts.Pool.IsValid() {
		opts.Pool = ipam.DefaultPool
	}
	if opts.PoolBits == 0 {
		opts.PoolBits = ipam.DefaultPoolBits
	}
	if opts.Notify == nil {
		opts.Notify = func(string) {}
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&opts.netnsDir, netns.Dir)
	def(&opts.filesDir, nsfiles.Dir)
	def(&opts.hostResolv, nsfiles.HostResolv)
	def(&opts.systemdResolv, nsfiles.SystemdResolv)
	def(&opts.bootIDPath, "/proc/sys/kernel/random/boot_id")
	e := &Engine{opts: opts, instance: names.Instance(opts.StateDir), now: time.Now, requireRoot: true,
		noticed: &noticeSet{seen: map[string]bool{}}}
	dnsArgv := dnsCommand(opts)
	e.newKernel = func() machine {
		k := kernel.New(opts.netnsDir, opts.filesDir, names.FileMarker(e.instance))
		k.DNSDir, k.DNSCommand = filepath.Join(opts.RunDir, "dns"), dnsArgv
		return k
	}
	return e, nil
}

// Instance returns the ID this engine writes into its ownership marks
// (link aliases "cnet/ID/...", the first line of /etc/netns files). It is
// derived from the state directory, so two roots never claim each other's
// objects.
func (e *Engine) Instance() string { return e.instance }

// StateDir returns the state directory in use.
func (e *Engine) StateDir() string { return e.opts.StateDir }

// RunDir returns the run directory in use.
func (e *Engine) RunDir() string { return e.opts.RunDir }

// NetnsPath returns where a container's namespace is bound.
func (e *Engine) NetnsPath(container string) string {
	return filepath.Join(e.opts.netnsDir, container)
}

// LogPath returns the log file of a container's detached process.
func (e *Engine) LogPath(container string) string {
	return filepath.Join(e.opts.RunDir, "logs", container+".log")
}

func (e *Engine) bootID() string {
	b, err := os.ReadFile(e.opts.bootIDPath)
	if err != nil {
		return "" // unknown boot: reboot detection is skipped
	}
	return strings.TrimSpace(string(b))
}
