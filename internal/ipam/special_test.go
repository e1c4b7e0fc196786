package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/errs"
)

// TestSpecialPurposeSubnets: ranges no host may use are refused, each
// named with the reason; ranges set aside for documentation, CGNAT and
// benchmarking are accepted with a warning that names them; private and
// public ranges get neither.
func TestSpecialPurposeSubnets(t *testing.T) {
	tests := []struct {
		subnet  string
		refused []string // what the refusal says, nil: accepted
		warns   []string // what the warning says, nil: none
	}{
		{"169.254.0.0/16", []string{"169.254.0.0/16", "link-local"}, nil},
		{"169.254.10.0/24", []string{"overlaps 169.254.0.0/16", "link-local"}, nil},
		{"169.0.0.0/8", []string{"overlaps 169.254.0.0/16"}, nil},
		{"0.0.0.0/8", []string{`"this network"`}, nil},
		{"127.0.0.0/8", []string{"loopback"}, nil},
		{"224.0.0.0/8", []string{"multicast"}, nil},
		{"239.255.0.0/16", []string{"multicast"}, nil},
		{"240.0.0.0/8", []string{"reserved"}, nil},
		{"255.255.255.252/30", []string{"reserved, with the broadcast address"}, nil},
		{"100.64.0.0/10", nil, []string{"100.64.0.0/10", "carrier-grade NAT"}},
		{"100.127.3.0/24", nil, []string{"overlaps 100.64.0.0/10"}},
		{"192.0.2.0/24", nil, []string{"TEST-NET-1", "documentation"}},
		{"198.51.100.0/24", nil, []string{"TEST-NET-2", "documentation"}},
		{"203.0.113.128/25", nil, []string{"TEST-NET-3", "documentation"}},
		{"192.88.99.0/24", nil, []string{"6to4"}},
		{"198.18.0.0/15", nil, []string{"benchmarking"}},
		{"198.19.7.0/24", nil, []string{"198.18.0.0/15", "benchmarking"}},
		{"10.0.0.0/8", nil, nil},
		{"172.18.0.0/24", nil, nil},
		{"192.168.5.0/24", nil, nil},
		{"100.128.0.0/16", nil, nil}, // just past CGNAT
		{"8.8.8.0/24", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.subnet, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.subnet)
			err := CheckSubnet(p)
			if tt.refused != nil {
				if !errors.Is(err, errs.ErrInvalid) {
					t.Fatalf("got %v, want a refusal", err)
				}
				for _, s := range append(tt.refused, tt.subnet) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("refusal %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want it accepted", err)
			}
			w := SubnetWarning(p)
			if tt.warns == nil {
				if w != "" {
					t.Errorf("got warning %q, want none", w)
				}
				return
			}
			for _, s := range append(tt.warns, tt.subnet, "172.18.0.0/24") {
				if !strings.Contains(w, s) {
					t.Errorf("warning %q does not say %q", w, s)
				}
			}
		})
	}
}
