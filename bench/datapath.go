package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DataPath compares the traffic two containers can exchange on a cnet
// network with the seed's hand-made topology, and with loopback inside
// one namespace as the ceiling.
type DataPath struct {
	Seconds, Reps int
	Paths         []*PathResult
	Err           string
}

// PathResult is one topology: every run's figures, and their medians.
type PathResult struct {
	Name      string
	Gbps, RPS []float64
	// CloseRPS is requests per second with a new connection each
	// (measured only where it says so).
	CloseRPS []float64
	Err      string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func (p *PathResult) MedianGbps() float64     { return median(p.Gbps) }
func (p *PathResult) MedianRPS() float64      { return median(p.RPS) }
func (p *PathResult) MedianCloseRPS() float64 { return median(p.CloseRPS) }

// topology is a server namespace, a client namespace and the address the
// client reaches the server at.
type topology struct {
	name, serverNS, clientNS, addr string
	// iperfPort and httpPort are where the client finds the servers
	// (default 5201 and 8000, where they listen).
	iperfPort, httpPort string
	teardown            func() error
	servers             []*background
}

func (t *topology) ports() (iperf, http string) {
	iperf, http = t.iperfPort, t.httpPort
	if iperf == "" {
		iperf = "5201"
	}
	if http == "" {
		http = "8000"
	}
	return iperf, http
}

func netnsPath(name string) string { return "/run/netns/" + name }

func cnetTopology(cfg *Config) (*topology, error) {
	c := &cnetCLI{bin: cfg.CnetBin, root: cfg.Root, network: "bdp", subnet: netip.MustParsePrefix("10.79.0.0/24")}
	t := &topology{name: "cnet", serverNS: "bdp-s", clientNS: "bdp-c", addr: "10.79.0.2"}
	t.teardown = func() error {
		_, err1 := c.cnet("rm", t.serverNS)
		_, err2 := c.cnet("rm", t.clientNS)
		_, err3 := c.cnet("network", "rm", c.network)
		return errors.Join(err1, err2, err3)
	}
	if err := c.prepare(); err != nil {
		return nil, err
	}
	for _, a := range [][2]string{{t.serverNS, "10.79.0.2"}, {t.clientNS, "10.79.0.3"}} {
		if _, err := c.cnet("create", a[0], "--network", c.network, "--ip", a[1]); err != nil {
			note(t.teardown())
			return nil, err
		}
	}
	return t, nil
}

func seedTopology() (*topology, error) {
	s := &seedIP{bridge: "sdpbr0", vethPrefix: "sd", subnet: netip.MustParsePrefix("10.81.0.0/24")}
	server := slot{name: "sdp-s", ip: netip.MustParseAddr("10.81.0.2"), id: 1}
	client := slot{name: "sdp-c", ip: netip.MustParseAddr("10.81.0.3"), id: 2}
	t := &topology{name: "seed", serverNS: server.name, clientNS: client.name, addr: server.ip.String()}
	var made []slot
	t.teardown = func() error {
		var errs []error
		for _, m := range made {
			errs = append(errs, s.remove(m))
		}
		return errors.Join(append(errs, s.finish())...)
	}
	if err := s.prepare(); err != nil {
		note(s.finish())
		return nil, err
	}
	for _, c := range []slot{server, client} {
		if err := s.create(c); err != nil {
			note(t.teardown())
			return nil, err
		}
		made = append(made, c)
	}
	return t, nil
}

func loopbackTopology() (*topology, error) {
	t := &topology{name: "loopback", serverNS: "lodp", clientNS: "lodp", addr: "127.0.0.1"}
	t.teardown = func() error { return run("ip", "netns", "del", t.serverNS) }
	if err := run("ip", "netns", "add", t.serverNS); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", t.serverNS, "link", "set", "lo", "up"); err != nil {
		note(t.teardown())
		return nil, err
	}
	return t, nil
}

// startServers runs iperf3 -s and the echo server in the server namespace
// and waits until both accept connections from the client namespace.
func (t *topology) startServers(echoBin string) error {
	for _, argv := range [][]string{{"iperf3", "-s"}, {echoBin, "-listen", ":8000"}} {
		b, err := start("ip", append([]string{"netns", "exec", t.serverNS}, argv...)...)
		if err != nil {
			return err
		}
		t.servers = append(t.servers, b)
	}
	return t.waitServers()
}

