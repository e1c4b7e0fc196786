package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

var epAliasRe = regexp.MustCompile(`^\d+: (veth[0-9a-f]+)[@:].* alias cnet/[^/]+/ep/([^/]+)/`)

// hostVeths maps each container to its host veth, read with ip.
func hostVeths(t *testing.T) map[string]string {
	t.Helper()
	out := testenv.Run(t, "ip", "-o", "link", "show")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if g := epAliasRe.FindStringSubmatch(l); g != nil {
			m[g[2]] = g[1]
		}
	}
	return m
}

// TestRemovedVethsGone: when `cnet rm` (of one container, and of many at
// once) and `cnet destroy` return, no host veth of a removed container is
// left: the kernel frees them after the namespace goes, and the command
// waits for that. Many rounds, since the teardown takes only some 20-30 ms.
func TestRemovedVethsGone(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "g1", "--subnet", "172.28.0.0/24")
	check := func(what string, removed []string, veths map[string]string) {
		t.Helper()
		for _, name := range removed {
			v := veths[name]
			if v == "" {
				t.Fatalf("%s: no host veth found for %s", what, name)
			}
			if out, err := testenv.Try("ip", "link", "show", v); err == nil {
				t.Fatalf("%s returned while %s's host veth is still there:\n%s", what, name, out)
			}
		}
	}
	for round := range 10 {
		c.ok("create", "one", "--network", "g1")
		veths := hostVeths(t)
		c.ok("rm", "one")
		check(fmt.Sprintf("round %d: cnet rm one", round), []string{"one"}, veths)
	}
	for round := range 3 {
		var all []string
		for i := range 8 {
			name := fmt.Sprintf("m%d", i)
			c.ok("create", name, "--network", "g1")
			all = append(all, name)
		}
		veths := hostVeths(t)
		c.ok(append([]string{"rm"}, all...)...)
		check(fmt.Sprintf("round %d: cnet rm of %d", round, len(all)), all, veths)
	}
	lab := t.TempDir() + "/gone.yaml"
	testenv.Run(t, "sh", "-c", "printf 'lab: gone\\nnetworks:\\n  gl: {subnet: 172.29.0.0/24}\\ncontainers:\\n  la: {networks: [gl]}\\n  lb: {networks: [gl]}\\n' > "+lab)
	for round := range 3 {
		c.ok("apply", "-f", lab)
		veths := hostVeths(t)
		c.ok("destroy", "-f", lab)
		var mine []string
		for name := range veths {
			if strings.HasPrefix(name, "l") {
				mine = append(mine, name)
			}
		}
		check(fmt.Sprintf("round %d: cnet destroy", round), mine, veths)
	}
}
