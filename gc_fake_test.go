package cnet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/cnetdev/cnet/internal/fakekernel"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/state"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestGCStopsOnFailedReads: when gc (or the recovery every mutating
// command starts with) cannot read state or the kernel, it stops with the
// error and changes nothing, rather than deciding from a partial picture:
// a container it could not read looks released, a port it could not read
// looks unpublished, and both would be removed.
func TestGCStopsOnFailedReads(t *testing.T) {
	raw := func(t *testing.T, e *Engine, fn func(tx *bolt.Tx) error) {
		t.Helper()
		db, err := bolt.Open(filepath.Join(e.opts.StateDir, state.File), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer testenv.Close(t, "state database", db)
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		break_ func(t *testing.T, e *Engine, k *fakekernel.Kernel)
		want   string
		// Whether every mutating command must stop too (it recovers
		// first), and whether the error is a damaged database.
		mutating, corrupt bool
	}{
		{"an interrupted operation's record does not decode", func(t *testing.T, e *Engine, _ *fakekernel.Kernel) {
			raw(t, e, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("intents")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 99}, []byte("{broken"))
			})
		}, `intent record "0000000000000063" does not decode`, true, true},
		{"a published port's record does not decode", func(t *testing.T, e *Engine, _ *fakekernel.Kernel) {
			raw(t, e, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("ports"))
				k, _ := b.Cursor().First()
				return b.Put(bytes.Clone(k), []byte("web")) // no container port
			})
		}, "port record", false, true},
		{"a container's namespace cannot be read", func(t *testing.T, _ *Engine, k *fakekernel.Kernel) {
			k.Odd = map[string]netns.State{"web": netns.Unknown}
		}, "cannot tell whether the namespace of container web", false, false},
		{"after a reboot, a container's namespace cannot be read", func(t *testing.T, e *Engine, k *fakekernel.Kernel) {
			if err := os.WriteFile(e.opts.bootIDPath, []byte("boot-2\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			k.Odd = map[string]netns.State{"web": netns.Unknown}
		}, "cannot tell whether the namespace of container web", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, k := fakeEngine(t)
			if _, err := e.CreateNetwork(NetworkSpec{Name: "blue", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.CreateContainer(ContainerSpec{Name: "web", Network: "blue", Ports: mustPorts("8080:80")}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.CreateContainer(ContainerSpec{Name: "db", Network: "blue"}); err != nil {
				t.Fatal(err)
			}
			// An orphan this cnet made, which a gc that went on would remove.
			k.Links["cnet-old"] = &fakekernel.Link{Kind: "bridge", Mark: "cnet/test01/net/old"}
			tt.break_(t, e, k)
			k.Lines()
			before := k.Snapshot()
			db := filepath.Join(e.opts.StateDir, state.File)
			dbBefore, _ := os.ReadFile(db)
			calls := map[string]func() error{
				"gc":         func() error { _, err := e.GC(false); return err },
				"gc dry run": func() error { _, err := e.GC(true); return err },
			}
			if tt.mutating {
				calls["network create"] = func() error {
					_, err := e.CreateNetwork(NetworkSpec{Name: "red", Subnet: mustPrefix("172.19.0.0/24")})
					return err
				}
			}
			for what, call := range calls {
				err := call()
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: got %v, want an error saying %q", what, err, tt.want)
				}
				var ce *state.CorruptError
				if tt.corrupt && !errors.As(err, &ce) {
					t.Errorf("%s: got %T, want a *state.CorruptError naming the file", what, err)
				}
				if ops := k.Lines(); len(ops) > 0 {
					t.Errorf("%s changed the machine:\n%s", what, strings.Join(ops, "\n"))
				}
				if got := k.Snapshot(); got != before {
					t.Errorf("%s changed the machine", what)
				}
				if now, _ := os.ReadFile(db); !bytes.Equal(now, dbBefore) {
					t.Errorf("%s changed the state database", what)
				}
			}
		})
	}
}

// TestEmptyDatabaseRemovesNothing: with state.db cut to zero bytes, gc
// and every mutating call fail naming the file, and remove none of what
// the lost state described (before, bbolt took the empty file for a new
// database, and gc removed every object carrying cnet's mark).
func TestEmptyDatabaseRemovesNothing(t *testing.T) {
	e, k := fakeEngine(t)
	if _, err := e.CreateNetwork(NetworkSpec{Name: "blue", Subnet: mustPrefix("172.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateContainer(ContainerSpec{Name: "web", Network: "blue", Ports: mustPorts("8080:80")}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(e.opts.StateDir, state.File)
	if err := os.Truncate(db, 0); err != nil {
		t.Fatal(err)
	}
	k.Lines()
	before := k.Snapshot()
	for what, call := range map[string]func() error{
		"gc":         func() error { _, err := e.GC(false); return err },
		"gc dry run": func() error { _, err := e.GC(true); return err },
		"containers": func() error { _, err := e.Containers(); return err },
		"create": func() error {
			_, err := e.CreateContainer(ContainerSpec{Name: "db", Network: "blue"})
			return err
		},
		"rm": func() error { return e.RemoveContainers([]string{"web"}, RemoveOptions{}) },
	} {
		err := call()
		var ce *state.CorruptError
		if !errors.As(err, &ce) || ce.Path != db || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s: got %v, want a *state.CorruptError saying %s is empty", what, err, db)
		}
		if ops := k.Lines(); len(ops) > 0 || k.Snapshot() != before {
			t.Errorf("%s changed the machine:\n%s", what, strings.Join(ops, "\n"))
		}
		if fi, err := os.Stat(db); err != nil || fi.Size() != 0 {
			t.Errorf("%s wrote the database file", what)
		}
	}
}
