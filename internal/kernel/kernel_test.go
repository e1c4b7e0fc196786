package kernel

import (
	"errors"
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
			t.Cleanup(func() { netns.Remove(dir, name) })
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
			unix.Close(fd)
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
