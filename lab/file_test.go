package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/cnetdev/cnet"
)

func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	return files
}

func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("../docs/lab.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// instance converts YAML to what a JSON Schema validator reads.
func instance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestExamplesParseAndMatchSchema(t *testing.T) {
	sch := schema(t)
	for _, path := range examples(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(path, data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if f.Name != strings.TrimSuffix(filepath.Base(path), ".yaml") {
			t.Errorf("%s: lab name %q, want the file's name", path, f.Name)
		}
		if len(f.Containers) == 0 {
			t.Errorf("%s: no containers", path)
		}
		if err := sch.Validate(instance(t, data)); err != nil {
			t.Errorf("%s does not match docs/lab.schema.json: %v", path, err)
		}
	}
}

func TestParseRouter(t *testing.T) {
	data, err := os.ReadFile("../examples/router.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("router.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Container("router")
	if r == nil || !r.Forwarding || len(r.Networks) != 2 || r.Networks[1].IP != netip.MustParseAddr("172.31.2.254") {
		t.Fatalf("router: %+v", r)
	}
	if len(f.Links) != 1 || f.Links[0].A.Egress != 10_000_000 || f.Links[0].B.IP != netip.MustParsePrefix("10.255.0.2/30") {
		t.Fatalf("links: %+v", f.Links)
	}
	if e := f.Container("edge"); e == nil || len(e.Networks) != 0 || len(e.Routes) != 1 {
		t.Fatalf("edge: %+v", e)
	}
	// File order is kept.
	var order []string
	for _, c := range f.Containers {
		order = append(order, c.Name)
	}
	if want := []string{"router", "left-host", "right-host", "edge"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

// TestSchemaMatchesParser keeps docs/lab.schema.json and the parser in
// step: every key one accepts, the other accepts.
func TestSchemaMatchesParser(t *testing.T) {
	raw, err := os.ReadFile("../docs/lab.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	keys := func(path ...string) []string {
		var cur any = s
		for _, p := range path {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[p]
			case []any:
				var i int
				if _, err := fmt.Sscan(p, &i); err != nil {
					t.Fatalf("path %q: %v", p, err)
				}
				cur = c[i]
			}
		}
		var out []string
		for k := range cur.(map[string]any) {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	sortedCopy := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	for _, c := range []struct {
		name   string
		schema []string
		parser []string
	}{
		{"file", keys("properties"), fileKeys},
		{"network", keys("properties", "networks", "additionalProperties", "oneOf", "1", "properties"), networkKeys},
		{"container", keys("properties", "containers", "additionalProperties", "oneOf", "1", "properties"), containerKeys},
		{"attach", keys("properties", "containers", "additionalProperties", "oneOf", "1", "properties", "networks", "items", "oneOf", "1", "properties"), attachKeys},
		{"route", keys("properties", "containers", "additionalProperties", "oneOf", "1", "properties", "routes", "items", "properties"), routeKeys},
		{"link", keys("properties", "links", "items", "properties"), linkKeys},
		{"link end", keys("$defs", "linkEnd", "oneOf", "1", "properties"), linkEndKeys},
	} {
		if !slices.Equal(c.schema, sortedCopy(c.parser)) {
			t.Errorf("%s keys: schema %v, parser %v", c.name, c.schema, sortedCopy(c.parser))
		}
	}
}

// TestRefusals walks every field with bad values: each is refused with
// the line, the field, the bad value and what is accepted.
func TestRefusals(t *testing.T) {
	const base = "networks:\n  n1: {subnet: 172.30.0.0/24}\ncontainers:\n  a: {networks: [n1]}\n  b: {networks: [n1]}\n"
	cases := []struct {
		name, yaml string
		line       int
		field      string
		want       []string // substrings of the message
	}{
		{"not yaml", "networks: [\n", 1, "", []string{"not valid YAML"}},
		{"empty", "", 0, "", []string{"empty", "lab, networks, containers, links"}},
		{"two documents", "lab: x\n---\nlab: y\n", 2, "", []string{"second YAML document"}},
		{"top-level list", "- a\n", 1, "", []string{"a list", "want a mapping"}},
		{"unknown top key", "lab: x\nnetwork: {}\n", 2, "network", []string{`"network"`, "lab, networks, containers, links"}},
		{"repeated key", "lab: x\nlab: y\n", 2, "lab", []string{"twice"}},
		{"bad lab name", "lab: ../etc\n", 1, "lab", []string{`"../etc"`, "1-63 characters"}},
		{"lab not a string", "lab: [x]\n", 1, "lab", []string{"a list", "want a name"}},
		{"bad network name", "networks:\n  bad/name: {}\n", 2, "networks.bad/name", []string{`"bad/name"`, "1-63 characters"}},
		{"network none", "networks:\n  none: {}\n", 2, "networks.none", []string{"reserved"}},
		{"network unknown key", "networks:\n  n: {sbnet: 10.0.0.0/24}\n", 2, "networks.n.sbnet", []string{`"sbnet"`, "subnet, gateway, bridge, internal, mtu, dns"}},
		{"bad subnet", "networks:\n  n:\n    subnet: 10.0.0.0/33\n", 3, "networks.n.subnet", []string{`"10.0.0.0/33"`, "172.18.0.0/24"}},
		{"subnet host bits", "networks:\n  n: {subnet: 10.0.0.5/24}\n", 2, "networks.n.subnet", []string{"10.0.0.5/24"}},
		{"ipv6 subnet", "networks:\n  n: {subnet: 'fd00::/64'}\n", 2, "networks.n.subnet", []string{`"fd00::/64"`, "IPv4"}},
		{"bad gateway", "networks:\n  n: {subnet: 10.0.0.0/24, gateway: 10.0.1.1}\n", 2, "networks.n.gateway", []string{"10.0.1.1"}},
		{"gateway without subnet", "networks:\n  n: {gateway: 10.0.0.1}\n", 2, "networks.n.gateway", []string{"needs a subnet"}},
		{"gateway not an address", "networks:\n  n: {subnet: 10.0.0.0/24, gateway: ten}\n", 2, "networks.n.gateway", []string{`"ten"`, "IPv4 address"}},
		{"bad bridge", "networks:\n  n: {bridge: a-very-long-bridge-name}\n", 2, "networks.n.bridge", []string{"a-very-long-bridge-name", "15"}},
		{"internal not bool", "networks:\n  n: {internal: yes-please}\n", 2, "networks.n.internal", []string{`"yes-please"`, "true or false"}},
		{"mtu too small", "networks:\n  n: {mtu: 10}\n", 2, "networks.n.mtu", []string{`"10"`, "68 to 65535"}},
		{"mtu not a number", "networks:\n  n: {mtu: big}\n", 2, "networks.n.mtu", []string{`"big"`, "whole number"}},
		{"dns not bool", "networks:\n  n: {dns: 1.1.1.1}\n", 2, "networks.n.dns", []string{`"1.1.1.1"`, "true or false"}},
		{"bad container name", "containers:\n  -bad: {}\n", 2, "containers.-bad", []string{`"-bad"`}},
		{"container unknown key", "containers:\n  a: {image: nginx}\n", 2, "containers.a.image", []string{`"image"`, "networks, ports, dns, routes, forwarding, command"}},
		{"networks not a list", "containers:\n  a: {networks: n1}\n", 2, "containers.a.networks", []string{`"n1"`, "want a list"}},
		{"attach unknown key", base + "  c: {networks: [{network: n1, address: 1.2.3.4}]}\n", 6, "containers.c.networks[0].address", []string{`"address"`, "network, ip, aliases, egress"}},
		{"attach without network", base + "  c: {networks: [{ip: 172.30.0.9}]}\n", 6, "containers.c.networks[0]", []string{"no network"}},
		{"attach twice", base + "  c: {networks: [n1, n1]}\n", 6, "containers.c.networks[1]", []string{`"n1"`, "twice"}},
		{"bad ip", base + "  c: {networks: [{network: n1, ip: 172.30.0.300}]}\n", 6, "containers.c.networks[0].ip", []string{`"172.30.0.300"`, "IPv4 address"}},
		{"ip outside subnet", base + "  c:\n    networks:\n      - {network: n1, ip: 10.9.9.9}\n", 8, "containers.c.networks[0].ip", []string{"10.9.9.9", "172.30.0.0/24"}},
		{"ip is the gateway", base + "  c: {networks: [{network: n1, ip: 172.30.0.1}]}\n", 6, "containers.c.networks[0].ip", []string{"172.30.0.1"}},
		{"ip twice", base + "  c: {networks: [{network: n1, ip: 172.30.0.9}]}\n  d: {networks: [{network: n1, ip: 172.30.0.9}]}\n", 7, "containers.d.networks[0].ip", []string{"172.30.0.9", "also c's"}},
		{"bad alias", base + "  c: {networks: [{network: n1, aliases: [ok, 'no way']}]}\n", 6, "containers.c.networks[0].aliases[1]", []string{`"no way"`}},
		{"bad egress", base + "  c: {networks: [{network: n1, egress: fast}]}\n", 6, "containers.c.networks[0].egress", []string{`"fast"`, "10mbit"}},
		{"egress too small", base + "  c: {networks: [{network: n1, egress: 1bit}]}\n", 6, "containers.c.networks[0].egress", []string{`"1bit"`, "8kbit"}},
		{"bad port", base + "  c: {networks: [n1], ports: ['80:99999']}\n", 6, "containers.c.ports[0]", []string{"99999"}},
		{"ports not strings", base + "  c: {networks: [n1], ports: [{host: 80}]}\n", 6, "containers.c.ports[0]", []string{"a mapping", "port specs"}},
		{"ports on internal only", "networks:\n  i: {internal: true}\ncontainers:\n  c: {networks: [i], ports: ['80:80']}\n", 4, "containers.c.ports", []string{"beyond a bridge"}},
		{"bad dns", base + "  c: {networks: [n1], dns: [one.one.one.one]}\n", 6, "containers.c.dns[0]", []string{`"one.one.one.one"`, "IPv4 address"}},
		{"route unknown key", base + "  c: {networks: [n1], routes: [{dest: 10.0.0.0/8, via: 172.30.0.1}]}\n", 6, "containers.c.routes[0].dest", []string{`"dest"`, "to, via"}},
		{"route without via", base + "  c: {networks: [n1], routes: [{to: 10.0.0.0/8}]}\n", 6, "containers.c.routes[0]", []string{"via"}},
		{"route host bits", base + "  c: {networks: [n1], routes: [{to: 10.0.0.1/8, via: 172.30.0.1}]}\n", 6, "containers.c.routes[0].to", []string{"10.0.0.1/8", "10.0.0.0/8"}},
		{"route via elsewhere", base + "  c: {networks: [n1], routes: [{to: 10.0.0.0/8, via: 192.0.2.1}]}\n", 6, "containers.c.routes[0].via", []string{"192.0.2.1", "none of c's subnets"}},
		{"forwarding not bool", base + "  c: {networks: [n1], forwarding: on please}\n", 6, "containers.c.forwarding", []string{`"on please"`, "true or false"}},
		{"empty command", base + "  c: {networks: [n1], command: []}\n", 6, "containers.c.command", []string{"empty"}},
		{"blank command", base + "  c: {networks: [n1], command: '  '}\n", 6, "containers.c.command", []string{"empty"}},
		{"command not strings", base + "  c: {networks: [n1], command: [[echo]]}\n", 6, "containers.c.command[0]", []string{"a list", "arguments"}},
		{"links not a list", base + "links: {a: a}\n", 6, "links", []string{"a mapping", "want a list"}},
		{"link unknown key", base + "links:\n  - {a: a, b: b, speed: 10}\n", 7, "links[0].speed", []string{`"speed"`, "a, b, mtu"}},
		{"link one end", base + "links:\n  - {a: a}\n", 7, "links[0]", []string{"both ends"}},
		{"link unknown container", base + "links:\n  - {a: a, b: zed}\n", 7, "links[0].b.container", []string{`"zed"`, "a, b"}},
		{"link to itself", base + "links:\n  - {a: a, b: a}\n", 7, "links[0].b.container", []string{"two different containers"}},
		{"link end unknown key", base + "links:\n  - {a: {container: a, name: x}, b: b}\n", 7, "links[0].a.name", []string{`"name"`, "container, interface, ip, egress"}},
		{"link end without container", base + "links:\n  - {a: {ip: 10.0.0.1/30}, b: b}\n", 7, "links[0].a", []string{"no container"}},
		{"link interface eth0", base + "links:\n  - {a: {container: a, interface: eth0}, b: b}\n", 7, "links[0].a.interface", []string{`"eth0"`, "taken"}},
		{"link interface too long", base + "links:\n  - {a: {container: a, interface: interface-too-long}, b: b}\n", 7, "links[0].a.interface", []string{"interface-too-long", "15"}},
		{"link ip without length", base + "links:\n  - {a: {container: a, ip: 10.0.0.1}, b: {container: b, ip: 10.0.0.2}}\n", 7, "links[0].a.ip", []string{`"10.0.0.1"`, "10.0.0.1/30"}},
		{"link ip one end", base + "links:\n  - {a: {container: a, ip: 10.0.0.1/30}, b: b}\n", 7, "links[0]", []string{"only one end"}},
		{"link ips apart", base + "links:\n  - {a: {container: a, ip: 10.0.0.1/30}, b: {container: b, ip: 10.0.1.2/30}}\n", 7, "links[0].b.ip", []string{"10.0.1.2/30", "one subnet"}},
		{"link ip network address", base + "links:\n  - {a: {container: a, ip: 10.0.0.0/30}, b: {container: b, ip: 10.0.0.2/30}}\n", 7, "links[0].a.ip", []string{"10.0.0.0", "host address"}},
		{"link same ip", base + "links:\n  - {a: {container: a, ip: 10.0.0.1/30}, b: {container: b, ip: 10.0.0.1/30}}\n", 7, "links[0].b.ip", []string{"two different addresses"}},
		{"link bad egress", base + "links:\n  - {a: {container: a, egress: lots}, b: b}\n", 7, "links[0].a.egress", []string{`"lots"`}},
		{"link bad mtu", base + "links:\n  - {a: a, b: b, mtu: 70000}\n", 7, "links[0].mtu", []string{`"70000"`, "68 to 65535"}},
		{"two links same interface", base + "links:\n  - {a: a, b: b}\n  - {a: a, b: b}\n", 8, "links[1]", []string{"already has an interface"}},
		{"default interface too long", "networks:\n  n1: {}\ncontainers:\n  a: {networks: [n1]}\n  a-container-with-a-long-name: {networks: [n1]}\nlinks:\n  - {a: a, b: a-container-with-a-long-name}\n", 7, "links[0]", []string{"longer than 15 bytes", "interface:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("lab.yaml", []byte(c.yaml))
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *lab.Error", err)
			}
			if !errors.Is(err, cnet.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
			if fe.Line != c.line || fe.Field != c.field {
				t.Errorf("at line %d field %q, want line %d field %q: %v", fe.Line, fe.Field, c.line, c.field, err)
			}
			msg := err.Error()
			if c.line > 0 && !strings.HasPrefix(msg, fmt.Sprintf("lab.yaml:%d: ", c.line)) {
				t.Errorf("message %q does not start with the file and line", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestLabNameFromFile(t *testing.T) {
	f, err := Parse("/some/where/my-lab.yml", []byte("containers:\n  a: {}\n"))
	if err != nil || f.Name != "my-lab" {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := Parse("/x/bad name.yaml", []byte("containers:\n  a: {}\n")); err == nil || !strings.Contains(err.Error(), "lab: NAME") {
		t.Fatalf("got %v, want a hint to set lab:", err)
	}
	f, err = Parse("", []byte("lab: named\ncontainers:\n  a: {command: 'echo hi'}\n"))
	if err != nil || f.Name != "named" || !slices.Equal(f.Container("a").Command, []string{"/bin/sh", "-c", "echo hi"}) {
		t.Fatalf("%+v %v", f, err)
	}
}

// FuzzParse: any input is either a valid lab or a *lab.Error; never a
// panic. Valid labs hold only names and addresses the engine accepts.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"../examples/seed.yaml", "../examples/three-tier.yaml", "../examples/router.yaml"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("networks:\n  n: {subnet: 10.0.0.0/24, mtu: 9000}\ncontainers:\n  a: {networks: [{network: n, ip: 10.0.0.5}]}\n"))
	f.Add([]byte("links:\n  - {a: {container: a, ip: 10.0.0.1/31}, b: {container: b, ip: 10.0.0.0/31}}\ncontainers: {a: , b: }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lab, err := Parse("fuzz.yaml", data)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *lab.Error", err, err)
			}
			return
		}
		for _, c := range lab.Containers {
			for _, a := range c.Networks {
				if a.IP.IsValid() && !a.IP.Is4() {
					t.Fatalf("accepted a non-IPv4 address %v", a.IP)
				}
			}
		}
		for _, l := range lab.Links {
			if l.A.IP.IsValid() != l.B.IP.IsValid() {
				t.Fatalf("accepted a link with one address: %+v", l)
			}
		}
	})
}
