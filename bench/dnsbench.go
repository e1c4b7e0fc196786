package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cnetdev/cnet/internal/dns"
	mdns "github.com/miekg/dns"
)

// Name servers: cnet's (`cnet __dns DIR`, fed a snapshot as cnet feeds
// it), aardvark-dns (its per-network config file, as netavark writes it)
// and dnsmasq (a hosts file), each holding the same DNSRecords container
// names on one network and answering on its gateway, port 53. A client
// container on that network runs dnsperf with the same queries: an A
// query for each name, in a shuffled order, over UDP.

const (
	dnsBridge  = "bdnsbr0"
	dnsClient  = "bdnsc"
	dnsNetwork = "bdns"
)

var (
	dnsSubnet   = netip.MustParsePrefix("10.90.0.0/16")
	dnsGateway  = netip.MustParseAddr("10.90.0.1")
	dnsClientIP = netip.MustParseAddr("10.90.0.2")
)

// DNSResult is the name-server part.
type DNSResult struct {
	Records, Seconds, Reps, Rate int
	Servers                      []*DNSServerResult
	Err                          string
}

// DNSServerResult is one server: every run's figures.
type DNSServerResult struct {
	Name string
	// QPS and P99 are from runs at full load (dnsperf keeps 100 queries
	// outstanding); RateP99 from runs at the fixed rate.
	QPS, P99, RateP99 []float64 // queries/s, seconds
	// Lost counts queries without an answer, over all runs.
	Lost int
	// RSS is the server's resident memory (KiB) after its last run.
	RSS int64
	Err string
}

func (s *DNSServerResult) MedianQPS() float64     { return median(s.QPS) }
func (s *DNSServerResult) MedianP99() float64     { return median(s.P99) }
func (s *DNSServerResult) MedianRateP99() float64 { return median(s.RateP99) }

// dnsRecord is container i: its name and address.
func dnsRecord(i int) (string, netip.Addr) {
	return fmt.Sprintf("c%d", i), nthAddr(dnsSubnet, 256+i)
}

// dnsServer is one server implementation.
type dnsServer interface {
	name() string
	check() error
	// start writes its configuration with n records into dir, starts it
	// and returns its PID.
	start(dir string, n int) (int, error)
	stop() error
}

type cnetDNS struct {
	bin string
	c   dns.Client
}

func (s *cnetDNS) name() string { return "cnet" }
func (s *cnetDNS) check() error {
	_, err := os.Stat(s.bin)
	return err
}
func (s *cnetDNS) start(dir string, n int) (int, error) {
	snap := dns.Snapshot{Networks: []dns.Net{{Name: dnsNetwork, Gateway: dnsGateway, Subnet: dnsSubnet, Bridge: dnsBridge}}}
	snap.Containers = append(snap.Containers, dns.Ctr{Name: dnsClient, Endpoints: []dns.Ep{{Network: dnsNetwork, Addr: dnsClientIP}}})
	for i := 1; i <= n; i++ {
		name, addr := dnsRecord(i)
		snap.Containers = append(snap.Containers, dns.Ctr{Name: name, Endpoints: []dns.Ep{{Network: dnsNetwork, Addr: addr}}})
	}
	// As cnet starts it: the snapshot file, then `cnet __dns DIR`, detached.
	s.c = dns.Client{Dir: dir}
	if err := s.c.Start([]string{s.bin, "__dns"}, snap); err != nil {
		return 0, err
	}
	return s.c.Ping()
}
func (s *cnetDNS) stop() error { return s.c.Stop() }

type aardvark struct {
	bin, dir string
	pid      int
}

func (s *aardvark) name() string { return "aardvark-dns" }
func (s *aardvark) check() (err error) {
	s.bin, err = needBinary("aardvark-dns", "aardvark-dns", "/usr/lib/podman/aardvark-dns")
	return err
}
func (s *aardvark) start(dir string, n int) (int, error) {
	// netavark's format: the listening addresses, then one line per
	// container: ID, IPv4 addresses, IPv6 addresses, names.
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n", dnsGateway)
	id := func(i int) string { return fmt.Sprintf("%064x", i) }
	fmt.Fprintf(&b, "%s %s  %s\n", id(0), dnsClientIP, dnsClient)
	for i := 1; i <= n; i++ {
		name, addr := dnsRecord(i)
		fmt.Fprintf(&b, "%s %s  %s\n", id(i), addr, name)
	}
	s.dir = dir
	if err := os.WriteFile(filepath.Join(dir, dnsNetwork), b.Bytes(), 0o644); err != nil {
		return 0, err
	}
	// It forks into the background and writes its PID to DIR/aardvark.pid.
	if err := run(s.bin, "--config", dir, "-p", "53", "run"); err != nil {
		return 0, err
	}
	pidFile := filepath.Join(dir, "aardvark.pid")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				s.pid = pid
				return pid, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("aardvark-dns wrote no PID to %s", pidFile)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
func (s *aardvark) stop() error {
	if s.pid == 0 {
		return nil
	}
	pid := s.pid
	s.pid = 0
	// Only the process this run started: its command line names our dir.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !bytes.Contains(cmdline, []byte(s.dir)) {
		return fmt.Errorf("aardvark-dns pid %d is gone or not ours (%q)", pid, cmdline)
	}
	return killWait(pid)
}