// waitServers waits until both servers accept connections from the
// client namespace at the topology's address and ports.
func (t *topology) waitServers() error {
	iperfPort, httpPort := t.ports()
	for _, port := range []string{iperfPort, httpPort} {
		if err := waitListening(netnsPath(t.clientNS), t.addr+":"+port, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (t *topology) stopServers() error {
	var errs []error
	for _, b := range t.servers {
		errs = append(errs, b.stop())
	}
	t.servers = nil
	return errors.Join(errs...)
}

// iperf runs one TCP test and returns the received rate in Gbit/s. The
// server takes one test at a time, so a "busy" answer is retried.
func (t *topology) iperf(seconds int) (float64, error) {
	var last error
	for try := 0; try < 10; try++ {
		port, _ := t.ports()
		out, err := output("ip", "netns", "exec", t.clientNS, "iperf3", "-c", t.addr, "-p", port, "-t", strconv.Itoa(seconds), "-J")
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
			Error string `json:"error"`
		}
		if jerr := json.Unmarshal(out, &r); jerr == nil && r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
			return r.End.SumReceived.BitsPerSecond / 1e9, nil
		} else if r.Error != "" {
			last = fmt.Errorf("iperf3: %s", r.Error)
		} else if err != nil {
			last = err
		} else {
			last = fmt.Errorf("iperf3 printed no result: %.200s", out)
		}
		if !strings.Contains(last.Error(), "busy") {
			return 0, last
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, last
}

var (
	reqPerSec = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkErrors = regexp.MustCompile(`(Socket errors:.*|Non-2xx or 3xx responses: \d+)`)
)

// wrk runs the HTTP load and returns requests per second.
func (t *topology) wrk(seconds int) (float64, error) { return t.wrkArgs(seconds) }

// wrkClose is wrk with a new connection for every request ("Connection:
// close"): each request is a new flow, so NAT looks its mapping up each
// time instead of once per keep-alive connection.
func (t *topology) wrkClose(seconds int) (float64, error) {
	return t.wrkArgs(seconds, "-H", "Connection: close")
}

func (t *topology) wrkArgs(seconds int, extra ...string) (float64, error) {
	_, port := t.ports()
	args := append([]string{"netns", "exec", t.clientNS, "wrk", "-t2", "-c32", fmt.Sprintf("-d%ds", seconds)}, extra...)
	out, err := output("ip", append(args, "http://"+t.addr+":"+port+"/echo")...)
	if err != nil {
		return 0, err
	}
	if m := wrkErrors.FindString(string(out)); m != "" {
		return 0, fmt.Errorf("wrk: %s", m)
	}
	m := reqPerSec.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no rate: %.300s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// measureDataPath builds the three topologies, then runs iperf3 and wrk
// on each in turn, Reps times, so drift in the machine's speed spreads
// over all of them.
func measureDataPath(cfg *Config) DataPath {
	dp := DataPath{Seconds: cfg.DataSeconds, Reps: cfg.DataReps}
	for _, b := range [][2]string{{"iperf3", "iperf3"}, {"wrk", "wrk"}} {
		if _, err := needBinary(b[0], b[1]); err != nil {
			dp.Err = err.Error()
			return dp
		}
	}
	builders := []struct {
		name  string
		build func() (*topology, error)
	}{
		{"cnet", func() (*topology, error) { return cnetTopology(cfg) }},
		{"seed", seedTopology},
		{"loopback", loopbackTopology},
	}
	var topos []*topology
	for _, b := range builders {
		p := &PathResult{Name: b.name}
		dp.Paths = append(dp.Paths, p)
		t, err := b.build()
		if err == nil {
			if err = t.startServers(cfg.EchoBin); err != nil {
				note(t.stopServers())
				note(t.teardown())
			}
		}
		if err != nil {
			p.Err = err.Error()
			topos = append(topos, nil)
			continue
		}
		topos = append(topos, t)
	}
	for rep := 1; rep <= cfg.DataReps; rep++ {
		// Each run starts with a different topology, so none is always first.
		for k := range topos {
			i := (k + rep - 1) % len(topos)
			t, p := topos[i], dp.Paths[i]
			if t == nil || p.Err != "" {
				continue
			}
			g, err := t.iperf(cfg.DataSeconds)
			var r float64
			if err == nil {
				r, err = t.wrk(cfg.DataSeconds)
			}
			if err != nil {
				p.Err = err.Error()
				continue
			}
			p.Gbps, p.RPS = append(p.Gbps, g), append(p.RPS, r)
			cfg.Log("  data path %s, run %d: %.1f Gbit/s, %.0f requests/s", t.name, rep, g, r)
		}
	}
	for i, t := range topos {
		if t == nil {
			continue
		}
		err := errors.Join(t.stopServers(), t.teardown())
		if err != nil && dp.Paths[i].Err == "" {
			dp.Paths[i].Err = "clean-up: " + err.Error()
		}
	}
	return dp
}
