package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/testenv"
)

// populated returns the bytes of a database holding n containers with
// published ports: several levels of branch pages, overflow pages, nested
// and inline buckets.
func populated(t *testing.T, n int) []byte {
	t.Helper()
	s, dir, _ := open(t)
	err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutNetwork(&model.Network{Name: "blue", Bridge: "cnet-blue", Subnet: netip.MustParsePrefix("10.0.0.0/16")})
		for i := range n {
			name := fmt.Sprintf("c%04d", i)
			ch.PutContainer(&model.Container{Name: name, Endpoints: []model.Endpoint{{Network: "blue", HostIf: fmt.Sprintf("veth%07d", i),
				ContainerIf: "eth0", Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}}})
			for p := range 3 {
				ch.Ports = append(ch.Ports, model.PortChange{Container: name, Mapping: model.PortMapping{Proto: "tcp",
					HostIP: netip.IPv4Unspecified(), HostPort: uint16(1000 + 3*i + p), Port: 80}})
			}
		}
		return tx.Apply(ch)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Every damaged file is refused by every way of opening it, with the
// file named and what to do said, no panic, and its bytes unchanged.
func TestDamagedDatabaseRefused(t *testing.T) {
	good := populated(t, 300)
	for _, d := range testenv.DamagedDBs(good) {
		t.Run(d.Name, func(t *testing.T) {
			dir := t.TempDir()
			stateDir, runDir := filepath.Join(dir, "state"), filepath.Join(dir, "run")
			if err := os.MkdirAll(stateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(stateDir, File)
			bad := d.Bytes
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			opens := map[string]func() (*Store, error){
				"Open":         func() (*Store, error) { return Open(stateDir, runDir) },
				"OpenShared":   func() (*Store, error) { return OpenShared(stateDir, runDir) },
				"OpenReadOnly": func() (*Store, error) { return OpenReadOnly(stateDir, runDir, 0) },
			}
			for how, open := range opens {
				s, err := open()
				if err == nil {
					testenv.Close(t, "state", s)
					t.Fatalf("%s accepted a database with %s", how, d.Name)
				}
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: got %q (%T), want a *CorruptError", how, err, err)
				}
				msg := err.Error()
				for _, want := range []string{path, d.Want, "changed nothing", "backup", "mv " + path} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: error %q does not say %q", how, msg, want)
					}
				}
				after, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(after, bad) {
					t.Fatalf("%s changed the file (%d bytes before, %d after, %v)", how, len(bad), len(after), err)
				}
			}
			if ents, _ := os.ReadDir(stateDir); len(ents) != 1 {
				t.Errorf("state dir holds %d entries, want only %s", len(ents), File)
			}
		})
	}
}

