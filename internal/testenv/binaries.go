package testenv

import (
	"errors"
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
// only re-executes the test binary. A test running in a sandbox of its
// own (Isolate) uses the binaries its parent built.
func MainBuilding(m Runner, pkgs ...Binary) {
	if !InSandbox() {
		Main(m)
		return
	}
	if dir := os.Getenv(envBinDir); dir != "" {
		for _, b := range pkgs {
			*b.To = filepath.Join(dir, b.name())
		}
		Main(m)
		return
	}
	dir, err := os.MkdirTemp("", "cnet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A test may run them as nobody; child tests find them through the
	// environment.
	if err := errors.Join(os.Chmod(dir, 0o755), os.Setenv(envBinDir, dir)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range pkgs {
		*b.To = filepath.Join(dir, b.name())
		if out, err := exec.Command("go", "build", "-o", *b.To, b.Pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.Pkg, err, out)
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			os.Exit(1)
		}
	}
	Main(removing{m, dir})
}

// envBinDir passes the directory of the built binaries to the tests that
// Isolate runs, which inherit the environment.
const envBinDir = "CNET_TEST_BINDIR"

// Binary is a Go package to build and where to put the path of its binary.
type Binary struct {
	Pkg string
	To  *string
}

// name is the binary's file name: the package directory's, cnet for ".".
func (b Binary) name() string {
	if b.Pkg == "." {
		return "cnet"
	}
	return filepath.Base(filepath.Clean(b.Pkg))
}

// removing deletes dir once the tests have run.
type removing struct {
	m   Runner
	dir string
}

func (r removing) Run() int {
	code := r.m.Run()
	if err := os.RemoveAll(r.dir); err != nil {
		fmt.Fprintf(os.Stderr, "remove the test binaries: %v\n", err)
	}
	return code
}
