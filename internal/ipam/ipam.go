// Package ipam allocates IPv4 addresses inside a subnet and subnets inside
// a pool. It is pure: callers pass what is in use, sorted, and get an
// answer; nothing here touches the kernel or the store.
package ipam

import (
	"fmt"
	"iter"
	"net/netip"

	"github.com/cnetdev/cnet/internal/errs"
)

// Prefix bounds for networks: a /30 holds a gateway and one container.
const (
	MinBits = 8
	MaxBits = 30
)

// DefaultPool is where networks created without --subnet get theirs: the
// first /24 in 10.89.0.0/16 that overlaps no other network and no address
// or route on the host.
var DefaultPool = netip.MustParsePrefix("10.89.0.0/16")

// DefaultPoolBits is the size of subnets carved from the pool.
const DefaultPoolBits = 24

// ParseSubnet parses and checks a network's subnet: IPv4, masked,
// between /8 and /30.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errs.Invalid("subnet", s, "want an IPv4 CIDR such as 172.18.0.0/24")
	}
	return p, CheckSubnet(p)
}

// CheckSubnet checks a parsed subnet.
func CheckSubnet(p netip.Prefix) error {
	s := p.String()
	switch {
	case !p.Addr().Is4():
		return errs.Invalid("subnet", s, "want an IPv4 CIDR such as 172.18.0.0/24 (IPv6 is not supported yet)")
	case p.Bits() < MinBits || p.Bits() > MaxBits:
		return errs.Invalid("subnet", s, "want a prefix length from /%d to /%d", MinBits, MaxBits)
	case p.Masked() != p:
		return errs.Invalid("subnet", s, "host bits are set; did you mean %s?", p.Masked())
	}
	for _, r := range reserved {
		if r.p.Overlaps(p) {
			return errs.Invalid("subnet", s, "overlaps %s (%s), which is not for hosts; want a private range such as 172.18.0.0/24", r.p, r.what)
		}
	}
	return nil
}

// reserved are IPv4 ranges a network can never use: the kernel treats
// them as local, multicast or invalid, whatever the routing table says.
var reserved = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, which hosts give themselves when no DHCP server answers and routers never forward, so NAT and published ports would not work"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, with the broadcast address"},
}

// special are IPv4 ranges a network may use but probably should not:
// set aside for documentation, carrier-grade NAT or benchmarking (RFC
// 6890), so they can clash with examples, a carrier's network or test
// equipment.
var special = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space for carrier-grade NAT (RFC 6598): a host behind such a carrier may already reach these addresses on its uplink"},
	{netip.MustParsePrefix("192.0.2.0/24"), "TEST-NET-1, for documentation (RFC 5737)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "TEST-NET-2, for documentation (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "TEST-NET-3, for documentation (RFC 5737)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "the former 6to4 relay anycast range (RFC 7526)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "for benchmarking network equipment (RFC 2544)"},
}

// SubnetWarning says why a subnet that CheckSubnet accepts is still a
// poor choice, or returns "" for a private or public range.
func SubnetWarning(p netip.Prefix) string {
	for _, r := range special {
		if r.p.Overlaps(p) {
			return fmt.Sprintf("subnet %s overlaps %s, %s; it works, but a private range such as 172.18.0.0/24 will not clash with anything", p, r.p, r.what)
		}
	}
	return ""
}

// ParseAddr parses an IPv4 address given for what ("ip", "gateway", "dns").
func ParseAddr(what, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, errs.Invalid(what, s, "want an IPv4 address such as 172.18.0.2")
	}
	return a, nil
}

// Broadcast returns the last address of p.
func Broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := be(b) | host
	return from(v)
}

// FirstHost returns the first usable address of p, the default gateway.
func FirstHost(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// CheckHost reports whether a may be given to a host in subnet p with
// gateway gw: inside p, not its network or broadcast address, not gw.
func CheckHost(what string, p netip.Prefix, gw, a netip.Addr) error {
	s := a.String()
	switch {
	case !p.Contains(a):
		return errs.Invalid(what, s, "want an address inside %s", p)
	case a == p.Masked().Addr():
		return errs.Invalid(what, s, "is the network address of %s; want one from %s to %s", p, FirstHost(p), Broadcast(p).Prev())
	case a == Broadcast(p):
		return errs.Invalid(what, s, "is the broadcast address of %s; want one from %s to %s", p, FirstHost(p), Broadcast(p).Prev())
	case a == gw:
		return errs.Invalid(what, s, "is the gateway of %s; want another address from %s to %s", p, FirstHost(p), Broadcast(p).Prev())
	}
	return nil
}

// CheckGateway reports whether gw may be the gateway of p.
func CheckGateway(p netip.Prefix, gw netip.Addr) error {
	s := gw.String()
	switch {
	case !p.Contains(gw):
		return errs.Invalid("gateway", s, "want an address inside %s", p)
	case gw == p.Masked().Addr() || gw == Broadcast(p):
		return errs.Invalid("gateway", s, "want a host address of %s, from %s to %s", p, FirstHost(p), Broadcast(p).Prev())
	}
	return nil
}

// First returns the lowest host address of p that is neither gw nor in
// used. used must yield addresses in ascending order; addresses outside p
// are ignored. It walks used once.
func First(p netip.Prefix, gw netip.Addr, used iter.Seq[netip.Addr]) (netip.Addr, bool) {
	return FirstIn(p, gw, netip.Addr{}, netip.Addr{}, used)
}

// FirstIn is First bounded to lo..hi, inclusive (an invalid bound is no
// bound), as a CNI host-local range is.
func FirstIn(p netip.Prefix, gw, lo, hi netip.Addr, used iter.Seq[netip.Addr]) (netip.Addr, bool) {
	cand := FirstHost(p)
	if lo.IsValid() && cand.Less(lo) {
		cand = lo
	}
	last := Broadcast(p) // exclusive
	if hi.IsValid() && hi.Less(last) {
		last = hi.Next()
	}
	skip := func() {
		for cand == gw {
			cand = cand.Next()
		}
	}
	skip()
	for u := range used {
		if u.Less(cand) {
			continue
		}
		if u != cand {
			break
		}
		cand = cand.Next()
		skip()
	}
	if !cand.Less(last) {
		return netip.Addr{}, false
	}
	return cand, true
}

// Overlaps reports whether a and b share any address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// NextSubnet returns the first subnet of size bits in pool that overlaps
// none of taken.
func NextSubnet(pool netip.Prefix, bits int, taken []netip.Prefix) (netip.Prefix, error) {
	if bits < pool.Bits() {
		return netip.Prefix{}, fmt.Errorf("pool %s cannot hold a /%d", pool, bits)
	}
	step := uint64(1) << (32 - bits)
	end := uint64(be(pool.Masked().Addr().As4())) + uint64(1)<<(32-pool.Bits())
	for v := uint64(be(pool.Masked().Addr().As4())); v < end; v += step {
		cand := netip.PrefixFrom(from(uint32(v)), bits)
		clear := true
		for _, t := range taken {
			if cand.Overlaps(t) {
				clear = false
				// Jump past the taken prefix when it is larger than a step.
				if t.Bits() < bits {
					tEnd := uint64(be(t.Masked().Addr().As4())) + uint64(1)<<(32-t.Bits())
					v = tEnd - step
				}
				break
			}
		}
		if clear {
			return cand, nil
		}
	}
	return netip.Prefix{}, errs.Conflict("address pool", pool.String(), "existing networks, addresses and routes",
		"every /%d in it is taken; pass --subnet", bits)
}

func be(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func from(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
