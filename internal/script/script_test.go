package script

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/firewall"
	"github.com/cnetdev/cnet/internal/model"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"container-1", "container-1"},
		{"/run/netns/x", "/run/netns/x"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"", "''"},
		{"a=b,c:d@e%f+g_h.i-j", "a=b,c:d@e%f+g_h.i-j"},
		{"naïve", "'naïve'"},
		{"a\tb", "'a\tb'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		// The shell reads the word back as it was.
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(tt.in)).Output()
		if err != nil || string(out) != tt.in {
			t.Errorf("sh reads %s as %q (%v), want %q", Quote(tt.in), out, err, tt.in)
		}
	}
}

// TestHeredocDelimiter: a text holding a line "EOF" gets another delimiter.
func TestHeredocDelimiter(t *testing.T) {
	text := "a\nEOF\nb\n"
	h := heredoc(text)
	if !strings.HasPrefix(h, "<<'EOF_'\n") || !strings.HasSuffix(h, "\nEOF_") {
		t.Fatalf("heredoc = %q", h)
	}
	out, err := exec.Command("sh", "-c", "cat "+h).Output()
	if err != nil || string(out) != text {
		t.Errorf("sh reads %q (%v), want %q", out, err, text)
	}
}

func step(kind model.Kind, action model.Action) model.Step {
	return model.Step{Kind: kind, Action: action}
}

