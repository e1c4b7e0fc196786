package cni

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/names"
)

// Versions are the CNI specification versions cnet speaks.
var Versions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Main runs the plugin: the verb in CNI_COMMAND, the configuration on
// stdin, the result or error as JSON on stdout. dnsCommand starts cnet's
// name server; hook, if set, is the engine's fault-injection hook
// (Options.Hook).
func Main(dnsCommand []string, hook func(op string, step int) error) {
	if ifname := os.Getenv("CNI_IFNAME"); ifname != "" {
		// The library refuses these too, without naming the value.
		if err := names.CheckIfName("CNI_IFNAME", ifname); err != nil {
			if perr := types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "").Print(); perr != nil {
				fmt.Fprintf(os.Stderr, "cnet: %v (and writing the CNI error failed: %v)\n", err, perr)
			}
			os.Exit(1)
		}
	}
	p := &plugin{dnsCommand: dnsCommand, hook: hook}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check, Status: p.status, GC: p.gc},
		Versions, "cnet: Docker-style bridge networks; as a CNI plugin, type \"cnet\"")
}

type plugin struct {
	dnsCommand []string
	hook       func(op string, step int) error
}

func (p *plugin) engine(c *Config) (*cnet.Engine, *Error) {
	opts := cnet.Options{}
	if root := firstOf(c.CnetRoot, os.Getenv("CNET_ROOT")); root != "" {
		opts = cnet.Root(root)
	}
	timeout, cerr := c.Timeout()
	if cerr != nil {
		return nil, cerr
	}
	opts.LockTimeout, opts.DNSCommand, opts.Hook = timeout, p.dnsCommand, p.hook
	// stdout carries the result the runtime parses; what cnet has to say
	// besides goes to stderr, which runtimes log (the spec allows it).
	opts.Notify = func(msg string) { fmt.Fprintf(os.Stderr, "cnet: %s\n", msg) }
	e, err := cnet.Open(opts)
	if err != nil {
		return nil, code(err)
	}
	return e, nil
}

// code maps an engine error onto the CNI error codes, by kind.
func code(err error) *Error {
	var te *types.Error
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, cnet.ErrTryAgain):
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	case errors.Is(err, cnet.ErrInvalid), errors.Is(err, cnet.ErrConflict), errors.Is(err, cnet.ErrExists):
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	case errors.Is(err, cnet.ErrNotFound):
		return types.NewError(types.ErrUnknownContainer, err.Error(), "")
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

func (p *plugin) add(args *skel.CmdArgs) error {
	c, cerr := Parse(args.StdinData)
	if cerr != nil {
		return cerr
	}
	req, cerr := c.Attach(args.ContainerID, args.IfName, args.Netns, args.Args)
	if cerr != nil {
		return cerr
	}
	if c.RawPrevResult != nil {
		// Read before attaching: a result that cannot be built must not
		// leave an attachment behind.
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return types.NewError(types.ErrDecodingFailure, "invalid prevResult: "+err.Error(), "")
		}
	}
	e, cerr := p.engine(c)
	if cerr != nil {
		return cerr
	}
	r, err := e.AttachCNI(req)
	if err != nil {
		return code(err)
	}
	res, err := c.result(r)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	return types.PrintResult(res, c.CNIVersion)
}

// result is the attachment in the spec's format, after whatever the
// chain returned so far.
func (c *Config) result(r *cnet.CNIResult) (types.Result, error) {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, err
		}
		prev, err := current.NewResultFromResult(c.PrevResult)
		if err != nil {
			return nil, err
		}
		res = prev
	}
	base := len(res.Interfaces)
	res.Interfaces = append(res.Interfaces,
		&current.Interface{Name: r.Bridge, Mac: r.BridgeMAC},
		&current.Interface{Name: r.HostIf, Mac: r.HostMAC},
		&current.Interface{Name: r.IfName, Mac: r.MAC, Sandbox: r.Netns})
	res.IPs = append(res.IPs, &current.IPConfig{
		Interface: current.Int(base + 2),
		Address:   net.IPNet{IP: r.Address.Addr().AsSlice(), Mask: net.CIDRMask(r.Address.Bits(), 32)},
		Gateway:   r.Gateway.AsSlice(),
	})
	if r.DefaultRoute {
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: r.Gateway.AsSlice()})
	}
	switch {
	case c.RuntimeConfig.DNS != nil && len(c.RuntimeConfig.DNS.Nameservers) > 0:
		res.DNS = *c.RuntimeConfig.DNS
	case len(c.DNS.Nameservers) > 0:
		res.DNS = c.DNS
	case len(r.Nameservers) > 0:
		for _, ns := range r.Nameservers {
			res.DNS.Nameservers = append(res.DNS.Nameservers, ns.String())
		}
		res.DNS.Search = r.Search
	}
	return res, nil
}

func (p *plugin) del(args *skel.CmdArgs) error {
	c, cerr := Parse(args.StdinData)
	if cerr != nil {
		return cerr
	}
	e, cerr := p.engine(c)
	if cerr != nil {
		return cerr
	}
	if err := e.DetachCNI(args.ContainerID, args.IfName, c.Name); err != nil {
		return code(err)
	}
	return nil
}

func (p *plugin) check(args *skel.CmdArgs) error {
	c, cerr := Parse(args.StdinData)
	if cerr != nil {
		return cerr
	}
	e, cerr := p.engine(c)
	if cerr != nil {
		return cerr
	}
	r, err := e.CheckCNI(args.ContainerID, args.IfName, c.Name)
	if err != nil {
		return code(err)
	}
	if c.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	prev, err := current.NewResultFromResult(c.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	for _, ip := range prev.IPs {
		if ip.Interface != nil && *ip.Interface < len(prev.Interfaces) && prev.Interfaces[*ip.Interface].Name == args.IfName &&
			ip.Address.String() != r.Address.String() {
			return types.NewError(types.ErrInternal, fmt.Sprintf("%s has %s, the result said %s", args.IfName, r.Address, ip.Address.String()), "")
		}
	}
	return nil
}

func (p *plugin) status(args *skel.CmdArgs) error {
	c, cerr := Parse(args.StdinData)
	if cerr != nil {
		return cerr
	}
	e, cerr := p.engine(c)
	if cerr != nil {
		return types.NewError(codePluginNotAvailable, cerr.Msg, cerr.Details)
	}
	if err := e.StatusCNI(c.Name); err != nil {
		return types.NewError(codePluginNotAvailable, "cnet cannot serve ADDs: "+err.Error(), "")
	}
	return nil
}

func (p *plugin) gc(args *skel.CmdArgs) error {
	c, cerr := Parse(args.StdinData)
	if cerr != nil {
		return cerr
	}
	e, cerr := p.engine(c)
	if cerr != nil {
		return cerr
	}
	var valid []cnet.CNIRef
	for _, v := range append(c.ValidAttachments, c.OldAttachments...) {
		valid = append(valid, cnet.CNIRef{ContainerID: v.ContainerID, IfName: v.IfName})
	}
	if err := e.GCCNI(c.Name, valid); err != nil {
		return code(err)
	}
	return nil
}
