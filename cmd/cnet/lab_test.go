package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/graph"
	"github.com/cnetdev/cnet/internal/testenv"
)

// labCLI is a cli whose PATH finds echo-server, for the examples'
// commands.
func labCLI(t *testing.T) *cli {
	c := newCLI(t)
	c.env = []string{"PATH=" + filepath.Dir(bin.echo) + ":" + os.Getenv("PATH")}
	return c
}

// reaches polls until cmd succeeds inside container (servers take a moment
// to start).
func (c *cli) reaches(container string, cmd ...string) string {
	c.t.Helper()
	var out string
	testenv.Eventually(c.t, 10*time.Second, func() error {
		r := c.run(append([]string{"exec", container, "--"}, cmd...)...)
		if r.code != 0 {
			return fmt.Errorf("%s in %s: exit %d %s%s", strings.Join(cmd, " "), container, r.code, r.stdout, r.stderr)
		}
		out = r.stdout
		return nil
	})
	return out
}

// blocked asserts cmd fails inside container.
func (c *cli) blocked(container string, cmd ...string) {
	c.t.Helper()
	if r := c.run(append([]string{"exec", container, "--"}, cmd...)...); r.code == 0 {
		c.t.Fatalf("%s in %s succeeded, want it blocked:\n%s", strings.Join(cmd, " "), container, r.stdout)
	}
}

// alive reports whether pid runs: it exists and is not a zombie waiting
// for init to reap it.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// TestLabExamples applies each example, checks it works, applies it again
// (no change), and destroys it: the sandbox must be as before, and the
// lab's processes gone.
func TestLabExamples(t *testing.T) {
	curl := []string{"curl", "-sf", "-m", "2"}
	for _, ex := range []struct {
		file  string
		check func(c *cli)
	}{
		{"seed.yaml", func(c *cli) {
			c.reaches("container-1", append(curl, "172.18.0.3:8000/echo")...)
			c.reaches("container-2", append(curl, "172.18.0.2:8000/echo")...)
			if out := testenv.Run(t, "ip", "-br", "addr", "show", "cont-br0"); !strings.Contains(out, "172.18.0.1/24") {
				t.Fatalf("cont-br0: %s", out)
			}
		}},
		{"three-tier.yaml", func(c *cli) {
			testenv.Eventually(t, 10*time.Second, func() error { // the published port, from the host
				_, err := testenv.Try("curl", "-sf", "-m", "2", "127.0.0.1:8080/echo")
				return err
			})
			c.reaches("web", append(curl, "api:8000/echo")...)
			c.reaches("api", append(curl, "db:5432/echo")...)
			c.reaches("api", append(curl, "backend.back.cnet:8000/echo")...)
			c.blocked("web", append(curl, "172.31.20.50:5432/echo")...) // back is internal
		}},
		{"router.yaml", func(c *cli) {
			c.reaches("left-host", "ping", "-c1", "-W2", "172.31.2.10")
			c.reaches("edge", "ping", "-c1", "-W2", "172.31.1.10")
			c.reaches("edge", append(curl, "172.31.2.10:8000/echo")...)
			if out := testenv.Run(t, "tc", "-n", "router", "qdisc", "show", "dev", "to-edge"); !strings.Contains(out, "tbf") || !strings.Contains(out, "10Mbit") {
				t.Fatalf("router to-edge qdisc: %s", out)
			}
			if out := testenv.Run(t, "ip", "netns", "exec", "router", "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(out) != "1" {
				t.Fatalf("forwarding in router: %q", out)
			}
		}},
	} {
		t.Run(ex.file, func(t *testing.T) {
			c := labCLI(t)
			file := filepath.Join("..", "..", "examples", ex.file)
			before := testenv.Snapshot(t)
			plan := c.ok("diff", "-f", file)
			if after := testenv.Snapshot(t); after != before {
				t.Fatalf("diff changed the machine:\n%s", after)
			}
			out := c.ok("apply", "-f", file)
			if !strings.HasPrefix(out, plan) {
				t.Fatalf("apply did not print the plan first:\n%s\nplan:\n%s", out, plan)
			}
			ex.check(c)
			if out := c.ok("apply", "-f", file); !strings.Contains(out, "nothing to change") {
				t.Fatalf("second apply:\n%s", out)
			}
			var res labResult
			c.json(&res, "diff", "-f", file)
			if len(res.Actions) != 0 {
				t.Fatalf("diff after apply: %+v", res.Actions)
			}
			sameDrawing(t, c, file)
			var cs []struct{ PIDs []int }
			c.json(&cs, "ls")
			var pids []int
			for _, ct := range cs {
				pids = append(pids, ct.PIDs...)
			}
			c.ok("destroy", "-f", file)
			testenv.Eventually(t, 10*time.Second, func() error {
				for _, pid := range pids {
					if alive(pid) {
						return fmt.Errorf("process %d survived destroy", pid)
					}
				}
				return nil
			})
			testenv.WaitSnapshot(t, before)
		})
	}
}

