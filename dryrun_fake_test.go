package cnet

// Tier 2: dry runs against internal/fakekernel, without root.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/state"
	"github.com/cnetdev/cnet/internal/testenv"
)

// dry returns a copy of e in dry-run mode and where its previews land.
func dry(e *Engine) (*Engine, *[]*Preview) {
	var got []*Preview
	d := *e
	d.opts.DryRun = func(p *Preview) { got = append(got, p) }
	return &d, &got
}

// TestDryRunGolden previews every operation of a network's life before
// doing it for real: the previews change neither the machine nor the
// state, each is a valid sh script, and together they match a golden
// script that covers every kind of step.
func TestDryRunGolden(t *testing.T) {
	e, k := fakeEngine(t)
	d, previews := dry(e)
	var out strings.Builder
	ops := []struct {
		title string
		op    func(e *Engine) error
	}{
		{"cnet network create seed --subnet 172.18.0.0/24 --bridge cont-br0", func(e *Engine) error {
			_, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24"), Bridge: "cont-br0"})
			return err
		}},
		{"cnet create container-1 --network seed", func(e *Engine) error {
			_, err := e.CreateContainer(ContainerSpec{Name: "container-1", Network: "seed"})
			return err
		}},
		{"cnet create container-2 --network seed -p 8080:8000", func(e *Engine) error {
			_, err := e.CreateContainer(ContainerSpec{Name: "container-2", Network: "seed", Ports: mustPorts("8080:8000")})
			return err
		}},
		{"cnet network create front --subnet 172.19.0.0/24", func(e *Engine) error {
			_, err := e.CreateNetwork(NetworkSpec{Name: "front", Subnet: mustPrefix("172.19.0.0/24")})
			return err
		}},
		{"cnet connect front container-2 --alias web", func(e *Engine) error {
			_, err := e.Connect(ConnectSpec{Network: "front", Container: "container-2", Aliases: []string{"web"}})
			return err
		}},
		{"cnet publish container-1 127.0.0.1:5353:53/udp 9090:80", func(e *Engine) error {
			_, err := e.Publish("container-1", mustPorts("127.0.0.1:5353:53/udp", "9090:80"))
			return err
		}},
		{"cnet unpublish container-1 9090:80", func(e *Engine) error {
			_, err := e.Unpublish("container-1", mustPorts("9090:80"))
			return err
		}},
		{"cnet disconnect seed container-2", func(e *Engine) error { return e.Disconnect("seed", "container-2") }},
		{"cnet network rm front --force", func(e *Engine) error { return e.RemoveNetwork("front", true) }},
		{"cnet rm container-1 container-2", func(e *Engine) error {
			return e.RemoveContainers([]string{"container-1", "container-2"}, RemoveOptions{})
		}},
		{"cnet network rm seed", func(e *Engine) error { return e.RemoveNetwork("seed", false) }},
	}
	kinds := map[string]bool{}
	for _, op := range ops {
		before, beforeState := k.Snapshot(), dumpState(t, e)
		if err := op.op(d); err != nil {
			t.Fatalf("%s --dry-run: %v", op.title, err)
		}
		if lines := k.Lines(); len(lines) > 0 {
			t.Errorf("%s --dry-run changed the machine: %v", op.title, lines)
		}
		if after := k.Snapshot(); after != before {
			t.Errorf("%s --dry-run: machine changed:\n%s\nwant:\n%s", op.title, after, before)
		}
		if after := dumpState(t, e); after != beforeState {
			t.Errorf("%s --dry-run: state changed:\n%s\nwant:\n%s", op.title, after, beforeState)
		}
		if len(*previews) != 1 {
			t.Fatalf("%s --dry-run: got %d previews, want 1", op.title, len(*previews))
		}
		p := (*previews)[0]
		*previews = nil
		text := p.Script(op.title + " --dry-run")
		if out, err := exec.Command("sh", "-n", "-c", text).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s\n%s", op.title, err, out, text)
		}
		for _, s := range p.Steps {
			kinds[s.Action+" "+s.Kind] = true
		}
		out.WriteString(text + "\n")
		if err := op.op(e); err != nil {
			t.Fatalf("%s: %v", op.title, err)
		}
		k.Lines()
	}
	golden(t, "dryrun-seed.sh", out.String())
	for _, want := range []string{"add netns", "del namespaces", "add bridge", "del bridge", "add endpoint", "del endpoint", "del endpoints",
		"add route", "set files", "del files", "set firewall", "add forwarding", "add ports", "del ports",
		"add hairpin", "set dns"} {
		if !kinds[want] {
			t.Errorf("no %q step in the walk: the golden script does not cover it", want)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenLines(t, name, strings.Split(strings.TrimSuffix(got, "\n"), "\n"))
}

// TestDryRunCreatesNothing: on a machine where cnet never ran, a dry run
// plans against empty state and creates no state, run dir or lock file.
func TestDryRunCreatesNothing(t *testing.T) {
	e, k := fakeEngine(t)
	d, previews := dry(e)
	c, err := d.CreateContainer(ContainerSpec{Name: "web", Ports: mustPorts("8080:80")})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints[0]; got.Network != "cnet" || got.Address.String() != "10.89.0.2/24" {
		t.Errorf("planned endpoint %+v, want 10.89.0.2/24 on the default network", got)
	}
	for _, dir := range []string{e.opts.StateDir, e.opts.RunDir} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a dry run (err %v)", dir, err)
		}
	}
	if lines := k.Lines(); len(lines) > 0 {
		t.Errorf("dry run changed the machine: %v", lines)
	}
	if len(*previews) != 1 || (*previews)[0].Op != "create" {
		t.Fatalf("previews = %+v", *previews)
	}
	var kinds []string
	for _, s := range (*previews)[0].Steps {
		kinds = append(kinds, s.Action+" "+s.Kind)
	}
	want := "add bridge,set firewall,add forwarding,set dns,add netns,add endpoint,add hairpin,add ports,set files"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("steps %s\nwant %s", got, want)
	}
}

