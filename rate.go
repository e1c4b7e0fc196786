package cnet

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
)

// RateSyntax describes what ParseRate accepts.
const RateSyntax = "a rate as tc writes it: NUMBER[UNIT], UNIT one of bit kbit mbit gbit tbit (bits/s, powers of 1000), kibit mibit gibit (powers of 1024), bps kbps mbps gbps (bytes/s); e.g. 10mbit"

var rateUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest first, so "kbit" is not read as "bit" with a "k" left over.
	{"kibit", 1 << 10}, {"mibit", 1 << 20}, {"gibit", 1 << 30}, {"tibit", 1 << 40},
	{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12},
	{"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {"tbps", 8e12},
	{"bit", 1}, {"bps", 8},
}

// MinRate and MaxRate bound egress limits: below 8 kbit/s a token bucket
// cannot pass a full-size packet in reasonable time; above 1 Tbit/s there
// is nothing to limit.
const (
	MinRate = 8_000
	MaxRate = 1_000_000_000_000
)

// ParseRate parses a bandwidth as `tc` writes it ("10mbit", "1gbit",
// "500kbps") into bits per second. A bare number is bits per second.
func ParseRate(s string) (uint64, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	num, mult := in, 1.0
	for _, u := range rateUnits {
		if strings.HasSuffix(in, u.suffix) {
			num, mult = strings.TrimSuffix(in, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errs.Invalid("rate", s, "want %s", RateSyntax)
	}
	bits := v * mult
	if bits < MinRate || bits > MaxRate {
		return 0, errs.Invalid("rate", s, "want %s to %s", FormatRate(MinRate), FormatRate(MaxRate))
	}
	return uint64(bits), nil
}

// FormatRate renders bits/s the way ParseRate reads them back.
func FormatRate(bits uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bits >= u.mult && bits%u.mult == 0 {
			return fmt.Sprintf("%d%s", bits/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dbit", bits)
}
