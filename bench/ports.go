package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Published ports: a "LAN" namespace reaches a server container through a
// port published on the host's address (cnet's nftables DNAT maps, or the
// CNI portmap plugin's iptables chains), and directly at the container's
// address with no NAT. Figures with one mapping per service, then with
// Mappings mappings present; and the time to add one mapping at both
// counts.

// The LAN: a veth from the sandbox's own namespace (the host, lanHost)
// to the namespace lanNS (lanClient), which routes everything via the host.
const (
	lanNS     = "blan"
	lanHostIf = "blanh"
)

var (
	lanNet    = netip.MustParsePrefix("198.18.0.0/24")
	lanHost   = netip.MustParseAddr("198.18.0.1")
	lanClient = netip.MustParseAddr("198.18.0.2")
)

// Host ports of the two services, and the one each timed add publishes.
const (
	pubIperf  = 15201
	pubHTTP   = 18000
	probePort = 30000
	fillBase  = 20000 // fillers: fillBase, fillBase+1, ...
	fillBatch = 100   // mappings per filler publish or portmap ADD
)

// PortsResult is the published-ports part.
type PortsResult struct {
	// Mappings is the mapping count asked for; Seconds and Reps the
	// length and number of each data-path run; Budget bounds each tool's
	// filling.
	Mappings, Seconds, Reps int
	// AddReps is how many adds are timed at each count.
	AddReps int
	Budget  time.Duration
	Tools   []*PortTool
	Err     string
}

// PortTool is one way of publishing ports.
type PortTool struct {
	Name string
	Err  string
	// AddFirst is adding a mapping with none present; AddMany with
	// Reached-1 present, Reached after it.
	AddFirst, AddMany Stat
	Reached           int
	// FillTime is how long adding the fillers took; Cut says the budget
	// stopped it before Mappings.
	FillTime time.Duration
	Cut      bool
	// Direct and Published at one mapping per service (index 0) and with
	// Reached mappings (index 1).
	Direct, Published [2]*PathResult
}

func newLAN() (teardown func() error, err error) {
	teardown = func() error {
		return errors.Join(delLinkIfPresent(lanHostIf), run("ip", "netns", "del", lanNS))
	}
	bits := fmt.Sprint(lanNet.Bits())
	for _, args := range [][]string{
		{"netns", "add", lanNS},
		{"-n", lanNS, "link", "set", "lo", "up"},
		{"link", "add", lanHostIf, "type", "veth", "peer", "name", "eth0", "netns", lanNS},
		{"addr", "add", lanHost.String() + "/" + bits, "dev", lanHostIf},
		{"link", "set", lanHostIf, "up"},
		{"-n", lanNS, "addr", "add", lanClient.String() + "/" + bits, "dev", "eth0"},
		{"-n", lanNS, "link", "set", "eth0", "up"},
		{"-n", lanNS, "route", "add", "default", "via", lanHost.String()},
	} {
		if err := run("ip", args...); err != nil {
			note(teardown())
			return nil, err
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		note(teardown())
		return nil, err
	}
	// wrk with a connection per request opens tens of thousands of
	// connections: let the client reuse ports in TIME_WAIT.
	if err := inNetns(netnsPath(lanNS), func() error {
		return errors.Join(os.WriteFile("/proc/sys/net/ipv4/tcp_tw_reuse", []byte("1"), 0o644),
			os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("10000 65000"), 0o644))
	}); err != nil {
		note(teardown())
		return nil, fmt.Errorf("lan sysctls: %w", err)
	}
	return teardown, nil
}

