package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestFirst(t *testing.T) {
	p := netip.MustParsePrefix("172.18.0.0/24")
	gw := netip.MustParseAddr("172.18.0.1")
	tests := []struct {
		name string
		gw   netip.Addr
		used []netip.Addr
		want string
	}{
		{"empty", gw, nil, "172.18.0.2"},
		{"next", gw, addrs("172.18.0.2"), "172.18.0.3"},
		{"gap", gw, addrs("172.18.0.2", "172.18.0.4"), "172.18.0.3"},
		{"outside ignored", gw, addrs("10.0.0.1", "172.18.0.2"), "172.18.0.3"},
		{"gateway in the middle", netip.MustParseAddr("172.18.0.3"), addrs("172.18.0.1", "172.18.0.2"), "172.18.0.4"},
		{"gateway last", netip.MustParseAddr("172.18.0.254"), nil, "172.18.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := First(p, tt.gw, slices.Values(tt.used))
			if !ok || got.String() != tt.want {
				t.Errorf("got %v %v, want %s", got, ok, tt.want)
			}
		})
	}
}

func TestFirstExhausted(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.0/30") // .1 gateway, .2 the only host
	if _, ok := First(p, netip.MustParseAddr("10.0.0.1"), slices.Values(addrs("10.0.0.2"))); ok {
		t.Fatal("got an address from a full /30")
	}
	if a, ok := First(p, netip.MustParseAddr("10.0.0.1"), slices.Values[[]netip.Addr](nil)); !ok || a.String() != "10.0.0.2" {
		t.Fatalf("got %v %v, want 10.0.0.2", a, ok)
	}
}

func TestCheckHost(t *testing.T) {
	p := netip.MustParsePrefix("172.18.0.0/24")
	gw := netip.MustParseAddr("172.18.0.1")
	for _, s := range []string{"172.18.0.0", "172.18.0.255", "172.18.0.1", "172.18.1.5"} {
		if err := CheckHost("ip", p, gw, netip.MustParseAddr(s)); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("CheckHost(%s) = %v, want ErrInvalid", s, err)
		}
	}
	if err := CheckHost("ip", p, gw, netip.MustParseAddr("172.18.0.2")); err != nil {
		t.Errorf("CheckHost(172.18.0.2) = %v", err)
	}
}

func TestParseSubnet(t *testing.T) {
	for _, s := range []string{"172.18.0.0/24", "10.0.0.0/8", "192.168.5.0/30"} {
		if _, err := ParseSubnet(s); err != nil {
			t.Errorf("ParseSubnet(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "x", "172.18.0.1/24", "10.0.0.0/7", "10.0.0.0/31", "fd00::/64", "172.18.0.0", "300.1.1.0/24",
		"127.0.0.0/8", "127.1.0.0/16", "0.0.0.0/8", "224.0.0.0/24", "239.0.0.0/8", "240.0.0.0/8", "255.255.255.252/30"} {
		if _, err := ParseSubnet(s); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("ParseSubnet(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestNextSubnet(t *testing.T) {
	pool := netip.MustParsePrefix("10.89.0.0/16")
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name  string
		taken []netip.Prefix
		want  string
	}{
		{"empty", nil, "10.89.0.0/24"},
		{"first taken", pfx("10.89.0.0/24"), "10.89.1.0/24"},
		{"host route inside", pfx("10.89.0.7/32"), "10.89.1.0/24"},
		{"big route", pfx("10.89.0.0/20"), "10.89.16.0/24"},
		{"unrelated", pfx("192.168.1.0/24"), "10.89.0.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NextSubnet(pool, 24, tt.taken)
			if err != nil || got.String() != tt.want {
				t.Errorf("got %v %v, want %s", got, err, tt.want)
			}
		})
	}
	if _, err := NextSubnet(pool, 24, pfx("10.88.0.0/15")); !errors.Is(err, errs.ErrConflict) {
		t.Errorf("full pool: got %v, want ErrConflict", err)
	}
}

func TestBroadcast(t *testing.T) {
	if got := Broadcast(netip.MustParsePrefix("10.1.2.0/23")).String(); got != "10.1.3.255" {
		t.Errorf("got %s", got)
	}
}

func TestFirstIn(t *testing.T) {
	p := netip.MustParsePrefix("10.88.0.0/24")
	gw := netip.MustParseAddr("10.88.0.1")
	lo, hi := netip.MustParseAddr("10.88.0.100"), netip.MustParseAddr("10.88.0.101")
	tests := []struct {
		used []netip.Addr
		want string // "" when full
	}{
		{nil, "10.88.0.100"},
		{addrs("10.88.0.2", "10.88.0.100"), "10.88.0.101"},
		{addrs("10.88.0.100", "10.88.0.101"), ""},
	}
	for _, tt := range tests {
		got, ok := FirstIn(p, gw, lo, hi, slices.Values(tt.used))
		if tt.want == "" && ok || tt.want != "" && (!ok || got.String() != tt.want) {
			t.Errorf("used %v: got %v %v, want %q", tt.used, got, ok, tt.want)
		}
	}
}