// TestLabCommand: a changed command is restarted; an unchanged one is
// left running.
func TestLabCommand(t *testing.T) {
	c := labCLI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "cmd.yaml")
	write := func(port string) {
		if err := os.WriteFile(file, []byte("containers:\n  srv:\n    networks: [net]\n    command: [echo-server, -listen, ':"+port+"']\nnetworks:\n  net: {subnet: 172.30.40.0/24}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("8000")
	c.ok("apply", "-f", file)
	c.reaches("srv", "curl", "-sf", "-m", "2", "127.0.0.1:8000/echo")
	pidsOf := func() []int {
		var ct struct{ PIDs []int }
		c.json(&ct, "inspect", "srv")
		return ct.PIDs
	}
	first := pidsOf()
	if out := c.ok("apply", "-f", file); !strings.Contains(out, "nothing to change") {
		t.Fatalf("second apply restarted the command:\n%s", out)
	}
	write("8001")
	out := c.ok("apply", "-f", file)
	if !strings.Contains(out, "stop       command srv") || !strings.Contains(out, "start      command srv") {
		t.Fatalf("apply after the command changed:\n%s", out)
	}
	c.reaches("srv", "curl", "-sf", "-m", "2", "127.0.0.1:8001/echo")
	for _, pid := range first {
		if alive(pid) {
			t.Fatalf("old command %d still runs", pid)
		}
	}
	c.ok("destroy", "-f", file)
}

// TestLabRefusals: bad files are refused with the line and field, and
// change nothing.
func TestLabRefusals(t *testing.T) {
	c := labCLI(t)
	dir := t.TempDir()
	c.ok("network", "create", "taken", "--subnet", "172.30.50.0/24")
	before := testenv.Snapshot(t)
	for _, tc := range []struct {
		yaml string
		code int
		want []string
	}{
		{"containers:\n  a:\n    networks: [{network: taken, ip: 172.30.50.999}]\n", exitInvalid, []string{"bad.yaml:3:", "containers.a.networks[0].ip", `"172.30.50.999"`, "IPv4 address"}},
		{"networks:\n  taken: {}\n", exitConflict, []string{"bad.yaml:2:", "networks.taken", "outside any lab"}},
		{"containers:\n  a: {networks: [elsewhere]}\n", exitNotFound, []string{"bad.yaml:2:", `"elsewhere"`, "taken"}},
		{"lab: x\nnetworks: {n: {mtu: 1}}\n", exitInvalid, []string{"bad.yaml:2:", "networks.n.mtu", "68 to 65535"}},
	} {
		file := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"apply", "diff"} {
			r := c.run(verb, "-f", file)
			if r.code != tc.code {
				t.Errorf("%s %q: exit %d, want %d\n%s", verb, tc.yaml, r.code, tc.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s %q: stderr %q lacks %q", verb, tc.yaml, r.stderr, w)
				}
			}
		}
	}
	if r := c.run("apply", "-f", filepath.Join(dir, "missing.yaml")); r.code != exitNotFound || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("missing file: exit %d %s", r.code, r.stderr)
	}
	if r := c.run("apply"); r.code != exitInvalid || !strings.Contains(r.stderr, "-f FILE") {
		t.Errorf("no -f: exit %d %s", r.code, r.stderr)
	}
	if after := testenv.Snapshot(t); after != before {
		t.Fatalf("a refused file changed the machine:\n%s", after)
	}
	// destroy reads only the lab name, so a broken file still works, and
	// removes nothing that is not the lab's.
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("lab: x\nnetworks: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("destroy", "-f", filepath.Join(dir, "bad.yaml")); !strings.Contains(out, "nothing to change") {
		t.Fatalf("destroy of an empty lab: %s", out)
	}
	if after := testenv.Snapshot(t); after != before {
		t.Fatalf("destroy removed what was not the lab's:\n%s", after)
	}
}

