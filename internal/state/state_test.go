package state

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/model"
)

func open(t *testing.T) (*Store, string, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "state"), filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	return s, filepath.Join(dir, "state"), filepath.Join(dir, "run")
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// The address and host-interface indexes follow the container records.
func TestIndexes(t *testing.T) {
	s, _, _ := open(t)
	defer s.Close()
	c := &model.Container{Name: "a", Endpoints: []model.Endpoint{
		{Network: "n1", HostIf: "veth1", ContainerIf: "eth0", Addr: addr("10.0.0.3")},
		{Network: "n2", HostIf: "veth2", ContainerIf: "eth1", Addr: addr("10.1.0.2")},
	}}
	b := &model.Container{Name: "b", Endpoints: []model.Endpoint{{Network: "n1", HostIf: "veth3", ContainerIf: "eth0", Addr: addr("10.0.0.2")}}}
	err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(c)
		ch.PutContainer(b)
		ch.EndpointGen = 3
		return tx.Apply(ch)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if got := slices.Collect(tx.UsedAddrs("n1")); !slices.Equal(got, []netip.Addr{addr("10.0.0.2"), addr("10.0.0.3")}) {
			t.Errorf("UsedAddrs(n1) = %v, want ascending [10.0.0.2 10.0.0.3]", got)
		}
		if owner, ok := tx.AddrOwner("n2", addr("10.1.0.2")); !ok || owner != "a" {
			t.Errorf("AddrOwner = %q %v", owner, ok)
		}
		if owner, ok := tx.HostIfOwner("veth3"); !ok || owner != "b" {
			t.Errorf("HostIfOwner = %q %v", owner, ok)
		}
		if got := tx.Attached("n1"); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("Attached(n1) = %v", got)
		}
		if tx.EndpointGen() != 3 {
			t.Errorf("EndpointGen = %d, want 3", tx.EndpointGen())
		}
		return nil
	})
	// Moving a's endpoint and deleting b leave no stale index entries.
	c2 := c.Clone()
	c2.Endpoints = c2.Endpoints[1:]
	s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(c2)
		ch.DelContainer("b")
		return tx.Apply(ch)
	})
	s.View(func(tx *Tx) error {
		if got := slices.Collect(tx.UsedAddrs("n1")); len(got) != 0 {
			t.Errorf("stale addresses on n1: %v", got)
		}
		for _, h := range []string{"veth1", "veth3"} {
			if _, ok := tx.HostIfOwner(h); ok {
				t.Errorf("stale host interface %s", h)
			}
		}
		if n := tx.ContainerCount(); n != 1 {
			t.Errorf("ContainerCount = %d, want 1", n)
		}
		return nil
	})
}

func TestIntents(t *testing.T) {
	s, _, _ := open(t)
	defer s.Close()
	in := &model.Intent{Op: "create", Direction: model.Rollback, Steps: []model.Step{{Kind: model.KindNetns, Action: model.Add, Netns: &model.NetnsSpec{Name: "a"}}}}
	if err := s.Update(false, func(tx *Tx) error { return tx.PutIntent(in) }); err != nil {
		t.Fatal(err)
	}
	if in.ID == 0 {
		t.Fatal("intent got no ID")
	}
	s.View(func(tx *Tx) error {
		got, err := tx.Intents()
		if err != nil || len(got) != 1 || got[0].Steps[0].Netns.Name != "a" || !tx.HasIntents() {
			t.Errorf("Intents = %+v %v", got, err)
		}
		return nil
	})
	s.Update(true, func(tx *Tx) error { return tx.DelIntent(in.ID) })
	s.View(func(tx *Tx) error {
		if tx.HasIntents() {
			t.Error("intent still there")
		}
		return nil
	})
}

// A reader on a machine where cnet never ran gets ErrNoState, and a nil
// *Tx reads as empty state.
func TestNoState(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenShared(filepath.Join(dir, "state"), filepath.Join(dir, "run")); err != ErrNoState {
		t.Fatalf("got %v, want ErrNoState", err)
	}
	var tx *Tx
	if n, err := tx.Networks(); n != nil || err != nil {
		t.Errorf("nil Tx Networks = %v %v", n, err)
	}
	if c, err := tx.Container("x"); c != nil || err != nil {
		t.Errorf("nil Tx Container = %v %v", c, err)
	}
}

