// Package cni is cnet as a CNI plugin (spec 1.1; 0.3.1, 0.4.0 and 1.0.0
// configurations too): the cnet binary runs it whenever CNI_COMMAND is
// set. It maps ADD, DEL, CHECK, STATUS and GC onto the engine, so
// containers a runtime attaches live in the same state as cnet's own.
package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/names"
)

// Config is a network configuration for `"type": "cnet"`. It accepts the
// reference bridge plugin's keys with a host-local style ipam section, so
// that replacing "bridge" by "cnet" in a conflist just works, and cnet's
// short form (subnet, gateway).
type Config struct {
	types.PluginConf

	Bridge           string `json:"bridge"`
	IsGateway        *bool  `json:"isGateway"`
	IsDefaultGateway *bool  `json:"isDefaultGateway"`
	IPMasq           *bool  `json:"ipMasq"`
	HairpinMode      *bool  `json:"hairpinMode"`
	MTU              int    `json:"mtu"`
	PromiscMode      *bool  `json:"promiscMode"`
	ForceAddress     *bool  `json:"forceAddress"`

	// cnet's short form.
	Subnet   string `json:"subnet"`
	Gateway  string `json:"gateway"`
	Internal bool   `json:"internal"`
	// CnetDNS starts cnet's name server on the gateway of a network this
	// configuration creates. Off by default: the runtime's own DNS plugin
	// (Podman's dnsname, aardvark-dns) binds the gateway's port 53.
	CnetDNS *bool `json:"cnetDNS"`
	NoDNS   bool  `json:"noDNS"`
	// CnetRoot is the state directory (default: CNET_ROOT, else cnet's).
	CnetRoot string `json:"cnetRoot"`
	// LockTimeout bounds the wait for cnet's lock; past it the plugin
	// answers "try again" (code 11). Default 10s.
	LockTimeout string `json:"lockTimeout"`

	IPAM          IPAM          `json:"ipam"`
	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`

	// OldAttachments is what runtimes before CNI 1.1 sent to GC.
	OldAttachments []types.GCAttachment `json:"cni.dev/attachments"`
}

// IPAM is a host-local style ipam section. cnet allocates addresses
// itself, in its own state, whatever the type says: host-local's files
// (and their leaks after a crash or a reboot) are not used.
type IPAM struct {
	Type       string    `json:"type"`
	Subnet     string    `json:"subnet"`
	Gateway    string    `json:"gateway"`
	RangeStart string    `json:"rangeStart"`
	RangeEnd   string    `json:"rangeEnd"`
	Ranges     [][]Range `json:"ranges"`
	Routes     []Route   `json:"routes"`
}

// Range is one host-local range.
type Range struct {
	Subnet     string `json:"subnet"`
	Gateway    string `json:"gateway"`
	RangeStart string `json:"rangeStart"`
	RangeEnd   string `json:"rangeEnd"`
}

// Route is one ipam route.
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw"`
}

// RuntimeConfig holds the capabilities runtimes pass.
type RuntimeConfig struct {
	PortMappings []PortMapping   `json:"portMappings"`
	IPs          []string        `json:"ips"`
	MAC          string          `json:"mac"`
	DNS          *types.DNS      `json:"dns"`
	Aliases      json.RawMessage `json:"aliases"` // ["a"] or {"network": ["a"]} (Podman)
}

// PortMapping is the portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP"`
}

// Error is a CNI error with its code.
type Error = types.Error

// Codes cnet returns besides the library's.
const (
	codePluginNotAvailable = 50
)

func invalid(key, value, want string, args ...any) *Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid %s %q: %s", key, value, fmt.Sprintf(want, args...)), "")
}

func unsupported(key, why string) *Error {
	return types.NewError(types.ErrUnsupportedField, fmt.Sprintf("%s is not supported: %s", key, why), "")
}

