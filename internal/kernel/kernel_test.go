package kernel

import (
	"errors"
	"net/netip"
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
