package link

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/testenv"
)

// vethsInto creates n marked veths on the host whose peers live in the
// namespace ns, named PREFIX0..PREFIXn-1, and returns what RemoveLinks
// needs to remove them.
func vethsInto(t testing.TB, ns, prefix string, n int) []Owned {
	t.Helper()
	var batch strings.Builder
	var out []Owned
	for i := range n {
		name, mark := fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("cnet/t/ep/%s%d/n", prefix, i)
		fmt.Fprintf(&batch, "link add %s type veth peer name p%s%d netns %s\nlink set %s alias %s up\n", name, prefix, i, ns, name, mark)
		out = append(out, Owned{Name: name, Mark: mark})
	}
	f, err := os.CreateTemp(t.TempDir(), "batch")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(batch.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "ip", "-batch", f.Name())
	return out
}

// linkExists asks ip (/sys/class/net shows the namespace sysfs was
// mounted in, not the sandbox's).
func linkExists(name string) bool {
	_, err := testenv.Try("ip", "link", "show", "dev", name)
	return err == nil
}

// TestRemoveLinksBatch deletes many marked veths in one group request:
// they and their peers are gone, a name that does not exist is no error,
// and links that are not cnet's stay, in their own groups, the default
// one included.
func TestRemoveLinksBatch(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "grp")
		testenv.Try("ip", "link", "del", "foreign0")
		testenv.Try("ip", "link", "del", "foreign1")
	})
	testenv.Run(t, "ip", "netns", "add", "grp")
	testenv.Run(t, "ip", "link", "add", "foreign0", "type", "bridge")
	testenv.Run(t, "ip", "link", "add", "foreign1", "group", "7", "type", "bridge")
	want := vethsInto(t, "grp", "vb", 30)
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	var used uint32
	grouped = func(g uint32) { used = g }
	t.Cleanup(func() { grouped = nil })
	if err := RemoveLinks(sock, append(want, Owned{Name: "vbmissing", Mark: "cnet/t/ep/x/n"})); err != nil {
		t.Fatal(err)
	}
	if used == 0 {
		t.Error("30 links were not deleted as a group")
	}
	for _, w := range want {
		if linkExists(w.Name) {
			t.Errorf("%s still exists", w.Name)
		}
	}
	if out := testenv.Run(t, "ip", "-n", "grp", "-o", "link"); strings.Contains(out, "pvb") {
		t.Errorf("peers left in the namespace:\n%s", out)
	}
	for _, f := range []struct{ name, group string }{{"foreign0", "group default"}, {"foreign1", "group 7"}} {
		if out := testenv.Run(t, "ip", "link", "show", f.name); !strings.Contains(out, f.group) {
			t.Errorf("%s changed: %s", f.name, out)
		}
	}
}

// TestRemoveLinksRefusesForeignMark: one link without the expected mark
// fails the whole removal before anything is deleted or regrouped.
func TestRemoveLinksRefusesForeignMark(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "grp") })
	testenv.Run(t, "ip", "netns", "add", "grp")
	want := vethsInto(t, "grp", "vr", 5)
	testenv.Run(t, "ip", "link", "set", "vr3", "alias", "someone-else")
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	err = RemoveLinks(sock, want)
	if !errors.Is(err, errs.ErrConflict) || !strings.Contains(err.Error(), "vr3") {
		t.Fatalf("got %v, want a conflict naming vr3", err)
	}
	for _, w := range want {
		if out := testenv.Run(t, "ip", "link", "show", w.Name); !strings.Contains(out, "group default") {
			t.Errorf("%s was changed: %s", w.Name, out)
		}
	}
}

// TestRemoveLinksSparesLinkJoiningGroup: a link that another process puts
// into the group after cnet moved its links there is not deleted with
// them; cnet's links are deleted one by one instead, and the other link
// keeps its place.
func TestRemoveLinksSparesLinkJoiningGroup(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "grp")
		testenv.Try("ip", "link", "del", "intruder")
	})
	testenv.Run(t, "ip", "netns", "add", "grp")
	testenv.Run(t, "ip", "link", "add", "intruder", "type", "bridge")
	want := vethsInto(t, "grp", "vj", 6)
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	var used uint32
	intruder, ok, err := sock.Link("intruder")
	if err != nil || !ok {
		t.Fatalf("intruder: %v %v", ok, err)
	}
	grouped = func(g uint32) {
		used = g
		if err := sock.SetGroup(intruder.Index, g); err != nil {
			t.Errorf("move intruder into group %d: %v", g, err)
		}
	}
	t.Cleanup(func() { grouped = nil })
	if err := RemoveLinks(sock, want); err != nil {
		t.Fatal(err)
	}
	if used == 0 {
		t.Fatal("the links were never grouped")
	}
	if !linkExists("intruder") {
		t.Fatal("the link that joined the group was deleted")
	}
	// iproute2 prints groups as signed numbers.
	if out := testenv.Run(t, "ip", "link", "show", "intruder"); !strings.Contains(out, fmt.Sprintf("group %d ", int32(used))) {
		t.Errorf("intruder lost its group: %s", out)
	}
	for _, w := range want {
		if linkExists(w.Name) {
			t.Errorf("%s still exists", w.Name)
		}
	}
}

