package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "169.254.0.0/16"}, exitInvalid, []string{`"169.254.0.0/16"`, "link-local", "want a private range"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "0.0.0.0/8"}, exitInvalid, []string{`"0.0.0.0/8"`, "this network"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "240.0.0.0/8"}, exitInvalid, []string{`"240.0.0.0/8"`, "reserved"}},
	{"cnet network create --subnet", []string{"network", "create", "n", "--subnet", "255.255.255.252/30"}, exitInvalid, []string{`"255.255.255.252/30"`, "broadcast"}},
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
	{"cnet create --egress", []string{"create", "x", "--network", "base", "--egress", "fast"}, exitInvalid, []string{`"fast"`, "e.g. 10mbit"}},
	{"cnet create --egress", []string{"create", "x", "--network", "base", "--egress", "1bit"}, exitInvalid, []string{`"1bit"`, "8kbit to 1tbit"}},
	{"cnet create --egress", []string{"create", "x", "--network", "none", "--egress", "10mbit"}, exitInvalid, []string{`"none"`, "want a network for"}},
	{"cnet run --name", []string{"run", "--name", "a/b", "--", "true"}, exitInvalid, []string{`"a/b"`, "want 1-63 characters"}},
	{"cnet run --egress", []string{"run", "--network", "base", "--egress", "-5mbit", "--", "true"}, exitInvalid, []string{`"-5mbit"`, "e.g. 10mbit"}},
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
	{"cnet connect --egress", []string{"connect", "other", "c1", "--egress", "2tbit"}, exitInvalid, []string{`"2tbit"`, "8kbit to 1tbit"}},
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

	// labs (every field of a lab file: labbad_test.go) and graph
	{"cnet apply --file", []string{"apply", "-f", "/nonexistent/lab.yaml"}, exitNotFound, []string{"/nonexistent/lab.yaml", "no such file"}},
	{"cnet apply --file", []string{"apply", "-f", "/proc"}, exitNotFound, []string{"/proc", "is a directory"}},
	{"cnet apply --file", []string{"apply", "-f", ""}, exitInvalid, []string{"missing -f FILE"}},
	{"cnet apply --file", []string{"apply"}, exitInvalid, []string{"missing -f FILE"}},
	{"cnet diff --file", []string{"diff", "-f", "/nonexistent/lab.yaml"}, exitNotFound, []string{"/nonexistent/lab.yaml", "no such file"}},
	{"cnet diff --file", []string{"diff"}, exitInvalid, []string{"missing -f FILE"}},
	{"cnet destroy --file", []string{"destroy", "-f", "/nonexistent/lab.yaml"}, exitNotFound, []string{"/nonexistent/lab.yaml", "no such file"}},
	{"cnet destroy --file", []string{"destroy"}, exitInvalid, []string{"missing -f FILE"}},
	{"cnet graph --file", []string{"graph", "-f", "/nonexistent/lab.yaml"}, exitNotFound, []string{"/nonexistent/lab.yaml", "no such file"}},
	{"cnet graph --format", []string{"graph", "--format", "png"}, exitInvalid, []string{`"png"`, "text, dot, svg or mermaid"}},

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