// Only a missing database is created, and a create killed halfway leaves
// no database behind (the file appears complete or not at all).
func TestCreateOnlyWhenMissing(t *testing.T) {
	dir := t.TempDir()
	stateDir, runDir := filepath.Join(dir, "state"), filepath.Join(dir, "run")
	if _, err := OpenShared(stateDir, runDir); !errors.Is(err, ErrNoState) {
		t.Fatalf("OpenShared of no database: %v, want ErrNoState", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// What a killed create leaves: the temporary file, not the database.
	if err := os.WriteFile(filepath.Join(stateDir, File+".new"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(stateDir, runDir)
	if err != nil {
		t.Fatalf("Open of no database: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, File+".new")); err == nil {
		t.Error("the temporary file is still there")
	}
	if err := checkFile(filepath.Join(stateDir, File)); err != nil {
		t.Fatalf("the new database: %v", err)
	}
	// A dangling symbolic link is not "missing".
	dir2 := t.TempDir()
	if err := os.Symlink(filepath.Join(dir2, "elsewhere"), filepath.Join(dir2, File)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir2, filepath.Join(dir2, "run")); err == nil {
		t.Fatal("Open created a database through a dangling symbolic link")
	}
	if _, err := os.Lstat(filepath.Join(dir2, "elsewhere")); err == nil {
		t.Fatal("Open created the link's target")
	}
}

// No false alarms: healthy databases of many shapes pass, and agree with
// bbolt's own consistency check.
func TestHealthyDatabasesPass(t *testing.T) {
	for _, n := range []int{0, 1, 30, 300, 3000} {
		data := populated(t, n)
		path := filepath.Join(t.TempDir(), File)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkFile(path); err != nil {
			t.Fatalf("%d containers: %v", n, err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("%d containers: bbolt's check: %v", n, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		testenv.Close(t, "database", db)
	}
}

// Any single damaged byte in the structure either is refused or leaves a
// file bbolt reads whole without a fault or panic.
func TestFlippedBytesNeverCrash(t *testing.T) {
	good := populated(t, 300)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	refused := 0
	const tries = 400
	for i := range tries {
		bad := bytes.Clone(good)
		// Page headers and element headers, where damage misleads bbolt.
		page := r.IntN(len(good) / 4096)
		off := page*4096 + r.IntN(64)
		bad[off] ^= byte(1 + r.IntN(255))
		path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if checkFile(path) != nil {
			refused++
			continue
		}
		db, err := openBolt(path, &bolt.Options{ReadOnly: true})
		if err != nil {
			continue
		}
		err = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
		})
		testenv.Close(t, "database", db)
		if err != nil {
			t.Logf("byte %d: accepted, then: %v", off, err)
		}
	}
	if refused == 0 {
		t.Fatalf("none of %d damaged files was refused", tries)
	}
	t.Logf("%d of %d damaged files refused; the others read without a crash", refused, tries)
}

func walk(b *bolt.Bucket) error {
	if b == nil { // a key at the top level that is not a bucket
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if c := b.Bucket(k); c != nil {
				return walk(c)
			}
		}
		return nil
	})
}

// BenchmarkCheckFile is what every command pays to validate the database
// before opening it ("check"), beside what it paid already to open it and
// read its networks ("open").
func BenchmarkCheckFile(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(filepath.Join(dir, "state"), filepath.Join(dir, "run"))
			if err != nil {
				b.Fatal(err)
			}
			err = s.Update(true, func(tx *Tx) error {
				var ch model.Changes
				for i := range n {
					name := fmt.Sprintf("c%05d", i)
					ch.PutContainer(&model.Container{Name: name, Endpoints: []model.Endpoint{{Network: "blue", HostIf: fmt.Sprintf("veth%07d", i),
						ContainerIf: "eth0", Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}}})
					ch.Ports = append(ch.Ports, model.PortChange{Container: name, Mapping: model.PortMapping{Proto: "tcp",
						HostIP: netip.IPv4Unspecified(), HostPort: uint16(1000 + i), Port: 80}})
				}
				return tx.Apply(ch)
			})
			if cerr := s.Close(); cerr != nil {
				b.Fatal(cerr)
			}
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(dir, "state", File)
			fi, _ := os.Stat(path)
			b.Run("check", func(b *testing.B) {
				for range b.N {
					if err := checkFile(path); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(fi.Size()), "file-bytes")
			})
			b.Run("open", func(b *testing.B) {
				for range b.N {
					db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
					if err != nil {
						b.Fatal(err)
					}
					s := &Store{db: db}
					if err := s.View(func(tx *Tx) error { _, err := tx.Networks(); return err }); err != nil {
						b.Fatal(err)
					}
					testenv.Close(b, "database", db)
				}
			})
		})
	}
}

// A record that does not decode makes the read fail with a *CorruptError
// naming the file and the record.
func TestUndecodableRecordIsCorrupt(t *testing.T) {
	s, dir, run := open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, File)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bNetworks).Put([]byte("blue"), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, run)
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "state", s)
	err = s.View(func(tx *Tx) error { _, err := tx.Networks(); return err })
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `network record "blue"`) {
		t.Fatalf("got %v, want a *CorruptError naming %s and network blue", err, path)
	}
}

// FuzzCheckPages: no file makes the check itself panic, and any file it
// accepts bbolt opens and reads whole without a fault or panic.
func FuzzCheckPages(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "state"), filepath.Join(dir, "run"))
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Update(true, func(tx *Tx) error {
		var ch model.Changes
		ch.PutNetwork(&model.Network{Name: "blue", Bridge: "cnet-blue", Subnet: netip.MustParsePrefix("10.0.0.0/24")})
		ch.PutContainer(&model.Container{Name: "web", Endpoints: []model.Endpoint{{Network: "blue", HostIf: "veth1", ContainerIf: "eth0", Addr: netip.MustParseAddr("10.0.0.2")}}})
		ch.Ports = append(ch.Ports, model.PortChange{Container: "web", Mapping: model.PortMapping{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, Port: 80}})
		return tx.Apply(ch)
	}); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, "state", File))
	if err != nil {
		f.Fatal(err)
	}
	// The file is mostly empty pages past its high water mark: the pages
	// in use are what the fuzzer should mutate.
	f.Add(good[:6*4096])
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkPages(data) != "" {
			return
		}
		path := filepath.Join(t.TempDir(), File)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := openBolt(path, &bolt.Options{ReadOnly: true})
		if err != nil {
			return
		}
		defer testenv.Close(t, "database", db)
		if err := db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
		}); err != nil {
			t.Logf("accepted, then: %v", err) // a read error is fine; a fault or panic is not
		}
	})
}