// portsStage runs the data path on direct and published, alternating
// which goes first.
func portsStage(cfg *Config, label string, direct, published *topology) (d, p *PathResult) {
	d, p = &PathResult{Name: direct.name}, &PathResult{Name: published.name}
	pairs := []struct {
		t *topology
		r *PathResult
	}{{direct, d}, {published, p}}
	for rep := 1; rep <= cfg.DataReps; rep++ {
		for k := range pairs {
			x := pairs[(k+rep-1)%2]
			if x.r.Err != "" {
				continue
			}
			g, err := x.t.iperf(cfg.DataSeconds)
			var r, rc float64
			if err == nil {
				r, err = x.t.wrk(cfg.DataSeconds)
			}
			if err == nil {
				rc, err = x.t.wrkClose(cfg.DataSeconds)
			}
			if err != nil {
				x.r.Err = err.Error()
				continue
			}
			x.r.Gbps, x.r.RPS, x.r.CloseRPS = append(x.r.Gbps, g), append(x.r.RPS, r), append(x.r.CloseRPS, rc)
			cfg.Log("  %s, %s, run %d: %.2f Gbit/s, %.0f requests/s, %.0f with a connection each", x.t.name, label, rep, g, r, rc)
		}
	}
	return d, p
}

// publisher is cnet or portmap: add(ports) publishes host port → the
// same container port (or CPORT for the services) and returns an undo.
type publisher interface {
	// publish adds one mapping per pair (host port, container port) in
	// one operation; id names the operation for tools that need one.
	publish(id string, pairs [][2]int) error
	unpublish(id string, pairs [][2]int) error
}

// timeAdds times reps additions of one mapping (probePort → 8000), each
// undone but the last when keep is set.
func timeAdds(pub publisher, reps int, keep bool) (Stat, error) {
	var ds []time.Duration
	pair := [][2]int{{probePort, 8000}}
	for r := 1; r <= reps; r++ {
		d, err := timed(func() error { return pub.publish("probe", pair) })
		if err != nil {
			return Stat{}, err
		}
		ds = append(ds, d)
		if r < reps || !keep {
			if err := pub.unpublish("probe", pair); err != nil {
				return Stat{}, err
			}
		}
	}
	return summarize(ds), nil
}

// fill adds filler mappings in batches until count are present (have
// already are) or the budget is spent, and returns how many are present.
func fill(cfg *Config, name string, pub publisher, have, count int, budget time.Duration) (int, time.Duration, bool, error) {
	start := time.Now()
	next := fillBase
	for batch := 0; have < count; batch++ {
		if time.Since(start) > budget {
			return have, time.Since(start), true, nil
		}
		n := min(fillBatch, count-have)
		pairs := make([][2]int, n)
		for i := range pairs {
			pairs[i] = [2]int{next + i, next + i}
		}
		if err := pub.publish(fmt.Sprintf("fill%d", batch), pairs); err != nil {
			return have, time.Since(start), false, err
		}
		next += n
		have += n
		if batch%20 == 19 {
			cfg.Log("  %s: %d mappings (%s)", name, have, time.Since(start).Round(time.Second))
		}
	}
	return have, time.Since(start), false, nil
}

// runPortTool measures one publisher: time single adds with nothing
// published, publish the services, run the data path, fill to Mappings,
// time single adds again, run the data path again.
func runPortTool(cfg *Config, pt *PortTool, pub publisher, direct, published *topology) error {
	var err error
	if pt.AddFirst, err = timeAdds(pub, cfg.Reps, false); err != nil {
		return fmt.Errorf("adding the first mapping: %w", err)
	}
	services := [][2]int{{pubIperf, 5201}, {pubHTTP, 8000}}
	if err := pub.publish("services", services); err != nil {
		return fmt.Errorf("publishing the services: %w", err)
	}
	if err := published.waitServers(); err != nil {
		return err
	}
	pt.Direct[0], pt.Published[0] = portsStage(cfg, "1 mapping per service", direct, published)
	// Fill to Mappings-1, so the timed add makes Mappings.
	have, d, cut, err := fill(cfg, pt.Name, pub, len(services), cfg.Mappings-1, cfg.PortBudget)
	pt.FillTime, pt.Cut = d, cut
	if err != nil {
		return fmt.Errorf("adding filler mappings (%d present): %w", have, err)
	}
	cfg.Log("  %s: %d mappings in %s, timing adds", pt.Name, have, d.Round(time.Second))
	if pt.AddMany, err = timeAdds(pub, cfg.Reps, true); err != nil {
		return fmt.Errorf("adding a mapping with %d present: %w", have, err)
	}
	pt.Reached = have + 1
	label := fmt.Sprintf("%d mappings", pt.Reached)
	pt.Direct[1], pt.Published[1] = portsStage(cfg, label, direct, published)
	return nil
}

