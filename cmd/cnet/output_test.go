package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCLI starts cnet against c's root without waiting for it.
func (c *cli) startCLI(out *syncBuffer, args ...string) *exec.Cmd {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	c.t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin.cnet, append([]string{"--root", c.root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	return cmd
}

// TestLogsFollow: logs -f prints what is there, then what the command
// writes later, and exits 0 once the command is gone and the log drained;
// it also ends on ^C while the command runs on.
func TestLogsFollow(t *testing.T) {
	c := newCLI(t)
	gate := filepath.Join(t.TempDir(), "go-on")
	c.ok("run", "-d", "--name", "talker", "--", "sh", "-c",
		`echo one; while [ ! -e "$1" ]; do sleep 0.05; done; echo two; sleep 0.2; echo three`, "sh", gate)
	var out syncBuffer
	cmd := c.startCLI(&out, "logs", "-f", "talker")
	testenv.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "one\n") {
			return errors.New("logs -f has not printed the first line")
		}
		return nil
	})
	if strings.Contains(out.String(), "two") {
		t.Fatalf("the command went on before the gate opened: %q", out.String())
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("logs -f after the command exited: %v\n%s", err, out.String())
	}
	if got := out.String(); got != "one\ntwo\nthree\n" {
		t.Errorf("logs -f printed %q, want one, two, three", got)
	}

	// ^C stops following a command that keeps running.
	c.ok("run", "-d", "--name", "sleeper", "--", "sh", "-c", "echo ready; exec sleep 300")
	var out2 syncBuffer
	cmd = c.startCLI(&out2, "logs", "--follow", "sleeper")
	testenv.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(out2.String(), "ready") {
			return errors.New("not printed yet")
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("^C to logs -f: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("logs -f after ^C: %v\n%s", err, out2.String())
	}
	// Without -f, logs prints what is there and returns.
	if got := c.ok("logs", "sleeper"); got != "ready\n" {
		t.Errorf("logs: %q", got)
	}
}

// TestPortsOneFormat: create, publish, unpublish and port print a mapping
// the way the PORTS column of ls shows it, and --json carries the same.
func TestPortsOneFormat(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "n", "--subnet", "172.18.0.0/24")
	created := c.ok("create", "web", "--network", "n", "-p", "8080:80")
	if want := "web\tpublished 0.0.0.0:8080->80/tcp\n"; !strings.Contains(created, want) {
		t.Errorf("create printed %q, want a line %q", created, want)
	}
	published := c.ok("publish", "web", "127.0.0.1:5353:53/udp", "9000-9001:9000-9001")
	want := "127.0.0.1:5353->53/udp\n0.0.0.0:9000->9000/tcp\n0.0.0.0:9001->9001/tcp\n"
	if !sameLines(published, want) {
		t.Errorf("publish printed %q, want the lines of %q", published, want)
	}
	port := c.ok("port", "web")
	all := "0.0.0.0:8080->80/tcp\n" + want
	if !sameLines(port, all) {
		t.Errorf("port printed %q, want the lines of %q", port, all)
	}
	var ls []cnet.Container
	c.json(&ls, "ls")
	table := c.ok("ls")
	for _, line := range strings.Split(strings.TrimSpace(all), "\n") {
		if !strings.Contains(table, line) {
			t.Errorf("ls lacks %s:\n%s", line, table)
		}
	}
	var ps []cnet.Port
	c.json(&ps, "port", "web")
	var fromJSON []string
	for _, p := range ps {
		fromJSON = append(fromJSON, p.String())
		if p.Address.String() != "172.18.0.2" {
			t.Errorf("port --json: %+v, want the container's address 172.18.0.2", p)
		}
	}
	if !sameLines(strings.Join(fromJSON, "\n"), all) {
		t.Errorf("port --json holds %v, want %q", fromJSON, all)
	}
	if got := c.ok("unpublish", "web", "9000-9001:9000-9001"); !sameLines(got, "0.0.0.0:9000->9000/tcp\n0.0.0.0:9001->9001/tcp\n") {
		t.Errorf("unpublish printed %q", got)
	}
	var none []cnet.Port
	c.ok("unpublish", "web", "8080:80", "127.0.0.1:5353:53/udp")
	c.json(&none, "port", "web")
	if out := c.ok("port", "web", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("port --json without ports: %q, want []", out)
	}
}

func sameLines(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// TestFailedCreateTellsNothing: a network create that fails after
// switching ip_forward on rolls it back and does not say it enabled it;
// one that succeeds says so.
func TestFailedCreateTellsNothing(t *testing.T) {
	c := newCLI(t)
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Logged(t, "restore ip_forward", os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644))
	})
	// Port 53 held on every address: the name server, started after
	// forwarding is switched on, cannot listen on the gateway.
	udp, err := net.ListenPacket("udp4", "0.0.0.0:53")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "0.0.0.0:53")
	if err != nil {
		t.Fatal(err)
	}
	before := testenv.Snapshot(t)
	r := c.run("network", "create", "n", "--subnet", "172.18.0.0/24")
	if r.code == 0 || strings.Contains(r.stderr, "enabled IPv4 forwarding") {
		t.Errorf("failed network create: exit %d, stderr %q; want a failure that does not claim to have enabled forwarding", r.code, r.stderr)
	}
	if after := testenv.Snapshot(t); after != before {
		t.Errorf("the failed create changed the sandbox:\n%s\nwant:\n%s", after, before)
	}
	// Port 53 freed: a close that failed would leave it held.
	if err := udp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tcp.Close(); err != nil {
		t.Fatal(err)
	}
	r = c.run("network", "create", "n", "--subnet", "172.18.0.0/24")
	if r.code != 0 || !strings.Contains(r.stderr, "enabled IPv4 forwarding") {
		t.Errorf("network create: exit %d, stderr %q; want it to say it enabled forwarding", r.code, r.stderr)
	}
	if fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(fwd) != "1\n" {
		t.Errorf("ip_forward = %q after the create, want 1", fwd)
	}
}

