package kernel

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRemoveNetnsChecksMark: a namespace is deleted only when lo inside
// carries the mark asked for, both when the host can read that mark from
// outside (a veth joins the namespace to the host, so the host has an id
// for it) and when it must enter the namespace (no such link).
func TestRemoveNetnsChecksMark(t *testing.T) {
	testenv.RequirePrivileged(t)
	const dir = "/run/netns" // the sandbox's own
	for _, withPeer := range []bool{true, false} {
		name := "marklone"
		if withPeer {
			name = "markpeer"
		}
		t.Run(name, func(t *testing.T) {
			k := New(dir, t.TempDir(), "# cnet test")
			defer k.Close()
			spec := model.NetnsSpec{Name: name, Mark: "cnet/t/ns/" + name}
			if err := k.EnsureNetns(spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { testenv.Logged(t, "netns.Remove(dir, name)", netns.Remove(dir, name)) })
			if withPeer {
				testenv.Run(t, "ip", "link", "add", "vm"+name, "type", "veth", "peer", "name", "eth0", "netns", dir+"/"+name)
				t.Cleanup(func() { testenv.Try("ip", "link", "del", "vm"+name) })
			}

			// The case under test: the host has an id for the namespace
			// exactly when a veth joins them.
			_, fd, err := netns.OpenFd(dir, name)
			if err != nil {
				t.Fatal(err)
			}
			sock, err := k.HostSock()
			if err != nil {
				t.Fatal(err)
			}
			id, err := sock.NsID(fd)
			testenv.Logged(t, "unix.Close(fd)", unix.Close(fd))
			if err != nil || (id >= 0) != withPeer {
				t.Fatalf("host's id for the namespace = %d, %v; want one only with a veth", id, err)
			}

			other := spec
			other.Mark = "cnet/t/ns/someone-else"
			err = k.RemoveNetns(other)
			var conflict *errs.ConflictError
			if !errors.As(err, &conflict) {
				t.Fatalf("RemoveNetns with another mark = %v, want a conflict", err)
			}
			if netns.Stat(dir, name) != netns.Bound {
				t.Fatal("the namespace was deleted although its mark differs")
			}
			if err := k.RemoveNetns(spec); err != nil {
				t.Fatal(err)
			}
			if netns.Stat(dir, name) != netns.Missing {
				t.Error("the namespace is still bound after RemoveNetns with its own mark")
			}
		})
	}
}

// TestEnsureRouteDefault sets a container's default route through a
// named link, with and without a preferred source, replacing the one
// before; a missing link is refused by name.
func TestEnsureRouteDefault(t *testing.T) {
	testenv.RequirePrivileged(t)
	const dir = "/run/netns"
	k := New(dir, t.TempDir(), "# cnet test")
	defer k.Close()
	if err := k.EnsureNetns(model.NetnsSpec{Name: "routed", Mark: "cnet/t/ns/routed"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Logged(t, `netns.Remove(dir, "routed")`, netns.Remove(dir, "routed")) })
	testenv.Run(t, "ip", "link", "add", "vrouted", "type", "veth", "peer", "name", "eth0", "netns", dir+"/routed")
	t.Cleanup(func() { testenv.Try("ip", "link", "del", "vrouted") })
	testenv.Run(t, "ip", "-n", "routed", "addr", "add", "10.7.0.2/24", "dev", "eth0")
	testenv.Run(t, "ip", "-n", "routed", "link", "set", "eth0", "up")

	for _, src := range []string{"10.7.0.2", ""} {
		r := model.RouteSpec{Netns: "routed", Dev: "eth0", Gateway: netip.MustParseAddr("10.7.0.1")}
		want := "default via 10.7.0.1 dev eth0"
		if src != "" {
			r.Src = netip.MustParseAddr(src)
			want += " src " + src
		}
		if err := k.EnsureRoute(r); err != nil {
			t.Fatalf("src %q: %v", src, err)
		}
		out := testenv.Run(t, "ip", "-n", "routed", "route", "show", "default")
		if !strings.Contains(out, want) || src == "" && strings.Contains(out, " src ") || strings.Count(out, "default") != 1 {
			t.Errorf("src %q: routes %q, want one %q", src, out, want)
		}
	}
	err := k.EnsureRoute(model.RouteSpec{Netns: "routed", Dev: "eth9", Gateway: netip.MustParseAddr("10.7.0.1")})
	if err == nil || !strings.Contains(err.Error(), "eth9") {
		t.Errorf("a route through a missing link: %v, want an error naming eth9", err)
	}
}

// TestNetnsPathsNeverFollowed: what is at a namespace path decides what
// RemoveNetns and MarkedNetns do, read without following a link: the
// empty file a killed create leaves is removed (its intent names it), a
// link (to a cnet namespace of the same mark, too), another tool's file and
// a directory are refused and left, and MarkedNetns lists only the marked
// namespace, reporting each of the others as left alone.
func TestNetnsPathsNeverFollowed(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := filepath.Join(t.TempDir(), "netns")
	k := New(dir, t.TempDir(), "# cnet test")
	defer k.Close()
	real := model.NetnsSpec{Name: "real", Mark: "cnet/t/ns/real"}
	if err := k.EnsureNetns(real); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Logged(t, "remove netns real", netns.Remove(dir, "real"))
		testenv.Logged(t, "unmount "+dir, unix.Unmount(dir, unix.MNT_DETACH))
	})
	for _, err := range []error{
		os.WriteFile(filepath.Join(dir, "killed"), nil, 0o444),
		os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")),
		os.Symlink(filepath.Join(dir, "nothing"), filepath.Join(dir, "dangling")),
		os.WriteFile(filepath.Join(dir, "file"), []byte("not a namespace\n"), 0o644),
		os.Mkdir(filepath.Join(dir, "dir"), 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	marked, left, err := k.MarkedNetns()
	if err != nil {
		t.Fatal(err)
	}
	if len(marked) != 1 || marked["real"] != real.Mark {
		t.Errorf("marked = %v, want only real", marked)
	}
	for _, name := range []string{"killed", "link", "dangling", "file", "dir"} {
		if !slices.ContainsFunc(left, func(s string) bool { return strings.HasPrefix(s, filepath.Join(dir, name)+" is ") }) {
			t.Errorf("left = %q, want %s reported", left, name)
		}
	}
	// The mark real's lo carries, asked through a link to it: refused.
	for _, name := range []string{"link", "dangling", "file", "dir"} {
		err := k.RemoveNetns(model.NetnsSpec{Name: name, Mark: real.Mark})
		if !errors.Is(err, errs.ErrConflict) || !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("RemoveNetns(%s) = %v, want a conflict naming it", name, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed", name)
		}
	}
	if netns.Stat(dir, "real") != netns.Bound {
		t.Fatal("the namespace a link pointed at is gone")
	}
	if err := k.RemoveNetns(model.NetnsSpec{Name: "killed", Mark: "cnet/t/ns/killed"}); err != nil {
		t.Errorf("RemoveNetns(killed) = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "killed")); err == nil {
		t.Error("the empty file of a killed create is still there")
	}
}