// cnetPublisher publishes with `cnet publish CONTAINER SPEC...`.
type cnetPublisher struct {
	c         *cnetCLI
	container string
}

func portSpecs(pairs [][2]int) []string {
	var specs []string
	// Consecutive pairs with equal offsets go as one range.
	for i := 0; i < len(pairs); {
		j := i + 1
		for j < len(pairs) && pairs[j][0] == pairs[j-1][0]+1 && pairs[j][1] == pairs[j-1][1]+1 {
			j++
		}
		if j-i == 1 {
			specs = append(specs, fmt.Sprintf("%d:%d", pairs[i][0], pairs[i][1]))
		} else {
			specs = append(specs, fmt.Sprintf("%d-%d:%d-%d", pairs[i][0], pairs[j-1][0], pairs[i][1], pairs[j-1][1]))
		}
		i = j
	}
	return specs
}

func (p *cnetPublisher) publish(_ string, pairs [][2]int) error {
	_, err := p.c.cnet(append([]string{"publish", p.container}, portSpecs(pairs)...)...)
	return err
}
func (p *cnetPublisher) unpublish(_ string, pairs [][2]int) error {
	_, err := p.c.cnet(append([]string{"unpublish", p.container}, portSpecs(pairs)...)...)
	return err
}

// directTopology is a server namespace on a plain bridge (no NAT, no
// filtering) that the LAN reaches at its address: the path without NAT.
func directTopology(bridge string, subnet netip.Prefix) (*topology, error) {
	s := &seedIP{bridge: bridge, vethPrefix: "pd", subnet: subnet}
	srv := slot{name: "pdsrv", ip: nthAddr(subnet, 2), id: 1}
	t := &topology{name: "direct", serverNS: srv.name, clientNS: lanNS, addr: srv.ip.String()}
	made := false
	t.teardown = func() error {
		var errs []error
		if made {
			errs = append(errs, s.remove(srv))
		}
		return errors.Join(append(errs, delLinkIfPresent(bridge), run("ip", "-n", lanNS, "route", "del", subnet.String()))...)
	}
	for _, args := range [][]string{
		{"link", "add", bridge, "type", "bridge"},
		{"addr", "add", netip.PrefixFrom(s.gateway(), subnet.Bits()).String(), "dev", bridge},
		{"link", "set", bridge, "up"},
		{"-n", lanNS, "route", "add", subnet.String(), "via", lanHost.String()},
	} {
		if err := run("ip", args...); err != nil {
			note(t.teardown())
			return nil, err
		}
	}
	if err := s.create(srv); err != nil {
		note(t.teardown())
		return nil, err
	}
	made = true
	return t, nil
}

