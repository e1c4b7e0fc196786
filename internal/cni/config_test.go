package cni

import (
	"slices"
	"strings"
	"testing"
)

// TestAttachNameServer: cnet's name server is off unless the
// configuration asks for it, so a runtime's DNS plugin can bind the
// gateway; only an explicit choice is held against an existing network.
func TestAttachNameServer(t *testing.T) {
	base := `{"cniVersion":"0.4.0","name":"n","type":"cnet","subnet":"10.80.0.0/24"`
	tests := []struct {
		name             string
		extra            string
		wantNoDNS, isSet bool
		wantCode         uint
	}{
		{"absent", ``, true, false, 0},
		{"cnetDNS true", `,"cnetDNS":true`, false, true, 0},
		{"cnetDNS false", `,"cnetDNS":false`, true, true, 0},
		{"noDNS true", `,"noDNS":true`, true, true, 0},
		{"both", `,"cnetDNS":true,"noDNS":true`, false, false, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cerr := Parse([]byte(base + tt.extra + "}"))
			if cerr != nil {
				t.Fatal(cerr)
			}
			a, cerr := c.Attach("id", "eth0", "/run/netns/x", "")
			if tt.wantCode != 0 {
				if cerr == nil || cerr.Code != tt.wantCode {
					t.Fatalf("got %+v, want code %d", cerr, tt.wantCode)
				}
				return
			}
			if cerr != nil {
				t.Fatal(cerr)
			}
			if a.Network.NoDNS != tt.wantNoDNS || a.DNSSet != tt.isSet {
				t.Errorf("got NoDNS %v DNSSet %v, want %v %v", a.Network.NoDNS, a.DNSSet, tt.wantNoDNS, tt.isSet)
			}
		})
	}
}

// TestAttachPodName: K8S_POD_NAME (Podman's container name) is one more
// alias when it is a valid name, once.
func TestAttachPodName(t *testing.T) {
	c, cerr := Parse([]byte(`{"cniVersion":"0.4.0","name":"n","type":"cnet","subnet":"10.80.0.0/24","runtimeConfig":{"aliases":{"n":["web"]}}}`))
	if cerr != nil {
		t.Fatal(cerr)
	}
	for _, tt := range []struct{ args, want string }{
		{"IgnoreUnknown=1;K8S_POD_NAME=db", "web db"},
		{"K8S_POD_NAME=web", "web"},
		{"K8S_POD_NAME=not/a/name", "web"},
		{"", "web"},
	} {
		a, cerr := c.Attach("id", "eth0", "/run/netns/x", tt.args)
		if cerr != nil {
			t.Fatalf("%s: %+v", tt.args, cerr)
		}
		if got := a.Aliases; !slices.Equal(got, strings.Fields(tt.want)) {
			t.Errorf("%q: aliases %v, want %s", tt.args, got, tt.want)
		}
	}
}
