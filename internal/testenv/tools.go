package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Packages maps each program the tests run to the Debian package that
// installs it. Every package named here is in scripts/deps.txt, which the
// README's install line and .ci/run both install (TestDepsListed).
var Packages = map[string]string{
	"ip":           "iproute2",
	"bridge":       "iproute2",
	"tc":           "iproute2",
	"ss":           "iproute2",
	"nft":          "nftables",
	"ping":         "iputils-ping",
	"curl":         "curl",
	"jq":           "jq",
	"sysctl":       "procps",
	"unshare":      "util-linux",
	"setsid":       "util-linux",
	"conntrack":    "conntrack",
	"iptables":     "iptables",
	"dot":          "graphviz",
	"iperf3":       "iperf3",
	"wrk":          "wrk",
	"dnsperf":      "dnsperf",
	"dnsmasq":      "dnsmasq-base",
	"netavark":     "netavark",
	"aardvark-dns": "aardvark-dns",
	"gcc":          "gcc",
	"git":          "git",
	"make":         "make",
}

// also lists where Debian puts programs that are not on PATH.
var also = map[string][]string{
	"netavark":     {"/usr/lib/podman/netavark"},
	"aardvark-dns": {"/usr/lib/podman/aardvark-dns"},
	"dnsmasq":      {"/usr/sbin/dnsmasq"},
}

// installHint is the command that installs the package holding tool.
func installHint(tool string) string {
	pkg, ok := Packages[tool]
	if !ok {
		return "install it (and add its Debian package to scripts/deps.txt)"
	}
	return "apt-get install -y " + pkg + " (scripts/deps.txt lists every package the tests need)"
}

// LookTool returns the path of a program the tests run, looking on PATH
// and where Debian installs it off PATH.
func LookTool(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, p := range also[tool] {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &MissingToolError{Tool: tool}
}

// MissingToolError says which program is missing and how to install it.
type MissingToolError struct{ Tool string }

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("%s not found: %s", e.Tool, installHint(e.Tool))
}

func (e *MissingToolError) Unwrap() error { return exec.ErrNotFound }

// RequireTool fails t, naming the package to install, unless every tool
// is installed. Tests fail rather than skip: CI installs scripts/deps.txt,
// so a missing tool there is a missing line in that file, and a check
// skipped for it would pass unseen.
func RequireTool(t testing.TB, tools ...string) {
	t.Helper()
	var missing []error
	for _, tool := range tools {
		if _, err := LookTool(tool); err != nil {
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		t.Fatal(errors.Join(missing...))
	}
}

// explainMissing adds the install hint to the error of running a program
// that is not installed.
func explainMissing(name string, err error) error {
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%w: %s", err, installHint(name))
	}
	return err
}
