package lab

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// bigLab is a lab file of n networks, 10.A.B.0/24 each, and, with
// containers, one container on each.
func bigLab(n int, containers bool) string {
	var b strings.Builder
	b.WriteString("lab: big\nnetworks:\n")
	for i := range n {
		fmt.Fprintf(&b, "  n%d: {subnet: 10.%d.%d.0/24}\n", i, i/256, i%256)
	}
	if containers {
		b.WriteString("containers:\n")
		for i := range n {
			fmt.Fprintf(&b, "  c%d: {networks: [n%d]}\n", i, i)
		}
	}
	return b.String()
}

// BenchmarkLabDiff times what `cnet diff -f FILE` does for a big lab on
// a machine without it: parse the file, read state, plan and rehearse.
// Its time should grow with the file, not with its square.
func BenchmarkLabDiff(b *testing.B) {
	testenv.RequirePrivileged(b)
	for _, tc := range []struct {
		n          int
		containers bool
	}{{1000, false}, {3000, false}, {1000, true}, {3000, true}} {
		name := fmt.Sprintf("networks=%d", tc.n)
		if tc.containers {
			name += "/containers"
		}
		b.Run(name, func(b *testing.B) {
			data := []byte(bigLab(tc.n, tc.containers))
			e, err := cnet.Open(cnet.Root(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				f, err := Parse("big.yaml", data)
				if err != nil {
					b.Fatal(err)
				}
				p, err := Diff(e, f, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Actions) < tc.n {
					b.Fatalf("%d actions, want at least %d", len(p.Actions), tc.n)
				}
			}
			// CPU time too: on a shared machine the wall clock also counts
			// the time other processes hold the cores.
			b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cpuTime is the user and system time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
