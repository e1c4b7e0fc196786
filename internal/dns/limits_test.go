package dns

import (
	"net/netip"
	"testing"
)

// TestUsage: a client gets at most its share of forwards and of TCP
// connections, all clients together at most the total, and what is given
// back can be taken again; a client holding nothing leaves no entry.
func TestUsage(t *testing.T) {
	u := newUsage(Limits{Forwards: 5, ClientForwards: 3, TCPConns: 2, ClientTCPConns: 1})
	x, y, z := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.1.0.3"), netip.MustParseAddr("10.2.0.2")
	for i := range 3 {
		if !u.take(x, false) {
			t.Fatalf("forward %d of x refused within its share", i)
		}
	}
	if u.take(x, false) {
		t.Error("x got a fourth forward, past its share of 3")
	}
	for i := range 2 {
		if !u.take(y, false) {
			t.Fatalf("forward %d of y refused within the total", i)
		}
	}
	if u.take(z, false) {
		t.Error("z got a forward past the total of 5")
	}
	u.give(x, false)
	if !u.take(z, false) {
		t.Error("z refused after x gave one back")
	}
	if !u.take(x, true) || u.take(x, true) {
		t.Error("x's TCP connections: want one, then a refusal")
	}
	if !u.take(y, true) || u.take(z, true) {
		t.Error("TCP connections: want y's accepted and z's refused past the total of 2")
	}
	for _, c := range []struct {
		a        netip.Addr
		fwd, tcp int
	}{{x, 2, 1}, {y, 2, 1}, {z, 1, 0}} {
		for range c.fwd {
			u.give(c.a, false)
		}
		for range c.tcp {
			u.give(c.a, true)
		}
	}
	if len(u.clients) != 0 || u.forwards != 0 || u.conns != 0 {
		t.Errorf("after everything was given back: %d clients, %d forwards, %d connections", len(u.clients), u.forwards, u.conns)
	}
}
