package cnet

import (
	"fmt"
	"os"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// BenchmarkCreateRemove creates and removes a container through the
// library, with state durably committed on disk, on a network that
// already holds 100 containers.
func BenchmarkCreateRemove(b *testing.B) {
	testenv.RequirePrivileged(b)
	dir, err := os.MkdirTemp("/var/tmp", "cnet-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { testenv.Logged(b, "os.RemoveAll(dir)", os.RemoveAll(dir)) }()
	e, _ := Open(Root(dir))
	if _, err := e.CreateNetwork(NetworkSpec{Name: "b", Subnet: mustPrefix("10.50.0.0/16")}); err != nil {
		b.Fatal(err)
	}
	var names []string
	for i := 0; i < 100; i++ {
		names = append(names, fmt.Sprint("fill", i))
		if _, err := e.CreateContainer(ContainerSpec{Name: names[i], Network: "b"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.CreateContainer(ContainerSpec{Name: "x", Network: "b"}); err != nil {
			b.Fatal(err)
		}
		if err := e.RemoveContainers([]string{"x"}, RemoveOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	testenv.Logged(b, "e.RemoveContainers(names, RemoveOptions{})", e.RemoveContainers(names, RemoveOptions{}))
	testenv.Logged(b, `e.RemoveNetwork("b", true)`, e.RemoveNetwork("b", true))
}

// BenchmarkPublishAt publishes one mapping (and, untimed, unpublishes
// it) on a container that already has N-1 published (filled in
// publishes of 100), with state durably committed on disk: the cost of
// the 1st and of the 10,000th mapping through the library. The two run
// one after the other; scripts/publish-growth.sh compares them side by
// side through the whole CLI.
func BenchmarkPublishAt(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			testenv.RequirePrivileged(b)
			dir, err := os.MkdirTemp("/var/tmp", "cnet-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer func() { testenv.Logged(b, "os.RemoveAll(dir)", os.RemoveAll(dir)) }()
			opts := Root(dir)
			opts.DNSCommand = []string{cnetBin, "__dns"}
			e, err := Open(opts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.CreateNetwork(NetworkSpec{Name: "b", Subnet: mustPrefix("10.50.0.0/24")}); err != nil {
				b.Fatal(err)
			}
			defer func() { testenv.Logged(b, `e.RemoveNetwork("b", true)`, e.RemoveNetwork("b", true)) }()
			if _, err := e.CreateContainer(ContainerSpec{Name: "srv", Network: "b"}); err != nil {
				b.Fatal(err)
			}
			defer func() {
				testenv.Logged(b, `e.RemoveContainers([]string{"srv"}, RemoveOptions{})`, e.RemoveContainers([]string{"srv"}, RemoveOptions{}))
			}()
			for have := 0; have < n-1; {
				k := min(100, n-1-have)
				spec := fmt.Sprintf("%d-%d:%d-%d", 20000+have, 20000+have+k-1, 20000+have, 20000+have+k-1)
				if _, err := e.Publish("srv", mustPorts(spec)); err != nil {
					b.Fatal(err)
				}
				have += k
			}
			probe := mustPorts("30000:8000")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Publish("srv", probe); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := e.Unpublish("srv", probe); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
