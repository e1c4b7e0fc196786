// Package lab reads a lab file (a whole topology of networks, containers
// and direct links, in YAML) and converges the machine to it through the
// cnet engine: it compares the file with what exists, prints the plan, and
// applies it one object at a time. Every object a lab makes carries the
// lab's name, so destroying a lab removes exactly what it made.
package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/ipam"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/plan"
)

// File is a parsed, validated lab file. Maps keep the file's order in the
// accompanying name lists, and apply follows that order.
type File struct {
	// Path is where the file was read from ("" for data).
	Path string
	// Name is the lab's name: `lab:` in the file, else the file's base
	// name without its extension.
	Name       string
	Networks   []*Network
	Containers []*Container
	Links      []*Link
}

// Network is a bridge network of the lab.
type Network struct {
	Name     string
	Subnet   netip.Prefix // zero: the first free subnet of the pool
	Gateway  netip.Addr   // zero: the subnet's first host address
	Bridge   string       // "": derived from the name
	Internal bool
	MTU      int  // 0: 1500
	DNS      bool // cnet's name server on the gateway (default true)
	Line     int
	// Lines are the lines of the fields given, by key (subnet, bridge...).
	Lines map[string]int
}

// Container is a container of the lab.
type Container struct {
	Name       string
	Networks   []*Attach
	Ports      []cnet.PortMapping
	DNS        []netip.Addr
	Routes     []cnet.Route
	Forwarding bool
	// Command runs detached in the container (as `cnet run -d`).
	Command []string
	Line    int
	// Lines are the lines of the fields given, by key (networks, ports...).
	Lines map[string]int
}

// Attach is a container's endpoint on a network.
type Attach struct {
	Network string
	IP      netip.Addr // zero: the lowest free address
	Aliases []string
	Egress  uint64 // bits/s, 0: no limit
	Line    int
	// Lines are the lines of the fields given, by key (ip, aliases...).
	Lines map[string]int
}

// Link is a direct link: a veth pair between two containers, no bridge.
type Link struct {
	A, B LinkEnd
	MTU  int // 0: 1500
	Line int
	// Lines are the lines of the fields given, by key (a, b, mtu).
	Lines map[string]int
}

// LinkEnd is one end of a direct link.
type LinkEnd struct {
	Container string
	Interface string       // "": the peer container's name
	IP        netip.Prefix // address/length, or none
	Egress    uint64
}

