package plan

import (
	"iter"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/names"
)

// holders returns what is in use behind n's bridge beyond the endpoints
// state knows, asking the machine once per network and plan. A bridge
// the plan itself creates has nothing behind it yet.
func (p *Plan) holders(env *Env, n *model.Network) ([]model.Holder, error) {
	if hs, ok := p.live[n.Name]; ok {
		return hs, nil
	}
	var hs []model.Holder
	if _, creating := p.Changes.Networks[n.Name]; !creating {
		var err error
		hs, err = env.Facts.BridgeHolders(n.Bridge, func(port, alias string) bool {
			if _, ok := env.View.HostIfOwner(port); ok {
				return true
			}
			// A veth of this instance that state no longer lists is an
			// endpoint being torn down after `cnet rm` (the kernel frees
			// it some 20-30 ms after its namespace), or an orphan `cnet
			// gc` removes: its address is free.
			m, ok := names.ParseMark(alias)
			return ok && m.Instance == env.Instance && m.Kind == "ep"
		})
		if err != nil {
			return nil, err
		}
	}
	if p.live == nil {
		p.live = map[string][]model.Holder{}
	}
	p.live[n.Name] = hs
	return hs, nil
}

// derivedAddr is the address a MAC of cnet's own form (02:63 and an IPv4
// address, see names.MAC) was derived from.
func derivedAddr(mac string) (netip.Addr, bool) {
	m, err := net.ParseMAC(mac)
	if err != nil || len(m) != 6 || m[0] != 0x02 || m[1] != 0x63 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{m[2], m[3], m[4], m[5]}), true
}

// heldAddr returns who holds address a, or the MAC cnet would give a,
// behind the bridge.
func heldAddr(hs []model.Holder, a netip.Addr) (model.Holder, bool) {
	mac := names.MAC(a).String()
	for _, h := range hs {
		if h.Addr == a || strings.EqualFold(h.MAC, mac) {
			return h, true
		}
	}
	return model.Holder{}, false
}

// heldMAC returns who holds mac behind the bridge.
func heldMAC(hs []model.Holder, mac string) (model.Holder, bool) {
	for _, h := range hs {
		if h.MAC != "" && sameMAC(h.MAC, mac) {
			return h, true
		}
	}
	return model.Holder{}, false
}

// skipped is every address of subnet an automatic address must not be:
// those held behind the bridge, and those whose MAC (as cnet derives it)
// is held there, sorted.
func skipped(hs []model.Holder, subnet netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, h := range hs {
		if subnet.Contains(h.Addr) {
			out = append(out, h.Addr)
		}
		if a, ok := derivedAddr(h.MAC); ok && subnet.Contains(a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// merged yields the union of two ascending sequences, ascending.
func merged(a iter.Seq[netip.Addr], b []netip.Addr) iter.Seq[netip.Addr] {
	if len(b) == 0 {
		return a
	}
	return func(yield func(netip.Addr) bool) {
		i := 0
		for x := range a {
			for ; i < len(b) && b[i].Less(x); i++ {
				if !yield(b[i]) {
					return
				}
			}
			if i < len(b) && b[i] == x {
				i++
			}
			if !yield(x) {
				return
			}
		}
		for ; i < len(b); i++ {
			if !yield(b[i]) {
				return
			}
		}
	}
}
