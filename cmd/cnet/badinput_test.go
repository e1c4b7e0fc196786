package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cnetdev/cnet/internal/testenv"
)

// badInput is one invalid value given to the command line: the command
// must exit with code, say every one of says (the value, and what is
// accepted), and change nothing.
type badInput struct {
	flag string // "cnet network create --subnet", or "cnet create NAME" for an argument
	args []string
	code int
	says []string
}

// badInputs walks every flag and argument of every command with invalid
// values. TestBadInputCatalogue fails when a flag that takes a value has
// no case here; boolean flags get one generated case each.
var badInputs = []badInput{
	// --root
	{"cnet --root", []string{"--root", "/proc/version", "ls"}, exitFailure, []string{"/proc/version"}},
	{"cnet --root", []string{"--root", "", "ls"}, exitInvalid, []string{`""`, "--root"}},

	// network create NAME and its flags
	{"cnet network create NAME", []string{"network", "create", "a/b"}, exitInvalid, []string{`"a/b"`, "want 1-63 characters"}},
	{"cnet network create NAME", []string{"network", "create", ".hidden"}, exitInvalid, []string{`".hidden"`, "starting with a letter or digit"}},
	{"cnet network create NAME", []string{"network", "create", strings.Repeat("n", 64)}, exitInvalid, []string{strings.Repeat("n", 64), "1-63"}},
	{"cnet network create NAME", []string{"network", "create", "base"}, exitExists, []string{`"base"`}},
	{"cnet network create NAME", []string{"network", "create"}, exitInvalid, []string{"accepts 1 arg"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "bogus"}, exitInvalid, []string{`"bogus"`, "IPv4 CIDR"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "10.0.0.0/31"}, exitInvalid, []string{`"10.0.0.0/31"`, "/8 to /30"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "10.0.0.0/7"}, exitInvalid, []string{`"10.0.0.0/7"`, "/8 to /30"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "10.0.0.1/24"}, exitInvalid, []string{`"10.0.0.1/24"`, "10.0.0.0/24"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "fd00::/64"}, exitInvalid, []string{`"fd00::/64"`, "IPv4"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "172.29.5.0/24"}, exitConflict, []string{"172.29.5.0/24", "network base"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "127.0.0.0/8"}, exitInvalid, []string{`"127.0.0.0/8"`, "loopback", "want a private range"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "224.1.0.0/16"}, exitInvalid, []string{`"224.1.0.0/16"`, "multicast"}},
	{"cnet network create --gateway", []string{"network", "create", "n", "--subnet", "10.0.0.0/24", "--gateway", "x"}, exitInvalid, []string{`"x"`, "IPv4 address"}},
	{"cnet network create --gateway", []string{"network", "create", "n", "--subnet", "10.0.0.0/24", "--gateway", "10.0.1.1"}, exitInvalid, []string{`"10.0.1.1"`, "inside 10.0.0.0/24"}},
	{"cnet network create --gateway", []string{"network", "create", "n", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.0"}, exitInvalid, []string{`"10.0.0.0"`, "10.0.0.1 to 10.0.0.254"}},
	{"cnet network create --gateway", []string{"network", "create", "n", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.255"}, exitInvalid, []string{`"10.0.0.255"`, "10.0.0.1 to 10.0.0.254"}},
	{"cnet network create --gateway", []string{"network", "create", "n", "--gateway", "10.0.0.1"}, exitInvalid, []string{"10.0.0.1", "needs --subnet"}},
	{"cnet network create --bridge", []string{"network", "create", "n", "--bridge", "this-name-is-too-long"}, exitInvalid, []string{`"this-name-is-too-long"`, "at most 15 bytes"}},
	{"cnet network create --bridge", []string{"network", "create", "n", "--bridge", "a/b"}, exitInvalid, []string{`"a/b"`, "no '/'"}},
	{"cnet network create --bridge", []string{"network", "create", "n", "--bridge", "a b"}, exitInvalid, []string{`"a b"`, "whitespace"}},
	{"cnet network create --bridge", []string{"network", "create", "n", "--bridge", ".."}, exitInvalid, []string{`".."`, "interface name"}},
	{"cnet network create --bridge", []string{"network", "create", "n", "--bridge", "lo"}, exitConflict, []string{"bridge name lo", "choose another --bridge"}},
	{"cnet network create --bridge", []string{"network", "create", "n", "--bridge", "cnet-base"}, exitConflict, []string{"cnet-base", "network base"}},
	{"cnet network create --mtu", []string{"network", "create", "n", "--mtu", "10"}, exitInvalid, []string{`"10"`, "68 to 65535"}},
	{"cnet network create --mtu", []string{"network", "create", "n", "--mtu", "65536"}, exitInvalid, []string{`"65536"`, "68 to 65535"}},
	{"cnet network create --mtu", []string{"network", "create", "n", "--mtu", "-1"}, exitInvalid, []string{`"-1"`, "68 to 65535"}},
	{"cnet network create --mtu", []string{"network", "create", "n", "--mtu", "big"}, exitInvalid, []string{`"big"`, "--mtu"}},

	// network rm, inspect
	{"cnet network rm NAME", []string{"network", "rm", "ghost"}, exitNotFound, []string{`"ghost"`, "cnet network ls"}},
	{"cnet network rm NAME", []string{"network", "rm", "a/b"}, exitNotFound, []string{`"a/b"`}},
	{"cnet network rm NAME", []string{"network", "rm", "base"}, exitBusy, []string{"base", "--force"}},
	{"cnet network inspect NAME", []string{"network", "inspect", "ghost"}, exitNotFound, []string{`"ghost"`}},

	// create NAME and its flags (run shares them)
	{"cnet create NAME", []string{"create", "a/b"}, exitInvalid, []string{`"a/b"`, "want 1-63 characters"}},
	{"cnet create NAME", []string{"create", "-x"}, exitInvalid, []string{"-x"}},
	{"cnet create NAME", []string{"create", "c1", "--network", "base"}, exitExists, []string{`"c1"`}},
	{"cnet create --network", []string{"create", "x", "--network", "ghost"}, exitNotFound, []string{`"ghost"`, "cnet network create"}},
	{"cnet create --network", []string{"create", "x", "--network", "a/b"}, exitInvalid, []string{`"a/b"`, "want 1-63 characters"}},
	{"cnet create --ip", []string{"create", "x", "--network", "base", "--ip", "999.1.1.1"}, exitInvalid, []string{`"999.1.1.1"`, "IPv4 address"}},
	{"cnet create --ip", []string{"create", "x", "--network", "base", "--ip", "::1"}, exitInvalid, []string{`"::1"`, "IPv4 address"}},
	{"cnet create --ip", []string{"create", "x", "--network", "base", "--ip", "10.1.1.1"}, exitInvalid, []string{`"10.1.1.1"`, "inside 172.29.0.0/16"}},
	{"cnet create --ip", []string{"create", "x", "--network", "base", "--ip", "172.29.0.1"}, exitInvalid, []string{`"172.29.0.1"`, "gateway"}},
	{"cnet create --ip", []string{"create", "x", "--network", "base", "--ip", "172.29.255.255"}, exitInvalid, []string{`"172.29.255.255"`, "broadcast"}},
	{"cnet create --ip", []string{"create", "x", "--network", "base", "--ip", "172.29.0.2"}, exitConflict, []string{"172.29.0.2", "container c1"}},
	{"cnet create --dns", []string{"create", "x", "--network", "base", "--dns", "nameserver"}, exitInvalid, []string{`"nameserver"`, "IPv4 address"}},
	{"cnet create --dns", []string{"create", "x", "--network", "base", "--dns", "1.1.1.1", "--dns", "1.1.1.1.1"}, exitInvalid, []string{`"1.1.1.1.1"`, "IPv4 address"}},
	{"cnet create --alias", []string{"create", "x", "--network", "base", "--alias", "a/b"}, exitInvalid, []string{`"a/b"`, "want 1-63 characters"}},
	{"cnet create --alias", []string{"create", "x", "--network", "base", "--alias", ""}, exitInvalid, []string{`""`, "want 1-63 characters"}},
	{"cnet create --publish", []string{"create", "x", "--network", "base", "-p", "80"}, exitInvalid, []string{`"80"`, "HOSTPORT"}},
	{"cnet create --publish", []string{"create", "x", "--network", "base", "-p", "70000:80"}, exitInvalid, []string{"70000", "1-65535"}},
	{"cnet create --publish", []string{"create", "x", "--network", "base", "-p", "8080:80"}, exitConflict, []string{"8080", "container c1"}},
	{"cnet create --publish", []string{"create", "x", "--network", "base", "-p", "10.9.9.9:81:80"}, exitInvalid, []string{"10.9.9.9", "assigned to this host"}},
	{"cnet create --publish", []string{"create", "x", "--network", "base", "-p", "81:80/sctp"}, exitInvalid, []string{"sctp", "tcp nor udp"}},
	{"cnet run --name", []string{"run", "--name", "a/b", "--", "true"}, exitInvalid, []string{`"a/b"`, "want 1-63 characters"}},
	{"cnet run --network", []string{"run", "--network", "ghost", "--", "true"}, exitNotFound, []string{`"ghost"`}},
	{"cnet run --ip", []string{"run", "--network", "base", "--ip", "1.2.3", "--", "true"}, exitInvalid, []string{`"1.2.3"`, "IPv4 address"}},
	{"cnet run --dns", []string{"run", "--network", "base", "--dns", "x", "--", "true"}, exitInvalid, []string{`"x"`, "IPv4 address"}},
	{"cnet run --alias", []string{"run", "--network", "base", "--alias", "-bad", "--", "true"}, exitInvalid, []string{`"-bad"`}},
	{"cnet run --publish", []string{"run", "--network", "base", "-p", "1:2:3:4", "--", "true"}, exitInvalid, []string{`"1:2:3:4"`}},
	{"cnet run COMMAND", []string{"run", "--network", "base"}, exitInvalid, []string{"missing the command", "-- CMD"}},

	// connect, disconnect
	{"cnet connect NETWORK CONTAINER", []string{"connect", "ghost", "c1"}, exitNotFound, []string{`"ghost"`}},
	{"cnet connect NETWORK CONTAINER", []string{"connect", "other", "ghost"}, exitNotFound, []string{`"ghost"`}},
	{"cnet connect NETWORK CONTAINER", []string{"connect", "base", "c1"}, exitExists, []string{"c1", "base"}},
	{"cnet connect --ip", []string{"connect", "other", "c1", "--ip", "172.30.0.300"}, exitInvalid, []string{`"172.30.0.300"`, "IPv4 address"}},
	{"cnet connect --ip", []string{"connect", "other", "c1", "--ip", "172.29.0.9"}, exitInvalid, []string{`"172.29.0.9"`, "inside 172.30.0.0/24"}},
	{"cnet connect --alias", []string{"connect", "other", "c1", "--alias", "a b"}, exitInvalid, []string{`"a b"`}},
	{"cnet disconnect NETWORK CONTAINER", []string{"disconnect", "other", "c1"}, exitNotFound, []string{"c1", "other"}},
	{"cnet disconnect NETWORK CONTAINER", []string{"disconnect", "base", "ghost"}, exitNotFound, []string{`"ghost"`}},

	// publish, unpublish, port
	{"cnet publish CONTAINER SPEC", []string{"publish", "ghost", "81:80"}, exitNotFound, []string{`"ghost"`}},
	{"cnet publish CONTAINER SPEC", []string{"publish", "c1", "0:80"}, exitInvalid, []string{`"0:80"`, "1-65535"}},
	{"cnet publish CONTAINER SPEC", []string{"publish", "c1", "1000-1002:80-81"}, exitInvalid, []string{"1000-1002:80-81", "differ in length"}},
	{"cnet publish CONTAINER SPEC", []string{"publish", "c1", "81:80/icmp"}, exitInvalid, []string{"icmp", "tcp nor udp"}},
	{"cnet publish CONTAINER SPEC", []string{"publish", "c1", "::1:81:80"}, exitInvalid, []string{"::1:81:80"}},
	{"cnet publish CONTAINER SPEC", []string{"publish", "c1", "8080:80"}, exitExists, []string{"8080", "c1 already publishes"}},
	{"cnet publish CONTAINER SPEC", []string{"publish", "c1"}, exitInvalid, []string{"requires at least 2 arg"}},
	{"cnet unpublish CONTAINER SPEC", []string{"unpublish", "c1", "1234:80"}, exitNotFound, []string{"1234", "c1 publishes"}},
	{"cnet unpublish CONTAINER SPEC", []string{"unpublish", "c1", "x"}, exitInvalid, []string{`"x"`}},
	{"cnet unpublish CONTAINER SPEC", []string{"unpublish", "ghost", "8080:80"}, exitNotFound, []string{`"ghost"`}},
	{"cnet port CONTAINER", []string{"port", "ghost"}, exitNotFound, []string{`"ghost"`}},

	// rm, inspect, exec, logs, resolve
	{"cnet rm NAME", []string{"rm", "c1", "ghost"}, exitNotFound, []string{"ghost", "nothing was removed"}},
	{"cnet rm --grace", []string{"rm", "-f", "--grace", "soon", "c1"}, exitInvalid, []string{`"soon"`, "--grace"}},
	{"cnet rm --grace", []string{"rm", "-f", "--grace", "-1s", "c1"}, exitInvalid, []string{`"-1s"`, "--grace", "0 or more"}},
	{"cnet inspect NAME", []string{"inspect", "ghost"}, exitNotFound, []string{`"ghost"`}},
	{"cnet exec NAME", []string{"exec", "ghost", "--", "true"}, exitNotFound, []string{`"ghost"`}},
	{"cnet exec NAME", []string{"exec", "c1", "--"}, exitInvalid, []string{"missing the command"}},
	{"cnet logs NAME", []string{"logs", "ghost"}, exitNotFound, []string{`"ghost"`}},
	{"cnet resolve NAME", []string{"resolve"}, exitInvalid, []string{"arg"}},

	// unknown commands and flags
	{"cnet COMMAND", []string{"frobnicate"}, exitInvalid, []string{`"frobnicate"`}},
	{"cnet network COMMAND", []string{"network", "frobnicate"}, exitInvalid, []string{`"frobnicate"`}},
	{"cnet create --bogus", []string{"create", "x", "--bogus"}, exitInvalid, []string{"--bogus"}},
}

// TestBadInputCatalogue: every refusal exits non-zero with a message that
// names the value and what is accepted, and changes nothing: links,
// addresses, routes, namespaces, /etc/netns, the ruleset, the state
// database and the name server's records are identical before and after.
func TestBadInputCatalogue(t *testing.T) {
	c := newCLI(t)
	c.ok("network", "create", "base", "--subnet", "172.29.0.0/16")
	c.ok("network", "create", "other", "--subnet", "172.30.0.0/24")
	c.ok("create", "c1", "--network", "base", "-p", "8080:80")
	before := c.settled()

	cases := append([]badInput(nil), badInputs...)
	covered := map[string]bool{}
	for _, b := range badInputs {
		covered[b.flag] = true
	}
	var missing []string
	walkFlags(newRoot(), func(cmd *cobra.Command, f *pflag.Flag) {
		key := cmd.CommandPath() + " --" + f.Name
		if f.Value.Type() == "bool" {
			// A boolean flag takes true or false, nothing else.
			args := append(strings.Fields(strings.TrimPrefix(cmd.CommandPath(), "cnet")), "--"+f.Name+"=maybe")
			cases = append(cases, badInput{key, args, exitInvalid, []string{`"maybe"`, "--" + f.Name}})
			return
		}
		if !covered[key] {
			missing = append(missing, key)
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("flags without a bad-input case (add them to badInputs in %s):\n%s", "cmd/cnet/badinput_test.go", strings.Join(missing, "\n"))
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := c.run(tc.args...)
			if r.code == 0 {
				t.Fatalf("%s: accepted (exit 0)\n%s", tc.flag, r.stdout)
			}
			if r.code != tc.code {
				t.Errorf("%s: exit %d, want %d\n%s", tc.flag, r.code, tc.code, r.stderr)
			}
			for _, s := range tc.says {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("%s: the message does not say %q:\n%s", tc.flag, s, r.stderr)
				}
			}
			if after := c.full(); after != before {
				t.Fatalf("the refusal changed something (+ after, - before):\n%s", testenv.Diff(after, before))
			}
		})
	}
	if _, err := os.Stat(filepath.Join(c.root, "run", "logs")); err == nil {
		if logs, _ := os.ReadDir(filepath.Join(c.root, "run", "logs")); len(logs) > 0 {
			t.Errorf("refused runs left logs: %v", logs)
		}
	}
}

// walkFlags calls fn for every flag of every command, the root's
// persistent flags once.
func walkFlags(cmd *cobra.Command, fn func(*cobra.Command, *pflag.Flag)) {
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			fn(cmd, f)
		}
	})
	cmd.PersistentFlags().VisitAll(func(f *pflag.Flag) { fn(cmd, f) })
	for _, sub := range cmd.Commands() {
		walkFlags(sub, fn)
	}
}

var _ = fmt.Sprint
