package kernel

import (
	"errors"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestRemoveNetnsChecksIdentity: with a recorded identity, the identity
// decides, not the mark on lo: a namespace whose lo was rewritten is
// still removed, and a namespace bound at the name that is not the one
// recorded is left alone even though it carries the expected mark.
func TestRemoveNetnsChecksIdentity(t *testing.T) {
	testenv.RequirePrivileged(t)
	const dir = "/run/netns"
	k := New(dir, t.TempDir(), "# cnet test")
	defer k.Close()
	ids := map[string]model.NetnsID{}
	for _, name := range []string{"idmine", "idother"} {
		if err := k.EnsureNetns(model.NetnsSpec{Name: name, Mark: "cnet/t/ns/" + name}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { testenv.Logged(t, "remove netns "+name, netns.Remove(dir, name)) })
		id, err := k.NetnsID(name)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
	}
	if ids["idmine"] == ids["idother"] {
		t.Fatalf("two namespaces share identity %s", ids["idmine"])
	}

	other := ids["idother"]
	for _, remove := range []func(model.NetnsSpec) error{k.RemoveNetns, func(s model.NetnsSpec) error { return k.RemoveNamespaces([]model.NetnsSpec{s}) }} {
		err := remove(model.NetnsSpec{Name: "idmine", Mark: "cnet/t/ns/idmine", ID: &other})
		var conflict *errs.ConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("removing with another namespace's identity = %v, want a conflict", err)
		}
		if netns.Stat(dir, "idmine") != netns.Bound {
			t.Fatal("the namespace was deleted although its identity differs")
		}
	}

	testenv.Run(t, "ip", "-n", "idmine", "link", "set", "lo", "alias", "rewritten-from-inside")
	mine := ids["idmine"]
	if err := k.RemoveNamespaces([]model.NetnsSpec{{Name: "idmine", Mark: "cnet/t/ns/idmine", ID: &mine}}); err != nil {
		t.Fatalf("removing with its own identity after lo was rewritten: %v", err)
	}
	if netns.Stat(dir, "idmine") != netns.Missing {
		t.Error("the namespace is still bound")
	}
	if netns.Stat(dir, "idother") != netns.Bound {
		t.Error("the other namespace was removed")
	}
}