// measureCnetPorts: the server is a cnet container; direct is a plain
// bridge next to it (cnet's firewall drops unpublished traffic from
// outside, so its containers cannot be reached at their address from the
// LAN, by design).
func measureCnetPorts(cfg *Config, pt *PortTool) (err error) {
	c := &cnetCLI{bin: cfg.CnetBin, root: cfg.Root, network: "bports", subnet: netip.MustParsePrefix("10.83.0.0/24")}
	const srv = "psrv"
	var servers []*topology
	var direct *topology
	defer func() {
		var errs []error
		for _, t := range servers {
			errs = append(errs, t.stopServers())
		}
		if direct != nil {
			errs = append(errs, direct.teardown())
		}
		_, e1 := c.cnet("rm", srv)
		_, e2 := c.cnet("network", "rm", c.network)
		if cerr := errors.Join(append(errs, e1, e2)...); cerr != nil && err == nil {
			err = fmt.Errorf("clean-up: %w", cerr)
		}
	}()
	if err := c.prepare(); err != nil {
		return err
	}
	if _, err := c.cnet("create", srv, "--network", c.network, "--ip", "10.83.0.2"); err != nil {
		return err
	}
	if direct, err = directTopology("pdbr0", netip.MustParsePrefix("10.84.0.0/24")); err != nil {
		return err
	}
	server := &topology{name: "cnet server", serverNS: srv, clientNS: srv, addr: "10.83.0.2"}
	servers = append(servers, server, direct)
	for _, t := range servers {
		if err := t.startServers(cfg.EchoBin); err != nil {
			return err
		}
	}
	published := &topology{name: "published", clientNS: lanNS, addr: lanHost.String(),
		iperfPort: fmt.Sprint(pubIperf), httpPort: fmt.Sprint(pubHTTP)}
	pub := &cnetPublisher{c: c, container: srv}
	if err := runPortTool(cfg, pt, pub, direct, published); err != nil {
		return err
	}
	// What the container holds is what was counted.
	_, out, err := command{name: c.bin, args: []string{"--root", c.root, "port", srv, "--json"}}.run()
	if err != nil {
		return err
	}
	var ps []json.RawMessage
	if err := json.Unmarshal(out, &ps); err != nil {
		return fmt.Errorf("cnet port --json: %w", err)
	}
	if len(ps) != pt.Reached {
		return fmt.Errorf("cnet port lists %d mappings, the harness counted %d", len(ps), pt.Reached)
	}
	return nil
}

// portmapPublisher runs the CNI portmap plugin as a runtime chains it
// after bridge: ADD with the container's portMappings in runtimeConfig and
// bridge's result as prevResult; DEL likewise. Each publish is one
// attachment (CNI_CONTAINERID), as a runtime adds a container's mappings.
type portmapPublisher struct {
	version  string
	netns    string
	prev     json.RawMessage
	attached map[string][][2]int
	plugin   string
	netName  string
}

func (p *portmapPublisher) conf(pairs [][2]int) []byte {
	var pm []map[string]any
	for _, x := range pairs {
		pm = append(pm, map[string]any{"hostPort": x[0], "containerPort": x[1], "protocol": "tcp"})
	}
	b, _ := json.Marshal(map[string]any{
		"cniVersion": p.version, "name": p.netName, "type": "portmap",
		"capabilities":  map[string]bool{"portMappings": true},
		"snat":          true,
		"runtimeConfig": map[string]any{"portMappings": pm},
		"prevResult":    p.prev,
	})
	return b
}

func (p *portmapPublisher) exec(verb, id string, pairs [][2]int) error {
	env := append(os.Environ(), "CNI_COMMAND="+verb, "CNI_CONTAINERID="+p.netName+"-"+id,
		"CNI_NETNS="+p.netns, "CNI_IFNAME=eth0", "CNI_PATH="+cniDir)
	_, _, err := command{name: p.plugin, env: env, stdin: p.conf(pairs)}.run()
	return err
}

func (p *portmapPublisher) publish(id string, pairs [][2]int) error {
	if err := p.exec("ADD", id, pairs); err != nil {
		return err
	}
	p.attached[id] = pairs
	return nil
}

func (p *portmapPublisher) unpublish(id string, pairs [][2]int) error {
	if err := p.exec("DEL", id, pairs); err != nil {
		return err
	}
	delete(p.attached, id)
	return nil
}

