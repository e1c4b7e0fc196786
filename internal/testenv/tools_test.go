package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// depsFile reads scripts/deps.txt: one package a line, # comments.
func depsFile(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "deps.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.Fields(line) {
			pkgs[f] = true
		}
	}
	return pkgs
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestDepsListed: every package a test's program comes from is in
// scripts/deps.txt, and the README, make deps and CI install that file.
func TestDepsListed(t *testing.T) {
	pkgs := depsFile(t)
	for tool, pkg := range Packages {
		if !pkgs[pkg] {
			t.Errorf("tests run %s, from package %s, which scripts/deps.txt lacks", tool, pkg)
		}
	}
	const install = "$(sed 's/#.*//' scripts/deps.txt)"
	for _, f := range []string{"README.md", ".ci/run", "Makefile"} {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		want := install
		if f == "Makefile" {
			want = strings.ReplaceAll(install, "$(", "$$(")
		}
		if !strings.Contains(string(data), "apt-get install -y "+want) && !strings.Contains(string(data), "apt-get install -y -qq "+want) {
			t.Errorf("%s does not install scripts/deps.txt with apt-get install -y %s", f, want)
		}
	}
}

// fatalRecorder is a testing.TB whose Fatal only records the message.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok {
			f.msg += err.Error()
		}
	}
	runtime.Goexit()
}

func requireToolMessage(t *testing.T, tools ...string) string {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		RequireTool(rec, tools...)
	}()
	<-done
	return rec.msg
}

// TestRequireToolNamesPackage: a missing program fails the test with the
// apt-get line for its package; present ones pass.
func TestRequireToolNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing on PATH
	msg := requireToolMessage(t, "conntrack", "iperf3")
	for _, want := range []string{"conntrack not found: apt-get install -y conntrack", "iperf3 not found: apt-get install -y iperf3", "scripts/deps.txt"} {
		if !strings.Contains(msg, want) {
			t.Errorf("RequireTool: %q, want it to say %q", msg, want)
		}
	}
	if msg := requireToolMessage(t, "no-such-tool"); !strings.Contains(msg, "no-such-tool not found") || !strings.Contains(msg, "scripts/deps.txt") {
		t.Errorf("RequireTool of an unlisted program: %q", msg)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if msg := requireToolMessage(t, "nft"); msg != "" {
		t.Errorf("RequireTool of an installed program failed: %q", msg)
	}
	_, err := Try("ip", "link")
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "apt-get install -y iproute2") {
		t.Errorf("Try of a missing program: %v, want the package to install", err)
	}
}
