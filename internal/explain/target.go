package explain

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/names"
)

// HostName is how SRC and DST name the host: the network namespace cnet
// itself runs in.
const HostName = "host"

// Target is where a packet is sent: a container, an address, or the
// host's published ports (host:PORT), with an optional port and the
// protocol.
type Target struct {
	Host  bool       `json:"host,omitempty"`
	Name  string     `json:"name,omitempty"`
	Addr  netip.Addr `json:"addr,omitzero"`
	Port  uint16     `json:"port,omitempty"`
	Proto string     `json:"proto"`
}

// ParseTarget parses DST[:PORT][/PROTO]: DST a container name, an IPv4
// address or `host` (which needs a port); PROTO tcp (default) or udp.
func ParseTarget(s string) (Target, error) {
	t := Target{Proto: "tcp"}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		t.Proto = strings.ToLower(rest[i+1:])
		if t.Proto != "tcp" && t.Proto != "udp" {
			return t, errs.Invalid("protocol", rest[i+1:], "want tcp or udp, as in web:53/udp")
		}
		rest = rest[:i]
	}
	if strings.Count(rest, ":") > 1 || strings.HasPrefix(rest, "[") {
		return t, errs.Invalid("destination", s, "want an IPv4 address, a container or host:PORT: cnet networks are IPv4 only")
	}
	if host, port, ok := strings.Cut(rest, ":"); ok {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return t, errs.Invalid("port", port, "want a number from 1 to 65535, as in web:8080")
		}
		t.Port, rest = uint16(n), host
	} else if rest != s {
		return t, errs.Invalid("destination", s, "a protocol needs a port: want %s:PORT/%s", rest, t.Proto)
	}
	switch rest {
	case "":
		return t, errs.Invalid("destination", s, "want a container, an IPv4 address or host:PORT")
	case HostName:
		if t.Port == 0 {
			return t, errs.Invalid("destination", s, "host needs a port: want host:PORT, a port published on the host")
		}
		t.Host = true
		return t, nil
	}
	if a, err := netip.ParseAddr(rest); err == nil {
		switch {
		case !a.Is4():
			return t, errs.Invalid("address", rest, "want an IPv4 address: cnet networks are IPv4 only")
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return t, errs.Invalid("address", rest, "want the address of one host, not %s", kindOf(a))
		}
		t.Addr = a
		return t, nil
	}
	if err := names.CheckName("container", rest); err != nil {
		return t, errs.Invalid("destination", s, "want a container name, an IPv4 address or host:PORT")
	}
	t.Name = rest
	return t, nil
}

func kindOf(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast():
		return "a multicast group"
	}
	return "the broadcast address"
}

// String renders the target as it is written on the command line.
func (t Target) String() string {
	var s string
	switch {
	case t.Host:
		s = HostName
	case t.Name != "":
		s = t.Name
	default:
		s = t.Addr.String()
	}
	if t.Port != 0 {
		s += ":" + strconv.Itoa(int(t.Port))
		if t.Proto != "" && t.Proto != "tcp" {
			s += "/" + t.Proto
		}
	}
	return s
}

// CheckSource validates SRC: `host` or a name a container or namespace
// can have.
func CheckSource(s string) error {
	if s == HostName {
		return nil
	}
	if err := names.CheckName("source", s); err != nil {
		return errs.Invalid("source", s, "want host or a container name (%s)", names.NamePattern)
	}
	return nil
}

func portProto(port uint16, proto string) string { return fmt.Sprintf("%s port %d", proto, port) }