// measurePortmap: the server container is attached by bridge + host-local
// and its mappings are portmap's; the LAN reaches the same container at
// its address for the direct path.
func measurePortmap(cfg *Config, pt *PortTool, sc *scratch) (err error) {
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniDir, p)); err != nil {
			return &missingError{binary: filepath.Join(cniDir, p), pkg: "containernetworking-plugins"}
		}
	}
	if _, err := needBinary("iptables", "iptables"); err != nil {
		return err
	}
	subnet := netip.MustParsePrefix("10.85.0.0/24")
	br := &cniBridge{subnet: subnet, dataDir: sc.path("cni-portmap"), plugin: filepath.Join(cniDir, "bridge"), bridge: "cnipm0", network: "bpm"}
	srv := slot{name: "pmsrv"}
	pub := &portmapPublisher{netns: netnsPath(srv.name), plugin: filepath.Join(cniDir, "portmap"), netName: "bpm", attached: map[string][][2]int{}}
	var server *topology
	attached, routed := false, false
	defer func() {
		var errs []error
		if server != nil {
			errs = append(errs, server.stopServers())
		}
		// A runtime's DEL of the chain, in reverse: portmap, then bridge;
		// the fillers' attachments go in one flush (a DEL each would take
		// as long as their ADDs did).
		if pm, ok := pub.attached["services"]; ok {
			errs = append(errs, pub.unpublish("services", pm))
		}
		if attached {
			errs = append(errs, br.plug("DEL", srv))
		}
		if routed {
			errs = append(errs, run("ip", "-n", lanNS, "route", "del", subnet.String()))
		}
		note(run("ip", "netns", "del", srv.name))
		if len(pub.attached) > 0 {
			errs = append(errs, run("iptables", "-t", "nat", "-F"), run("iptables", "-t", "nat", "-X"))
		}
		errs = append(errs, br.finish())
		if cerr := errors.Join(errs...); cerr != nil && err == nil {
			err = fmt.Errorf("clean-up: %w", cerr)
		}
	}()
	if err := br.prepare(); err != nil {
		return err
	}
	pub.version = br.ver
	if err := run("ip", "netns", "add", srv.name); err != nil {
		return err
	}
	out, err := br.plugOut("ADD", srv)
	if err != nil {
		return err
	}
	attached = true
	pub.prev = out
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) == 0 {
		return fmt.Errorf("bridge ADD result without an address: %s", out)
	}
	addr, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		return err
	}
	if err := run("ip", "-n", lanNS, "route", "add", subnet.String(), "via", lanHost.String()); err != nil {
		return err
	}
	routed = true
	server = &topology{name: "portmap server", serverNS: srv.name, clientNS: lanNS, addr: addr.Addr().String()}
	if err := server.startServers(cfg.EchoBin); err != nil {
		return err
	}
	direct := &topology{name: "direct", clientNS: lanNS, addr: addr.Addr().String()}
	published := &topology{name: "published", clientNS: lanNS, addr: lanHost.String(),
		iperfPort: fmt.Sprint(pubIperf), httpPort: fmt.Sprint(pubHTTP)}
	return runPortTool(cfg, pt, pub, direct, published)
}

// measurePorts runs the published-ports part for cnet, then portmap: one
// after the other, so neither's rules are in the other's path.
func measurePorts(cfg *Config, sc *scratch) *PortsResult {
	pr := &PortsResult{Mappings: cfg.Mappings, Seconds: cfg.DataSeconds, Reps: cfg.DataReps, AddReps: cfg.Reps, Budget: cfg.PortBudget}
	for _, b := range [][2]string{{"iperf3", "iperf3"}, {"wrk", "wrk"}, {"ip", "iproute2"}, {"bash", "bash"}} {
		if _, err := needBinary(b[0], b[1]); err != nil {
			pr.Err = err.Error()
			return pr
		}
	}
	teardown, err := newLAN()
	if err != nil {
		pr.Err = "LAN namespace: " + err.Error()
		return pr
	}
	defer func() {
		if err := teardown(); err != nil && pr.Err == "" {
			pr.Err = "removing the LAN namespace: " + err.Error()
		}
	}()
	for _, x := range []struct {
		name string
		f    func(*PortTool) error
	}{
		{"cnet", func(pt *PortTool) error { return measureCnetPorts(cfg, pt) }},
		{"portmap", func(pt *PortTool) error { return measurePortmap(cfg, pt, sc) }},
	} {
		pt := &PortTool{Name: x.name}
		pr.Tools = append(pr.Tools, pt)
		cfg.Log("published ports: %s", x.name)
		if err := x.f(pt); err != nil {
			pt.Err = err.Error()
			cfg.Log("  %s: %s", x.name, pt.Err)
		}
		if err := waitNoVeths(2 * time.Minute); err != nil && pt.Err == "" {
			pt.Err = err.Error()
		}
	}
	return pr
}
