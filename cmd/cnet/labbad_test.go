package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// labBad is one invalid value in a lab file. `cnet apply -f` and `cnet
// diff -f` must both refuse it with exit code, a message that starts
// "bad.yaml:LINE: FIELD: " and says every one of says (the value, and what
// is accepted), and change nothing.
type labBad struct {
	field string // as the message names it; "" for the file as a whole
	line  int    // 0: the message names no line
	yaml  string
	code  int
	says  []string
	// destroy: `cnet destroy -f`, which reads only the lab's name, must
	// refuse it too.
	destroy bool
}

const labName63 = "want 1-63 characters"

// labBads walks every field of the lab file format (docs/lab.schema.json;
// TestLabBadInputCatalogue fails when a field there has no case here)
// with invalid values: wrong types, out of range, malformed, and values
// the machine refuses (taken by network taken, 172.30.50.0/24, or by
// container holder, 172.30.50.5, publishing 8080).
var labBads = []labBad{
	// The file as a whole.
	{"", 0, "", exitInvalid, []string{"bad.yaml: the file is empty", "want a mapping with keys lab, networks, containers, links"}, false},
	{"", 2, "lab: demo\nnetworks: {n: [x}\n", exitInvalid, []string{"not valid YAML", "did not find expected ',' or ']' in the collection that starts on this line"}, false},
	{"", 3, "lab: demo\nnetworks:\n  n: {subnet: 10.0.0.0/24\n", exitInvalid, []string{"not valid YAML", "did not find expected ',' or '}'"}, false},
	{"", 2, "lab: demo\n\tnetworks: {}\n", exitInvalid, []string{"not valid YAML", "tab character"}, false},
	{"", 2, "lab: a\n---\nlab: b\n", exitInvalid, []string{"a second YAML document", "want one lab per file"}, false},
	{"bogus", 2, "lab: demo\nbogus: 1\n", exitInvalid, []string{`"bogus"`, "want one of lab, networks, containers, links"}, false},
	{"lab", 1, "lab: a/b\n", exitInvalid, []string{`"a/b"`, labName63}, true},
	{"lab", 1, "lab: -x\n", exitInvalid, []string{`"-x"`, "starting with a letter or digit"}, true},
	{"lab", 1, "lab: {x: 1}\n", exitInvalid, []string{"got a mapping", "want a name"}, true},
	{"networks", 1, "networks: [a]\n", exitInvalid, []string{"got a list", "want a mapping from each network's name to its settings"}, false},
	{"containers", 1, "containers: web\n", exitInvalid, []string{`got "web"`, "want a mapping from each container's name to its settings"}, false},
	{"links", 1, "links: {a: 1}\n", exitInvalid, []string{"got a mapping", "want a list of links, each with a: and b: ends"}, false},

	// networks
	{"networks.a/b", 2, "networks:\n  a/b: {}\n", exitInvalid, []string{`"a/b"`, labName63}, false},
	{"networks.none", 2, "networks:\n  none: {}\n", exitInvalid, []string{`"none" is reserved`, "want another name"}, false},
	{"networks.n", 2, "networks:\n  n: [subnet]\n", exitInvalid, []string{"got a list", "want a mapping with keys subnet, gateway, bridge, internal, mtu, dns"}, false},
	{"networks.n.colour", 3, "networks:\n  n:\n    colour: red\n", exitInvalid, []string{`"colour"`, "want one of subnet, gateway"}, false},
	{"networks.taken", 2, "networks:\n  taken: {}\n", exitConflict, []string{"network taken already exists", "outside any lab", "rename the network"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: bogus\n", exitInvalid, []string{`"bogus"`, "want e.g. 172.18.0.0/24"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: 10.0.0.0/31\n", exitInvalid, []string{`"10.0.0.0/31"`, "/8 to /30"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: 127.0.0.0/8\n", exitInvalid, []string{`"127.0.0.0/8"`, "loopback", "want a private range"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: 224.1.0.0/16\n", exitInvalid, []string{`"224.1.0.0/16"`, "multicast"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: 169.254.0.0/16\n", exitInvalid, []string{`"169.254.0.0/16"`, "link-local", "want a private range"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: 169.254.7.0/24\n", exitInvalid, []string{`"169.254.7.0/24"`, "overlaps 169.254.0.0/16", "link-local"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: 10.0.0.1/24\n", exitInvalid, []string{`"10.0.0.1/24"`, "did you mean 10.0.0.0/24"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: fd00::/64\n", exitInvalid, []string{`"fd00::/64"`, "IPv4 prefix"}, false},
	{"networks.n.subnet", 3, "networks:\n  n:\n    subnet: [10.0.0.0/24]\n", exitInvalid, []string{"got a list", "IPv4 address with its prefix length"}, false},
	{"networks.n.subnet", 5, "networks:\n  ok:\n    subnet: 10.1.0.0/24\n  n:\n    subnet: 172.30.50.128/25\n", exitConflict, []string{"172.30.50.128/25", "network taken (172.30.50.0/24)", "choose a subnet that overlaps no other network"}, false},
	{"networks.n.gateway", 4, "networks:\n  n:\n    subnet: 10.8.0.0/24\n    gateway: x\n", exitInvalid, []string{`"x"`, "IPv4 address"}, false},
	{"networks.n.gateway", 4, "networks:\n  n:\n    subnet: 10.8.0.0/24\n    gateway: 10.9.0.1\n", exitInvalid, []string{`"10.9.0.1"`, "inside 10.8.0.0/24"}, false},
	{"networks.n.gateway", 4, "networks:\n  n:\n    subnet: 10.8.0.0/24\n    gateway: 10.8.0.255\n", exitInvalid, []string{`"10.8.0.255"`, "10.8.0.1 to 10.8.0.254"}, false},
	{"networks.n.gateway", 3, "networks:\n  n:\n    gateway: 10.9.0.1\n", exitInvalid, []string{"10.9.0.1 needs a subnet", "want subnet: set as well"}, false},
	{"networks.n.bridge", 3, "networks:\n  n:\n    bridge: this-name-is-too-long\n", exitInvalid, []string{`"this-name-is-too-long"`, "at most 15 bytes"}, false},
	{"networks.n.bridge", 3, "networks:\n  n:\n    bridge: a/b\n", exitInvalid, []string{`"a/b"`, "no '/'"}, false},
	{"networks.n.bridge", 3, "networks:\n  n:\n    bridge: [br0]\n", exitInvalid, []string{"got a list", "want an interface name"}, false},
	{"networks.n.bridge", 3, "networks:\n  n:\n    bridge: lo\n", exitConflict, []string{"bridge name lo", "an existing link that cnet did not create", "choose another"}, false},
	{"networks.n.bridge", 3, "networks:\n  n:\n    bridge: cnet-taken\n", exitConflict, []string{"bridge name cnet-taken", "network taken", "choose another"}, false},
	{"networks.n.internal", 3, "networks:\n  n:\n    internal: yes please\n", exitInvalid, []string{`"yes please"`, "want true or false"}, false},
	{"networks.n.internal", 3, "networks:\n  n:\n    internal: 1\n", exitInvalid, []string{`"1"`, "want true or false"}, false},
	{"networks.n.mtu", 3, "networks:\n  n:\n    mtu: 10\n", exitInvalid, []string{`"10"`, "68 to 65535"}, false},
	{"networks.n.mtu", 3, "networks:\n  n:\n    mtu: 65536\n", exitInvalid, []string{`"65536"`, "68 to 65535"}, false},
	{"networks.n.mtu", 3, "networks:\n  n:\n    mtu: big\n", exitInvalid, []string{`"big"`, "whole number from 68 to 65535"}, false},
	{"networks.n.dns", 3, "networks:\n  n:\n    dns: maybe\n", exitInvalid, []string{`"maybe"`, "want true or false"}, false},

	// containers
	{"containers.a/b", 2, "containers:\n  a/b: {}\n", exitInvalid, []string{`"a/b"`, labName63}, false},
	{"containers.a", 2, "containers:\n  a: [taken]\n", exitInvalid, []string{"got a list", "want a mapping with keys networks, ports, dns, routes, forwarding, command"}, false},
	{"containers.a.colour", 3, "containers:\n  a:\n    colour: red\n", exitInvalid, []string{`"colour"`, "want one of networks, ports"}, false},
	{"containers.holder", 2, "containers:\n  holder: {networks: [taken]}\n", exitConflict, []string{"container holder already exists", "outside any lab", "rename the container"}, false},
	{"containers.a.networks", 3, "containers:\n  a:\n    networks: taken\n", exitInvalid, []string{`got "taken"`, "want a list of network names or {network, ip, aliases, egress}"}, false},
	{"containers.a.networks[0]", 3, "containers:\n  a:\n    networks: [a/b]\n", exitInvalid, []string{`"a/b"`, labName63}, false},
	{"containers.a.networks[0]", 4, "containers:\n  a:\n    networks:\n      - ip: 172.30.50.9\n", exitInvalid, []string{"no network", "want network: NAME"}, false},
	{"containers.a.networks[1]", 3, "containers:\n  a:\n    networks: [taken, taken]\n", exitInvalid, []string{`"taken" is listed twice`, "want each network once"}, false},
	{"containers.a.networks[0]", 3, "containers:\n  a:\n    networks: [elsewhere]\n", exitNotFound, []string{`"elsewhere"`, "want one of: taken"}, false},
	{"containers.a.networks[0].network", 4, "containers:\n  a:\n    networks:\n      - network: [taken]\n", exitInvalid, []string{"got a list", "want a name"}, false},
	{"containers.a.networks[0].mask", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        mask: 24\n", exitInvalid, []string{`"mask"`, "want one of network, ip, aliases, egress"}, false},
	{"containers.a.networks[0].ip", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        ip: 172.30.50.999\n", exitInvalid, []string{`"172.30.50.999"`, "IPv4 address"}, false},
	{"containers.a.networks[0].ip", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        ip: \"::1\"\n", exitInvalid, []string{`"::1"`, "IPv4 address"}, false},
	{"containers.a.networks[0].ip", 7, "networks:\n  n: {subnet: 10.5.0.0/24}\ncontainers:\n  a:\n    networks:\n      - network: n\n        ip: 10.6.0.9\n", exitInvalid, []string{`"10.6.0.9"`, "inside 10.5.0.0/24"}, false},
	{"containers.a.networks[0].ip", 7, "networks:\n  n: {subnet: 10.5.0.0/24}\ncontainers:\n  a:\n    networks:\n      - network: n\n        ip: 10.5.0.1\n", exitInvalid, []string{`"10.5.0.1"`, "gateway", "10.5.0.1 to 10.5.0.254"}, false},
	{"containers.a.networks[0].ip", 7, "networks:\n  n: {subnet: 10.5.0.0/24}\ncontainers:\n  a:\n    networks:\n      - network: n\n        ip: 10.5.0.255\n", exitInvalid, []string{`"10.5.0.255"`, "broadcast", "10.5.0.1 to 10.5.0.254"}, false},
	{"containers.b.networks[0].ip", 5, "networks:\n  n: {subnet: 10.5.0.0/24}\ncontainers:\n  a: {networks: [{network: n, ip: 10.5.0.9}]}\n  b: {networks: [{network: n, ip: 10.5.0.9}]}\n", exitInvalid, []string{"10.5.0.9 is also a's address", "want each address once"}, false},
	{"containers.b.networks[0].ip", 7, "containers:\n  a: {networks: [taken]}\n  b:\n    networks:\n      - network: taken\n        aliases: [bee]\n        ip: 172.30.50.5\n", exitConflict, []string{"address 172.30.50.5", "container holder", "choose another"}, false},
	{"containers.a.networks[0].aliases[0]", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        aliases: [a/b]\n", exitInvalid, []string{`"a/b"`, labName63}, false},
	{"containers.a.networks[0].aliases", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        aliases: www\n", exitInvalid, []string{`got "www"`, "want a list of names"}, false},
	{"containers.a.networks[0].egress", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        egress: fast\n", exitInvalid, []string{`"fast"`, "e.g. 10mbit"}, false},
	{"containers.a.networks[0].egress", 5, "containers:\n  a:\n    networks:\n      - network: taken\n        egress: 1bit\n", exitInvalid, []string{`"1bit"`, "want 8kbit to 1tbit"}, false},
	{"containers.a.ports", 4, "containers:\n  a:\n    networks: [taken]\n    ports: \"8081:80\"\n", exitInvalid, []string{`got "8081:80"`, "want a list of port specs such as 8080:80"}, false},
	{"containers.a.ports[0]", 5, "containers:\n  a:\n    networks: [taken]\n    ports:\n      - \"80\"\n", exitInvalid, []string{`"80"`, "HOSTPORT", "e.g. 8080:80"}, false},
	{"containers.a.ports[1]", 6, "containers:\n  a:\n    networks: [taken]\n    ports:\n      - \"8081:80\"\n      - \"70000:80\"\n", exitInvalid, []string{`"70000:80"`, "outside 1-65535"}, false},
	{"containers.a.ports[0]", 5, "containers:\n  a:\n    networks: [taken]\n    ports:\n      - \"81:80/sctp\"\n", exitInvalid, []string{`"sctp"`, "neither tcp nor udp"}, false},
	{"containers.a.ports", 2, "containers:\n  a:\n    networks: [i]\n    ports: [\"81:80\"]\nnetworks:\n  i: {subnet: 10.5.0.0/24, internal: true}\n", exitInvalid, []string{"published ports need a network beyond a bridge", "want a network that is not internal"}, false},
	{"containers.a.ports", 4, "containers:\n  a:\n    networks: [taken]\n    ports: [\"8080:80\"]\n", exitConflict, []string{"8080:80/tcp", "container holder", "choose another host port"}, false},
	{"containers.a.ports", 4, "containers:\n  a:\n    networks: [taken]\n    ports: [\"10.9.9.9:81:80\"]\n", exitInvalid, []string{`"10.9.9.9"`, "want 0.0.0.0, 127.0.0.1 or an address assigned to this host"}, false},
	{"containers.a.dns[0]", 4, "containers:\n  a:\n    networks: [taken]\n    dns: [nameserver]\n", exitInvalid, []string{`"nameserver"`, "IPv4 address"}, false},
	{"containers.a.dns", 4, "containers:\n  a:\n    networks: [taken]\n    dns: 1.1.1.1\n", exitInvalid, []string{`got "1.1.1.1"`, "want a list of IPv4 addresses"}, false},
	{"containers.a.routes", 4, "containers:\n  a:\n    networks: [taken]\n    routes: {to: 10.2.0.0/24}\n", exitInvalid, []string{"got a mapping", "want a list of routes, each {to: PREFIX, via: ADDRESS}"}, false},
	{"containers.a.routes[0]", 5, "containers:\n  a:\n    networks: [taken]\n    routes:\n      - to: 10.2.0.0/24\n", exitInvalid, []string{"want both to: PREFIX and via: ADDRESS"}, false},
	{"containers.a.routes[0].metric", 6, "containers:\n  a:\n    networks: [taken]\n    routes:\n      - to: 10.2.0.0/24\n        metric: 5\n", exitInvalid, []string{`"metric"`, "want one of to, via"}, false},
	{"containers.a.routes[0].to", 5, "containers:\n  a:\n    networks: [taken]\n    routes:\n      - to: bogus\n        via: 172.30.50.1\n", exitInvalid, []string{`"bogus"`, "want e.g. 10.2.0.0/24"}, false},
	{"containers.a.routes[0].to", 5, "containers:\n  a:\n    networks: [taken]\n    routes:\n      - to: 10.2.0.1/24\n        via: 172.30.50.1\n", exitInvalid, []string{`"10.2.0.1/24" has host bits set`, "want 10.2.0.0/24"}, false},
	{"containers.a.routes", 4, "containers:\n  a:\n    networks: [taken]\n    routes: [{to: 0.0.0.0/0, via: 172.30.50.1}]\n", exitInvalid, []string{`"0.0.0.0/0"`, "want a prefix other than the default route"}, false},
	{"containers.a.routes", 4, "containers:\n  a:\n    networks: [taken]\n    routes: [{to: 10.2.0.0/24, via: 172.30.50.1}, {to: 10.2.0.0/24, via: 172.30.50.1}]\n", exitInvalid, []string{`"10.2.0.0/24"`, "want each destination once"}, false},
	{"containers.a.routes[0].via", 6, "containers:\n  a:\n    networks: [taken]\n    routes:\n      - to: 10.2.0.0/24\n        via: x\n", exitInvalid, []string{`"x"`, "IPv4 address"}, false},
	{"containers.a.routes[0].via", 4, "networks:\n  n: {subnet: 10.5.0.0/24}\ncontainers:\n  a:\n    networks: [n]\n    routes: [{to: 10.2.0.0/24, via: 10.9.9.9}]\n", exitInvalid, []string{"10.9.9.9 is on none of a's subnets", "want an address on one of its networks or links"}, false},
	{"containers.a.routes", 4, "containers:\n  a:\n    networks: [taken]\n    routes: [{to: 10.2.0.0/24, via: 10.9.9.9}]\n", exitInvalid, []string{`"10.9.9.9"`, "want an address on one of a's subnets: 172.30.50.0/24"}, false},
	{"containers.a.forwarding", 4, "containers:\n  a:\n    networks: [taken]\n    forwarding: yes please\n", exitInvalid, []string{`"yes please"`, "want true or false"}, false},
	{"containers.a.command", 4, "containers:\n  a:\n    networks: [taken]\n    command: \"  \"\n", exitInvalid, []string{"the command is empty", "want a command line or a list of arguments"}, false},
	{"containers.a.command", 4, "containers:\n  a:\n    networks: [taken]\n    command: []\n", exitInvalid, []string{"the command is empty", "want a command line or a list of arguments"}, false},
	{"containers.a.command", 4, "containers:\n  a:\n    networks: [taken]\n    command: {run: x}\n", exitInvalid, []string{"got a mapping", "want a list of arguments (or one string for /bin/sh -c)"}, false},

	// links
	{"links[0]", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - 7\n", exitInvalid, []string{`got "7"`, "want a mapping with keys a, b, mtu"}, false},
	{"links[0].colour", 7, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: b\n    colour: red\n", exitInvalid, []string{`"colour"`, "want one of a, b, mtu"}, false},
	{"links[0]", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n", exitInvalid, []string{"want both ends, a: and b:"}, false},
	{"links[0].a", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a/b\n    b: b\n", exitInvalid, []string{`"a/b"`, labName63}, false},
	{"links[0].a", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: [a]\n    b: b\n", exitInvalid, []string{"got a list", "want a mapping with keys container, interface, ip, egress"}, false},
	{"links[0].b.container", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: ghost\n", exitInvalid, []string{`"ghost" is not a container of this lab`, "want one of: a, b"}, false},
	{"links[0].b.container", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: a\n", exitInvalid, []string{`"a" is also end a`, "want two different containers"}, false},
	{"links[0].a", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {interface: p0}\n    b: b\n", exitInvalid, []string{"no container", "want container: NAME"}, false},
	{"links[0].a.port", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, port: 3}\n    b: b\n", exitInvalid, []string{`"port"`, "want one of container, interface, ip, egress"}, false},
	{"links[0].a.container", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: -a}\n    b: b\n", exitInvalid, []string{`"-a"`, labName63}, false},
	{"links[0].a.interface", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, interface: eth0}\n    b: b\n", exitInvalid, []string{`"eth0" is taken inside containers`, "want another name"}, false},
	{"links[0].a.interface", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, interface: lo}\n    b: b\n", exitInvalid, []string{`"lo" is taken inside containers`, "want another name"}, false},
	{"links[0].a.interface", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, interface: this-name-is-too-long}\n    b: b\n", exitInvalid, []string{`"this-name-is-too-long"`, "at most 15 bytes"}, false},
	{"links[0].a.interface", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, interface: a/b}\n    b: b\n", exitInvalid, []string{`"a/b"`, "no '/'"}, false},
	{"links[0].b.interface", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: {container: b, interface: [p0]}\n", exitInvalid, []string{"got a list", "want an interface name"}, false},
	{"links[0].b", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: [b]\n", exitInvalid, []string{"got a list", "want a mapping with keys container, interface, ip, egress"}, false},
	{"links[0]", 5, "containers:\n  a: {}\n  a-container-with-a-long-name: {}\nlinks:\n  - a: a\n    b: a-container-with-a-long-name\n", exitInvalid, []string{`"a-container-with-a-long-name"`, "longer than 15 bytes", "want interface: set on that end"}, false},
	{"links[1]", 7, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: b\n  - a: a\n    b: b\n", exitInvalid, []string{`container a already has an interface "b"`, "want interface: set to another name"}, false},
	{"links[0]", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, ip: 10.0.0.1/30}\n    b: b\n", exitInvalid, []string{"only one end has an ip", "want an ip on both ends or on neither"}, false},
	{"links[0].a.ip", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, ip: bogus}\n    b: {container: b, ip: 10.0.0.2/30}\n", exitInvalid, []string{`"bogus"`, "want e.g. 10.0.0.1/30"}, false},
	{"links[0].a.ip", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, ip: 10.0.0.0/30}\n    b: {container: b, ip: 10.0.0.2/30}\n", exitInvalid, []string{"10.0.0.0 is the network or broadcast address of 10.0.0.0/30", "want a host address"}, false},
	{"links[0].b.ip", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, ip: 10.0.0.1/30}\n    b: {container: b, ip: 10.0.1.2/30}\n", exitInvalid, []string{"10.0.1.2/30 is not in the subnet of end a", "want both ends in one subnet"}, false},
	{"links[0].b.ip", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, ip: 10.0.0.1/30}\n    b: {container: b, ip: 10.0.0.1/30}\n", exitInvalid, []string{"10.0.0.1/30 is also end a's address", "want two different addresses"}, false},
	{"links[0].a.egress", 5, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: {container: a, egress: fast}\n    b: b\n", exitInvalid, []string{`"fast"`, "e.g. 10mbit"}, false},
	{"links[0].b.egress", 6, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: {container: b, egress: 2tbit}\n", exitInvalid, []string{`"2tbit"`, "want 8kbit to 1tbit"}, false},
	{"links[0].mtu", 7, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: b\n    mtu: 10\n", exitInvalid, []string{`"10"`, "68 to 65535"}, false},
	{"links[0].mtu", 7, "containers:\n  a: {}\n  b: {}\nlinks:\n  - a: a\n    b: b\n    mtu: huge\n", exitInvalid, []string{`"huge"`, "whole number from 68 to 65535"}, false},
}

// TestLabBadInputCatalogue: every lab-file case above is refused by `cnet
// apply -f` and `cnet diff -f` with its exit code and a message naming
// the file and line, the field, the value and what is accepted, and
// changes nothing: links, addresses, routes, namespaces, /etc/netns, the
// ruleset, the state database and the name server's records are as
// before. Every field of docs/lab.schema.json has a case.
func TestLabBadInputCatalogue(t *testing.T) {
	c := labCLI(t)
	c.ok("network", "create", "taken", "--subnet", "172.30.50.0/24")
	c.ok("create", "holder", "--network", "taken", "--ip", "172.30.50.5", "-p", "8080:80")
	before := c.settled()
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")

	covered := map[string]bool{}
	norm := regexp.MustCompile(`\[\d+\]`)
	for _, tc := range labBads {
		f := norm.ReplaceAllString(tc.field, "[]")
		if p := strings.SplitN(f, ".", 3); len(p) >= 2 && (p[0] == "networks" || p[0] == "containers") {
			p[1] = "*"
			f = strings.Join(p, ".")
		}
		covered[f] = true
	}
	var missing []string
	for _, f := range schemaFields(t, "../../docs/lab.schema.json") {
		if !covered[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		t.Errorf("lab-file fields without a bad-input case (add them to labBads in cmd/cnet/labbad_test.go):\n%s", strings.Join(missing, "\n"))
	}

	for i, tc := range labBads {
		t.Run(fmt.Sprintf("%d:%s", i, tc.field), func(t *testing.T) {
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			prefix := "bad.yaml:"
			if tc.line > 0 {
				prefix += fmt.Sprintf("%d:", tc.line)
			}
			if tc.field != "" {
				prefix += " " + tc.field + ": "
			}
			verbs := []string{"apply", "diff"}
			if tc.destroy {
				verbs = append(verbs, "destroy")
			}
			for _, verb := range verbs {
				r := c.run(verb, "-f", file)
				if r.code == 0 {
					t.Fatalf("%s -f accepted\n%s\n%s", verb, tc.yaml, r.stdout)
				}
				if r.code != tc.code {
					t.Errorf("%s -f: exit %d, want %d\n%s", verb, r.code, tc.code, r.stderr)
				}
				for _, s := range append([]string{prefix}, tc.says...) {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("%s -f: the message does not say %q:\n%s", verb, s, r.stderr)
					}
				}
			}
			if after := c.full(); after != before {
				t.Fatalf("the refusal changed something (+ after, - before):\n%s", testenv.Diff(after, before))
			}
		})
	}
}

// schemaFields lists every field a JSON Schema describes, as paths such
// as networks.*.subnet or links[].a.ip (names of networks and containers
// are *, list items []).
func schemaFields(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["$defs"].(map[string]any)
	out := map[string]bool{}
	var walk func(node any, at string, depth int)
	walk = func(node any, at string, depth int) {
		n, ok := node.(map[string]any)
		if !ok || depth > 20 {
			return
		}
		if ref, ok := n["$ref"].(string); ok {
			walk(defs[strings.TrimPrefix(ref, "#/$defs/")], at, depth+1)
		}
		if props, ok := n["properties"].(map[string]any); ok {
			for k, v := range props {
				p := k
				if at != "" {
					p = at + "." + k
				}
				out[p] = true
				walk(v, p, depth+1)
			}
		}
		if ap, ok := n["additionalProperties"].(map[string]any); ok {
			out[at+".*"] = true
			walk(ap, at+".*", depth+1)
		}
		if items, ok := n["items"]; ok {
			walk(items, at+"[]", depth+1)
		}
		for _, k := range []string{"oneOf", "anyOf", "allOf"} {
			if alts, ok := n[k].([]any); ok {
				for _, a := range alts {
					walk(a, at, depth+1)
				}
			}
		}
	}
	walk(root, "", 0)
	return slices.Sorted(maps.Keys(out))
}
