package cni

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

var seedConfs = []string{
	`{"cniVersion":"1.1.0","name":"podman","type":"cnet","bridge":"br-podman","isGateway":true,"ipMasq":true,"hairpinMode":true,
	  "ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}]]}}`,
	`{"cniVersion":"1.0.0","name":"short","type":"cnet","subnet":"10.70.0.0/24","gateway":"10.70.0.1","internal":true,"noDNS":true,"mtu":9000}`,
	`{"cniVersion":"0.4.0","name":"caps","type":"cnet","subnet":"10.71.0.0/24","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}],
	  "ips":["10.71.0.9/24"],"mac":"02:aa:bb:cc:dd:01","aliases":{"caps":["web"]}}}`,
	`{"cniVersion":"1.0.0","name":"r","type":"cnet","ipam":{"subnet":"10.72.0.0/24","rangeStart":"10.72.0.10","rangeEnd":"10.72.0.20","routes":[{"dst":"10.0.0.0/8"}]}}`,
	`{"cniVersion":"1.0.0","name":"x","type":"cnet","lockTimeout":"-1s","ipam":{"type":"dhcp"}}`,
	`{"cniVersion":"1.0.0","name":"x","type":"cnet","mtu":10,"isGateway":false}`,
	`{"name":""}`, `[]`, `{`, `{"name":"x","runtimeConfig":{"aliases":7}}`,
}

// FuzzConfig: no configuration and CNI_ARGS crash Parse, Attach or
// Timeout. A refusal is a CNI error with a code and a message naming
// the key; an accepted one gives the engine only IPv4, a masked subnet
// and port mappings in range.
func FuzzConfig(f *testing.F) {
	for _, c := range seedConfs {
		f.Add([]byte(c), "")
		f.Add([]byte(c), "IgnoreUnknown=1;IP=10.88.0.9;MAC=02:00:00:00:00:01")
	}
	f.Add([]byte(seedConfs[0]), "IP=10.88.0.999")
	f.Fuzz(func(t *testing.T, data []byte, cniArgs string) {
		c, cerr := Parse(data)
		if cerr != nil {
			checkErr(t, cerr)
			return
		}
		if c.Name == "" {
			t.Fatalf("Parse accepted a configuration without a name: %s", data)
		}
		if _, cerr := c.Timeout(); cerr != nil {
			checkErr(t, cerr)
		}
		a, cerr := c.Attach("id", "eth0", "/run/netns/x", cniArgs)
		if cerr != nil {
			checkErr(t, cerr)
			return
		}
		if s := a.Network.Subnet; s.IsValid() && (!s.Addr().Is4() || s.Masked() != s) {
			t.Fatalf("accepted subnet %s", s)
		}
		for _, addr := range []struct {
			what string
			ok   bool
		}{{"gateway", !a.Network.Gateway.IsValid() || a.Network.Gateway.Is4()}, {"IP", !a.IP.IsValid() || a.IP.Is4()},
			{"rangeStart", !a.Network.RangeStart.IsValid() || a.Network.RangeStart.Is4()}, {"rangeEnd", !a.Network.RangeEnd.IsValid() || a.Network.RangeEnd.Is4()}} {
			if !addr.ok {
				t.Fatalf("accepted a %s that is not IPv4: %+v", addr.what, a)
			}
		}
		if a.Network.MTU != 0 && (a.Network.MTU < 68 || a.Network.MTU > 65535) {
			t.Fatalf("accepted mtu %d", a.Network.MTU)
		}
		for _, p := range a.Ports {
			if p.HostPort == 0 || p.Port == 0 || (p.Proto != "tcp" && p.Proto != "udp") || !p.HostIP.Is4() {
				t.Fatalf("accepted port mapping %+v", p)
			}
		}
	})
}

func checkErr(t *testing.T, e *types.Error) {
	t.Helper()
	if e.Code == 0 || strings.TrimSpace(e.Msg) == "" {
		t.Fatalf("a refusal without a code or message: %+v", e)
	}
}