// Network returns the file's network called name, or nil.
func (f *File) Network(name string) *Network {
	for _, n := range f.Networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Container returns the file's container called name, or nil.
func (f *File) Container(name string) *Container {
	for _, c := range f.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Error is a problem at a place in a lab file. It names the line, the
// field, the bad value and what is accepted.
type Error struct {
	File  string
	Line  int
	Field string // e.g. containers.web.networks[0].ip
	Msg   string
	err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes every file error an ErrInvalid.
func (e *Error) Unwrap() error {
	if e.err != nil {
		return e.err
	}
	return errs.ErrInvalid
}

// parser walks the YAML node tree, so every error knows its line.
type parser struct {
	file  string
	lines int // in the file
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// wrap turns an engine validation error into a file error at n.
func (p *parser) wrap(n *yaml.Node, field string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var inv *errs.InvalidError
	if errors.As(err, &inv) {
		msg = fmt.Sprintf("%q: %s", inv.Value, inv.Want)
	}
	return &Error{File: p.file, Line: n.Line, Field: field, Msg: msg}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// fields walks a mapping, refusing keys outside allowed and repeated keys.
func (p *parser) fields(n *yaml.Node, field string, allowed []string, each func(key string, k, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		if allowed == nil { // networks:, containers:
			return p.fail(n, field, "got %s; want a mapping from each %s's name to its settings, e.g. %s", describeNode(n),
				strings.TrimSuffix(field, "s"), map[string]string{"networks": "{front: {subnet: 172.18.0.0/24}}", "containers": "{web: {networks: [front]}}"}[field])
		}
		return p.fail(n, field, "got %s; want a mapping with keys %s", describeNode(n), strings.Join(allowed, ", "))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if allowed != nil && !slices.Contains(allowed, key) {
			return p.fail(k, join(field, key), "unknown field %q; want one of %s", key, strings.Join(allowed, ", "))
		}
		if seen[key] {
			return p.fail(k, join(field, key), "%q appears twice; want each key once", key)
		}
		seen[key] = true
		if err := each(key, k, v); err != nil {
			return err
		}
	}
	return nil
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func (p *parser) str(n *yaml.Node, field, want string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.fail(n, field, "got %s; want %s", describeNode(n), want)
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, p.fail(n, field, "got %s; want true or false", describeNode(n))
}

func (p *parser) list(n *yaml.Node, field, want string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.fail(n, field, "got %s; want a list of %s", describeNode(n), want)
	}
	return n.Content, nil
}

func (p *parser) strings(n *yaml.Node, field, want string) ([]string, error) {
	items, err := p.list(n, field, want)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, it := range items {
		s, err := p.str(it, fmt.Sprintf("%s[%d]", field, i), want)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) name(n *yaml.Node, field, what string) (string, error) {
	s, err := p.str(n, field, "a name")
	if err != nil {
		return "", err
	}
	return s, p.wrap(n, field, names.CheckName(what, s))
}

func (p *parser) addr(n *yaml.Node, field string) (netip.Addr, error) {
	s, err := p.str(n, field, "an IPv4 address")
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, p.fail(n, field, "%q is not an IPv4 address; want e.g. 172.18.0.5", s)
	}
	return a, nil
}

func (p *parser) prefix(n *yaml.Node, field, example string) (netip.Prefix, error) {
	s, err := p.str(n, field, "an IPv4 address with its prefix length")
	if err != nil {
		return netip.Prefix{}, err
	}
	a, err := netip.ParsePrefix(s)
	if err != nil || !a.Addr().Is4() {
		return netip.Prefix{}, p.fail(n, field, "%q is not an IPv4 prefix; want e.g. %s", s, example)
	}
	return a, nil
}

func (p *parser) rate(n *yaml.Node, field string) (uint64, error) {
	s, err := p.str(n, field, "a rate such as 10mbit")
	if err != nil {
		return 0, err
	}
	r, err := cnet.ParseRate(s)
	return r, p.wrap(n, field, err)
}

func (p *parser) integer(n *yaml.Node, field string, lo, hi int) (int, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.Atoi(n.Value)
		if err == nil && v >= lo && v <= hi {
			return v, nil
		}
	}
	return 0, p.fail(n, field, "got %s; want a whole number from %d to %d", describeNode(n), lo, hi)
}

// Top-level and per-object keys, as documented in docs/labs.md and
// docs/lab.schema.json.
var (
	fileKeys      = []string{"lab", "networks", "containers", "links"}
	networkKeys   = []string{"subnet", "gateway", "bridge", "internal", "mtu", "dns"}
	containerKeys = []string{"networks", "ports", "dns", "routes", "forwarding", "command"}
	attachKeys    = []string{"network", "ip", "aliases", "egress"}
	routeKeys     = []string{"to", "via"}
	linkKeys      = []string{"a", "b", "mtu"}
	linkEndKeys   = []string{"container", "interface", "ip", "egress"}
)

// Parse reads and validates a lab file. path names it in errors and gives
// the default lab name.
func Parse(path string, data []byte) (*File, error) {
	p := &parser{file: path, lines: len(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"))}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, p.fail(nil, "", "the file is empty; want a mapping with keys %s", strings.Join(fileKeys, ", "))
	} else if err != nil {
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.fail(&extra, "", "a second YAML document; want one lab per file")
	}
	if len(doc.Content) == 0 {
		return nil, p.fail(nil, "", "the file is empty; want a mapping with keys %s", strings.Join(fileKeys, ", "))
	}
	root := doc.Content[0]
	f := &File{Path: path}
	if path != "" {
		f.Name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".yaml"), ".yml")
	}
	var networks, containers, links *yaml.Node
	err := p.fields(root, "", fileKeys, func(key string, _, v *yaml.Node) error {
		switch key {
		case "lab":
			name, err := p.name(v, "lab", "lab")
			f.Name = name
			return err
		case "networks":
			networks = v
		case "containers":
			containers = v
		case "links":
			links = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.wrap(root, "lab", names.CheckName("lab", f.Name)); err != nil {
		return nil, &Error{File: path, Line: 1, Field: "lab", Msg: fmt.Sprintf("the file name gives the lab name %q, which is not a valid name; set `lab: NAME` (letters, digits, '-', '_' and '.')", f.Name)}
	}
	if networks != nil {
		if err := p.fields(networks, "networks", nil, func(name string, k, v *yaml.Node) error {
			n, err := p.network(k, v)
			f.Networks = append(f.Networks, n)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if containers != nil {
		if err := p.fields(containers, "containers", nil, func(name string, k, v *yaml.Node) error {
			c, err := p.container(f, k, v)
			f.Containers = append(f.Containers, c)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if links != nil {
		items, err := p.list(links, "links", "links, each with a: and b: ends")
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			l, err := p.link(f, fmt.Sprintf("links[%d]", i), it)
			if err != nil {
				return nil, err
			}
			f.Links = append(f.Links, l)
		}
	}
	if err := p.crossCheck(f); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *parser) yamlError(err error) error {
	msg := err.Error()
	line := 0
	// yaml.v3 reports "yaml: line N: ..."
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if num, tail, ok := strings.Cut(rest, ":"); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, strings.TrimSpace(tail)
			}
		}
	}
	// For "did not find expected ..." yaml.v3 gives the line where the
	// unclosed collection starts, counting from 0 (unless that is the
	// first line: then the line where it gave up): count from 1, and
	// never past the file's last line.
	if strings.HasPrefix(msg, "did not find expected") {
		line = min(line+1, max(p.lines, 1))
		msg += " in the collection that starts on this line"
	}
	return &Error{File: p.file, Line: line, Msg: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (p *parser) network(k, v *yaml.Node) (*Network, error) {
	field := "networks." + k.Value
	n := &Network{Name: k.Value, DNS: true, Line: k.Line, Lines: map[string]int{}}
	if err := p.wrap(k, field, names.CheckName("network", n.Name)); err != nil {
		return n, err
	}
	if n.Name == plan.NoNetwork {
		return n, p.fail(k, field, "%q is reserved for containers with no network; want another name", n.Name)
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return n, nil // `name:` alone: all defaults
	}
	err := p.fields(v, field, networkKeys, func(key string, _, v *yaml.Node) error {
		f := join(field, key)
		n.Lines[key] = v.Line
		var err error
		switch key {
		case "subnet":
			if n.Subnet, err = p.prefix(v, f, "172.18.0.0/24"); err == nil {
				err = p.wrap(v, f, ipam.CheckSubnet(n.Subnet))
			}
		case "gateway":
			n.Gateway, err = p.addr(v, f)
		case "bridge":
			var s string
			if s, err = p.str(v, f, "an interface name"); err == nil {
				n.Bridge, err = s, p.wrap(v, f, names.CheckIfName("bridge name", s))
			}
		case "internal":
			n.Internal, err = p.boolean(v, f)
		case "mtu":
			n.MTU, err = p.integer(v, f, plan.MinMTU, plan.MaxMTU)
		case "dns":
			n.DNS, err = p.boolean(v, f)
		}
		return err
	})
	if err != nil {
		return n, err
	}
	if n.Gateway.IsValid() {
		at := &yaml.Node{Line: n.Lines["gateway"]}
		if !n.Subnet.IsValid() {
			return n, p.fail(at, field+".gateway", "%s needs a subnet to belong to; want subnet: set as well", n.Gateway)
		}
		if err := ipam.CheckGateway(n.Subnet, n.Gateway); err != nil {
			return n, p.wrap(at, field+".gateway", err)
		}
	}
	return n, nil
}

func (p *parser) container(f *File, k, v *yaml.Node) (*Container, error) {
	field := "containers." + k.Value
	c := &Container{Name: k.Value, Line: k.Line, Lines: map[string]int{}}
	if err := p.wrap(k, field, names.CheckName("container", c.Name)); err != nil {
		return c, err
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return c, nil
	}
	err := p.fields(v, field, containerKeys, func(key string, _, v *yaml.Node) error {
		fk := join(field, key)
		c.Lines[key] = v.Line
		switch key {
		case "networks":
			items, err := p.list(v, fk, "network names or {network, ip, aliases, egress}")
			if err != nil {
				return err
			}
			for i, it := range items {
				a, err := p.attach(fmt.Sprintf("%s[%d]", fk, i), it)
				if err != nil {
					return err
				}
				if slices.ContainsFunc(c.Networks, func(o *Attach) bool { return o.Network == a.Network }) {
					return p.fail(it, fmt.Sprintf("%s[%d]", fk, i), "network %q is listed twice; want each network once", a.Network)
				}
				c.Networks = append(c.Networks, a)
			}
		case "ports":
			specs, err := p.strings(v, fk, "port specs such as 8080:80")
			if err != nil {
				return err
			}
			for i, s := range specs {
				ms, err := cnet.ParsePorts(s)
				if err != nil {
					return p.wrap(v.Content[i], fmt.Sprintf("%s[%d]", fk, i), err)
				}
				c.Ports = append(c.Ports, ms...)
			}
		case "dns":
			items, err := p.list(v, fk, "IPv4 addresses")
			if err != nil {
				return err
			}
			for i, it := range items {
				a, err := p.addr(it, fmt.Sprintf("%s[%d]", fk, i))
				if err != nil {
					return err
				}
				c.DNS = append(c.DNS, a)
			}
		case "routes":
			items, err := p.list(v, fk, "routes, each {to: PREFIX, via: ADDRESS}")
			if err != nil {
				return err
			}
			for i, it := range items {
				r, err := p.route(fmt.Sprintf("%s[%d]", fk, i), it)
				if err != nil {
					return err
				}
				c.Routes = append(c.Routes, r)
			}
		case "forwarding":
			b, err := p.boolean(v, fk)
			c.Forwarding = b
			return err
		case "command":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				if strings.TrimSpace(v.Value) == "" {
					return p.fail(v, fk, "the command is empty; want a command line or a list of arguments")
				}
				c.Command = []string{"/bin/sh", "-c", v.Value}
				return nil
			}
			args, err := p.strings(v, fk, "arguments (or one string for /bin/sh -c)")
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return p.fail(v, fk, "the command is empty; want a command line or a list of arguments")
			}
			c.Command = args
		}
		return nil
	})
	return c, err
}

func (p *parser) attach(field string, n *yaml.Node) (*Attach, error) {
	a := &Attach{Line: n.Line, Lines: map[string]int{}}
	if n.Kind == yaml.ScalarNode {
		name, err := p.name(n, field, "network")
		a.Network = name
		return a, err
	}
	err := p.fields(n, field, attachKeys, func(key string, _, v *yaml.Node) error {
		f := join(field, key)
		a.Lines[key] = v.Line
		var err error
		switch key {
		case "network":
			a.Network, err = p.name(v, f, "network")
		case "ip":
			a.IP, err = p.addr(v, f)
		case "aliases":
			if a.Aliases, err = p.strings(v, f, "names"); err == nil {
				for i, s := range a.Aliases {
					if err := p.wrap(v.Content[i], fmt.Sprintf("%s[%d]", f, i), names.CheckName("alias", s)); err != nil {
						return err
					}
				}
			}
		case "egress":
			a.Egress, err = p.rate(v, f)
		}
		return err
	})
	if err == nil && a.Network == "" {
		return a, p.fail(n, field, "no network; want network: NAME")
	}
	return a, err
}

func (p *parser) route(field string, n *yaml.Node) (cnet.Route, error) {
	var r cnet.Route
	err := p.fields(n, field, routeKeys, func(key string, _, v *yaml.Node) error {
		var err error
		switch key {
		case "to":
			if r.To, err = p.prefix(v, join(field, key), "10.2.0.0/24"); err == nil && r.To != r.To.Masked() {
				err = p.fail(v, join(field, key), "%q has host bits set; want %s", r.To, r.To.Masked())
			}
		case "via":
			r.Via, err = p.addr(v, join(field, key))
		}
		return err
	})
	if err == nil && (!r.To.IsValid() || !r.Via.IsValid()) {
		err = p.fail(n, field, "want both to: PREFIX and via: ADDRESS")
	}
	return r, err
}

func (p *parser) link(f *File, field string, n *yaml.Node) (*Link, error) {
	l := &Link{Line: n.Line, Lines: map[string]int{}}
	var aNode, bNode *yaml.Node
	err := p.fields(n, field, linkKeys, func(key string, _, v *yaml.Node) error {
		l.Lines[key] = v.Line
		var err error
		switch key {
		case "a":
			aNode = v
			l.A, err = p.linkEnd(join(field, key), v)
		case "b":
			bNode = v
			l.B, err = p.linkEnd(join(field, key), v)
		case "mtu":
			l.MTU, err = p.integer(v, join(field, key), plan.MinMTU, plan.MaxMTU)
		}
		return err
	})
	if err != nil {
		return l, err
	}
	if aNode == nil || bNode == nil {
		return l, p.fail(n, field, "want both ends, a: and b:")
	}
	for _, e := range []struct {
		end  *LinkEnd
		node *yaml.Node
		key  string
	}{{&l.A, aNode, "a"}, {&l.B, bNode, "b"}} {
		if f.Container(e.end.Container) == nil {
			return l, p.fail(e.node, join(field, e.key)+".container", "%q is not a container of this lab; want one of: %s", e.end.Container, containerNames(f))
		}
	}
	if l.A.Container == l.B.Container {
		return l, p.fail(bNode, join(field, "b")+".container", "%q is also end a; want two different containers", l.B.Container)
	}
	if l.A.IP.IsValid() != l.B.IP.IsValid() {
		return l, p.fail(n, field, "only one end has an ip; want an ip on both ends or on neither")
	}
	if l.A.IP.IsValid() && l.A.IP.Masked() != l.B.IP.Masked() {
		return l, p.fail(bNode, join(field, "b")+".ip", "%s is not in the subnet of end a (%s); want both ends in one subnet, e.g. 10.0.0.1/30 and 10.0.0.2/30", l.B.IP, l.A.IP.Masked())
	}
	if l.A.IP.IsValid() && l.A.IP.Addr() == l.B.IP.Addr() {
		return l, p.fail(bNode, join(field, "b")+".ip", "%s is also end a's address; want two different addresses", l.B.IP)
	}
	return l, nil
}

func (p *parser) linkEnd(field string, n *yaml.Node) (LinkEnd, error) {
	var e LinkEnd
	if n.Kind == yaml.ScalarNode {
		name, err := p.name(n, field, "container")
		e.Container = name
		return e, err
	}
	err := p.fields(n, field, linkEndKeys, func(key string, _, v *yaml.Node) error {
		f := join(field, key)
		var err error
		switch key {
		case "container":
			e.Container, err = p.name(v, f, "container")
		case "interface":
			if e.Interface, err = p.str(v, f, "an interface name"); err == nil {
				err = p.wrap(v, f, names.CheckIfName("interface", e.Interface))
				if err == nil && (e.Interface == "lo" || isEthN(e.Interface)) {
					err = p.fail(v, f, "%q is taken inside containers (lo, and eth0, eth1, ... for networks); want another name", e.Interface)
				}
			}
		case "ip":
			if e.IP, err = p.prefix(v, f, "10.0.0.1/30"); err == nil && e.IP.Bits() < 31 &&
				(e.IP.Addr() == e.IP.Masked().Addr() || e.IP.Addr() == ipam.Broadcast(e.IP)) {
				err = p.fail(v, f, "%s is the network or broadcast address of %s; want a host address", e.IP.Addr(), e.IP.Masked())
			}
		case "egress":
			e.Egress, err = p.rate(v, f)
		}
		return err
	})
	if err == nil && e.Container == "" {
		err = p.fail(n, field, "no container; want container: NAME")
	}
	return e, err
}

func isEthN(s string) bool {
	rest, ok := strings.CutPrefix(s, "eth")
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

func containerNames(f *File) string {
	var out []string
	for _, c := range f.Containers {
		out = append(out, c.Name)
	}
	if len(out) == 0 {
		return "none (the file declares no containers)"
	}
	return strings.Join(out, ", ")
}

// crossCheck validates what spans objects: addresses inside their
// network's subnet, no address used twice, interface names unique in a
// container, routes through a subnet the container is on.
func (p *parser) crossCheck(f *File) error {
	used := map[netip.Addr]string{}
	for _, c := range f.Containers {
		for i, a := range c.Networks {
			n := f.Network(a.Network)
			field := fmt.Sprintf("containers.%s.networks[%d]", c.Name, i)
			if n == nil || !a.IP.IsValid() {
				continue
			}
			line := a.Line
			if l, ok := a.Lines["ip"]; ok {
				line = l
			}
			if n.Subnet.IsValid() {
				gw := n.Gateway
				if !gw.IsValid() {
					gw = ipam.FirstHost(n.Subnet)
				}
				if err := ipam.CheckHost("ip", n.Subnet, gw, a.IP); err != nil {
					return p.wrap(&yaml.Node{Line: line}, field+".ip", err)
				}
			}
			if other, ok := used[a.IP]; ok {
				return &Error{File: p.file, Line: line, Field: field + ".ip", Msg: fmt.Sprintf("%s is also %s's address; want each address once", a.IP, other)}
			}
			used[a.IP] = c.Name
		}
		if len(c.Ports) > 0 && !slices.ContainsFunc(c.Networks, func(a *Attach) bool {
			n := f.Network(a.Network)
			return n == nil || !n.Internal
		}) {
			return &Error{File: p.file, Line: c.Line, Field: "containers." + c.Name + ".ports",
				Msg: "published ports need a network beyond a bridge; want a network that is not internal in networks"}
		}
	}
	ifaces := map[string][]string{}
	for i, l := range f.Links {
		for _, e := range []struct{ end, peer LinkEnd }{{l.A, l.B}, {l.B, l.A}} {
			name := e.end.Interface
			if name == "" {
				name = e.peer.Container
				if names.CheckIfName("interface", name) != nil {
					return &Error{File: p.file, Line: l.Line, Field: fmt.Sprintf("links[%d]", i),
						Msg: fmt.Sprintf("the interface in %s would be named after %q, which is longer than 15 bytes; want interface: set on that end", e.end.Container, name)}
				}
			}
			if slices.Contains(ifaces[e.end.Container], name) {
				return &Error{File: p.file, Line: l.Line, Field: fmt.Sprintf("links[%d]", i),
					Msg: fmt.Sprintf("container %s already has an interface %q from another link; want interface: set to another name", e.end.Container, name)}
			}
			ifaces[e.end.Container] = append(ifaces[e.end.Container], name)
		}
	}
	for _, c := range f.Containers {
		for i, r := range c.Routes {
			if !reaches(f, c, r.Via) {
				return &Error{File: p.file, Line: c.Line, Field: fmt.Sprintf("containers.%s.routes[%d].via", c.Name, i),
					Msg: fmt.Sprintf("%s is on none of %s's subnets; want an address on one of its networks or links", r.Via, c.Name)}
			}
		}
	}
	return nil
}

// reaches reports whether c has an interface on a subnet holding a. A
// network without a subnet in the file may hold anything.
func reaches(f *File, c *Container, a netip.Addr) bool {
	for _, at := range c.Networks {
		n := f.Network(at.Network)
		if n == nil || !n.Subnet.IsValid() || n.Subnet.Contains(a) {
			return true
		}
	}
	for _, l := range f.Links {
		for _, e := range []LinkEnd{l.A, l.B} {
			if e.Container == c.Name && e.IP.IsValid() && e.IP.Masked().Contains(a) {
				return true
			}
		}
	}
	return false
}