// TestRenderCases covers what the engine's golden walk does not reach.
func TestRenderCases(t *testing.T) {
	gw := netip.MustParsePrefix("10.1.0.1/24")
	ep := &model.EndpointSpec{Netns: "/var/run/netns/cni-1", HostIf: "veth0000001", ContainerIf: "eth0", Bridge: "br.0",
		Addr: netip.MustParsePrefix("10.1.0.2/24"), Gateway: gw.Addr(), MTU: 9000, DefaultRoute: true, Hairpin: true, MAC: "02:00:00:00:00:aa"}
	tests := []struct {
		name string
		st   model.Step
		want []string
	}{
		{"dotted bridge name", model.Step{Kind: model.KindBridge, Action: model.Add, Bridge: &model.BridgeSpec{Name: "br.0", Gateway: gw, MTU: 9000}},
			[]string{"ip link add br.0 address 02:63:0a:01:00:01 mtu 9000 type bridge", "ip addr add 10.1.0.1/24 dev br.0", "ip link set br.0 up",
				"sysctl -w net/ipv4/conf/br.0/route_localnet=1"}},
		{"namespace by path, own MAC, existing namespace", model.Step{Kind: model.KindEndpoint, Action: model.Add, Endpoint: ep},
			[]string{"ip link add veth0000001 mtu 9000 type veth peer name eth0 address 02:00:00:00:00:aa mtu 9000 netns /var/run/netns/cni-1",
				"sysctl -w net.ipv6.conf.veth0000001.disable_ipv6=1",
				"ip link set veth0000001 master br.0", "ip link set veth0000001 up", "bridge link set dev veth0000001 hairpin on",
				"nsenter --net=/var/run/netns/cni-1 ip addr add 10.1.0.2/24 dev eth0", "nsenter --net=/var/run/netns/cni-1 ip link set eth0 up",
				"nsenter --net=/var/run/netns/cni-1 ip route replace default via 10.1.0.1 dev eth0 src 10.1.0.2",
				"nft -f - <<'EOF'\nadd element bridge cnet ports { \"veth0000001\" }\nadd element bridge cnet portmac { \"veth0000001\" . 02:00:00:00:00:aa }\nadd element bridge cnet portip { \"veth0000001\" . 10.1.0.2 }\nEOF"}},
		{"endpoint removed: its anti-spoofing entry first", model.Step{Kind: model.KindEndpoint, Action: model.Del, Endpoint: ep},
			[]string{"nft -f - <<'EOF'\ndelete element bridge cnet ports { \"veth0000001\" }\ndelete element bridge cnet portmac { \"veth0000001\" . 02:00:00:00:00:aa }\ndelete element bridge cnet portip { \"veth0000001\" . 10.1.0.2 }\nEOF",
				"ip link del veth0000001"}},
		{"namespace removed: its endpoints' anti-spoofing entries first", model.Step{Kind: model.KindNetns, Action: model.Del, Netns: &model.NetnsSpec{Name: "web",
			Guards: []model.GuardSpec{{HostIf: "veth000000a", MAC: "02:63:0a:01:00:02", Addr: netip.MustParseAddr("10.1.0.2")}, {HostIf: "veth000000b", MAC: "02:63:0a:02:00:07", Addr: netip.MustParseAddr("10.2.0.7")}}}},
			[]string{"nft -f - <<'EOF'\ndelete element bridge cnet ports { \"veth000000a\", \"veth000000b\" }\ndelete element bridge cnet portmac { \"veth000000a\" . 02:63:0a:01:00:02, \"veth000000b\" . 02:63:0a:02:00:07 }\ndelete element bridge cnet portip { \"veth000000a\" . 10.1.0.2, \"veth000000b\" . 10.2.0.7 }\nEOF",
				"ip netns del web"}},
		{"namespace without endpoints removed", model.Step{Kind: model.KindNetns, Action: model.Del, Netns: &model.NetnsSpec{Name: "idle"}},
			[]string{"ip netns del idle"}},
		{"route removed", model.Step{Kind: model.KindRoute, Action: model.Del, Route: &model.RouteSpec{Netns: "web", Dev: "eth1"}},
			[]string{"ip -n web route del default dev eth1"}},
		{"hairpin off", model.Step{Kind: model.KindHairpin, Action: model.Del, HostIf: "veth0000001"},
			[]string{"bridge link set dev veth0000001 hairpin off"}},
		{"unknown kind", step("tunnel", model.Add), []string{"# add tunnel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Render([]model.Step{tt.st}, Env{FilesDir: "/etc/netns"})
			if len(got) != 1 {
				t.Fatalf("got %d steps", len(got))
			}
			if g, w := strings.Join(got[0].Commands, "\n"), strings.Join(tt.want, "\n"); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// TestBatchRemovals: a batch of endpoints or namespaces loses its
// anti-spoofing entries first, then each veth or namespace.
func TestBatchRemovals(t *testing.T) {
	ep := model.EndpointSpec{Netns: "web", HostIf: "veth0000001", ContainerIf: "eth0", Bridge: "br0",
		Addr: netip.MustParsePrefix("10.1.0.2/24"), MTU: 1500}
	ep2 := ep
	ep2.HostIf, ep2.Addr = "veth0000002", netip.MustParsePrefix("10.1.0.3/24")
	got := Render([]model.Step{{Kind: model.KindEndpoints, Action: model.Del, Endpoints: []model.EndpointSpec{ep, ep2}}}, Env{})[0].Commands
	if len(got) != 3 || !strings.HasPrefix(got[0], "nft -f - ") || !strings.Contains(got[0], "10.1.0.3") ||
		got[1] != "ip link del veth0000001" || got[2] != "ip link del veth0000002" {
		t.Errorf("endpoints: %q", got)
	}
	got = Render([]model.Step{{Kind: model.KindNamespaces, Action: model.Del, Namespaces: []model.NetnsSpec{{Name: "web"}, {Name: "db 1"}}}}, Env{})[0].Commands
	if strings.Join(got, "\n") != "ip netns del web\nip netns del 'db 1'" {
		t.Errorf("namespaces: %q", got)
	}
}

// TestFilesLeaveTheMarkerOut: the files are written as cnet would, minus
// its marker line, and removed file by file.
func TestFilesLeaveTheMarkerOut(t *testing.T) {
	marker := "# generated by cnet (abc123); edits are overwritten"
	f := &model.FilesSpec{Name: "web", Resolv: marker + "\nnameserver 10.1.0.1\n", Hosts: marker + "\n127.0.0.1\tlocalhost\n"}
	got := Render([]model.Step{{Kind: model.KindFiles, Action: model.Set, Files: f}, {Kind: model.KindFiles, Action: model.Del, Files: f}},
		Env{FilesDir: "/etc/netns", Marker: marker})
	text := strings.Join(got[0].Commands, "\n")
	if strings.Contains(text, "generated by cnet") || !strings.Contains(text, "cat > /etc/netns/web/resolv.conf <<'EOF'\nnameserver 10.1.0.1\nEOF") {
		t.Errorf("writing:\n%s", text)
	}
	if g := strings.Join(got[1].Commands, "\n"); g != "rm -f /etc/netns/web/resolv.conf /etc/netns/web/hosts\nrmdir --ignore-fail-on-non-empty /etc/netns/web" {
		t.Errorf("removing:\n%s", g)
	}
}

// TestPortsOneMapIsOneCommand: elements of one map are one nft command;
// of several maps, one nft batch.
func TestPortsOneMapIsOneCommand(t *testing.T) {
	a := netip.MustParseAddr
	one := []model.PortElem{{Proto: "tcp", HostIP: a("0.0.0.0"), HostPort: 80, Addr: a("10.1.0.2"), Port: 8080},
		{Proto: "tcp", HostIP: a("0.0.0.0"), HostPort: 81, Addr: a("10.1.0.2"), Port: 8081}}
	got := Render([]model.Step{{Kind: model.KindPorts, Action: model.Add, Ports: one}}, Env{})[0].Commands
	if got[0] != "nft add element inet cnet dnat_tcp_any { 80 : 10.1.0.2 . 8080, 81 : 10.1.0.2 . 8081 }" {
		t.Errorf("got %s", got[0])
	}
	two := append(one, model.PortElem{Proto: "udp", HostIP: a("192.0.2.1"), HostPort: 53, Addr: a("10.1.0.2"), Port: 53})
	got = Render([]model.Step{{Kind: model.KindPorts, Action: model.Del, Ports: two}}, Env{})[0].Commands
	want := "nft -f - <<'EOF'\ndelete element inet cnet dnat_tcp_any { 80, 81 }\ndelete element inet cnet dnat_udp { 192.0.2.1 . 53 }\nEOF"
	if got[0] != want {
		t.Errorf("got\n%s\nwant\n%s", got[0], want)
	}
	if got[3] != "conntrack -D -p udp --orig-port-dst 53 --reply-src 10.1.0.2 2>/dev/null || true" {
		t.Errorf("got %s", got[3])
	}
}

// TestWriteIsAScript: the output is valid sh, with notes, and says so
// when there is nothing to do.
func TestWriteIsAScript(t *testing.T) {
	var b strings.Builder
	steps := Render([]model.Step{{Kind: model.KindFirewall, Action: model.Set}}, Env{Firewall: firewall.Ruleset{}})
	if err := Write(&b, "cnet network rm x", []string{"a note"}, steps); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{"#!/bin/sh -e\n# cnet network rm x\n", "# note: a note\n", "table inet cnet and table bridge cnet go", "nft -f - <<'EOF'\nadd table inet cnet\ndelete table inet cnet\nadd table bridge cnet\ndelete table bridge cnet\nEOF\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("script lacks %q:\n%s", want, text)
		}
	}
	if out, err := exec.Command("sh", "-n", "-c", text).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v %s", err, out)
	}
	b.Reset()
	if err := Write(&b, "t", nil, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "# nothing to do\n") {
		t.Errorf("empty script:\n%s", b.String())
	}
}
