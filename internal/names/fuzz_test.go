package names

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
)

func refused(t *testing.T, err error, value string) {
	t.Helper()
	if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), strconv.Quote(value)) || !strings.Contains(err.Error(), "want") {
		t.Fatalf("%q: refused with %v; want ErrInvalid naming the value and what is accepted", value, err)
	}
}

// FuzzCheckName (container and network names): an accepted name matches
// NamePattern, so it is a safe file name under /run/netns and /etc/netns
// and a safe DNS label part; its bridge name is a valid interface name,
// distinct for distinct names that fit. A refusal names the value.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"web", "a/b", ".", "..", "-x", "x-", "a.b_c-d", strings.Repeat("a", 63), strings.Repeat("a", 64), "cnet", "é", "a\x00b", "a b", "UPPER"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckName("container", name)
		if err != nil {
			refused(t, err, name)
			return
		}
		if len(name) == 0 || len(name) > 63 || !isAlnum(name[0]) || strings.ContainsAny(name, "/\x00 \n:") || name == "." || name == ".." {
			t.Fatalf("CheckName accepted %q", name)
		}
		for _, c := range []byte(name) {
			if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
				t.Fatalf("CheckName accepted %q with byte %q", name, c)
			}
		}
		br := Bridge(name)
		if err := CheckIfName("bridge", br); err != nil {
			t.Fatalf("Bridge(%q) = %q is not an interface name: %v", name, br, err)
		}
		m := NetworkMark("abc123", name)
		if back, ok := ParseMark(m.String()); !ok || back != m {
			t.Fatalf("mark %q parses back to %+v %v", m, back, ok)
		}
	})
}

// FuzzCheckIfName (--bridge, interface names): an accepted name is what
// the kernel takes: 1-15 bytes, no '/', ':', whitespace or NUL, not "."
// or "..".
func FuzzCheckIfName(f *testing.F) {
	for _, s := range []string{"br0", "cont-br0", "this-name-is-too-long", "a/b", "a:b", "a b", ".", "..", "", "eth0\n", "ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckIfName("bridge", s)
		if err != nil {
			refused(t, err, s)
			return
		}
		if len(s) < 1 || len(s) > MaxIfName || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\x00") {
			t.Fatalf("CheckIfName accepted %q", s)
		}
	})
}

// FuzzParseMark: any link alias parses without crashing, and a parsed
// mark prints back to the alias it came from.
func FuzzParseMark(f *testing.F) {
	for _, s := range []string{"cnet/abc123/net/blue", "cnet/abc123/ep/web/blue", "cnet//net/x", "cnet/a/b", "other", "cnet/a/b/c/d/e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, alias string) {
		m, ok := ParseMark(alias)
		if !ok {
			return
		}
		if m.Instance == "" || m.Kind == "" || m.Name == "" || strings.Contains(m.Instance, "/") || strings.Contains(m.Kind, "/") {
			t.Fatalf("ParseMark(%q) = %+v", alias, m)
		}
		if m.String() != alias {
			t.Fatalf("ParseMark(%q) prints back as %q", alias, m.String())
		}
	})
}