// withKey returns the JSON configuration conf with the value at path
// (dot-separated, except keys such as cni.dev/attachments; a number
// indexes an array) set to raw JSON, or removed
// when raw is "".
func withKey(t *testing.T, conf, path, raw string) string {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(conf), &root); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(path, ".")
	if strings.HasPrefix(path, "cni.dev/") {
		parts = []string{path} // one key, dots and all
	}
	cur := root
	for i, p := range parts {
		last := i == len(parts)-1
		switch node := cur.(type) {
		case map[string]any:
			if last {
				if raw == "" {
					delete(node, p)
				} else {
					var v any
					if err := json.Unmarshal([]byte(raw), &v); err != nil {
						t.Fatalf("%s: %v", raw, err)
					}
					node[p] = v
				}
				break
			}
			if node[p] == nil {
				node[p] = map[string]any{}
			}
			cur = node[p]
		case []any:
			idx, err := strconv.Atoi(p)
			if err != nil || idx >= len(node) {
				t.Fatalf("path %s: no element %s", path, p)
			}
			if last {
				var v any
				if err := json.Unmarshal([]byte(raw), &v); err != nil {
					t.Fatal(err)
				}
				node[idx] = v
				break
			}
			cur = node[idx]
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// cniBad is one invalid configuration value or runtime argument for a CNI
// ADD (or the verb given).
type cniBad struct {
	field         string // the configuration key path, or an environment variable
	raw           string // the JSON value put at field
	base          string // the configuration it goes into: short (default), ranges or hostlocal
	verb          string // default ADD
	args          string // CNI_ARGS
	ifname, netns string
	code          uint
	says          []string
}

// cniBads walks every key of the configuration cnet reads (and the
// runtime's variables) with invalid values.
var cniBads = []cniBad{
	{field: "cniVersion", raw: `"0.2.0"`, code: 1, says: []string{"0.2.0", "incompatible"}},
	{field: "cniVersion", raw: `"banana"`, code: 1, says: []string{"banana"}},
	{field: "cniVersion", raw: `7`, code: 6, says: []string{"cniVersion"}},
	{field: "name", raw: `""`, code: 7, says: []string{"missing network name"}},
	{field: "name", raw: `"a/b"`, code: 7, says: []string{"a/b", "invalid characters", "network name"}},
	{field: "name", raw: `"exists"`, code: 7, says: []string{"subnet", "network exists"}},
	{field: "type", raw: `3`, code: 6, says: []string{"type"}},
	{field: "bridge", raw: `"this-name-is-too-long"`, code: 7, says: []string{`"this-name-is-too-long"`, "at most 15 bytes"}},
	{field: "bridge", raw: `"a/b"`, code: 7, says: []string{`"a/b"`, "no '/'"}},
	{field: "bridge", raw: `"lo"`, code: 7, says: []string{"lo", "choose another"}},
	{field: "bridge", raw: `"br-exists"`, code: 7, says: []string{"br-exists", "network exists"}},
	{field: "isGateway", raw: `false`, code: 2, says: []string{"isGateway", "always holds its gateway"}},
	{field: "isGateway", raw: `"yes"`, code: 6, says: []string{"isGateway", "bool"}},
	{field: "isDefaultGateway", raw: `"yes"`, code: 6, says: []string{"isDefaultGateway", "bool"}},
	{field: "ipMasq", raw: `false`, code: 2, says: []string{"ipMasq", "internal"}},
	{field: "ipMasq", raw: `1`, code: 6, says: []string{"ipMasq", "bool"}},
	{field: "hairpinMode", raw: `"on"`, code: 6, says: []string{"hairpinMode", "bool"}},
	{field: "mtu", raw: `10`, code: 7, says: []string{`mtu "10"`, "68 to 65535"}},
	{field: "mtu", raw: `65536`, code: 7, says: []string{`mtu "65536"`, "68 to 65535"}},
	{field: "mtu", raw: `"1500"`, code: 6, says: []string{"mtu", "int"}},
	{field: "promiscMode", raw: `true`, code: 2, says: []string{"promiscMode", "not promiscuous"}},
	{field: "forceAddress", raw: `"x"`, code: 6, says: []string{"forceAddress", "bool"}},
	{field: "subnet", raw: `"10.64.0.0/99"`, code: 7, says: []string{`"10.64.0.0/99"`, "IPv4 CIDR"}},
	{field: "subnet", raw: `"127.0.0.0/8"`, code: 7, says: []string{`"127.0.0.0/8"`, "loopback"}},
	{field: "subnet", raw: `"169.254.0.0/16"`, code: 7, says: []string{`"169.254.0.0/16"`, "link-local"}},
	{field: "ipam.ranges.0.0.subnet", base: "ranges", raw: `"169.254.1.0/24"`, code: 7, says: []string{`"169.254.1.0/24"`, "link-local"}},
	{field: "runtimeConfig.mac", base: "exists", raw: `"52:54:00:12:34:56"`, code: 7, says: []string{"52:54:00:12:34:56", "container holder", "network exists"}},
	{field: "CNI_ARGS", base: "exists", args: "MAC=52-54-00-12-34-56", code: 7, says: []string{"52:54:00:12:34:56", "container holder"}},
	{field: "runtimeConfig.mac", base: "exists", raw: `"02:63:0a:3f:00:03"`, code: 7, says: []string{"02:63:0a:3f:00:03", "container other", "unique"}},
	{field: "CNI_ARGS", base: "exists", args: "MAC=02:63:0a:3f:00:01", code: 7, says: []string{"02:63:0a:3f:00:01", "bridge br-exists"}},
	{field: "runtimeConfig.mac", base: "exists", raw: `"52:54:00:ab:cd:ef"`, code: 7, says: []string{"52:54:00:ab:cd:ef", "namespace handmade", "bridge port vhand", "not a cnet endpoint"}},
	{field: "runtimeConfig.mac", base: "exists", raw: `"02:63:0a:3f:00:63"`, code: 7, says: []string{"02:63:0a:3f:00:63", "02:63:00:00:00:00/16", "10.63.0.99"}},
	{field: "subnet", raw: `"10.64.0.0/31"`, code: 7, says: []string{`"10.64.0.0/31"`, "/8 to /30"}},
	{field: "subnet", raw: `"fd00::/64"`, code: 7, says: []string{`"fd00::/64"`, "IPv4"}},
	{field: "gateway", raw: `"10.64.0.1.1"`, code: 7, says: []string{`"10.64.0.1.1"`, "IPv4 address"}},
	{field: "gateway", raw: `"10.99.0.1"`, code: 7, says: []string{`"10.99.0.1"`, "inside 10.64.0.0/24"}},
	{field: "internal", raw: `"yes"`, code: 6, says: []string{"internal", "bool"}},
	{field: "noDNS", raw: `"yes"`, code: 6, says: []string{"noDNS", "bool"}},
	{field: "cnetDNS", raw: `"yes"`, code: 6, says: []string{"cnetDNS", "bool"}},
	{field: "cnetRoot", raw: `"/proc/version"`, code: 999, says: []string{"/proc/version"}},
	{field: "lockTimeout", raw: `"soon"`, code: 7, says: []string{`"soon"`, "duration"}},
	{field: "lockTimeout", raw: `"-1s"`, code: 7, says: []string{`"-1s"`, "duration"}},
	{field: "ipam.type", base: "hostlocal", raw: `"dhcp"`, code: 2, says: []string{"ipam type dhcp", "host-local"}},
	{field: "ipam.subnet", base: "hostlocal", raw: `"bogus"`, code: 7, says: []string{`"bogus"`, "IPv4 CIDR"}},
	{field: "ipam.gateway", base: "hostlocal", raw: `"x"`, code: 7, says: []string{`"x"`, "IPv4 address"}},
	{field: "ipam.rangeStart", base: "hostlocal", raw: `"10.64.0.300"`, code: 7, says: []string{`"10.64.0.300"`, "IPv4 address"}},
	{field: "ipam.rangeStart", base: "hostlocal", raw: `"10.99.0.10"`, code: 7, says: []string{"10.99.0.10", "10.64.0.0/24"}},
	{field: "ipam.rangeEnd", base: "hostlocal", raw: `"::1"`, code: 7, says: []string{`"::1"`, "IPv4 address"}},
	{field: "ipam.rangeEnd", base: "hostlocal", raw: `"10.64.1.10"`, code: 7, says: []string{"10.64.1.10", "10.64.0.0/24"}},
	{field: "ipam.ranges", base: "ranges", raw: `[[{"subnet":"10.64.0.0/24"}],[{"subnet":"fd00::/64"}]]`, code: 2, says: []string{"more than one ipam range"}},
	{field: "ipam.ranges.0.0.subnet", base: "ranges", raw: `"10.64.0.0/40"`, code: 7, says: []string{`"10.64.0.0/40"`, "IPv4 CIDR"}},
	{field: "ipam.ranges.0.0.gateway", base: "ranges", raw: `"10.64.0.0"`, code: 7, says: []string{`"10.64.0.0"`, "10.64.0.1 to 10.64.0.254"}},
	{field: "ipam.ranges.0.0.rangeStart", base: "ranges", raw: `"x"`, code: 7, says: []string{`"x"`, "IPv4 address"}},
	{field: "ipam.ranges.0.0.rangeEnd", base: "ranges", raw: `"10.64.0.255"`, code: 7, says: []string{"10.64.0.255", "broadcast"}},
	{field: "ipam.routes", base: "ranges", raw: `[{"dst":"10.0.0.0/8"}]`, code: 2, says: []string{"route to 10.0.0.0/8", "default route"}},
	{field: "ipam.routes", base: "ranges", raw: `[{"dst":"default"}]`, code: 7, says: []string{`"default"`, "CIDR"}},
	{field: "ipam.routes", base: "ranges", raw: `[{"dst":"0.0.0.0/0","gw":"10.64.0.9"}]`, code: 2, says: []string{"route via 10.64.0.9", "gateway"}},
	{field: "runtimeConfig.portMappings", raw: `[{"hostPort":0,"containerPort":80}]`, code: 7, says: []string{"0:80/tcp", "1-65535"}},
	{field: "runtimeConfig.portMappings", raw: `[{"hostPort":8080,"containerPort":70000}]`, code: 7, says: []string{"70000", "1-65535"}},
	{field: "runtimeConfig.portMappings", raw: `[{"hostPort":8080,"containerPort":80,"protocol":"sctp"}]`, code: 7, says: []string{"sctp", "tcp nor udp"}},
	{field: "runtimeConfig.portMappings", raw: `[{"hostPort":8080,"containerPort":80,"hostIP":"10.9.9.9"}]`, code: 7, says: []string{"10.9.9.9", "assigned to this host"}},
	{field: "runtimeConfig.portMappings", raw: `[{"hostPort":8080,"containerPort":80,"hostIP":"nowhere"}]`, code: 7, says: []string{"nowhere"}},
	{field: "runtimeConfig.portMappings", raw: `[{"hostPort":18080,"containerPort":80}]`, code: 7, says: []string{"18080", "conflicts with container holder"}},
	{field: "runtimeConfig.ips", raw: `["10.64.0.999/24"]`, code: 7, says: []string{`"10.64.0.999/24"`, "IPv4 address"}},
	{field: "runtimeConfig.ips", raw: `["10.99.0.9/24"]`, code: 7, says: []string{"10.99.0.9", "inside 10.64.0.0/24"}},
	{field: "runtimeConfig.ips", raw: `["10.64.0.9/24","10.64.0.10/24"]`, code: 2, says: []string{"more than one address"}},
	{field: "runtimeConfig.mac", raw: `"zz:zz"`, code: 7, says: []string{`"zz:zz"`, "MAC"}},
	{field: "runtimeConfig.mac", raw: `"01:00:5e:00:00:01"`, code: 7, says: []string{`"01:00:5e:00:00:01"`, "unicast"}},
	{field: "runtimeConfig.mac", raw: `"00:00:00:00:00:00"`, code: 7, says: []string{`"00:00:00:00:00:00"`, "unicast"}},
	{field: "runtimeConfig.aliases", raw: `{"fresh":["a/b"]}`, code: 7, says: []string{`"a/b"`, "want 1-63 characters"}},
	{field: "runtimeConfig.aliases", raw: `7`, code: 7, says: []string{"aliases", `["name"]`}},
	{field: "runtimeConfig.dns", raw: `"8.8.8.8"`, code: 6, says: []string{"dns"}},
	{field: "dns", raw: `[]`, code: 6, says: []string{"dns"}},
	{field: "capabilities", raw: `"all"`, code: 6, says: []string{"capabilities"}},
	{field: "prevResult", raw: `{"cniVersion":"1.0.0","ips":"x"}`, code: 6, says: []string{"prevResult", "ips"}},
	{field: "cni.dev/valid-attachments", verb: "GC", raw: `"all"`, code: 6, says: []string{"valid-attachments"}},
	{field: "cni.dev/attachments", verb: "GC", raw: `[{"containerID":7}]`, code: 6, says: []string{"containerID"}},
	{field: "CNI_ARGS", args: "IP=10.64.0.999", code: 7, says: []string{`IP "10.64.0.999"`, "IPv4 address"}},
	{field: "CNI_ARGS", args: "IP=10.64.0.1", code: 7, says: []string{"10.64.0.1", "gateway"}},
	{field: "CNI_ARGS", args: "MAC=nope", code: 7, says: []string{`"nope"`, "MAC"}},
	{field: "CNI_ARGS", args: "garbage", code: 4, says: []string{`"garbage"`, "KEY=VALUE"}},
	{field: "CNI_IFNAME", ifname: "a/b", code: 4, says: []string{`"a/b"`, "no '/'"}},
	{field: "CNI_IFNAME", ifname: "this-name-is-too-long", code: 4, says: []string{`"this-name-is-too-long"`, "15 bytes"}},
	{field: "CNI_IFNAME", ifname: "lo", code: 7, says: []string{`"lo"`, "already exists"}},
	{field: "CNI_NETNS", netns: "/run/netns/nope", code: 3, says: []string{"/run/netns/nope"}},
	{field: "CNI_NETNS", netns: "/proc/version", code: 3, says: []string{"/proc/version"}},
}

// TestCNIBadInputCatalogue: every configuration key and runtime variable
// given an invalid value is refused with a CNI error whose code and
// message name the key or value and what is accepted, and nothing
// changes: kernel, files, state and name server records.
func TestCNIBadInputCatalogue(t *testing.T) {
	c := newCLI(t)
	testenv.Run(t, "ip", "netns", "add", "badns")
	testenv.Run(t, "ip", "netns", "add", "holder")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "badns"); testenv.Try("ip", "netns", "del", "holder") })
	c.ok("network", "create", "exists", "--subnet", "10.63.0.0/24", "--bridge", "br-exists")
	holder := withKey(t, bridgeConf("1.1.0", "exists", "10.63.0.0/24", ""), "bridge", `"br-exists"`)
	holder = withKey(t, holder, "runtimeConfig", `{"portMappings":[{"hostPort":18080,"containerPort":80}],"mac":"52:54:00:12:34:56"}`)
	if _, err := c.cni(cniCall{verb: "ADD", id: "holder", netns: "/run/netns/holder", ifname: "eth0", conf: holder}); err != nil {
		t.Fatalf("ADD holder: %+v", err)
	}
	// A cnet container whose MAC cnet derives from its address
	// (10.63.0.3), and a veth made by hand on the same bridge.
	c.ok("create", "other", "--network", "exists")
	testenv.Run(t, "ip", "netns", "add", "handmade")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "handmade") })
	testenv.Run(t, "ip", "link", "add", "vhand", "type", "veth", "peer", "name", "eth0", "address", "52:54:00:ab:cd:ef", "netns", "handmade")
	testenv.Run(t, "ip", "link", "set", "vhand", "master", "br-exists", "up")
	before := c.settled()
	bases := map[string]string{
		"short":     `{"cniVersion":"1.1.0","name":"fresh","type":"cnet","subnet":"10.64.0.0/24"}`,
		"ranges":    bridgeConf("1.1.0", "fresh", "10.64.0.0/24", ""),
		"hostlocal": `{"cniVersion":"1.1.0","name":"fresh","type":"cnet","ipam":{"type":"host-local","subnet":"10.64.0.0/24"}}`,
		"exists":    `{"cniVersion":"1.1.0","name":"exists","type":"cnet","subnet":"10.63.0.0/24","bridge":"br-exists"}`,
	}
	for _, tc := range cniBads {
		name := tc.field + "=" + tc.raw + tc.args + tc.ifname + tc.netns
		t.Run(name, func(t *testing.T) {
			conf := bases[tc.base]
			if tc.base == "" {
				conf = bases["short"]
			}
			if tc.raw != "" {
				conf = withKey(t, conf, tc.field, tc.raw)
			}
			call := cniCall{verb: "ADD", id: "badid", netns: "/run/netns/badns", ifname: "eth0", args: tc.args, conf: conf}
			if tc.verb != "" {
				call.verb = tc.verb
			}
			if call.verb == "GC" {
				call.id = ""
			}
			if tc.ifname != "" {
				call.ifname = tc.ifname
			}
			if tc.netns != "" {
				call.netns = tc.netns
			}
			_, err := c.cni(call)
			switch {
			case err == nil:
				t.Errorf("%s %s: accepted", call.verb, tc.field)
				// Put things back, so the next cases start from the same state.
				del := call
				del.verb = "DEL"
				if _, cerr := c.cni(del); cerr != nil {
					t.Errorf("putting back after %s %s: %v", call.verb, tc.field, cerr)
				}
				c.run("network", "rm", "fresh")
			case tc.code != 999 && err.Code != tc.code:
				t.Errorf("%s: code %d, want %d: %s %s", tc.field, err.Code, tc.code, err.Msg, err.Details)
			}
			if err != nil {
				for _, s := range tc.says {
					if !strings.Contains(err.Msg+" "+err.Details, s) {
						t.Errorf("%s: the message does not say %q: %s %s", tc.field, s, err.Msg, err.Details)
					}
				}
			}
			if after := c.full(); after != before {
				t.Fatalf("the refusal changed something (+ after, - before):\n%s", testenv.Diff(after, before))
			}
		})
	}
}
