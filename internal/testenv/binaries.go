package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// MainBuilding is Main for packages whose tests run cnet's commands: inside
// the sandbox it first builds each Go package in pkgs (paths relative to
// the test's package, such as "../cmd/cnet") into a temporary directory,
// sets *pkgs[i].To to the binary's path, and removes the directory once
// the tests have run. Outside the sandbox nothing is built: the parent
// only re-executes the test binary.
func MainBuilding(m Runner, pkgs ...Binary) {
	if !InSandbox() {
		Main(m)
		return
	}
	dir, err := os.MkdirTemp("", "cnet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // a test may run them as nobody
	for _, b := range pkgs {
		*b.To = filepath.Join(dir, filepath.Base(filepath.Clean(b.Pkg)))
		if b.Pkg == "." {
			*b.To = filepath.Join(dir, "cnet")
		}
		if out, err := exec.Command("go", "build", "-o", *b.To, b.Pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.Pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	Main(removing{m, dir})
}

// Binary is a Go package to build and where to put the path of its binary.
type Binary struct {
	Pkg string
	To  *string
}

// removing deletes dir once the tests have run.
type removing struct {
	m   Runner
	dir string
}

func (r removing) Run() int {
	defer os.RemoveAll(r.dir)
	return r.m.Run()
}
