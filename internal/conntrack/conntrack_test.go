package conntrack

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestFlush deletes exactly the flows of the mappings it is
// given, looking each mapping up (a dump the kernel filters) or, for
// many, matching one dump of every flow: both ways must agree.
func TestFlush(t *testing.T) {
	testenv.RequirePrivileged(t)
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Flows from a client to host 10.0.0.1 (or .2): "nat" was DNATed to
	// the container 10.9.0.2, "stale" was not.
	type flow struct {
		name          string
		proto         uint8
		sport, dport  uint16
		dst, replySrc string
		replySport    uint16
	}
	flows := []flow{
		{"nat", unix.IPPROTO_UDP, 40000, 5300, "10.0.0.1", "10.9.0.2", 53},
		{"stale", unix.IPPROTO_UDP, 40001, 5300, "10.0.0.1", "10.0.0.1", 5300},
		{"other-port", unix.IPPROTO_UDP, 40002, 5400, "10.0.0.1", "10.0.0.1", 5400},
		{"other-addr", unix.IPPROTO_UDP, 40003, 5300, "10.0.0.2", "10.0.0.2", 5300},
	}
	create := func() {
		t.Helper()
		if err := h.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			err := h.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, &netlink.ConntrackFlow{
				FamilyType: unix.AF_INET,
				Forward:    netlink.IPTuple{Protocol: f.proto, SrcIP: net.ParseIP("198.51.100.2").To4(), DstIP: net.ParseIP(f.dst).To4(), SrcPort: f.sport, DstPort: f.dport},
				Reverse:    netlink.IPTuple{Protocol: f.proto, SrcIP: net.ParseIP(f.replySrc).To4(), DstIP: net.ParseIP("198.51.100.2").To4(), SrcPort: f.replySport, DstPort: f.sport},
				TimeOut:    300,
			})
			if err != nil {
				t.Fatalf("conntrack -I %s: %v", f.name, err)
			}
		}
	}
	left := func() []string {
		t.Helper()
		got, err := link.ConntrackTableList(h, netlink.ConntrackTable, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range got {
			for _, f := range flows {
				if g.Forward.SrcPort == f.sport && g.Forward.SrcIP.Equal(net.ParseIP("198.51.100.2")) {
					names = append(names, f.name)
				}
			}
		}
		slices.Sort(names)
		return names
	}
	elem := func(proto, hostIP string, port uint16, addr string) model.PortElem {
		return model.PortElem{Proto: proto, HostIP: netip.MustParseAddr(hostIP), HostPort: port, Addr: netip.MustParseAddr(addr), Port: 53}
	}
	// Unrelated mappings that pad a call past perPortDumps.
	var padding []model.PortElem
	for i := range perPortDumps {
		padding = append(padding, elem("udp", "0.0.0.0", uint16(6000+i), "10.9.0.9"))
	}
	defer func() {
		testenv.Logged(t, "h.ConntrackTableFlush(netlink.ConntrackTable)", h.ConntrackTableFlush(netlink.ConntrackTable))
	}()
	for _, tt := range []struct {
		name      string
		ps        []model.PortElem
		published bool
		want      []string // left
	}{
		{"unpublish deletes the flows the mapping made", []model.PortElem{elem("udp", "0.0.0.0", 5300, "10.9.0.2")}, false,
			[]string{"other-addr", "other-port", "stale"}},
		{"publish on an address deletes its port's flows to that address", []model.PortElem{elem("udp", "10.0.0.1", 5300, "10.9.0.2")}, true,
			[]string{"other-addr", "other-port"}},
		{"publish on 0.0.0.0 deletes its port's flows to every address", []model.PortElem{elem("udp", "0.0.0.0", 5300, "10.9.0.2")}, true,
			[]string{"other-port"}},
		{"one port on two host addresses deletes the flows to both", []model.PortElem{elem("udp", "10.0.0.1", 5300, "10.9.0.2"), elem("udp", "10.0.0.2", 5300, "10.9.0.2")}, true,
			[]string{"other-port"}},
		{"another protocol deletes nothing", []model.PortElem{elem("tcp", "0.0.0.0", 5300, "10.9.0.2"), elem("tcp", "0.0.0.0", 5400, "10.9.0.2")}, true,
			[]string{"nat", "other-addr", "other-port", "stale"}},
		{"unpublish of another container's mapping deletes nothing", []model.PortElem{elem("udp", "0.0.0.0", 5400, "10.9.0.3")}, false,
			[]string{"nat", "other-addr", "other-port", "stale"}},
	} {
		for _, many := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/many=%v", tt.name, many), func(t *testing.T) {
				create()
				if got := left(); len(got) != len(flows) {
					t.Fatalf("created %v, want all %d flows", got, len(flows))
				}
				ps := tt.ps
				if many {
					ps = append(slices.Clone(tt.ps), padding...)
				}
				if err := Flush(s, ps, tt.published); err != nil {
					t.Fatal(err)
				}
				if got := left(); !slices.Equal(got, tt.want) {
					t.Errorf("left %v, want %v", got, tt.want)
				}
			})
		}
	}
}
