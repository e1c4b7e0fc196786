package cnet

import (
	"errors"
	"testing"
)

func TestParseRate(t *testing.T) {
	good := map[string]uint64{
		"10mbit": 10_000_000, "1gbit": 1_000_000_000, "500kbit": 500_000, "8000": 8000,
		"1mibit": 1 << 20, "1mbps": 8_000_000, "2.5mbit": 2_500_000, " 10MBit ": 10_000_000,
	}
	for in, want := range good {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back, err := ParseRate(FormatRate(got)); err != nil || back != got {
			t.Errorf("ParseRate(FormatRate(%d)=%q) = %d, %v", got, FormatRate(got), back, err)
		}
	}
	for _, in := range []string{"", "fast", "10 parsecs", "-1mbit", "0", "1bit", "2tbit", "nanmbit", "infgbit", "mbit"} {
		if _, err := ParseRate(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRate(%q) = %v; want ErrInvalid", in, err)
		}
	}
}
