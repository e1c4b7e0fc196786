package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// fatalIf fails t with err, a step of the test's setup, unless it is nil.
func fatalIf(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// removeIfThere removes path; that it is gone already is no error.
func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// describe renders what is at each path, without following a link at it,
// and what a link points at: type, size, modification time, content, and
// whether a namespace is mounted there.
func describe(t *testing.T, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p, err)
			continue
		}
		fmt.Fprintf(&b, "%s: %v %d %s", p, fi.Mode(), fi.Size(), fi.ModTime())
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		} else if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fs, _ := testenv.Try("stat", "-f", "-c", "%T", p)
			fmt.Fprintf(&b, " %q on %s", data, strings.TrimSpace(fs))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestSymlinksUnderNetnsDirs: entries under /run/netns and /etc/netns that
// cnet did not make (symbolic links, to cnet's own namespace, to a
// namespace mounted elsewhere, to nothing; a plain file) are never
// followed, unmounted, written or removed by create, rm or gc: create and
// rm refuse with a message naming the path, gc reports each as left
// alone, and what the links point at keeps its content and mtime.
func TestSymlinksUnderNetnsDirs(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "blue", "--subnet", "10.96.0.0/24")
	c.ok("create", "--network", "blue", "db")
	out := t.TempDir()
	// A namespace mounted outside /run/netns, as another tool might.
	elsewhere := filepath.Join(out, "elsewhere")
	fatalIf(t, os.WriteFile(elsewhere, nil, 0o444))
	testenv.Run(t, "ip", "netns", "add", "victim")
	testenv.Run(t, "mount", "--bind", "/run/netns/victim", elsewhere)
	testenv.Run(t, "ip", "netns", "del", "victim")
	t.Cleanup(func() { testenv.Try("umount", elsewhere) })
	shadow := filepath.Join(out, "shadow")
	fatalIf(t, os.WriteFile(shadow, []byte("root:secret\n"), 0o600))
	outDir := filepath.Join(out, "dir")
	fatalIf(t, os.Mkdir(outDir, 0o755))
	fatalIf(t, os.WriteFile(filepath.Join(outDir, "resolv.conf"), []byte("nameserver 192.0.2.9\n"), 0o644))
	targets := []string{elsewhere, shadow, outDir, filepath.Join(outDir, "resolv.conf"), filepath.Join(out, "nothing"),
		"/run/netns/db", "/etc/netns/db/resolv.conf", "/etc/netns/db/hosts"}
	testenv.Settled(t)

	tests := []struct {
		name  string
		entry string // what is planted
		plant func(t *testing.T, entry string)
		// The refusal of `cnet create --network blue web` must say this.
		create string
	}{
		{"namespace links to cnet's own", "/run/netns/web", func(t *testing.T, e string) { fatalIf(t, os.Symlink("/run/netns/db", e)) }, "/run/netns/web"},
		{"namespace links to one mounted elsewhere", "/run/netns/web", func(t *testing.T, e string) { fatalIf(t, os.Symlink(elsewhere, e)) }, "/run/netns/web"},
		{"namespace links to nothing", "/run/netns/web", func(t *testing.T, e string) { fatalIf(t, os.Symlink(filepath.Join(out, "nothing"), e)) }, "/run/netns/web"},
		{"namespace path is another tool's file", "/run/netns/web", func(t *testing.T, e string) { fatalIf(t, os.WriteFile(e, []byte("not a namespace\n"), 0o644)) }, "/run/netns/web"},
		{"files directory links to another", "/etc/netns/web", func(t *testing.T, e string) { fatalIf(t, os.Symlink(outDir, e)) }, "/etc/netns/web is a symbolic link"},
		{"files directory links to nothing", "/etc/netns/web", func(t *testing.T, e string) { fatalIf(t, os.Symlink(filepath.Join(out, "nothing"), e)) }, "/etc/netns/web is a symbolic link"},
		{"resolv.conf links to a file", "/etc/netns/web/resolv.conf", func(t *testing.T, e string) {
			fatalIf(t, os.Mkdir(filepath.Dir(e), 0o755))
			fatalIf(t, os.Symlink(shadow, e))
		}, "/etc/netns/web/resolv.conf is a symbolic link"},
		{"hosts links to another container's", "/etc/netns/web/hosts", func(t *testing.T, e string) {
			fatalIf(t, os.Mkdir(filepath.Dir(e), 0o755))
			fatalIf(t, os.Symlink("/etc/netns/db/hosts", e))
		}, "/etc/netns/web/hosts is a symbolic link"},
		{"the temporary file links to a file", "/etc/netns/web/resolv.conf.cnet-tmp", func(t *testing.T, e string) {
			fatalIf(t, os.Mkdir(filepath.Dir(e), 0o755))
			fatalIf(t, os.Symlink(shadow, e))
		}, "/etc/netns/web/resolv.conf.cnet-tmp is a symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() { // registered first: a plant that fails halfway is undone too
				testenv.Logged(t, "remove "+tt.entry, removeIfThere(tt.entry))
				if strings.HasPrefix(tt.entry, "/etc/netns/web/") {
					testenv.Logged(t, "remove /etc/netns/web", removeIfThere("/etc/netns/web"))
				}
			})
			tt.plant(t, tt.entry)
			before := testenv.Snapshot(t)
			watched := describe(t, append(targets, tt.entry)...)
			check := func(what string) {
				t.Helper()
				if got := describe(t, append(targets, tt.entry)...); got != watched {
					t.Fatalf("%s touched a link or its target:\n%s", what, testenv.Diff(got, watched))
				}
				if diff := testenv.Diff(testenv.Snapshot(t), before); diff != "" {
					t.Fatalf("%s changed the machine:\n%s", what, diff)
				}
			}
			r := c.run("create", "--network", "blue", "web")
			if r.code == 0 || !strings.Contains(r.stderr, tt.create) || !strings.Contains(r.stderr, "alone") && !strings.Contains(r.stderr, "in place") {
				t.Errorf("create web: exit %d, want a refusal saying %q and that it is left alone:\n%s", r.code, tt.create, r.stderr)
			}
			check("create")
			r = c.run("gc")
			if r.code != 0 || !strings.Contains(r.stderr, tt.entry+" is ") || !strings.Contains(r.stderr, "left alone") {
				t.Errorf("gc: exit %d, want it to say %s is left alone:\n%s%s", r.code, tt.entry, r.stdout, r.stderr)
			}
			check("gc")
			r = c.run("rm", "web")
			if r.code == 0 {
				t.Errorf("rm web: exit 0, want not found")
			}
			check("rm")
		})
	}

	// A container of cnet's whose namespace path, or one of whose files,
	// someone replaced with a link.
	t.Run("rm of a container whose namespace path became a link", func(t *testing.T) {
		c.ok("create", "--network", "blue", "web")
		testenv.Run(t, "umount", "/run/netns/web")
		fatalIf(t, os.Remove("/run/netns/web"))
		fatalIf(t, os.Symlink(elsewhere, "/run/netns/web"))
		testenv.Settled(t)
		watched := describe(t, append(targets, "/run/netns/web")...)
		r := c.run("rm", "web")
		if r.code == 0 || !strings.Contains(r.stderr, "/run/netns/web") || !strings.Contains(r.stderr, "leaves it in place") {
			t.Errorf("rm web: exit %d, want a refusal naming /run/netns/web:\n%s", r.code, r.stderr)
		}
		r = c.run("gc")
		if r.code != 0 || !strings.Contains(r.stderr, "container web: /run/netns/web") {
			t.Errorf("gc: exit %d, want it to keep web and say why:\n%s%s", r.code, r.stdout, r.stderr)
		}
		if got := describe(t, append(targets, "/run/netns/web")...); got != watched {
			t.Fatalf("rm or gc touched a link or its target:\n%s", testenv.Diff(got, watched))
		}
		fatalIf(t, os.Remove("/run/netns/web"))
		c.ok("gc") // now it is gone: released
		if r := c.run("inspect", "web"); r.code == 0 {
			t.Error("web is still there after gc with its namespace gone")
		}
	})
	t.Run("rm of a container whose resolv.conf became a link", func(t *testing.T) {
		c.ok("create", "--network", "blue", "web")
		fatalIf(t, os.Remove("/etc/netns/web/resolv.conf"))
		fatalIf(t, os.Symlink(shadow, "/etc/netns/web/resolv.conf"))
		t.Cleanup(func() {
			testenv.Logged(t, "remove /etc/netns/web/resolv.conf", removeIfThere("/etc/netns/web/resolv.conf"))
			testenv.Logged(t, "remove /etc/netns/web", removeIfThere("/etc/netns/web"))
		})
		watched := describe(t, append(targets, "/etc/netns/web/resolv.conf")...)
		c.ok("rm", "web")
		if got := describe(t, append(targets, "/etc/netns/web/resolv.conf")...); got != watched {
			t.Fatalf("rm touched the link or its target:\n%s", testenv.Diff(got, watched))
		}
		if _, err := os.Lstat("/etc/netns/web/hosts"); err == nil {
			t.Error("rm left cnet's own hosts file")
		}
		r := c.run("gc")
		if r.code != 0 || !strings.Contains(r.stderr, "/etc/netns/web/resolv.conf is a symbolic link; left alone") {
			t.Errorf("gc: exit %d, want it to report the link:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}
