package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cnetdev/cnet"
	"github.com/vishvananda/netlink"
)

// cnetCLI runs one `cnet create` / `cnet rm` process per container.
type cnetCLI struct {
	bin, root, network string
	subnet             netip.Prefix
	// maxRSS is the peak RSS (KiB) of each create, by container name.
	maxRSS map[string]int64
}

func (c *cnetCLI) name() string { return "cnet-cli" }
func (c *cnetCLI) check() error {
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("%s: %w (run make build)", c.bin, err)
	}
	return nil
}
func (c *cnetCLI) cnet(args ...string) (*os.ProcessState, error) {
	st, _, err := command{name: c.bin, args: append([]string{"--root", c.root}, args...)}.run()
	return st, err
}
func (c *cnetCLI) prepare() error {
	_, err := c.cnet("network", "create", c.network, "--subnet", c.subnet.String())
	return err
}
func (c *cnetCLI) create(s slot) error {
	st, err := c.cnet("create", s.name, "--network", c.network)
	if err == nil && c.maxRSS != nil {
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			c.maxRSS[s.name] = ru.Maxrss
		}
	}
	return err
}
func (c *cnetCLI) remove(s slot) error { _, err := c.cnet("rm", s.name); return err }
func (c *cnetCLI) finish() error       { _, err := c.cnet("network", "rm", c.network); return err }

// cnetLib calls the engine in a loop, in this process.
type cnetLib struct {
	bin, root, network string // bin: the cnet command, which runs the name server
	subnet             netip.Prefix
	e                  *cnet.Engine
}

func (c *cnetLib) name() string { return "cnet-lib" }
func (c *cnetLib) check() error { return nil }
func (c *cnetLib) prepare() (err error) {
	opts := cnet.Root(c.root)
	opts.DNSCommand = []string{c.bin, "__dns"}
	if c.e, err = cnet.Open(opts); err != nil {
		return err
	}
	_, err = c.e.CreateNetwork(cnet.NetworkSpec{Name: c.network, Subnet: c.subnet})
	return err
}
func (c *cnetLib) create(s slot) error {
	_, err := c.e.CreateContainer(cnet.ContainerSpec{Name: s.name, Network: c.network})
	return err
}
func (c *cnetLib) remove(s slot) error {
	return c.e.RemoveContainers([]string{s.name}, cnet.RemoveOptions{})
}
func (c *cnetLib) finish() error {
	if c.e == nil {
		return nil
	}
	return c.e.RemoveNetwork(c.network, false)
}

// seedIP is the tutorial's iproute2 commands, one bash script per
// container; the bridge and the MASQUERADE rule are made once.
type seedIP struct {
	bridge, vethPrefix string
	subnet             netip.Prefix
}

func (t *seedIP) name() string { return "seed-ip" }
func (t *seedIP) check() error {
	for _, b := range [][2]string{{"ip", "iproute2"}, {"iptables", "iptables"}, {"bash", "bash"}} {
		if _, err := needBinary(b[0], b[1]); err != nil {
			return err
		}
	}
	return nil
}
func (t *seedIP) gateway() netip.Addr { return nthAddr(t.subnet, 1) }
func (t *seedIP) masq(op string) []string {
	return []string{"-t", "nat", op, "POSTROUTING", "-s", t.subnet.String(), "!", "-o", t.bridge, "-j", "MASQUERADE"}
}
func (t *seedIP) prepare() error {
	for _, args := range [][]string{
		{"link", "add", t.bridge, "type", "bridge"},
		{"addr", "add", netip.PrefixFrom(t.gateway(), t.subnet.Bits()).String(), "dev", t.bridge},
		{"link", "set", t.bridge, "up"},
	} {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	if err := run("iptables", t.masq("-A")...); err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
}
func (t *seedIP) veths(s slot) (host, cont string) {
	return fmt.Sprintf("%sh%d", t.vethPrefix, s.id), fmt.Sprintf("%sc%d", t.vethPrefix, s.id)
}
func (t *seedIP) create(s slot) error {
	a, b := t.veths(s)
	script := fmt.Sprintf(`set -e
ip netns add %[1]s
ip netns exec %[1]s ip link set lo up
ip link add %[2]s type veth peer name %[3]s
ip link set %[3]s netns %[1]s
ip -n %[1]s addr add %[4]s dev %[3]s
ip -n %[1]s link set %[3]s up
ip link set %[2]s master %[5]s up
ip -n %[1]s route add default via %[6]s
mkdir -p /etc/netns/%[1]s
echo nameserver 1.1.1.1 > /etc/netns/%[1]s/resolv.conf
`, s.name, a, b, netip.PrefixFrom(s.ip, t.subnet.Bits()), t.bridge, t.gateway())
	return run("bash", "-c", script)
}
func (t *seedIP) remove(s slot) error {
	a, _ := t.veths(s)
	// Deleting the namespace also deletes the veth, asynchronously; the
	// seed's `ip link del` finds it gone when the kernel was quicker.
	script := fmt.Sprintf(`set -e
ip netns del %[1]s
ip link del %[2]s 2>/dev/null || true
rm -r /etc/netns/%[1]s
`, s.name, a)
	return run("bash", "-c", script)
}
func (t *seedIP) finish() error {
	err1 := run("ip", "link", "del", t.bridge)
	err2 := run("iptables", t.masq("-D")...)
	if err1 != nil {
		return err1
	}
	return err2
}

// cniBridge execs the CNI bridge plugin with host-local IPAM the way a
// runtime does: the namespace first, then ADD; DEL, then the namespace.
type cniBridge struct {
	subnet  netip.Prefix
	dataDir string
	plugin  string
	conf    []byte
	// bridge and network name the bridge and the CNI network (default
	// cni0 and bench); ver is the spec version prepare chose.
	bridge, network, ver string
}

const cniDir = "/usr/lib/cni"

func (t *cniBridge) name() string { return "cni-bridge" }
func (t *cniBridge) check() error {
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(cniDir, p)); err != nil {
			return &missingError{binary: filepath.Join(cniDir, p), pkg: "containernetworking-plugins"}
		}
	}
	t.plugin = filepath.Join(cniDir, "bridge")
	_, err := needBinary("iptables", "iptables")
	return err
}

