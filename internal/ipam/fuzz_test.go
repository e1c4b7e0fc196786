package ipam

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
)

// refusal checks that err is an ErrInvalid that quotes the input and says
// what is accepted.
func refusal(t *testing.T, err error, input string) {
	t.Helper()
	var ie *errs.InvalidError
	if !errors.Is(err, errs.ErrInvalid) || !errors.As(err, &ie) {
		t.Fatalf("%q: refused with %v, want an ErrInvalid", input, err)
	}
	if !strings.Contains(err.Error(), strconv.Quote(ie.Value)) || ie.Want == "" {
		t.Fatalf("%q: message %q does not name the value and what is accepted", input, err)
	}
}

// FuzzParseSubnet (--subnet): no input crashes it; an accepted subnet is
// IPv4, masked, /8 to /30, and prints back to what parses to itself; a
// refusal names the value and says what is accepted.
func FuzzParseSubnet(f *testing.F) {
	for _, s := range []string{"172.18.0.0/24", "10.0.0.0/8", "10.0.0.0/30", "10.0.0.1/24", "10.0.0.0/31", "10.0.0.0/7",
		"fd00::/64", "::ffff:10.0.0.0/120", "10.0.0.0", "10.0.0.0/024", "1.2.3.4/32", "0.0.0.0/8", "255.255.255.252/30", " 10.0.0.0/24", "10.0.0.0/24\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSubnet(s)
		if err != nil {
			refusal(t, err, s)
			return
		}
		if !p.Addr().Is4() || p.Masked() != p || p.Bits() < MinBits || p.Bits() > MaxBits {
			t.Fatalf("ParseSubnet(%q) accepted %s", s, p)
		}
		for _, r := range reserved {
			if r.p.Overlaps(p) {
				t.Fatalf("ParseSubnet(%q) accepted %s, which overlaps %s", s, p, r.p)
			}
		}
		if again, err := ParseSubnet(p.String()); err != nil || again != p {
			t.Fatalf("%s does not parse back: %v %v", p, again, err)
		}
		if first, last := FirstHost(p), Broadcast(p).Prev(); !p.Contains(first) || !p.Contains(last) || last.Less(first) {
			t.Fatalf("%s: hosts %s to %s", p, first, last)
		}
	})
}

// FuzzParseAddr (--ip, --gateway, --dns): an accepted address is IPv4
// and prints back to itself; a refusal names the value.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"172.18.0.2", "999.1.1.1", "1.2.3", "::1", "::ffff:1.2.3.4", "01.2.3.4", "1.2.3.4%eth0", "", "0.0.0.0", "255.255.255.255"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr("ip", s)
		if err != nil {
			refusal(t, err, s)
			return
		}
		if !a.Is4() || a.Zone() != "" {
			t.Fatalf("ParseAddr(%q) accepted %s", s, a)
		}
		if again, err := ParseAddr("ip", a.String()); err != nil || again != a {
			t.Fatalf("%s does not parse back: %v %v", a, again, err)
		}
	})
}

// FuzzCheckHost (--ip and --gateway against a subnet): whatever the
// subnet, gateway and address, an accepted address is a host of the
// subnet other than its network, broadcast and gateway addresses, and a
// refused one is named.
func FuzzCheckHost(f *testing.F) {
	f.Add("172.18.0.0/24", "172.18.0.1", "172.18.0.2")
	f.Add("10.0.0.0/30", "10.0.0.1", "10.0.0.3")
	f.Add("10.0.0.0/8", "10.0.0.1", "10.255.255.255")
	f.Add("10.0.0.0/24", "10.0.0.1", "10.0.1.1")
	f.Fuzz(func(t *testing.T, subnet, gw, ip string) {
		p, err := ParseSubnet(subnet)
		if err != nil {
			return
		}
		g, err := ParseAddr("gateway", gw)
		if err != nil {
			return
		}
		if err := CheckGateway(p, g); err != nil {
			refusal(t, err, gw)
			if p.Contains(g) && g != p.Addr() && g != Broadcast(p) {
				t.Fatalf("gateway %s refused in %s: %v", g, p, err)
			}
			return
		}
		a, err := ParseAddr("ip", ip)
		if err != nil {
			return
		}
		err = CheckHost("ip", p, g, a)
		ok := p.Contains(a) && a != p.Addr() && a != Broadcast(p) && a != g
		if err != nil {
			refusal(t, err, ip)
		}
		if ok != (err == nil) {
			t.Fatalf("CheckHost(%s, gw %s, %s) = %v, want ok=%v", p, g, a, err, ok)
		}
	})
}
