package state

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/testenv"
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
	defer testenv.Close(t, "s", s)
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
	if err := s.View(func(tx *Tx) error {
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
	}); err != nil {
		t.Fatal(err)
	}
	// Moving a's endpoint and deleting b leave no stale index entries.
	c2 := c.Clone()
	c2.Endpoints = c2.Endpoints[1:]
	if err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(c2)
		ch.DelContainer("b")
		return tx.Apply(ch)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
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
	}); err != nil {
		t.Fatal(err)
	}
}

func TestIntents(t *testing.T) {
	s, _, _ := open(t)
	defer testenv.Close(t, "s", s)
	in := &model.Intent{Op: "create", Direction: model.Rollback, Steps: []model.Step{{Kind: model.KindNetns, Action: model.Add, Netns: &model.NetnsSpec{Name: "a"}}}}
	if err := s.Update(false, func(tx *Tx) error { return tx.PutIntent(in) }); err != nil {
		t.Fatal(err)
	}
	if in.ID == 0 {
		t.Fatal("intent got no ID")
	}
	if err := s.View(func(tx *Tx) error {
		got, err := tx.Intents()
		if err != nil || len(got) != 1 || got[0].Steps[0].Netns.Name != "a" || !tx.HasIntents() {
			t.Errorf("Intents = %+v %v", got, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(true, func(tx *Tx) error { return tx.DelIntent(in.ID) }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		if tx.HasIntents() {
			t.Error("intent still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
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
			defer testenv.Close(t, "st", st)
			if err := st.Update(true, func(tx *Tx) error {
				var ch model.Changes
				ch.EndpointGen = tx.EndpointGen() + 1
				return tx.Apply(ch)
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, err := Open(stateDir, runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "st", st)
	if err := st.View(func(tx *Tx) error {
		if tx.EndpointGen() != 20 {
			t.Errorf("EndpointGen = %d after 20 serialized increments", tx.EndpointGen())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Published ports live in their own index: adding one writes one entry,
// the DNAT target follows the container's default endpoint, and removing
// the container removes its ports.
func TestPorts(t *testing.T) {
	s, _, _ := open(t)
	defer testenv.Close(t, "s", s)
	web := &model.Container{Name: "web", Endpoints: []model.Endpoint{{Network: "n1", HostIf: "v1", Addr: addr("10.0.0.2"), DefaultRoute: true}}}
	m1 := model.PortMapping{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, Port: 80}
	m2 := model.PortMapping{Proto: "udp", HostIP: addr("127.0.0.1"), HostPort: 5353, Port: 53}
	if err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(web)
		ch.AddPort("web", m1)
		ch.AddPort("web", m2)
		return tx.Apply(ch)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
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
	}); err != nil {
		t.Fatal(err)
	}
	// A new default endpoint moves every element without touching the index.
	moved := web.Clone()
	moved.Endpoints = []model.Endpoint{{Network: "n2", HostIf: "v2", Addr: addr("10.1.0.2"), DefaultRoute: true}}
	if err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutContainer(moved)
		ch.DelPort("web", m2)
		return tx.Apply(ch)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		elems, err := tx.PortElems()
		if err != nil {
			return err
		}
		if len(elems) != 1 || elems[0].Addr != addr("10.1.0.2") || elems[0].HostPort != 8080 {
			t.Errorf("after the move: %+v", elems)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.DelContainer("web")
		return tx.Apply(ch)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		elems, err := tx.PortElems()
		if err != nil {
			return err
		}
		if len(elems) != 0 || len(tx.PortHolders("tcp", 8080)) != 0 || tx.PortsAtLeast("web", 1) {
			t.Error("ports left after the container was removed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(runDir); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(stateDir, runDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(runDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the run dir exists after a read-only open (%v)", err)
	}
	w, err := Open(stateDir, runDir) // holds the exclusive lock
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "w", w)
	if _, err := OpenReadOnly(stateDir, runDir, 20*time.Millisecond); err != ErrLocked {
		t.Errorf("with a writer holding the lock: got %v, want ErrLocked", err)
	}
}

// The subnet and bridge indexes follow the network records, and answer
// as a look at every network would.
func TestNetworkIndexes(t *testing.T) {
	s, stateDir, runDir := open(t)
	nets := map[string]*model.Network{}
	put := func(n *model.Network) {
		t.Helper()
		if err := s.Update(true, func(tx *Tx) error {
			var ch model.Changes
			ch.PutNetwork(n)
			return tx.Apply(ch)
		}); err != nil {
			t.Fatal(err)
		}
		nets[n.Name] = n
	}
	del := func(name string) {
		t.Helper()
		if err := s.Update(true, func(tx *Tx) error {
			var ch model.Changes
			ch.DelNetwork(name)
			return tx.Apply(ch)
		}); err != nil {
			t.Fatal(err)
		}
		delete(nets, name)
	}
	pfx := netip.MustParsePrefix
	for i, p := range []string{"10.0.0.0/24", "10.0.2.0/23", "10.1.0.0/16", "172.16.0.0/12", "192.168.5.0/24", "192.168.5.128/25", "0.0.0.0/0"} {
		put(&model.Network{Name: fmt.Sprintf("n%d", i), Bridge: fmt.Sprintf("br%d", i), Subnet: pfx(p)})
	}
	put(&model.Network{Name: "n1", Bridge: "br1x", Subnet: pfx("10.0.4.0/22")}) // changed: the old entries go
	del("n6")
	probes := []string{"10.0.0.0/24", "10.0.0.128/25", "10.0.0.0/8", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.255/32",
		"10.0.4.0/24", "10.0.8.0/24", "10.1.255.0/24", "10.2.0.0/16", "172.31.255.255/32", "172.32.0.0/16",
		"192.168.5.0/25", "192.168.4.0/22", "192.168.6.0/24", "0.0.0.0/0", "11.0.0.0/8", "255.255.255.255/32"}
	check := func(tx *Tx) {
		t.Helper()
		for _, p := range probes {
			p := pfx(p)
			name, sub, ok, err := tx.SubnetOverlap(p)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, n := range nets {
				if n.Subnet.Overlaps(p) {
					want = append(want, n.Name)
				}
			}
			if ok != (len(want) > 0) || ok && (!slices.Contains(want, name) || nets[name].Subnet != sub) {
				t.Errorf("SubnetOverlap(%s) = %s %s %v, want one of %v", p, name, sub, ok, want)
			}
		}
		for _, br := range []string{"br0", "br1", "br1x", "br5", "br6", "none"} {
			name, ok, err := tx.NetworkOfBridge(br)
			if err != nil {
				t.Fatal(err)
			}
			var want string
			for _, n := range nets {
				if n.Bridge == br {
					want = n.Name
				}
			}
			if ok != (want != "") || name != want {
				t.Errorf("NetworkOfBridge(%s) = %q %v, want %q", br, name, ok, want)
			}
		}
		subs, err := tx.Subnets()
		if err != nil {
			t.Fatal(err)
		}
		var want []netip.Prefix
		for _, n := range nets {
			want = append(want, n.Subnet)
		}
		sortPrefixes := func(ps []netip.Prefix) {
			slices.SortFunc(ps, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
		}
		sortPrefixes(subs)
		sortPrefixes(want)
		if !slices.Equal(subs, want) {
			t.Errorf("Subnets = %v, want %v", subs, want)
		}
	}
	if err := s.View(func(tx *Tx) error { check(tx); return nil }); err != nil {
		t.Fatal(err)
	}

	// State from before the indexes: a read-only open answers by looking
	// at every network, and the next writer builds the indexes.
	if err := s.db.Update(func(btx *bolt.Tx) error {
		return errors.Join(btx.DeleteBucket(bSubnets), btx.DeleteBucket(bBridges))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(stateDir, runDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.View(func(tx *Tx) error {
		if tx.bucket(bSubnets) != nil {
			t.Fatal("the test did not remove the index")
		}
		check(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(stateDir, runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "state", s)
	if err := s.View(func(tx *Tx) error {
		if tx.bucket(bSubnets) == nil || tx.bucket(bBridges) == nil {
			t.Error("opening for writing did not build the indexes")
		}
		check(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
