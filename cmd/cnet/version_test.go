package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildInfo reads what `go version -m` says a binary was built from: the
// main module's version and the vcs.* settings.
func buildInfo(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m %s: %v\n%s", bin, err, out)
	}
	info := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			info["version"] = f[2]
		case len(f) == 2 && f[0] == "build":
			if k, v, ok := strings.Cut(f[1], "="); ok {
				info[k] = v
			}
		}
	}
	return info
}

// TestVersion: --version and `version --json` report the version set at
// build time, else the module version, and the commit Go recorded.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, ldflags, want string
	}{
		{"stamped", "-X main.version=v9.9.9-test", "v9.9.9-test"},
		{"module", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(dir, tc.name)
			build := exec.Command("go", "build", "-buildvcs=auto", "-ldflags", tc.ldflags, "-o", bin, ".")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			info := buildInfo(t, bin)
			want := tc.want
			if want == "" {
				want = info["version"]
				if want == "(devel)" || want == "" {
					want = "devel"
				}
			}
			out, err := exec.Command(bin, "--version").CombinedOutput()
			line := strings.TrimSpace(string(out))
			if err != nil || !strings.HasPrefix(line, "cnet "+want+" (") || !strings.Contains(line, "go1.") {
				t.Errorf("cnet --version: %v %q, want cnet %s (...)", err, line, want)
			}
			if rev := info["vcs.revision"]; rev != "" && !strings.Contains(line, "commit "+rev[:12]) {
				t.Errorf("cnet --version: %q lacks commit %s", line, rev[:12])
			}
			if out2, err := exec.Command(bin, "version").Output(); err != nil || strings.TrimSpace(string(out2)) != line {
				t.Errorf("cnet version: %v %q, want %q as --version", err, out2, line)
			}
			out, err = exec.Command(bin, "version", "--json").Output()
			var v versionInfo
			if err != nil || json.Unmarshal(out, &v) != nil {
				t.Fatalf("cnet version --json: %v %q", err, out)
			}
			if v.Version != want || v.Revision != info["vcs.revision"] || v.Modified != (info["vcs.modified"] == "true") || !strings.HasPrefix(v.Go, "go1.") {
				t.Errorf("version --json = %+v, want version %s and the build's vcs settings %v", v, want, info)
			}
		})
	}
}
