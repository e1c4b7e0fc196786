package ports

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
)

func TestParse(t *testing.T) {
	m := func(proto, ip string, hp, cp uint16) model.PortMapping {
		return model.PortMapping{Proto: proto, HostIP: netip.MustParseAddr(ip), HostPort: hp, Port: cp}
	}
	tests := []struct {
		spec string
		want []model.PortMapping
	}{
		{"8080:80", []model.PortMapping{m("tcp", "0.0.0.0", 8080, 80)}},
		{"8080:80/udp", []model.PortMapping{m("udp", "0.0.0.0", 8080, 80)}},
		{"127.0.0.1:5353:53/udp", []model.PortMapping{m("udp", "127.0.0.1", 5353, 53)}},
		{"192.0.2.7:1-3:11-13/tcp", []model.PortMapping{m("tcp", "192.0.2.7", 1, 11), m("tcp", "192.0.2.7", 2, 12), m("tcp", "192.0.2.7", 3, 13)}},
		{"65535:65535", []model.PortMapping{m("tcp", "0.0.0.0", 65535, 65535)}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.spec)
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("Parse(%q)[%d] = %+v, want %+v", tt.spec, i, got[i], tt.want[i])
			}
		}
	}
}

func TestParseRefusals(t *testing.T) {
	tests := []struct{ spec, says string }{
		{"", "needs a host port"},
		{"80", "needs a host port"},
		{"1:2:3:4", "needs a host port"},
		{"x:80", `"x" is not a number`},
		{"80:y", `"y" is not a number`},
		{"0:80", "0 is outside 1-65535"},
		{"80:65536", "65536 is outside 1-65535"},
		{"8080:80/sctp", `"sctp" is neither tcp nor udp`},
		{"1-3:11-12", "differ in length (3 and 2 ports)"},
		{"5-3:5-3", "runs backwards"},
		{"::1:80:80", "separated by ':'"},
		{"300.1.2.3:80:80", `"300.1.2.3" is not an IPv4`},
		{"host:80:80", `"host" is not an IPv4`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.spec)
		if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), Syntax) {
			t.Errorf("Parse(%q) = %v; want ErrInvalid saying %q and the syntax", tt.spec, err, tt.says)
		}
	}
}

func TestOverlaps(t *testing.T) {
	a, _ := Parse("8080:80")
	b, _ := Parse("192.0.2.1:8080:81")
	c, _ := Parse("192.0.2.2:8080:81")
	u, _ := Parse("8080:80/udp")
	if !Overlaps(a[0], b[0]) || Overlaps(b[0], c[0]) || Overlaps(a[0], u[0]) {
		t.Error("0.0.0.0 must overlap every address of the same protocol and port, and nothing else")
	}
	for _, s := range []string{"8080:80", "127.0.0.1:53:53/udp"} {
		m, _ := Parse(s)
		if got := Format(m[0]); got != strings.TrimSuffix(s, "/udp")+map[bool]string{true: "/udp", false: "/tcp"}[strings.HasSuffix(s, "/udp")] {
			t.Errorf("Format(Parse(%q)) = %q", s, got)
		}
	}
}

// FuzzParse: no spec crashes the parser, and every accepted mapping is in
// range and renders back to something that parses to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1:1-3:4-6/udp", ":", "1-:2", "/tcp", "0.0.0.0:1:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ms, err := Parse(spec)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.HostPort == 0 || m.Port == 0 || (m.Proto != "tcp" && m.Proto != "udp") {
				t.Fatalf("Parse(%q) gave %+v", spec, m)
			}
			again, err := Parse(Format(m))
			if err != nil || len(again) != 1 || again[0] != m {
				t.Fatalf("Format(%+v) = %q does not parse back: %v %v", m, Format(m), again, err)
			}
		}
	})
}
