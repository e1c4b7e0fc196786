package kernel

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// BenchmarkBridgeHolders is what planning a create asks the kernel about
// the network's bridge when every port is a cnet endpoint: the bridge's
// index and one bridge-port dump, at 3 and at 1000 ports.
func BenchmarkBridgeHolders(b *testing.B) {
	testenv.RequirePrivileged(b)
	for _, n := range []int{3, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var batch strings.Builder
			fmt.Fprintf(&batch, "link add brbench type bridge\n")
			for i := range n {
				fmt.Fprintf(&batch, "link add vb%d master brbench type veth peer name pb%d\n", i, i)
			}
			if out, err := testenv.TryIn(batch.String(), "ip", "-batch", "-"); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			b.Cleanup(func() {
				var del strings.Builder
				for i := range n {
					fmt.Fprintf(&del, "link del vb%d\n", i) // its peer goes with it
				}
				del.WriteString("link del brbench\n")
				if out, err := testenv.TryIn(del.String(), "ip", "-force", "-batch", "-"); err != nil {
					b.Errorf("%v\n%s", err, out)
				}
			})
			k := New("/run/netns", b.TempDir(), "# cnet bench")
			defer k.Close()
			ours := func(port, alias string) bool { return strings.HasPrefix(port, "vb") }
			if hs, err := k.BridgeHolders("brbench", ours); err != nil || len(hs) != 0 {
				b.Fatalf("got %v, %v; want nothing held", hs, err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := k.BridgeHolders("brbench", ours); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
