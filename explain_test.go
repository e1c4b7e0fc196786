package cnet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// TestExplainReadsTheLiveTable: explain reasons from the table the kernel
// has, not only from state. Without cnet's table nothing isolates the
// networks, so explain says reachable (and why), and a real connection
// confirms it; gc restores the table and the isolation.
func TestExplainReadsTheLiveTable(t *testing.T) {
	e := realEngine(t)
	for _, s := range []NetworkSpec{{Name: "red", Subnet: mustPrefix("172.21.0.0/24")}, {Name: "blue", Subnet: mustPrefix("172.22.0.0/24")}} {
		if _, err := e.CreateNetwork(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []ContainerSpec{{Name: "r", Network: "red"}, {Name: "b", Network: "blue"}} {
		if _, err := e.CreateContainer(c); err != nil {
			t.Fatal(err)
		}
	}
	serveIn(t, e.NetnsPath("b"), 80)
	x, err := e.Explain("r", "b:80")
	if err != nil || x.Verdict != Dropped || x.Cause != "isolation" || len(x.Notes) != 0 {
		t.Fatalf("with the table: %+v %v, want dropped by isolation", x, err)
	}

	testenv.Run(t, "nft", "add", "element", "inet", "cnet", "bridges", `{ "stray0" }`)
	if x, err = e.Explain("r", "b:80"); err != nil || len(x.Notes) != 1 || !strings.Contains(x.Notes[0], "differs from state (set bridges has 3 elements, want 2)") {
		t.Errorf("with a stray element: %+v %v, want a note that the table differs", x, err)
	}

	testenv.Run(t, "nft", "delete", "table", "inet", "cnet")
	x, err = e.Explain("r", "b:80")
	if err != nil || x.Verdict != Reachable || len(x.Notes) != 1 || !strings.Contains(x.Notes[0], "table inet cnet is missing") {
		t.Fatalf("without the table: %+v %v, want reachable with a note", x, err)
	}
	if out, err := inNs("r", "curl", "-s", "--max-time", "2", "http://172.22.0.2/"); err != nil || !strings.Contains(out, "remote") {
		t.Errorf("explain said reachable without the table, but: %v %s", err, out)
	}
	if _, err := e.GC(false); err != nil {
		t.Fatal(err)
	}
	if x, err = e.Explain("r", "b:80"); err != nil || x.Verdict != Dropped {
		t.Errorf("after gc: %+v %v, want dropped again", x, err)
	}
	if out, err := inNs("r", "curl", "-s", "--max-time", "1", "http://172.22.0.2/"); err == nil {
		t.Errorf("reached across networks after gc: %s", out)
	}
}

// BenchmarkExplain times one explain between two containers of a network
// that holds N containers (state read, table checked, two namespaces
// walked): its cost should not grow with N.
func BenchmarkExplain(b *testing.B) {
	for _, n := range []int{2, 200} {
		b.Run(fmt.Sprint("containers=", n), func(b *testing.B) {
			testenv.RequirePrivileged(b)
			e, err := Open(Root(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.CreateNetwork(NetworkSpec{Name: "b", Subnet: mustPrefix("10.50.0.0/16"), NoDNS: true}); err != nil {
				b.Fatal(err)
			}
			var names []string
			for i := range n {
				names = append(names, fmt.Sprint("c", i))
				if _, err := e.CreateContainer(ContainerSpec{Name: names[i], Network: "b"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				x, err := e.Explain("c0", "c1:80")
				if err != nil || x.Cause != "nothing_listening" {
					b.Fatalf("%+v %v", x, err)
				}
			}
			b.StopTimer()
			testenv.Logged(b, "e.RemoveContainers(names, RemoveOptions{})", e.RemoveContainers(names, RemoveOptions{}))
			testenv.Logged(b, `e.RemoveNetwork("b", true)`, e.RemoveNetwork("b", true))
		})
	}
}