// killWait ends a process this run started (not its child) and waits
// until it is gone.
func killWait(pid int) error {
	note(syscall.Kill(pid, syscall.SIGTERM))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			note(syscall.Kill(pid, syscall.SIGKILL))
			if time.Now().After(deadline.Add(5 * time.Second)) {
				return fmt.Errorf("pid %d did not exit", pid)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

type dnsmasq struct {
	bin string
	bg  *background
}

func (s *dnsmasq) name() string { return "dnsmasq" }
func (s *dnsmasq) check() (err error) {
	s.bin, err = needBinary("dnsmasq", "dnsmasq-base", "/usr/sbin/dnsmasq")
	return err
}
func (s *dnsmasq) start(dir string, n int) (int, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", dnsClientIP, dnsClient)
	for i := 1; i <= n; i++ {
		name, addr := dnsRecord(i)
		fmt.Fprintf(&b, "%s %s\n", addr, name)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, b.Bytes(), 0o644); err != nil {
		return 0, err
	}
	bg, err := start(s.bin, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--addn-hosts="+hosts, "--listen-address="+dnsGateway.String(), "--bind-interfaces", "--port=53",
		"--pid-file=", "--user=root", "--log-facility="+filepath.Join(dir, "dnsmasq.log"))
	if err != nil {
		return 0, err
	}
	s.bg = bg
	return bg.cmd.Process.Pid, nil
}
func (s *dnsmasq) stop() error {
	if s.bg == nil {
		return nil
	}
	err := s.bg.stop()
	s.bg = nil
	return err
}

// dnsTopology makes the network's bridge with the gateway address and the
// client container on it.
func dnsTopology() (teardown func() error, err error) {
	teardown = func() error {
		return errors.Join(run("ip", "netns", "del", dnsClient), delLinkIfPresent(dnsBridge))
	}
	bits := fmt.Sprint(dnsSubnet.Bits())
	for _, args := range [][]string{
		{"link", "add", dnsBridge, "type", "bridge"},
		{"addr", "add", dnsGateway.String() + "/" + bits, "dev", dnsBridge},
		{"link", "set", dnsBridge, "up"},
		{"netns", "add", dnsClient},
		{"-n", dnsClient, "link", "set", "lo", "up"},
		{"link", "add", "bdnsv", "master", dnsBridge, "up", "type", "veth", "peer", "name", "eth0", "netns", dnsClient},
		{"-n", dnsClient, "addr", "add", dnsClientIP.String() + "/" + bits, "dev", "eth0"},
		{"-n", dnsClient, "link", "set", "eth0", "up"},
	} {
		if err := run("ip", args...); err != nil {
			note(teardown())
			return nil, err
		}
	}
	return teardown, nil
}

// verifyAnswers asks for a sample of names from the client container and
// requires each server's answer to be the record's address, so a fast
// wrong answer is never measured.
func verifyAnswers(n int) error {
	return inNetns(netnsPath(dnsClient), func() error {
		c := &mdns.Client{Net: "udp", Timeout: time.Second}
		server := netip.AddrPortFrom(dnsGateway, 53).String()
		deadline := time.Now().Add(10 * time.Second)
		for _, i := range []int{1, n / 2, n, 1 + n/3} {
			name, want := dnsRecord(max(i, 1))
			for {
				m := new(mdns.Msg)
				m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
				in, _, err := c.Exchange(m, server)
				if err == nil {
					if len(in.Answer) != 1 {
						return fmt.Errorf("%s: %d answers (%s), want %s", name, len(in.Answer), mdns.RcodeToString[in.Rcode], want)
					}
					a, ok := in.Answer[0].(*mdns.A)
					if !ok || a.A.String() != want.String() {
						return fmt.Errorf("%s: answer %s, want %s", name, in.Answer[0], want)
					}
					break
				}
				var ne net.Error
				if !errors.As(err, &ne) || time.Now().After(deadline) {
					return fmt.Errorf("%s: %w", name, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return nil
	})
}

var (
	dnsperfQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfLost = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	dnsperfDone = regexp.MustCompile(`Queries completed:\s+(\d+)`)
)

// dnsperf runs one dnsperf in the client container (rate 0: as fast as
// it gets answers, 100 queries outstanding) and returns queries/s, the
// 99th percentile latency in seconds and the queries lost. Every answer
// must be NOERROR.
func dnsperf(queries string, seconds, rate int) (qps, p99 float64, lost int, err error) {
	args := []string{"netns", "exec", dnsClient, "dnsperf", "-s", dnsGateway.String(), "-d", queries,
		"-l", strconv.Itoa(seconds), "-q", "100", "-t", "2", "-v"}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(rate))
	}
	_, out, err := command{name: "ip", args: args, stdout: true}.run()
	if err != nil {
		return 0, 0, 0, err
	}
	var lat []float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "> ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if f[1] != "NOERROR" {
			return 0, 0, 0, fmt.Errorf("dnsperf: %s", line)
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("dnsperf line %q: %w", line, err)
		}
		lat = append(lat, v)
	}
	m, ml, md := dnsperfQPS.FindSubmatch(out), dnsperfLost.FindSubmatch(out), dnsperfDone.FindSubmatch(out)
	if m == nil || ml == nil || md == nil || len(lat) == 0 {
		return 0, 0, 0, fmt.Errorf("dnsperf printed no statistics: %.300s", out)
	}
	qps, _ = strconv.ParseFloat(string(m[1]), 64)
	lost, _ = strconv.Atoi(string(ml[1]))
	slices.Sort(lat)
	return qps, lat[max(int(0.99*float64(len(lat)))-1, 0)], lost, nil
}

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// measureDNS runs each server in turn, Reps times, starting each rep with
// a different server.
func measureDNS(cfg *Config, sc *scratch) *DNSResult {
	r := &DNSResult{Records: cfg.DNSRecords, Seconds: cfg.DNSSeconds, Reps: cfg.DataReps, Rate: cfg.DNSRate}
	if _, err := needBinary("dnsperf", "dnsperf"); err != nil {
		r.Err = err.Error()
		return r
	}
	teardown, err := dnsTopology()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer func() {
		if err := teardown(); err != nil && r.Err == "" {
			r.Err = "clean-up: " + err.Error()
		}
	}()
	// The queries: every name once, shuffled; dnsperf loops over them.
	var q bytes.Buffer
	rng := rand.New(rand.NewSource(1))
	for _, i := range rng.Perm(cfg.DNSRecords) {
		name, _ := dnsRecord(i + 1)
		fmt.Fprintf(&q, "%s A\n", name)
	}
	queries := sc.path("dns-queries.txt")
	if err := os.WriteFile(queries, q.Bytes(), 0o644); err != nil {
		r.Err = err.Error()
		return r
	}
	servers := []dnsServer{&cnetDNS{bin: cfg.CnetBin}, &aardvark{}, &dnsmasq{}}
	for _, s := range servers {
		res := &DNSServerResult{Name: s.name()}
		if err := s.check(); err != nil {
			res.Err = err.Error()
		}
		r.Servers = append(r.Servers, res)
	}
	for rep := 1; rep <= cfg.DataReps; rep++ {
		for k := range servers {
			i := (k + rep - 1) % len(servers)
			s, res := servers[i], r.Servers[i]
			if res.Err != "" {
				continue
			}
			dir := sc.path(fmt.Sprintf("dns-%s-%d", s.name(), rep))
			err := os.MkdirAll(dir, 0o700)
			var pid int
			if err == nil {
				pid, err = s.start(dir, cfg.DNSRecords)
			}
			if err == nil {
				err = verifyAnswers(cfg.DNSRecords)
			}
			var qps, p99, rp99 float64
			var lost, lost2 int
			if err == nil {
				qps, p99, lost, err = dnsperf(queries, cfg.DNSSeconds, 0)
			}
			if err == nil {
				_, rp99, lost2, err = dnsperf(queries, cfg.DNSSeconds, cfg.DNSRate)
			}
			if err == nil {
				res.RSS = rssKiB(pid)
			}
			if serr := s.stop(); err == nil {
				err = serr
			}
			if err != nil {
				res.Err = err.Error()
				cfg.Log("  dns %s: %s", s.name(), err)
				continue
			}
			res.QPS, res.P99, res.RateP99 = append(res.QPS, qps), append(res.P99, p99), append(res.RateP99, rp99)
			res.Lost += lost + lost2
			cfg.Log("  dns %s, run %d: %.0f queries/s, p99 %s; at %d/s p99 %s; RSS %s",
				s.name(), rep, qps, secs(p99), cfg.DNSRate, secs(rp99), mib(res.RSS))
		}
	}
	return r
}

func secs(s float64) string { return ms(time.Duration(s * float64(time.Second))) }
