package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestSpecialSubnetWarnings: a network on a documentation, CGNAT or
// benchmarking range is made, with a warning on stderr (and in network
// create's --json), from the command line, a lab file and a CNI ADD,
// where stdout stays the bare result.
func TestSpecialSubnetWarnings(t *testing.T) {
	c := newCLI(t)
	r := c.run("network", "create", "docs", "--subnet", "198.51.100.0/24", "--json")
	if r.code != 0 {
		t.Fatalf("network create on 198.51.100.0/24: exit %d\n%s", r.code, r.stderr)
	}
	for _, s := range []string{"warning", "198.51.100.0/24", "TEST-NET-2", "documentation"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q does not say %q", r.stderr, s)
		}
	}
	var n cnet.Network
	if err := json.Unmarshal([]byte(r.stdout), &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Warnings) != 1 || !strings.Contains(n.Warnings[0], "TEST-NET-2") {
		t.Errorf("--json warnings = %q, want the TEST-NET-2 warning", n.Warnings)
	}
	// A private range: no warning, and no warnings field.
	r = c.run("network", "create", "quiet", "--subnet", "172.31.9.0/24", "--json")
	if r.code != 0 || strings.Contains(r.stderr, "warning") || strings.Contains(r.stdout, "warnings") {
		t.Errorf("network create on 172.31.9.0/24: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}

	lab := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(lab, []byte("lab: special\nnetworks:\n  cg: {subnet: 100.64.7.0/24}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = c.run("apply", "-f", lab)
	if r.code != 0 || !strings.Contains(r.stderr, "carrier-grade NAT") {
		t.Errorf("apply of a lab on 100.64.7.0/24: exit %d, stderr %q; want success with the CGNAT warning", r.code, r.stderr)
	}
	c.ok("destroy", "-f", lab)

	testenv.Run(t, "ip", "netns", "add", "bench1")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "bench1") })
	conf := `{"cniVersion":"1.1.0","name":"bench","type":"cnet","subnet":"198.18.4.0/24"}`
	env := []string{"CNI_COMMAND=ADD", "CNI_PATH=/usr/lib/cni", "CNET_ROOT=" + c.root,
		"CNI_CONTAINERID=bench1", "CNI_NETNS=/run/netns/bench1", "CNI_IFNAME=eth0"}
	res := runProc(t, bin.cnet, nil, env, conf)
	if res.code != 0 {
		t.Fatalf("CNI ADD on 198.18.4.0/24: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || out["ips"] == nil {
		t.Errorf("CNI ADD printed %q, not a bare result: %v", res.stdout, err)
	}
	if !strings.Contains(res.stderr, "benchmarking") {
		t.Errorf("CNI ADD's stderr %q has no benchmarking warning", res.stderr)
	}
	del := append([]string{}, env...)
	del[0] = "CNI_COMMAND=DEL"
	if res := runProc(t, bin.cnet, nil, del, conf); res.code != 0 {
		t.Errorf("CNI DEL: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