// TestRemoveLinksOne deletes a single link by name and checks its mark.
func TestRemoveLinksOne(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "grp") })
	testenv.Run(t, "ip", "netns", "add", "grp")
	want := vethsInto(t, "grp", "vo", 1)
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := RemoveLinks(sock, []Owned{{Name: want[0].Name, Mark: "cnet/t/ep/other/n"}}); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("wrong mark: got %v, want a conflict", err)
	}
	if err := RemoveLinks(sock, want); err != nil {
		t.Fatal(err)
	}
	if linkExists(want[0].Name) {
		t.Error("vo0 still exists")
	}
	if err := RemoveLinks(sock, want); err != nil {
		t.Errorf("removing a missing link: %v", err)
	}
}

// BenchmarkRemoveLinks deletes 100 veths (peers in a namespace) one
// request each, and as one group.
func BenchmarkRemoveLinks(b *testing.B) {
	testenv.RequirePrivileged(b)
	const n = 100
	b.Cleanup(func() { testenv.Try("ip", "netns", "del", "grpb") })
	testenv.Run(b, "ip", "netns", "add", "grpb")
	sock, err := OpenSock()
	if err != nil {
		b.Fatal(err)
	}
	defer sock.Close()
	for _, mode := range []string{"one-by-one", "group"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				want := vethsInto(b, "grpb", "vbb", n)
				b.StartTimer()
				start := time.Now()
				if mode == "group" {
					err = RemoveLinks(sock, want)
				} else {
					for _, w := range want {
						if err = RemoveLinks(sock, []Owned{w}); err != nil {
							break
						}
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/n, "µs/link")
			}
		})
	}
}

// TestLinkInReadsAnotherNamespace reads lo's alias in a container
// namespace from the host, through the id the host gives the namespace
// once a veth joins the two; a namespace with no such link has no id, and
// an unknown id is refused by the kernel.
func TestLinkInReadsAnotherNamespace(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Cleanup(func() {
		testenv.Try("ip", "netns", "del", "nsidpeer")
		testenv.Try("ip", "netns", "del", "nsidlone")
	})
	testenv.Run(t, "ip", "netns", "add", "nsidpeer")
	testenv.Run(t, "ip", "netns", "add", "nsidlone")
	testenv.Run(t, "ip", "-n", "nsidpeer", "link", "set", "lo", "alias", "cnet/t/ns/nsidpeer")
	vethsInto(t, "nsidpeer", "vn", 1)
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	open := func(name string) int {
		fd, err := os.Open("/run/netns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { testenv.Close(t, "fd", fd) })
		return int(fd.Fd())
	}

	id, err := sock.NsID(open("nsidpeer"))
	if err != nil || id < 0 {
		t.Fatalf("NsID of a namespace with a veth peer on the host = %d, %v; want an id", id, err)
	}
	lo, ok, err := sock.LinkIn(id, "lo")
	if err != nil || !ok {
		t.Fatalf("LinkIn(%d, lo) = %v, %v", id, ok, err)
	}
	if lo.Alias != "cnet/t/ns/nsidpeer" || lo.Index != 1 {
		t.Errorf("lo read from the host = %+v, want index 1 and the alias set inside", lo)
	}
	if _, ok, err := sock.LinkIn(id, "nosuchlink"); ok || err != nil {
		t.Errorf("LinkIn of a missing link = %v, %v; want not found and no error", ok, err)
	}

	if id, err := sock.NsID(open("nsidlone")); err != nil || id != -1 {
		t.Errorf("NsID of a namespace without links to the host = %d, %v; want -1", id, err)
	}
	if _, _, err := sock.LinkIn(id+1000, "lo"); err == nil {
		t.Errorf("LinkIn with an id the host never gave: no error")
	}
}

// TestRequestErrorsCarryTheKernelsReason: a refused request's error keeps
// its errno and adds the text the kernel gave for it.
func TestRequestErrorsCarryTheKernelsReason(t *testing.T) {
	testenv.RequirePrivileged(t)
	sock, err := OpenSock()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	_, err = sock.AddVeth(VethSpec{Name: strings.Repeat("x", 20), MTU: 1500, PeerName: "p", PeerNetnsFd: -1})
	if !errors.Is(err, unix.ERANGE) || !strings.Contains(err.Error(), "policy validation") {
		t.Errorf("AddVeth with a 20-character name: %v; want ERANGE with the kernel's reason", err)
	}
}