// Parse decodes and checks a configuration.
func Parse(data []byte) (*Config, *Error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode the network configuration: "+err.Error(), "")
	}
	if c.Name == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, `missing network "name"`, "")
	}
	return &c, nil
}

// Attach turns a configuration and the runtime's arguments into the
// engine's request. Keys cnet cannot honour are refused (code 2), bad
// values too (code 7), each naming the key.
func (c *Config) Attach(containerID, ifname, netnsPath, cniArgs string) (cnet.CNIAttach, *Error) {
	a := cnet.CNIAttach{ContainerID: containerID, IfName: ifname, Netns: netnsPath}
	switch {
	case c.IsGateway != nil && !*c.IsGateway:
		return a, unsupported("isGateway: false", "a cnet network always holds its gateway address")
	case c.IPMasq != nil && !*c.IPMasq && !c.Internal:
		return a, unsupported("ipMasq: false", `cnet masquerades every network that is not internal; set "internal": true for none`)
	case c.PromiscMode != nil && *c.PromiscMode:
		return a, unsupported("promiscMode: true", "cnet's bridges are not promiscuous")
	case c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535):
		return a, invalid("mtu", fmt.Sprint(c.MTU), "want 68 to 65535")
	}
	if c.IPAM.Type != "" && c.IPAM.Type != "host-local" && c.IPAM.Type != "cnet" {
		return a, unsupported("ipam type "+c.IPAM.Type, "cnet allocates addresses itself; use host-local style keys (subnet, ranges) or none")
	}
	if c.CnetDNS != nil && *c.CnetDNS && c.NoDNS {
		return a, invalid("cnetDNS", "true", `"noDNS": true turns the name server off; set one of the two`)
	}
	// cnet's name server only when asked: the gateway's port 53 is left
	// to the runtime's DNS plugin.
	spec := cnet.NetworkSpec{Name: c.Name, Bridge: c.Bridge, MTU: c.MTU, Internal: c.Internal, NoDNS: c.CnetDNS == nil || !*c.CnetDNS}
	a.DNSSet = c.CnetDNS != nil || c.NoDNS
	subnet, gateway, start, end := c.Subnet, c.Gateway, c.IPAM.RangeStart, c.IPAM.RangeEnd
	if subnet == "" {
		subnet, gateway = c.IPAM.Subnet, firstOf(gateway, c.IPAM.Gateway)
	}
	switch {
	case len(c.IPAM.Ranges) > 1 || len(c.IPAM.Ranges) == 1 && len(c.IPAM.Ranges[0]) > 1:
		return a, unsupported("more than one ipam range", "a cnet network has one IPv4 subnet")
	case len(c.IPAM.Ranges) == 1 && len(c.IPAM.Ranges[0]) == 1:
		r := c.IPAM.Ranges[0][0]
		subnet, gateway, start, end = firstOf(r.Subnet, subnet), firstOf(r.Gateway, gateway), firstOf(r.RangeStart, start), firstOf(r.RangeEnd, end)
	}
	var err error
	if subnet != "" {
		if spec.Subnet, err = netip.ParsePrefix(subnet); err != nil || !spec.Subnet.Addr().Is4() {
			return a, invalid("subnet", subnet, "want an IPv4 CIDR such as 10.88.0.0/16")
		}
		spec.Subnet = spec.Subnet.Masked() // host-local accepts an address in it
	}
	for _, f := range []struct {
		key, val string
		to       *netip.Addr
	}{{"gateway", gateway, &spec.Gateway}, {"rangeStart", start, &spec.RangeStart}, {"rangeEnd", end, &spec.RangeEnd}} {
		if f.val == "" {
			continue
		}
		if *f.to, err = netip.ParseAddr(f.val); err != nil || !f.to.Is4() {
			return a, invalid(f.key, f.val, "want an IPv4 address")
		}
	}
	a.Network = spec
	// Routes: the default route via the gateway, and nothing else.
	a.DefaultRoute = c.IsDefaultGateway != nil && *c.IsDefaultGateway
	if c.IPAM.Type == "" && c.Subnet != "" && c.IsDefaultGateway == nil {
		a.DefaultRoute = true // cnet's short form: like `cnet create`
	}
	for _, r := range c.IPAM.Routes {
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return a, invalid("routes.dst", r.Dst, "want a CIDR")
		}
		if dst.Bits() != 0 || !dst.Addr().Is4() {
			return a, unsupported("route to "+r.Dst, "cnet gives containers only a default route via the gateway")
		}
		gw := gateway
		if gw == "" && spec.Subnet.IsValid() {
			gw = spec.Subnet.Addr().Next().String() // the gateway a network gets by default
		}
		if r.GW != "" && r.GW != gw && gw != "" {
			return a, unsupported("route via "+r.GW, "the default route goes via the network's gateway")
		}
		a.DefaultRoute = true
	}
	a.Hairpin = c.HairpinMode != nil && *c.HairpinMode

	// The address and MAC: CNI_ARGS IP=/MAC= (Podman), or the ips and mac
	// capabilities.
	args := map[string]string{}
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok && kv != "" {
			return a, types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("invalid CNI_ARGS pair %q: want KEY=VALUE pairs separated by ';'", kv), "")
		}
		args[k] = v
	}
	ip := args["IP"]
	if ip == "" && len(c.RuntimeConfig.IPs) > 0 {
		if len(c.RuntimeConfig.IPs) > 1 {
			return a, unsupported("more than one address in ips", "a cnet endpoint has one IPv4 address")
		}
		ip = c.RuntimeConfig.IPs[0]
	}
	if ip != "" {
		s, _, _ := strings.Cut(ip, "/")
		if a.IP, err = netip.ParseAddr(s); err != nil || !a.IP.Is4() {
			return a, invalid("IP", ip, "want an IPv4 address")
		}
	}
	a.MAC = firstOf(args["MAC"], c.RuntimeConfig.MAC)
	for _, pm := range c.RuntimeConfig.PortMappings {
		proto := strings.ToLower(firstOf(pm.Protocol, "tcp"))
		spec := fmt.Sprintf("%d:%d/%s", pm.HostPort, pm.ContainerPort, proto)
		if pm.HostIP != "" && pm.HostIP != "0.0.0.0" {
			spec = pm.HostIP + ":" + spec
		}
		ms, err := cnet.ParsePorts(spec)
		if err != nil {
			return a, invalid("portMappings", spec, "%s", err)
		}
		a.Ports = append(a.Ports, ms...)
	}
	if len(c.RuntimeConfig.Aliases) > 0 {
		var list []string
		var byNet map[string][]string
		if json.Unmarshal(c.RuntimeConfig.Aliases, &list) != nil {
			if err := json.Unmarshal(c.RuntimeConfig.Aliases, &byNet); err != nil {
				return a, invalid("aliases", string(c.RuntimeConfig.Aliases), `want ["name"] or {"network": ["name"]}`)
			}
			list = byNet[c.Name]
		}
		a.Aliases = list
	}
	// The container's name: Podman passes it as K8S_POD_NAME (dnsname
	// serves it), as Kubernetes runtimes pass the pod's. cnet's name
	// server serves it too when it is a name cnet accepts.
	if pod := args["K8S_POD_NAME"]; pod != "" && names.CheckName("alias", pod) == nil && !slices.Contains(a.Aliases, pod) {
		a.Aliases = append(a.Aliases, pod)
	}
	return a, nil
}

// Timeout returns the lock timeout.
func (c *Config) Timeout() (time.Duration, *Error) {
	if c.LockTimeout == "" {
		return 10 * time.Second, nil
	}
	d, err := time.ParseDuration(c.LockTimeout)
	if err != nil || d <= 0 {
		return 0, invalid("lockTimeout", c.LockTimeout, "want a duration such as 10s")
	}
	return d, nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