// TestDryRunDoesNotRecover: an interrupted operation is left for the real
// command to resolve, and the preview says so.
func TestDryRunDoesNotRecover(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(e.opts.StateDir, e.opts.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	in := model.Intent{Op: "create", Direction: model.Rollback, PID: 1}
	if err := st.Update(true, func(tx *state.Tx) error { return tx.PutIntent(&in) }); err != nil {
		t.Fatal(err)
	}
	testenv.Logged(t, "st.Close()", st.Close())
	k.Lines()
	before := dumpState(t, e)
	d, previews := dry(e)
	if _, err := d.CreateContainer(ContainerSpec{Name: "a", Network: "seed"}); err != nil {
		t.Fatal(err)
	}
	if after := dumpState(t, e); after != before || !strings.Contains(after, "intents=1") {
		t.Errorf("state after a dry run:\n%s\nwant (intent kept):\n%s", after, before)
	}
	if lines := k.Lines(); len(lines) > 0 {
		t.Errorf("dry run changed the machine: %v", lines)
	}
	if notes := strings.Join((*previews)[0].Notes, "\n"); !strings.Contains(notes, "interrupted by a crash is pending") {
		t.Errorf("notes %q do not mention the pending operation", notes)
	}
}

// TestDryRunRemovesNoLog: a dry rm leaves the container's log in place.
func TestDryRunRemovesNoLog(t *testing.T) {
	e, _ := fakeEngine(t)
	if _, err := e.CreateContainer(ContainerSpec{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(e.LogPath("a")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.LogPath("a"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := dry(e)
	if err := d.RemoveContainers([]string{"a"}, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.LogPath("a")); err != nil {
		t.Errorf("log gone after a dry rm: %v", err)
	}
}

// TestDryRunWarnsOfForwardDrop: the warning a network's creation gives
// about another table's drop policy is in its preview, and only there.
func TestDryRunWarnsOfForwardDrop(t *testing.T) {
	e, k := fakeEngine(t)
	k.ForeignDrops = []string{"table ip filter chain FORWARD"}
	d, previews := dry(e)
	if _, err := d.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join((*previews)[0].Notes, "\n"); !strings.Contains(notes, "table ip filter chain FORWARD has policy drop") {
		t.Errorf("notes %q lack the warning", notes)
	}
	if _, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	*previews = nil
	if err := d.RemoveNetwork("seed", false); err != nil {
		t.Fatal(err)
	}
	if notes := (*previews)[0].Notes; len(notes) > 0 {
		t.Errorf("network rm notes: %q", notes)
	}
}