// version picks the newest CNI spec version the installed plugin speaks.
func (t *cniBridge) version() (string, error) {
	_, out, err := command{name: t.plugin, env: append(os.Environ(), "CNI_COMMAND=VERSION"),
		stdin: []byte(`{"cniVersion":"0.4.0"}`)}.run()
	if err != nil {
		return "", err
	}
	var v struct {
		Supported []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("CNI VERSION answer %q: %w", out, err)
	}
	for _, want := range []string{"1.0.0", "0.4.0"} {
		if slices.Contains(v.Supported, want) {
			return want, nil
		}
	}
	return "", fmt.Errorf("the bridge plugin supports neither 1.0.0 nor 0.4.0: %v", v.Supported)
}

func (t *cniBridge) prepare() error {
	if t.bridge == "" {
		t.bridge, t.network = "cni0", "bench"
	}
	if t.plugin == "" {
		t.plugin = filepath.Join(cniDir, "bridge")
	}
	ver, err := t.version()
	if err != nil {
		return err
	}
	t.ver = ver
	t.conf, err = json.Marshal(map[string]any{
		"cniVersion": ver, "name": t.network, "type": "bridge", "bridge": t.bridge,
		"isGateway": true, "ipMasq": true,
		"ipam": map[string]any{
			"type": "host-local", "subnet": t.subnet.String(), "dataDir": t.dataDir,
			"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
		},
	})
	return err
}
func (t *cniBridge) plug(cmd string, s slot) error {
	_, err := t.plugOut(cmd, s)
	return err
}

// plugOut runs the plugin and returns what it printed (ADD: the result).
func (t *cniBridge) plugOut(cmd string, s slot) ([]byte, error) {
	env := append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+s.name,
		"CNI_NETNS=/run/netns/"+s.name, "CNI_IFNAME=eth0", "CNI_PATH="+cniDir)
	_, out, err := command{name: t.plugin, env: env, stdin: t.conf, stdout: true}.run()
	return out, err
}
func (t *cniBridge) create(s slot) error {
	if err := run("ip", "netns", "add", s.name); err != nil {
		return err
	}
	return t.plug("ADD", s)
}
func (t *cniBridge) remove(s slot) error {
	if err := t.plug("DEL", s); err != nil {
		return err
	}
	return run("ip", "netns", "del", s.name)
}
func (t *cniBridge) finish() error {
	// The plugin never removes the bridge.
	return delLinkIfPresent(t.bridge)
}

// netavark runs `netavark setup` / `netavark teardown` per container on a
// namespace made with `ip netns add`, as podman does, giving each
// container a static address (podman does the IPAM).
type netavark struct {
	subnet    netip.Prefix
	bridge    string
	configDir string
	bin       string
}

func (t *netavark) name() string { return "netavark" }
func (t *netavark) check() (err error) {
	if t.bin, err = needBinary("netavark", "netavark", "/usr/lib/podman/netavark"); err != nil {
		return err
	}
	// netavark's default firewall driver on Debian 12 (1.4) is iptables.
	_, err = needBinary("iptables", "iptables")
	return err
}
func (t *netavark) prepare() error { return os.MkdirAll(t.configDir, 0o700) }
func (t *netavark) opts(s slot) []byte {
	id := sha256.Sum256([]byte(s.name))
	b, _ := json.Marshal(map[string]any{
		"container_id":   hex.EncodeToString(id[:]),
		"container_name": s.name,
		"networks": map[string]any{
			"bench": map[string]any{"interface_name": "eth0", "static_ips": []string{s.ip.String()}},
		},
		"network_info": map[string]any{
			"bench": map[string]any{
				"name": "bench", "id": strings.Repeat("5e", 32), "driver": "bridge",
				"network_interface": t.bridge, "internal": false, "ipv6_enabled": false, "dns_enabled": false,
				"subnets": []map[string]string{{"subnet": t.subnet.String(), "gateway": nthAddr(t.subnet, 1).String()}},
			},
		},
	})
	return b
}
func (t *netavark) nv(op string, s slot) error {
	_, _, err := command{name: t.bin, args: []string{"--config", t.configDir, op, "/run/netns/" + s.name},
		stdin: t.opts(s)}.run()
	return err
}
func (t *netavark) create(s slot) error {
	if err := run("ip", "netns", "add", s.name); err != nil {
		return err
	}
	return t.nv("setup", s)
}
func (t *netavark) remove(s slot) error {
	if err := t.nv("teardown", s); err != nil {
		return err
	}
	return run("ip", "netns", "del", s.name)
}
func (t *netavark) finish() error {
	// netavark removes the bridge with its last container.
	return delLinkIfPresent(t.bridge)
}

// delLinkIfPresent deletes a link of the sandbox's namespace if it exists.
// (/sys/class/net shows the machine's links, not the sandbox's.)
func delLinkIfPresent(name string) error {
	l, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return netlink.LinkDel(l)
}