// TestHelpTeaches: flags show what they take, and say what they do.
func TestHelpTeaches(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, cmd := range []string{"create", "run"} {
		out, err := exec.Command(bin.cnet, cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("cnet %s --help: %v", cmd, err)
		}
		help := string(out)
		for _, want := range []string{
			"-p, --publish [HOSTIP:]HOSTPORT:CPORT[/PROTO] ",
			"--dns IP ",
			"nameserver IP for the container's resolv.conf, in place of cnet's name server on the gateway",
			"--network NET ",
			"--root DIR ",
		} {
			if !strings.Contains(help, want) {
				t.Errorf("cnet %s --help lacks %q:\n%s", cmd, want, help)
			}
		}
		if strings.Contains(help, "--publish cnet publish") || strings.Contains(help, "default: the host's)") {
			t.Errorf("cnet %s --help keeps the old -p placeholder or --dns default:\n%s", cmd, help)
		}
	}
	out, _ := exec.Command(bin.cnet, "logs", "--help").CombinedOutput()
	if !strings.Contains(string(out), "-f, --follow") {
		t.Errorf("cnet logs --help lacks -f:\n%s", out)
	}
	out, _ = exec.Command(bin.cnet, "--help").CombinedOutput()
	if !strings.Contains(string(out), "version ") || !strings.Contains(string(out), "-v, --version") {
		t.Errorf("cnet --help lacks version:\n%s", out)
	}
}

// TestJSONEverywhere: every command that prints data takes --json and
// prints JSON with it.
func TestJSONEverywhere(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "n", "--subnet", "172.18.0.0/24")
	c.ok("create", "web", "--network", "n", "-p", "8080:80")
	for _, args := range [][]string{
		{"ls"}, {"inspect", "web"}, {"network", "ls"}, {"network", "inspect", "n"}, {"port", "web"},
		{"resolve", "web"}, {"version"}, {"graph"}, {"gc", "--dry-run"},
	} {
		out := c.ok(append(args, "--json")...)
		if !json.Valid([]byte(out)) {
			t.Errorf("cnet %s --json: not JSON:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestEveryCommandTakesJSON: each command has --json, but those whose
// output is another program's (exec, run's command, logs) or that only
// group others.
func TestEveryCommandTakesJSON(t *testing.T) {
	noJSON := map[string]string{
		"cnet exec":       "prints the command's own output",
		"cnet logs":       "prints the command's log as written",
		"cnet network":    "only groups its subcommands",
		"cnet help":       "cobra's help",
		"cnet completion": "cobra's shell completion",
	}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
		if !cmd.HasParent() || strings.HasPrefix(cmd.CommandPath(), "cnet completion ") {
			return
		}
		if _, ok := noJSON[cmd.CommandPath()]; ok {
			if cmd.Flags().Lookup("json") != nil {
				t.Errorf("%s has --json: take it off the list of commands without", cmd.CommandPath())
			}
			return
		}
		if cmd.Flags().Lookup("json") == nil {
			t.Errorf("%s has no --json", cmd.CommandPath())
		}
	}
	root := newRoot()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	walk(root)
}

// TestReadmeSession: the README's session prints what cnet prints, but
// for the host veth names and the PID, which differ from run to run.
func TestReadmeSession(t *testing.T) {
	c := newCLI(t)
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i := strings.Index(readme, "$ sudo cnet ls\n")
	if i < 0 {
		t.Fatal("README has no `$ sudo cnet ls` in its session")
	}
	sample, _, _ := strings.Cut(readme[i+len("$ sudo cnet ls\n"):], "\n$ ")
	for _, step := range []struct {
		args []string
		says string
	}{
		{[]string{"network", "create", "seed", "--subnet", "172.18.0.0/24", "--bridge", "cont-br0"}, "seed\t172.18.0.0/24\tgateway 172.18.0.1 on cont-br0\n"},
		{[]string{"create", "container-1", "--network", "seed"}, "container-1\t172.18.0.2/24\teth0 on seed\n"},
	} {
		if out := c.ok(step.args...); out != step.says {
			t.Errorf("cnet %s printed %q, want %q", strings.Join(step.args, " "), out, step.says)
		}
		if !strings.Contains(readme, "$ sudo cnet "+strings.Join(step.args, " ")+"\n") || !strings.Contains(readme, step.says) {
			t.Errorf("README's session lacks cnet %s printing %q", strings.Join(step.args, " "), step.says)
		}
	}
	c.ok("run", "-d", "--name", "container-2", "--network", "seed", "--", bin.echo)
	norm := func(s string) string {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			line = vethName.ReplaceAllString(line, "vethXXXXXXX")
			out = append(out, strings.TrimRight(trailingPID.ReplaceAllString(line, "PID"), " "))
		}
		return strings.Join(out, "\n")
	}
	if got, want := norm(c.ok("ls")), norm(sample); got != want {
		t.Errorf("cnet ls prints\n%s\nthe README shows\n%s", got, want)
	}
}

var (
	vethName    = regexp.MustCompile(`veth[0-9a-f]{7}`)
	trailingPID = regexp.MustCompile(`[0-9]+$`)
)
