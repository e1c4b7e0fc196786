package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
)

// CNI ADD and DEL per container: each plugin is invoked as a runtime
// invokes it, on a namespace the runtime made beforehand (`ip netns add`,
// not timed) and removes afterwards (not timed). Only the plugin's ADD
// (netavark: setup) and DEL (teardown) are timed.

// staged is a tool whose containers need untimed work around the timed
// create and remove: before runs ahead of create, after follows remove.
type staged interface {
	before(s slot) error
	after(s slot) error
}

func addNetns(s slot) error { return run("ip", "netns", "add", s.name) }
func delNetns(s slot) error { return run("ip", "netns", "del", s.name) }

// cnetCNI is the cnet binary as a CNI plugin (type cnet), its state in
// the run's cnet root.
type cnetCNI struct {
	bin, root string
	subnet    netip.Prefix
	conf      []byte
}

const cniCnetNetwork = "bcni"

func (t *cnetCNI) name() string { return "cnet" }
func (t *cnetCNI) check() error {
	if _, err := os.Stat(t.bin); err != nil {
		return fmt.Errorf("%s: %w (run make build)", t.bin, err)
	}
	return nil
}
func (t *cnetCNI) prepare() (err error) {
	// The reference bridge plugin's configuration with "type": "cnet", as
	// docs/cni.md says; the first ADD creates the network.
	t.conf, err = json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": cniCnetNetwork, "type": "cnet", "bridge": "cnet-bcni",
		"isGateway": true, "ipMasq": true, "cnetRoot": t.root,
		"ipam": map[string]any{
			"type": "host-local", "subnet": t.subnet.String(),
			"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
		},
	})
	return err
}
func (t *cnetCNI) plug(verb string, s slot) error {
	env := append(os.Environ(), "CNI_COMMAND="+verb, "CNI_CONTAINERID="+s.name,
		"CNI_NETNS="+netnsPath(s.name), "CNI_IFNAME=eth0", "CNI_PATH="+cniDir)
	_, _, err := command{name: t.bin, env: env, stdin: t.conf, stdout: true}.run()
	return err
}
func (t *cnetCNI) before(s slot) error { return addNetns(s) }
func (t *cnetCNI) after(s slot) error  { return delNetns(s) }
func (t *cnetCNI) create(s slot) error { return t.plug("ADD", s) }
func (t *cnetCNI) remove(s slot) error { return t.plug("DEL", s) }
func (t *cnetCNI) finish() error {
	// The network the first ADD made; it may never have been made.
	st, _, err := command{name: t.bin, args: []string{"--root", t.root, "network", "rm", cniCnetNetwork}}.run()
	if err != nil && st != nil && st.ExitCode() == 3 {
		return nil
	}
	return err
}

// cniBridgeVerbs is the bridge plugin with host-local, ADD and DEL only.
type cniBridgeVerbs struct{ cniBridge }

func (t *cniBridgeVerbs) name() string        { return "bridge+host-local" }
func (t *cniBridgeVerbs) before(s slot) error { return addNetns(s) }
func (t *cniBridgeVerbs) after(s slot) error  { return delNetns(s) }
func (t *cniBridgeVerbs) create(s slot) error { return t.plug("ADD", s) }
func (t *cniBridgeVerbs) remove(s slot) error { return t.plug("DEL", s) }

// netavarkVerbs is `netavark setup` and `netavark teardown` only.
type netavarkVerbs struct{ netavark }

func (t *netavarkVerbs) name() string        { return "netavark" }
func (t *netavarkVerbs) before(s slot) error { return addNetns(s) }
func (t *netavarkVerbs) after(s slot) error  { return delNetns(s) }
func (t *netavarkVerbs) create(s slot) error { return t.nv("setup", s) }
func (t *netavarkVerbs) remove(s slot) error { return t.nv("teardown", s) }

// cniTools are the plugins compared, in report order.
func cniTools(cfg *Config, sc *scratch) []struct {
	t      tool
	subnet string
	prefix string
} {
	return []struct {
		t      tool
		subnet string
		prefix string
	}{
		{&cnetCNI{bin: cfg.CnetBin, root: cfg.Root, subnet: netip.MustParsePrefix("10.86.0.0/16")}, "10.86.0.0/16", "ccni"},
		{&cniBridgeVerbs{cniBridge{subnet: netip.MustParsePrefix("10.87.0.0/16"), dataDir: sc.path("cni-add"),
			bridge: "cniadd0", network: "benchadd"}}, "10.87.0.0/16", "bcni"},
		{&netavarkVerbs{netavark{subnet: netip.MustParsePrefix("10.88.0.0/16"), bridge: "nvbr1", configDir: sc.path("netavark-add")}},
			"10.88.0.0/16", "ncni"},
	}
}
