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
	defer os.RemoveAll(dir)
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
	e.RemoveContainers(names, RemoveOptions{})
	e.RemoveNetwork("b", true)
}