// The lock serializes writers across opens, as it does across processes.
func TestLockSerializes(t *testing.T) {
	s, stateDir, runDir := open(t)
	s.Close()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Open(stateDir, runDir)
			if err != nil {
				t.Error(err)
				return
			}
			defer st.Close()
			st.Update(true, func(tx *Tx) error {
				var ch model.Changes
				ch.EndpointGen = tx.EndpointGen() + 1
				return tx.Apply(ch)
			})
		}()
	}
	wg.Wait()
	st, err := Open(stateDir, runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.View(func(tx *Tx) error {
		if tx.EndpointGen() != 20 {
			t.Errorf("EndpointGen = %d after 20 serialized increments", tx.EndpointGen())
		}
		return nil
	})
}

// Published ports live in their own index: adding one writes one entry,
// the DNAT target follows the container's default endpoint, and removing
// the container removes its ports.
func TestPorts(t *testing.T) {
	s, _, _ := open(t)
	defer s.Close()
	web := &model.Container{Name: "web", Endpoints: []model.Endpoint{{Network: "n1", HostIf: "v1", Addr: addr("10.0.0.2"), DefaultRoute: true}}}
	m1 := model.PortMapping{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, Port: 80}
	m2 := model.PortMapping{Proto: "udp", HostIP: addr("127.0.0.1"), HostPort: 5353, Port: 53}
	s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(web)
		ch.AddPort("web", m1)
		ch.AddPort("web", m2)
		return tx.Apply(ch)
	})
	s.View(func(tx *Tx) error {
		if got := tx.ContainerPorts("web"); len(got) != 2 {
			t.Errorf("ContainerPorts = %v", got)
		}
		for n, want := range []bool{true, true, true, false} {
			if got := tx.PortsAtLeast("web", n); got != want {
				t.Errorf("PortsAtLeast(web, %d) = %v, want %v", n, got, want)
			}
		}
		if tx.PortsAtLeast("ghost", 1) {
			t.Error("PortsAtLeast(ghost, 1) = true for a container with no ports")
		}
		if owner, cport, ok := tx.PortOwner("udp", 5353, addr("127.0.0.1")); !ok || owner != "web" || cport != 53 {
			t.Errorf("PortOwner = %q %d %v", owner, cport, ok)
		}
		if h := tx.PortHolders("tcp", 8080); len(h) != 1 || h[0].Container != "web" || !h[0].HostIP.IsUnspecified() {
			t.Errorf("PortHolders = %+v", h)
		}
		elems, err := tx.PortElems()
		if err != nil || len(elems) != 2 || elems[0].Addr != addr("10.0.0.2") {
			t.Errorf("PortElems = %+v, %v", elems, err)
		}
		return nil
	})
	// A new default endpoint moves every element without touching the index.
	moved := web.Clone()
	moved.Endpoints = []model.Endpoint{{Network: "n2", HostIf: "v2", Addr: addr("10.1.0.2"), DefaultRoute: true}}
	s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(moved)
		ch.DelPort("web", m2)
		return tx.Apply(ch)
	})
	s.View(func(tx *Tx) error {
		if elems, _ := tx.PortElems(); len(elems) != 1 || elems[0].Addr != addr("10.1.0.2") || elems[0].HostPort != 8080 {
			t.Errorf("after the move: %+v", elems)
		}
		return nil
	})
	s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.DelContainer("web")
		return tx.Apply(ch)
	})
	s.View(func(tx *Tx) error {
		if elems, _ := tx.PortElems(); len(elems) != 0 || len(tx.PortHolders("tcp", 8080)) != 0 || tx.PortsAtLeast("web", 1) {
			t.Error("ports left after the container was removed")
		}
		return nil
	})
}

// OpenReadOnly creates nothing: no state without a database, no run dir
// or lock file when they are missing; and it waits for a writer.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	stateDir, runDir := filepath.Join(dir, "state"), filepath.Join(dir, "run")
	if _, err := OpenReadOnly(stateDir, runDir, 0); err != ErrNoState {
		t.Fatalf("got %v, want ErrNoState", err)
	}
	var tx *Tx
	if _, _, ok := tx.PortOwner("tcp", 80, addr("0.0.0.0")); ok {
		t.Error("nil Tx has a port owner")
	}
	s, err := Open(stateDir, runDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.RemoveAll(runDir); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(stateDir, runDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if _, err := os.Stat(runDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the run dir exists after a read-only open (%v)", err)
	}
	w, err := Open(stateDir, runDir) // holds the exclusive lock
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := OpenReadOnly(stateDir, runDir, 20*time.Millisecond); err != ErrLocked {
		t.Errorf("with a writer holding the lock: got %v, want ErrLocked", err)
	}
}
