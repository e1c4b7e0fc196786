package names

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"container-1", true},
		{"a", true},
		{"A.b_c-9", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-x", false},
		{".hidden", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName("container", tt.name)
			if got := err == nil; got != tt.ok {
				t.Fatalf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, errs.ErrInvalid) {
					t.Errorf("got %v, want ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), NamePattern) {
					t.Errorf("message %q does not say what is accepted", err)
				}
			}
		})
	}
}

func TestCheckIfName(t *testing.T) {
	for _, s := range []string{"cont-br0", "br", strings.Repeat("x", 15)} {
		if err := CheckIfName("bridge name", s); err != nil {
			t.Errorf("CheckIfName(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range []string{"", strings.Repeat("x", 16), "a/b", "a:b", "a b", ".", ".."} {
		if err := CheckIfName("bridge name", s); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("CheckIfName(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestBridge(t *testing.T) {
	tests := []struct{ network, want string }{
		{"cnet", "cnet0"},
		{"blue", "cnet-blue"},
		{"abcdefghij", "cnet-abcdefghij"},
	}
	for _, tt := range tests {
		if got := Bridge(tt.network); got != tt.want {
			t.Errorf("Bridge(%q) = %q, want %q", tt.network, got, tt.want)
		}
	}
	long := Bridge("a-very-long-network-name")
	if len(long) > MaxIfName || !strings.HasPrefix(long, "cnet-") {
		t.Errorf("Bridge(long) = %q, want cnet- and at most 15 bytes", long)
	}
	if long == Bridge("a-very-long-network-name2") {
		t.Errorf("two long names map to the same bridge %q", long)
	}
}

func TestHostVeth(t *testing.T) {
	a := HostVeth("i1", "web", "blue", 1)
	if len(a) != 11 || !strings.HasPrefix(a, "veth") {
		t.Fatalf("HostVeth = %q, want veth + 7 hex", a)
	}
	if a != HostVeth("i1", "web", "blue", 1) {
		t.Errorf("HostVeth is not deterministic")
	}
	for _, other := range []string{HostVeth("i1", "web", "blue", 2), HostVeth("i2", "web", "blue", 1), HostVeth("i1", "web", "red", 1)} {
		if other == a {
			t.Errorf("HostVeth collision: %q", a)
		}
	}
}

func TestMAC(t *testing.T) {
	got := MAC(netip.MustParseAddr("172.18.0.2")).String()
	if want := "02:63:ac:12:00:02"; got != want {
		t.Errorf("MAC = %s, want %s", got, want)
	}
}

func TestMarkRoundTrip(t *testing.T) {
	for _, m := range []Mark{NetworkMark("abc123", "blue"), EndpointMark("abc123", "web", "blue"), NetnsMark("abc123", "web")} {
		got, ok := ParseMark(m.String())
		if !ok || got != m {
			t.Errorf("ParseMark(%q) = %+v, %v; want %+v", m.String(), got, ok, m)
		}
	}
	for _, s := range []string{"", "docker", "cnet/", "cnet/a/b", "cnet//net/x"} {
		if _, ok := ParseMark(s); ok {
			t.Errorf("ParseMark(%q) ok, want not a mark", s)
		}
	}
}

// TestOwns: a link is cnet's when it carries the mark, or carries no alias
// and the mark's group; never when it carries another alias.
func TestOwns(t *testing.T) {
	m := "cnet/abc123/ep/a/n1"
	tests := []struct {
		name  string
		alias string
		group uint32
		want  bool
	}{
		{"marked", m, 0, true},
		{"unmarked in the mark's group", "", Group(m), true},
		{"unmarked in another group", "", Group(m) + 1, false},
		{"unmarked in the default group", "", 0, false},
		{"another alias in the mark's group", "someone else", Group(m), false},
		{"another cnet mark in the mark's group", "cnet/abc123/ep/b/n1", Group(m), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Owns(tt.alias, tt.group, m); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if g := Group(m); g == 0 || g&(1<<31) != 0 {
		t.Errorf("Group(%q) = %#x: want nonzero with the high bit clear", m, g)
	}
}
