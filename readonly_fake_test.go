package cnet

import (
	"os"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/fakekernel"
	"github.com/cnetdev/cnet/internal/state"
)

// readAll calls every reading method of the engine.
func readAll(t *testing.T, e *Engine) {
	t.Helper()
	if _, err := e.Networks(); err != nil {
		t.Errorf("Networks: %v", err)
	}
	if _, err := e.Network("front"); err != nil {
		t.Errorf("Network front: %v", err)
	}
	if _, err := e.Containers(); err != nil {
		t.Errorf("Containers: %v", err)
	}
	if _, err := e.Resolve("web"); err != nil {
		t.Errorf("Resolve web: %v", err)
	}
}

// intents returns the ops of the interrupted operations in state.
func intents(t *testing.T, e *Engine) []string {
	t.Helper()
	var ops []string
	if err := e.view(func(tx *state.Tx) error {
		ins, err := tx.Intents()
		for _, in := range ins {
			ops = append(ops, in.Op)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ops
}

// readOnlySetup makes network front with container web, the name server
// running, and records notices.
func readOnlySetup(t *testing.T) (*Engine, *fakekernel.Kernel, *[]string) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "front", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "web", Network: "front"}); err != nil {
		t.Fatal(err)
	}
	var notes []string
	e.opts.Notify = func(msg string) { notes = append(notes, msg) }
	return e, k, &notes
}

// TestReadsDoNotRecover: with an operation a crash interrupted, a reboot
// since cnet last ran, or a dead name server, the reading methods read
// committed state, change nothing in the kernel or in state, and say
// once what is pending; the next mutating call repairs it.
func TestReadsDoNotRecover(t *testing.T) {
	t.Run("interrupted operation", func(t *testing.T) {
		e, k, notes := readOnlySetup(t)
		e.opts.Hook = func(op string, step int) error {
			if step == 2 {
				panic(errCrash)
			}
			return nil
		}
		func() {
			defer func() {
				if r := recover(); r != errCrash {
					t.Fatalf("got %v, want the simulated crash", r)
				}
			}()
			_, _ = e.CreateContainer(ContainerSpec{Name: "api", Network: "front"}) // the hook panics
		}()
		e.opts.Hook = nil
		pending := intents(t, e)
		if len(pending) != 1 {
			t.Fatalf("the crash left intents %q, want one", pending)
		}
		machine := k.Snapshot()
		k.Ops = nil
		readAll(t, e)
		readAll(t, e)
		if lines := k.Lines(); len(lines) != 0 {
			t.Errorf("reads changed the kernel:\n%s", strings.Join(lines, "\n"))
		}
		if got := k.Snapshot(); got != machine {
			t.Errorf("reads changed the machine:\n%s\nwas:\n%s", got, machine)
		}
		if got := intents(t, e); len(got) != 1 || got[0] != pending[0] {
			t.Errorf("after the reads the intents are %q, want %q still pending", got, pending)
		}
		cs, err := e.Containers()
		if err != nil || len(cs) != 1 || cs[0].Name != "web" {
			t.Errorf("Containers = %v %+v, want web alone, as committed", err, cs)
		}
		var told []string
		for _, n := range *notes {
			if strings.Contains(n, "interrupted operation") {
				told = append(told, n)
			}
		}
		if len(told) != 1 || !strings.Contains(told[0], "(create api by pid ") || !strings.Contains(told[0], "`cnet gc` undoes it") {
			t.Errorf("notices %q, want one naming create api and `cnet gc`", *notes)
		}
		// The next change resolves it.
		if _, err := e.CreateNetwork(NetworkSpec{Name: "back", Subnet: mustPrefix("172.18.1.0/24")}); err != nil {
			t.Fatal(err)
		}
		if got := intents(t, e); len(got) != 0 {
			t.Errorf("the next change left intents %q", got)
		}
	})

	t.Run("dead name server", func(t *testing.T) {
		e, k, notes := readOnlySetup(t)
		k.Names = nil // it died
		k.Ops = nil
		readAll(t, e)
		readAll(t, e)
		if lines := k.Lines(); len(lines) != 0 {
			t.Errorf("reads changed the kernel:\n%s", strings.Join(lines, "\n"))
		}
		if k.Names != nil {
			t.Error("a read restarted the name server")
		}
		if want := "the name server is not running: the next change or `cnet gc` restarts it"; strings.Join(*notes, "\n") != want {
			t.Errorf("notices %q, want %q once", *notes, want)
		}
		if _, err := e.CreateContainer(ContainerSpec{Name: "api", Network: "front"}); err != nil {
			t.Fatal(err)
		}
		if k.Names == nil {
			t.Error("the next change did not restart the name server")
		}
	})

	t.Run("reboot", func(t *testing.T) {
		e, k, notes := readOnlySetup(t)
		if err := os.WriteFile(e.opts.bootIDPath, []byte("boot-2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		k.Ops = nil
		readAll(t, e)
		if lines := k.Lines(); len(lines) != 0 {
			t.Errorf("reads changed the kernel:\n%s", strings.Join(lines, "\n"))
		}
		if !strings.Contains(strings.Join(*notes, "\n"), "rebooted since cnet last ran") {
			t.Errorf("notices %q do not mention the reboot", *notes)
		}
		if id := bootIDInState(t, e); id != "boot-1" {
			t.Errorf("after the reads state records boot %q, want boot-1 still", id)
		}
		if _, err := e.GC(false); err != nil {
			t.Fatal(err)
		}
		if id := bootIDInState(t, e); id != "boot-2" {
			t.Errorf("after gc state records boot %q, want boot-2", id)
		}
	})
}

func bootIDInState(t *testing.T, e *Engine) string {
	t.Helper()
	var id string
	if err := e.view(func(tx *state.Tx) error { id = tx.BootID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}
