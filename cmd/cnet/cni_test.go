package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	mdns "github.com/miekg/dns"

	"github.com/cnetdev/cnet/internal/state"
	"github.com/cnetdev/cnet/internal/testenv"
)

// cniCall is one plugin invocation, made as a runtime makes it.
type cniCall struct {
	verb, id, netns, ifname, args string
	conf                          string
}

// cni runs the cnet binary as a CNI plugin and returns its stdout, or the
// error it printed.
func (c *cli) cni(call cniCall) (string, *types.Error) {
	c.t.Helper()
	env := []string{"CNI_COMMAND=" + call.verb, "CNI_PATH=/usr/lib/cni", "CNET_ROOT=" + c.root}
	if call.id != "" {
		env = append(env, "CNI_CONTAINERID="+call.id, "CNI_NETNS="+call.netns, "CNI_IFNAME="+call.ifname)
	}
	if call.args != "" {
		env = append(env, "CNI_ARGS="+call.args)
	}
	out, code := runEnv(c.t, bin.cnet, env, call.conf)
	if code == 0 {
		return out, nil
	}
	var e types.Error
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		c.t.Fatalf("CNI %s exited %d without a JSON error: %q", call.verb, code, out)
	}
	return out, &e
}

func runEnv(t *testing.T, path string, env []string, stdin string) (string, int) {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := execCommand(ctx, path)
	cmd.Env = env // exactly what a runtime passes, and nothing of the test's
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = &out
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// bridgeConf is a reference-bridge-plugin configuration with type cnet.
func bridgeConf(version, name, subnet string, extra string) string {
	return fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":"cnet","bridge":"br-%s","isGateway":true,"ipMasq":true,"hairpinMode":true%s,
		"ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":%q}]]}}`, version, name, name, extra, subnet)
}

func checkResult(t *testing.T, version, out, netnsPath, subnet string) *current.Result {
	t.Helper()
	if v, err := create.DecodeVersion([]byte(out)); err != nil || v != version {
		t.Fatalf("result cniVersion %q %v, want %s:\n%s", v, err, version, out)
	}
	r, err := create.Create(version, []byte(out))
	if err != nil {
		t.Fatalf("result does not decode as %s: %v\n%s", version, err, out)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 3 || res.Interfaces[2].Sandbox != netnsPath || res.Interfaces[2].Name != "eth0" {
		t.Errorf("interfaces %+v, want bridge, host veth, eth0 in %s", res.Interfaces, netnsPath)
	}
	if len(res.IPs) != 1 || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 2 || !strings.HasPrefix(res.IPs[0].Address.String(), strings.TrimSuffix(subnet, "0/24")) {
		t.Errorf("ips %+v, want one address in %s on interface 2", res.IPs, subnet)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW == nil {
		t.Errorf("routes %+v, want the default route via the gateway", res.Routes)
	}
	return res
}

func TestCNIVerbs(t *testing.T) {
	c := newCLI(t)
	for i, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			ns, subnet := "cni-"+strings.ReplaceAll(v, ".", ""), fmt.Sprintf("10.60.%d.0/24", i)
			testenv.Run(t, "ip", "netns", "add", ns)
			defer testenv.Try("ip", "netns", "del", ns)
			call := cniCall{verb: "ADD", id: "ctr" + ns, netns: "/run/netns/" + ns, ifname: "eth0", conf: bridgeConf(v, "net"+ns, subnet, "")}
			out, err := c.cni(call)
			if err != nil {
				t.Fatalf("ADD: %+v", err)
			}
			res := checkResult(t, v, out, call.netns, subnet)
			addr := res.IPs[0].Address.IP.String()
			if got := testenv.Run(t, "ip", "-n", ns, "-4", "addr", "show", "eth0"); !strings.Contains(got, addr) {
				t.Errorf("the namespace lacks %s:\n%s", addr, got)
			}
			// A retried ADD returns the same attachment and duplicates nothing.
			again, err := c.cni(call)
			if err != nil || again != out {
				t.Errorf("retried ADD: %v\n%s\nwant\n%s", err, again, out)
			}
			if links := testenv.Run(t, "ip", "-n", ns, "-o", "link"); strings.Count(links, ": eth") != 1 {
				t.Errorf("a retried ADD duplicated the interface:\n%s", links)
			}
			if ls := c.ok("ls"); !strings.Contains(ls, "ctr"+ns) || !strings.Contains(ls, "eth0") {
				t.Errorf("cnet ls does not show the attachment:\n%s", ls)
			}
			if v != "0.3.1" { // CHECK came with 0.4.0
				chk := call
				chk.verb = "CHECK"
				chk.conf = strings.TrimSuffix(strings.TrimSpace(call.conf), "}") + `,"prevResult":` + out + "}"
				if _, err := c.cni(chk); err != nil {
					t.Errorf("CHECK: %+v", err)
				}
				testenv.Run(t, "ip", "-n", ns, "addr", "flush", "dev", "eth0")
				if _, err := c.cni(chk); err == nil {
					t.Error("CHECK passed after the address was removed")
				}
			}
			del := call
			del.verb = "DEL"
			for i := 0; i < 2; i++ {
				if _, err := c.cni(del); err != nil {
					t.Fatalf("DEL %d: %+v", i+1, err)
				}
			}
			if links := testenv.Run(t, "ip", "-n", ns, "-o", "link"); strings.Contains(links, "eth0") {
				t.Errorf("DEL left eth0:\n%s", links)
			}
			c.ok("network", "rm", "net"+ns)
		})
	}
}

func TestCNIPodman(t *testing.T) {
	c := newCLI(t)
	testenv.Run(t, "ip", "netns", "add", "pod1")
	testenv.Run(t, "ip", "netns", "add", "pod2")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "pod1"); testenv.Try("ip", "netns", "del", "pod2") })
	conf := bridgeConf("0.4.0", "podman", "10.88.0.0/16", `,"cnetDNS":true`)
	// Podman 4.3: a static address in CNI_ARGS, the capabilities in runtimeConfig.
	withCaps := strings.TrimSuffix(strings.TrimSpace(conf), "}") +
		`,"runtimeConfig":{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}],"aliases":{"podman":["webby"]},"mac":"02:aa:bb:cc:dd:01"}}`
	out, err := c.cni(cniCall{verb: "ADD", id: "pod1id", netns: "/run/netns/pod1", ifname: "eth0", args: "IgnoreUnknown=1;IP=10.88.0.9", conf: withCaps})
	if err != nil {
		t.Fatalf("ADD: %+v", err)
	}
	if !strings.Contains(out, `"10.88.0.9/16"`) || !strings.Contains(out, `"02:aa:bb:cc:dd:01"`) {
		t.Errorf("the static address or MAC is not in the result:\n%s", out)
	}
	if link := testenv.Run(t, "ip", "-n", "pod1", "link", "show", "eth0"); !strings.Contains(link, "02:aa:bb:cc:dd:01") {
		t.Errorf("eth0 does not have the asked MAC:\n%s", link)
	}
	// The published port works, through cnet's own DNAT.
	setsid := execCommand(context.Background(), "ip", "netns", "exec", "pod1", bin.echo, "-listen", ":80")
	if err := setsid.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setsid.Process.Kill(); _ = setsid.Wait() }) // a process the test started: killed, as asked, then reaped
	testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "127.0.0.1:18080") })
	// A CLI container on the same network resolves the pod by its alias.
	c.ok("create", "client", "--network", "podman")
	if r := c.run("exec", "client", "--", "getent", "hosts", "webby"); !strings.HasPrefix(r.stdout, "10.88.0.9") {
		t.Errorf("alias from the runtime: %q %s", r.stdout, r.stderr)
	}
	// DEL with the whole chain's cached result, then one with none (after a failed ADD).
	del := strings.TrimSuffix(strings.TrimSpace(conf), "}") + `,"prevResult":` + out + "}"
	if _, err := c.cni(cniCall{verb: "DEL", id: "pod1id", netns: "/run/netns/pod1", ifname: "eth0", conf: del}); err != nil {
		t.Errorf("DEL with prevResult: %+v", err)
	}
	if _, err := c.cni(cniCall{verb: "DEL", id: "never-added", netns: "/run/netns/pod2", ifname: "eth0", conf: conf}); err != nil {
		t.Errorf("DEL of what was never added: %+v", err)
	}
	if err := httpFrom("", "127.0.0.1:18080"); err == nil {
		t.Error("the published port outlived DEL")
	}
	// DEL after the runtime already removed the namespace.
	if _, err := c.cni(cniCall{verb: "ADD", id: "pod2id", netns: "/run/netns/pod2", ifname: "eth0", conf: conf}); err != nil {
		t.Fatalf("ADD pod2: %+v", err)
	}
	testenv.Run(t, "ip", "netns", "del", "pod2")
	if _, err := c.cni(cniCall{verb: "DEL", id: "pod2id", netns: "/run/netns/pod2", ifname: "eth0", conf: conf}); err != nil {
		t.Errorf("DEL with the namespace gone: %+v", err)
	}
	if ls := c.ok("ls"); strings.Contains(ls, "pod2id") {
		t.Errorf("the attachment outlived DEL:\n%s", ls)
	}
	c.ok("rm", "client")
}

func TestCNIGCAndStatus(t *testing.T) {
	c := newCLI(t)
	for _, ns := range []string{"g1", "g2", "g3"} {
		testenv.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { testenv.Try("ip", "netns", "del", ns) })
	}
	conf := bridgeConf("1.1.0", "gcnet", "10.61.0.0/24", "")
	for _, ns := range []string{"g1", "g2", "g3"} {
		if _, err := c.cni(cniCall{verb: "ADD", id: ns + "id", netns: "/run/netns/" + ns, ifname: "eth0", conf: conf}); err != nil {
			t.Fatalf("ADD %s: %+v", ns, err)
		}
	}
	gc := strings.TrimSuffix(strings.TrimSpace(conf), "}") + `,"cni.dev/valid-attachments":[{"containerID":"g1id","ifname":"eth0"},{"containerID":"g2id","ifname":"eth0"}]}`
	if _, err := c.cni(cniCall{verb: "GC", conf: gc}); err != nil {
		t.Fatalf("GC: %+v", err)
	}
	ls := c.ok("ls")
	if !strings.Contains(ls, "g1id") || !strings.Contains(ls, "g2id") || strings.Contains(ls, "g3id") {
		t.Errorf("after GC keeping g1 and g2:\n%s", ls)
	}
	if links := testenv.Run(t, "ip", "-n", "g3", "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("GC left g3's interface:\n%s", links)
	}
	// The older key, from runtimes before CNI 1.1.
	old := strings.TrimSuffix(strings.TrimSpace(conf), "}") + `,"cni.dev/attachments":[{"containerID":"g1id","ifname":"eth0"}]}`
	if _, err := c.cni(cniCall{verb: "GC", conf: old}); err != nil {
		t.Fatalf("GC with cni.dev/attachments: %+v", err)
	}
	if ls := c.ok("ls"); strings.Contains(ls, "g2id") {
		t.Errorf("GC with the older key kept g2:\n%s", ls)
	}
	if _, err := c.cni(cniCall{verb: "STATUS", conf: conf}); err != nil {
		t.Errorf("STATUS: %+v", err)
	}
	// A /30 holds one container: full, STATUS says so.
	tiny := bridgeConf("1.1.0", "tiny", "10.62.0.0/30", "")
	if _, err := c.cni(cniCall{verb: "ADD", id: "g2id", netns: "/run/netns/g2", ifname: "eth0", conf: tiny}); err != nil {
		t.Fatalf("ADD to tiny: %+v", err)
	}
	if _, err := c.cni(cniCall{verb: "STATUS", conf: tiny}); err == nil || err.Code != 50 {
		t.Errorf("STATUS of a full network: %+v, want code 50", err)
	}
	for _, ns := range []string{"g1", "g2"} {
		for _, n := range []string{conf, tiny} {
			if _, cerr := c.cni(cniCall{verb: "DEL", id: ns + "id", netns: "/run/netns/" + ns, ifname: "eth0", conf: n}); cerr != nil {
				t.Logf("cleanup CNI DEL %s: %v", ns, cerr)
			}
		}
	}
}

func TestCNIErrors(t *testing.T) {
	c := newCLI(t)
	testenv.Run(t, "ip", "netns", "add", "errns")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "errns") })
	c.ok("network", "create", "exists", "--subnet", "10.63.0.0/24", "--bridge", "br-exists")
	before := testenv.Snapshot(t)
	good := bridgeConf("1.0.0", "fresh", "10.64.0.0/24", "")
	for _, tc := range []struct {
		name, conf, args string
		netns            string
		code             uint
		says             string
	}{
		{"malformed", `{"cniVersion":"1.0.0",`, "", "", 6, "unmarshal"},
		{"no name", `{"cniVersion":"1.0.0","type":"cnet"}`, "", "", 7, "name"},
		{"bad subnet", strings.Replace(good, `10.64.0.0/24`, `10.64.0.0/99`, 1), "", "", 7, `subnet "10.64.0.0/99"`},
		{"bad mtu", bridgeConf("1.0.0", "fresh", "10.64.0.0/24", `,"mtu":10`), "", "", 7, `mtu "10"`},
		{"bad IP in CNI_ARGS", good, "IP=10.64.0.999", "", 7, `IP "10.64.0.999"`},
		{"IP outside the subnet", good, "IP=10.99.0.5", "", 7, "10.99.0.5"},
		{"isGateway false", bridgeConf("1.0.0", "fresh", "10.64.0.0/24", `,"isGateway":false`), "", "", 2, "isGateway"},
		{"ipMasq false", bridgeConf("1.0.0", "fresh", "10.64.0.0/24", `,"ipMasq":false`), "", "", 2, "ipMasq"},
		{"promiscMode", bridgeConf("1.0.0", "fresh", "10.64.0.0/24", `,"promiscMode":true`), "", "", 2, "promiscMode"},
		{"dhcp", `{"cniVersion":"1.0.0","name":"fresh","type":"cnet","ipam":{"type":"dhcp"}}`, "", "", 2, "ipam type dhcp"},
		{"two ranges", `{"cniVersion":"1.0.0","name":"fresh","type":"cnet","ipam":{"ranges":[[{"subnet":"10.64.0.0/24"}],[{"subnet":"fd00::/64"}]]}}`, "", "", 2, "more than one ipam range"},
		{"a route cnet cannot give", strings.Replace(good, `"0.0.0.0/0"`, `"10.0.0.0/8"`, 1), "", "", 2, "route to 10.0.0.0/8"},
		{"network disagrees", bridgeConf("1.0.0", "exists", "10.65.0.0/24", ""), "", "", 7, "subnet"},
		{"no namespace", good, "", "/run/netns/nope", 3, "/run/netns/nope"},
		{"old cniVersion", strings.Replace(good, `"1.0.0"`, `"0.2.0"`, 1), "", "", 1, "incompatible"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			netnsPath := "/run/netns/errns"
			if tc.netns != "" {
				netnsPath = tc.netns
			}
			_, err := c.cni(cniCall{verb: "ADD", id: "errid", netns: netnsPath, ifname: "eth0", args: tc.args, conf: tc.conf})
			if err == nil || err.Code != tc.code || !strings.Contains(err.Msg+err.Details, tc.says) {
				t.Errorf("got %+v, want code %d mentioning %q", err, tc.code, tc.says)
			}
			if after := testenv.Snapshot(t); after != before {
				t.Errorf("the refused ADD changed the sandbox:\n%s\nwant:\n%s", after, before)
			}
		})
	}
	t.Run("lock contention", func(t *testing.T) {
		lock, err := state.Lock(filepath.Join(c.root, "run"), true)
		if err != nil {
			t.Fatal(err)
		}
		defer testenv.Close(t, "lock", lock)
		conf := bridgeConf("1.0.0", "fresh", "10.64.0.0/24", `,"lockTimeout":"200ms"`)
		if _, err := c.cni(cniCall{verb: "ADD", id: "errid", netns: "/run/netns/errns", ifname: "eth0", conf: conf}); err == nil || err.Code != 11 {
			t.Errorf("ADD under a held lock: %+v, want code 11", err)
		}
	})
}

// TestLibCNIChain: libcni drives a conflist that chains Debian's reference
// portmap, firewall, tuning and bandwidth plugins after cnet.
func TestLibCNIChain(t *testing.T) {
	c := newCLI(t)
	for _, p := range []string{"portmap", "firewall", "tuning", "bandwidth"} {
		if _, err := os.Stat("/usr/lib/cni/" + p); err != nil {
			t.Fatalf("the reference %s plugin is missing (%v): apt-get install containernetworking-plugins", p, err)
		}
	}
	binDir := t.TempDir()
	if err := os.Symlink(bin.cnet, filepath.Join(binDir, "cnet")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"portmap", "firewall", "tuning", "bandwidth"} {
		if err := os.Symlink("/usr/lib/cni/"+p, filepath.Join(binDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("CNET_ROOT", c.root)
	t.Cleanup(func() { // what the reference plugins leave in iptables
		for _, tbl := range []string{"ip filter", "ip nat", "ip mangle", "ip6 filter", "ip6 nat", "ip6 mangle"} {
			testenv.Try("nft", "delete", "table", strings.Fields(tbl)[0], strings.Fields(tbl)[1])
		}
	})
	testenv.Run(t, "ip", "netns", "add", "chained")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "chained") })
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"chain","plugins":[
		{"type":"cnet","bridge":"br-chain","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.67.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"firewall"},
		{"type":"tuning","sysctl":{"net.core.somaxconn":"512"}},
		{"type":"bandwidth","capabilities":{"bandwidth":true}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	rt := &libcni.RuntimeConf{ContainerID: "chainid", NetNS: "/run/netns/chained", IfName: "eth0",
		CapabilityArgs: map[string]any{
			"portMappings": []map[string]any{{"hostPort": 18181, "containerPort": 80, "protocol": "tcp"}},
			"bandwidth":    map[string]any{"ingressRate": 100000000, "ingressBurst": 1000000, "egressRate": 100000000, "egressBurst": 1000000},
		}}
	ctx := context.Background()
	r, err := cfg.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD through the chain: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil || len(res.IPs) != 1 {
		t.Fatalf("result: %v %+v", err, res)
	}
	if got := testenv.Run(t, "ip", "netns", "exec", "chained", "cat", "/proc/sys/net/core/somaxconn"); strings.TrimSpace(got) != "512" {
		t.Errorf("tuning did not reach cnet's interface's namespace: somaxconn %s", got)
	}
	srv := execCommand(ctx, "ip", "netns", "exec", "chained", bin.echo, "-listen", ":80")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() }) // a process the test started: killed, as asked, then reaped
	// portmap's DNAT, in front of cnet's interface: through the host's address on the bridge.
	testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "10.67.0.1:18181") })
	// CHECK through the chain, leaving out portmap: the reference portmap
	// (1.1.1) fails its own CHECK when it made no IPv6 chain.
	noPortmap := *list
	noPortmap.Plugins = append(noPortmap.Plugins[:1:1], list.Plugins[2:]...)
	if err := cfg.CheckNetworkList(ctx, &noPortmap, rt); err != nil {
		t.Errorf("CHECK through the chain: %v", err)
	}
	testenv.Run(t, "ip", "-n", "chained", "addr", "flush", "dev", "eth0")
	if err := cfg.CheckNetworkList(ctx, &noPortmap, rt); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("CHECK through the chain with eth0's address gone: %v", err)
	}
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("DEL through the chain: %v", err)
	}
	if ls := c.ok("ls"); strings.Contains(ls, "chainid") {
		t.Errorf("the attachment outlived DEL:\n%s", ls)
	}
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("a second DEL through the chain: %v", err)
	}
}

// TestCNINameServer: in CNI mode cnet's name server stays off unless the
// configuration asks for it ("cnetDNS": true), so the runtime's DNS plugin
// (Podman's dnsname, chained after cnet) can bind the gateway's port 53.
func TestCNINameServer(t *testing.T) {
	c := newCLI(t)
	for _, ns := range []string{"quiet1", "named1"} {
		testenv.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { testenv.Try("ip", "netns", "del", ns) })
	}
	t.Run("off by default", func(t *testing.T) {
		conf := bridgeConf("0.4.0", "quiet", "10.71.0.0/24", "")
		out, err := c.cni(cniCall{verb: "ADD", id: "quietid", netns: "/run/netns/quiet1", ifname: "eth0", conf: conf})
		if err != nil {
			t.Fatalf("ADD: %+v", err)
		}
		if strings.Contains(out, `"nameservers"`) {
			t.Errorf("the result offers a name server cnet does not run:\n%s", out)
		}
		// What dnsmasq (dnsname) does next: bind the gateway's port 53.
		pc, perr := net.ListenPacket("udp", "10.71.0.1:53")
		if perr != nil {
			t.Fatalf("udp 10.71.0.1:53 is not free for the runtime's DNS plugin: %v", perr)
		}
		testenv.Close(t, "udp 10.71.0.1:53", pc)
		ln, lerr := net.Listen("tcp", "10.71.0.1:53")
		if lerr != nil {
			t.Fatalf("tcp 10.71.0.1:53 is not free for the runtime's DNS plugin: %v", lerr)
		}
		testenv.Close(t, "tcp 10.71.0.1:53", ln)
		// The network exists now without cnet's name server: a configuration
		// that asks for it must say so, not silently differ.
		testenv.Run(t, "ip", "netns", "add", "quiet2")
		t.Cleanup(func() { testenv.Try("ip", "netns", "del", "quiet2") })
		before := testenv.Snapshot(t)
		asks := bridgeConf("0.4.0", "quiet", "10.71.0.0/24", `,"cnetDNS":true`)
		if _, err := c.cni(cniCall{verb: "ADD", id: "quiet2id", netns: "/run/netns/quiet2", ifname: "eth0", conf: asks}); err == nil || err.Code != 7 || !strings.Contains(err.Msg, "cnetDNS") {
			t.Errorf("ADD asking for a name server the network lacks: %+v, want code 7 naming cnetDNS", err)
		}
		if after := testenv.Snapshot(t); after != before {
			t.Errorf("the refused ADD changed the sandbox:\n%s", testenv.Diff(after, before))
		}
		if _, err := c.cni(cniCall{verb: "DEL", id: "quietid", netns: "/run/netns/quiet1", ifname: "eth0", conf: conf}); err != nil {
			t.Errorf("DEL: %+v", err)
		}
	})
	t.Run("cnetDNS and noDNS", func(t *testing.T) {
		before := testenv.Snapshot(t)
		both := bridgeConf("0.4.0", "both", "10.73.0.0/24", `,"cnetDNS":true,"noDNS":true`)
		if _, err := c.cni(cniCall{verb: "ADD", id: "bothid", netns: "/run/netns/quiet1", ifname: "eth0", conf: both}); err == nil || err.Code != 7 || !strings.Contains(err.Msg, "cnetDNS") {
			t.Errorf("ADD with cnetDNS and noDNS: %+v, want code 7 naming cnetDNS", err)
		}
		if after := testenv.Snapshot(t); after != before {
			t.Errorf("the refused ADD changed the sandbox:\n%s", testenv.Diff(after, before))
		}
	})
	t.Run("opt in", func(t *testing.T) {
		conf := bridgeConf("0.4.0", "named", "10.72.0.0/24", `,"cnetDNS":true`)
		withAlias := strings.TrimSuffix(strings.TrimSpace(conf), "}") + `,"runtimeConfig":{"aliases":{"named":["alpha"]}}}`
		// Podman passes the container's name as K8S_POD_NAME.
		out, err := c.cni(cniCall{verb: "ADD", id: "namedid", netns: "/run/netns/named1", ifname: "eth0", args: "IgnoreUnknown=1;K8S_POD_NAME=beta", conf: withAlias})
		if err != nil {
			t.Fatalf("ADD: %+v", err)
		}
		var res struct{ DNS types.DNS }
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != "10.72.0.1" {
			t.Errorf("the result does not offer cnet's name server on the gateway (%v):\n%s", err, out)
		}
		m, _ := askDNS(t, "named1", "10.72.0.1", "alpha.named.cnet.", mdns.TypeA, "udp")
		if got := answers(m); got != "10.72.0.2" {
			t.Errorf("alpha.named.cnet from the container: %q, want 10.72.0.2", got)
		}
		if m, _ := askDNS(t, "named1", "10.72.0.1", "beta.named.cnet.", mdns.TypeA, "udp"); answers(m) != "10.72.0.2" {
			t.Errorf("beta.named.cnet (K8S_POD_NAME) from the container: %q, want 10.72.0.2", answers(m))
		}
		if _, err := c.cni(cniCall{verb: "DEL", id: "namedid", netns: "/run/netns/named1", ifname: "eth0", conf: conf}); err != nil {
			t.Errorf("DEL: %+v", err)
		}
	})
}

// TestCNIPortReservedByRuntime: a runtime may hold the host port of its
// own port mapping (Podman's conmon binds it to reserve it). cnet's CNI
// ADD publishes it anyway, across a DEL and ADD (`podman network reload`);
// the CLI still refuses a port a host process holds.
func TestCNIPortReservedByRuntime(t *testing.T) {
	c := newCLI(t)
	testenv.Run(t, "ip", "netns", "add", "resv")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "resv") })
	reservation, err := net.Listen("tcp", "0.0.0.0:18095") // as conmon holds it
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "reservation", reservation)
	conf := bridgeConf("0.4.0", "resvnet", "10.74.0.0/24", "")
	withPorts := strings.TrimSuffix(strings.TrimSpace(conf), "}") +
		`,"runtimeConfig":{"portMappings":[{"hostPort":18095,"containerPort":80,"protocol":"tcp"}]}}`
	srv := execCommand(context.Background(), "ip", "netns", "exec", "resv", bin.echo, "-listen", ":80")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Logged(t, "kill echo-server", srv.Process.Kill())
		_ = srv.Wait() // killed: its exit status is the signal
	})
	call := cniCall{verb: "ADD", id: "resvid", netns: "/run/netns/resv", ifname: "eth0", conf: withPorts}
	for i, verb := range []string{"ADD", "DEL", "ADD"} { // run, then reload
		call.verb = verb
		if _, err := c.cni(call); err != nil {
			t.Fatalf("%s %d with the runtime holding 18095: %+v", verb, i+1, err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "127.0.0.1:18095") })
	// The CLI's publish keeps the check.
	held, err := net.Listen("tcp", "0.0.0.0:18096")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "held", held)
	c.ok("create", "cliuser", "--network", "resvnet")
	if r := c.run("publish", "cliuser", "18096:80"); r.code == 0 || !strings.Contains(r.stderr, "0.0.0.0:18096/tcp") || !strings.Contains(r.stderr, "already in use on the host") {
		t.Errorf("cnet publish onto a port a host process holds: exit %d %s", r.code, r.stderr)
	}
	c.ok("rm", "cliuser")
	call.verb = "DEL"
	if _, err := c.cni(call); err != nil {
		t.Errorf("DEL: %+v", err)
	}
}
