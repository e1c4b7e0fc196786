// Package ports parses and checks published-port specs:
//
//	[HOSTIP:]HOSTPORT[-END]:CPORT[-END][/tcp|udp]
//
// It is pure: conflicts with other mappings and with listening processes
// are the planner's business.
package ports

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
)

// Syntax is what Parse accepts, for messages and help.
const Syntax = "[HOSTIP:]HOSTPORT[-END]:CPORT[-END][/tcp|udp]"

// Any is the host address of a mapping bound to every address.
var Any = netip.IPv4Unspecified()

// Parse parses one spec into one mapping per port of its range.
func Parse(spec string) ([]model.PortMapping, error) {
	bad := func(want string, args ...any) error {
		return errs.Invalid("port mapping", spec, "want "+Syntax+", e.g. 8080:80 or 127.0.0.1:5353:53/udp; "+want, args...)
	}
	rest, proto := spec, "tcp"
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		rest, proto = rest[:i], rest[i+1:]
		if proto != "tcp" && proto != "udp" {
			return nil, bad("the protocol %q is neither tcp nor udp", proto)
		}
	}
	parts := strings.Split(rest, ":")
	hostIP := Any
	switch len(parts) {
	case 2:
	case 3:
		a, err := netip.ParseAddr(parts[0])
		if err != nil || !a.Is4() {
			return nil, bad("%q is not an IPv4 host address", parts[0])
		}
		hostIP = a
		parts = parts[1:]
	default:
		return nil, bad("it needs a host port and a container port separated by ':'")
	}
	hLo, hHi, err := portRange(parts[0])
	if err != nil {
		return nil, bad("host port: %s", err)
	}
	cLo, cHi, err := portRange(parts[1])
	if err != nil {
		return nil, bad("container port: %s", err)
	}
	if hHi-hLo != cHi-cLo {
		return nil, bad("the ranges %s and %s differ in length (%d and %d ports)", parts[0], parts[1], hHi-hLo+1, cHi-cLo+1)
	}
	var out []model.PortMapping
	for i := 0; i <= hHi-hLo; i++ {
		out = append(out, model.PortMapping{Proto: proto, HostIP: hostIP, HostPort: uint16(hLo + i), Port: uint16(cLo + i)})
	}
	return out, nil
}

func portRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = port(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = port(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("the range %s runs backwards", s)
		}
	}
	return lo, hi, nil
}

func port(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("%d is outside 1-65535", n)
	}
	return n, nil
}

// ParseAll parses several specs.
func ParseAll(specs []string) ([]model.PortMapping, error) {
	var out []model.PortMapping
	for _, s := range specs {
		m, err := Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

// Format renders a mapping in the spec syntax.
func Format(m model.PortMapping) string {
	if m.HostIP == Any || !m.HostIP.IsValid() {
		return fmt.Sprintf("%d:%d/%s", m.HostPort, m.Port, m.Proto)
	}
	return fmt.Sprintf("%s:%d:%d/%s", m.HostIP, m.HostPort, m.Port, m.Proto)
}

// Overlaps reports whether two mappings claim the same host socket: the
// same protocol and port, and the same address or either on every address.
func Overlaps(a, b model.PortMapping) bool {
	return a.Proto == b.Proto && a.HostPort == b.HostPort && (a.HostIP == b.HostIP || a.HostIP == Any || b.HostIP == Any)
}
