package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// TestDamagedStateStopsEveryCommand: with the state database empty, cut
// short, random or with flipped bytes, every command (readers, writers,
// gc and its dry run, a CNI ADD) fails with an error that names the file
// and says what to do, exits non-zero, does not crash, and changes
// nothing: not the kernel, not the files under /etc/netns or the root,
// not the name server's records, not one byte of the database.
func TestDamagedStateStopsEveryCommand(t *testing.T) {
	c := newCLI(t)
	testenv.Run(t, "ip", "netns", "add", "dbpod")
	c.ok("network", "create", "blue", "--subnet", "10.93.0.0/24")
	c.ok("create", "--network", "blue", "-p", "8093:80", "web")
	path := filepath.Join(c.root, "state.db")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Runs before newCLI's clean-up, which needs the good database.
	t.Cleanup(func() {
		testenv.Logged(t, "restore the good database", os.WriteFile(path, good, 0o600))
		testenv.Try("ip", "netns", "del", "dbpod")
	})
	testenv.Settled(t)
	before := testenv.Snapshot(t) + testenv.DNS(t, filepath.Join(c.root, "run"))
	beforeFiles := rootFiles(t, c.root)
	conf := bridgeConf("1.1.0", "dbnet", "10.94.0.0/24", "")
	actions := []action{
		cmd("ls"), cmd("inspect", "web"), cmd("network", "ls"),
		cmd("create", "--network", "blue", "db"), cmd("rm", "web"),
		cmd("network", "create", "red"), cmd("gc"), cmd("gc", "--dry-run"),
		cniAct("ADD", "dbpod", conf),
	}
	for _, d := range testenv.DamagedDBs(good) {
		t.Run(d.Name, func(t *testing.T) {
			if err := os.WriteFile(path, d.Bytes, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, a := range actions {
				r := c.act(a)
				out := r.stdout + r.stderr
				if r.code == 0 {
					t.Errorf("%s: exit 0 with a database with %s:\n%s", a, d.Name, out)
				}
				for _, bad := range []string{"panic", "goroutine ", "SIGBUS", "SIGSEGV"} {
					if strings.Contains(out, bad) {
						t.Fatalf("%s crashed:\n%s", a, out)
					}
				}
				for _, want := range []string{path, d.Want, "changed nothing", "backup", "move it aside"} {
					if !strings.Contains(out, want) {
						t.Errorf("%s: the error does not say %q:\n%s", a, want, out)
					}
				}
				if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, d.Bytes) {
					t.Fatalf("%s changed the database file (%d bytes before, %d after, %v)", a, len(d.Bytes), len(now), err)
				}
			}
			after := testenv.Snapshot(t) + testenv.DNS(t, filepath.Join(c.root, "run"))
			if diff := testenv.Diff(after, before); diff != "" {
				t.Errorf("the machine changed:\n%s", diff)
			}
			if got := rootFiles(t, c.root); got != beforeFiles {
				t.Errorf("files under the root changed:\n%s", testenv.Diff(got, beforeFiles))
			}
		})
	}
	// With the good database back, cnet works as before.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("inspect", "web")
}

// rootFiles lists the files under root but the database, with size and
// modification time, and the name server's files (which it rewrites as it
// serves).
func rootFiles(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "state.db" || strings.HasPrefix(rel, filepath.Join("run", "dns")) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %v %d %s\n", rel, info.Mode(), info.Size(), info.ModTime())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
