package plan

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/cnetdev/cnet/internal/model"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// TestMerged: the union of the addresses state uses and those live on
// the bridge comes out ascending, each once, however they interleave.
func TestMerged(t *testing.T) {
	tests := []struct {
		name        string
		state, live []netip.Addr
		want        []netip.Addr
	}{
		{"live only", nil, addrs("10.0.0.3"), addrs("10.0.0.3")},
		{"state only", addrs("10.0.0.2", "10.0.0.4"), nil, addrs("10.0.0.2", "10.0.0.4")},
		{"interleaved", addrs("10.0.0.2", "10.0.0.5"), addrs("10.0.0.3", "10.0.0.4", "10.0.0.9"), addrs("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.9")},
		{"both hold one", addrs("10.0.0.2", "10.0.0.3"), addrs("10.0.0.3"), addrs("10.0.0.2", "10.0.0.3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Collect(merged(slices.Values(tt.state), tt.live))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSkipped: what an automatic address must not be is every address
// held behind the bridge and every address whose derived MAC is, inside
// the subnet only.
func TestSkipped(t *testing.T) {
	hs := []model.Holder{
		{Addr: netip.MustParseAddr("10.0.0.7"), MAC: "52:54:00:00:00:01"},
		{MAC: "02:63:0a:00:00:05"},                                        // derived from 10.0.0.5
		{Addr: netip.MustParseAddr("10.0.0.7"), MAC: "02:63:0a:00:00:07"}, // the same, twice
		{Addr: netip.MustParseAddr("192.168.1.9")},                        // another subnet
		{MAC: "02:63:c0:a8:01:02"},                                        // derived from another subnet
	}
	got := skipped(hs, netip.MustParsePrefix("10.0.0.0/24"))
	if want := addrs("10.0.0.5", "10.0.0.7"); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if h, ok := heldAddr(hs, netip.MustParseAddr("10.0.0.5")); !ok || h.MAC != "02:63:0a:00:00:05" {
		t.Errorf("heldAddr(10.0.0.5) = %+v, %v; want the holder of its derived MAC", h, ok)
	}
	if _, ok := heldMAC(hs, "52:54:00:00:00:01"); !ok {
		t.Error("heldMAC missed 52:54:00:00:00:01")
	}
	if _, ok := heldMAC(hs, "52:54:00:00:00:02"); ok {
		t.Error("heldMAC found 52:54:00:00:00:02, which nobody holds")
	}
}