// sameDrawing: cnet graph -f FILE draws what cnet graph draws once the
// file is applied, except the names cnet picks for host veths and the
// addresses the file leaves to cnet.
func sameDrawing(t *testing.T, c *cli, file string) {
	t.Helper()
	var live, planned graph.Topology
	c.json(&live, "graph")
	c.json(&planned, "graph", "-f", file)
	key := func(l graph.Link) string { return l.Network + "/" + l.A.Container + "/" + l.A.Ifname }
	blank := map[string]bool{}
	for _, l := range planned.Links {
		blank[key(l)] = !l.A.Addr.IsValid()
	}
	for i, l := range live.Links {
		if !l.Direct() {
			live.Links[i].B.Ifname = "veth"
		}
		if blank[key(l)] {
			live.Links[i].A.Addr = netip.Prefix{}
		}
	}
	for _, topo := range []*graph.Topology{&live, &planned} {
		for i, l := range topo.Links {
			if l.Direct() && l.A.Container > l.B.Container { // either way round is the same pair
				topo.Links[i].A, topo.Links[i].B = l.B, l.A
			}
		}
		slices.SortFunc(topo.Networks, func(a, b graph.Network) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(topo.Containers, func(a, b graph.Container) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(topo.Links, func(a, b graph.Link) int { return strings.Compare(key(a), key(b)) })
	}
	got, _ := json.MarshalIndent(planned, "", " ")
	want, _ := json.MarshalIndent(live, "", " ")
	if string(got) != string(want) {
		t.Errorf("graph -f %s draws\n%s\nbut the applied lab is\n%s", file, got, want)
	}
}

// TestExamplePictures: the drawings of the examples in docs/examples are
// what cnet graph -f draws now (make pictures redraws them).
func TestExamplePictures(t *testing.T) {
	c := newCLI(t)
	if r := c.run("graph", "-f", "nosuch.yaml"); r.code == 0 || !strings.Contains(r.stderr, "nosuch.yaml") {
		t.Errorf("graph -f nosuch.yaml: exit %d %q", r.code, r.stderr)
	}
	for _, ex := range []string{"seed", "three-tier", "router"} {
		file := filepath.Join("..", "..", "examples", ex+".yaml")
		want, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", ex+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		if ex == "seed" {
			if doc, _ := os.ReadFile(filepath.Join("..", "..", "docs", "labs.md")); !strings.Contains(string(doc), string(want)) {
				t.Errorf("docs/labs.md lacks the drawing in docs/examples/seed.txt")
			}
		}
		if got := c.ok("graph", "-f", file); got != string(want) {
			t.Errorf("docs/examples/%s.txt is stale (make pictures); cnet graph -f %s draws:\n%s", ex, file, got)
		}
		svg, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", ex+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		var topo graph.Topology
		c.json(&topo, "graph", "-f", file)
		for _, ct := range topo.Containers {
			if name := strings.ReplaceAll(ct.Name, "-", "&#45;"); !strings.Contains(string(svg), ">"+name+"<") {
				t.Errorf("docs/examples/%s.svg lacks container %s (make pictures)", ex, ct.Name)
			}
		}
	}
}
