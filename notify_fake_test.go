package cnet

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// TestForwardingNoticeOnlyAfterCommit: creating a network with ip_forward
// off says it enabled forwarding only when the create commits; a create
// that fails at any later step rolls forwarding back and says nothing.
func TestForwardingNoticeOnlyAfterCommit(t *testing.T) {
	create := func(e *Engine) error {
		_, err := e.CreateNetwork(NetworkSpec{Name: "seed", Subnet: netip.MustParsePrefix("172.18.0.0/24")})
		return err
	}
	e, k := fakeEngine(t)
	k.Forward = false
	var notes []string
	e.opts.Notify = func(msg string) { notes = append(notes, msg) }
	steps := 0
	e.opts.Hook = func(string, int) error { steps++; return nil }
	if err := create(e); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(notes, "\n"), "enabled IPv4 forwarding"); n != 1 || !k.Forward {
		t.Fatalf("a create with forwarding off: notices %q, forwarding %v; want the notice once and forwarding on", notes, k.Forward)
	}
	for fail := 1; fail < steps; fail++ {
		t.Run(fmt.Sprintf("fail-after-step-%d", fail), func(t *testing.T) {
			e, k := fakeEngine(t)
			k.Forward = false
			var notes []string
			e.opts.Notify = func(msg string) { notes = append(notes, msg) }
			e.opts.Hook = func(_ string, step int) error {
				if step == fail {
					return errInjected
				}
				return nil
			}
			if err := create(e); !errors.Is(err, errInjected) {
				t.Fatalf("got %v, want the injected failure", err)
			}
			if strings.Contains(strings.Join(notes, "\n"), "enabled IPv4 forwarding") || k.Forward {
				t.Errorf("failed create: notices %q, forwarding %v; want no notice and forwarding off again", notes, k.Forward)
			}
		})
	}
}
