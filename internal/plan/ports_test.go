package plan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/ports"
	"github.com/cnetdev/cnet/internal/state"
	"github.com/cnetdev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// oneContainer is a View with container web on network front and
// nothing published.
type oneContainer struct{ View }

func (oneContainer) Container(name string) (*model.Container, error) {
	if name != "web" {
		return nil, nil
	}
	return &model.Container{Name: "web", Endpoints: []model.Endpoint{
		{Network: "front", HostIf: "veth0", Addr: netip.MustParseAddr("10.1.0.2"), DefaultRoute: true}}}, nil
}
func (oneContainer) Network(name string) (*model.Network, error) {
	return &model.Network{Name: name}, nil
}
func (oneContainer) PortHolders(proto string, port uint16) []state.PortHolder { return nil }
func (oneContainer) PortsAtLeast(name string, n int) bool                     { return false }

// hostSockets are Facts with one tcp listener on 0.0.0.0:held, counting
// how often the host's sockets are read.
type hostSockets struct {
	Facts
	held  uint16
	reads int
}

func (h *hostSockets) Listeners(proto string) (model.PortHolders, error) {
	h.reads++
	return held{proto, h.held}, nil
}

type held struct {
	proto string
	port  uint16
}

func (h held) Holder(ip netip.Addr, port uint16) string {
	if h.proto == "tcp" && port == h.port {
		return "sshd (pid 42)"
	}
	return ""
}

// TestPublishManyPlansInLinearTime: planning one publish of 65,535
// mappings reads the host's sockets once per protocol and takes well
// under a second; it compared every mapping with every earlier one and
// asked the kernel about each port alone, which took over a minute.
// The refusals it makes among many are those it makes among few.
func TestPublishManyPlansInLinearTime(t *testing.T) {
	all, err := ports.Parse("1-65535:1-65535")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := ports.Parse("1-1000:1-1000/udp")
	if err != nil {
		t.Fatal(err)
	}
	facts := &hostSockets{}
	env := &Env{View: oneContainer{}, Facts: facts}
	start := time.Now()
	p, err := Publish(env, "web", append(all, udp...))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("publish of %d mappings: %v", len(all)+len(udp), err)
	}
	if facts.reads != 2 {
		t.Errorf("the host's sockets were read %d times, want once per protocol (2)", facts.reads)
	}
	n := 0
	for _, st := range p.Steps {
		if st.Kind == model.KindPorts {
			n += len(st.Ports)
		}
	}
	if n != len(all)+len(udp) {
		t.Errorf("the plan adds %d elements, want %d", n, len(all)+len(udp))
	}
	// Linear work is some 0.1 s here (1 s under -race); quadratic was 15 s.
	if budget := 10 * time.Second; elapsed > budget {
		t.Errorf("planning %d mappings took %s, over %s", len(all)+len(udp), elapsed, budget)
	}

	for _, tc := range []struct {
		name   string
		held   uint16
		extra  string
		kind   error
		naming []string
	}{
		{"a port asked twice, last of many", 0, "65535:80", errs.ErrConflict, []string{"65535:80/tcp", "65535:65535/tcp", "asked for twice"}},
		{"a port held on the host, among many", 40000, "", errs.ErrConflict, []string{"0.0.0.0:40000/tcp", "sshd (pid 42)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := all
			if tc.extra != "" {
				m, err := ports.Parse(tc.extra)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want[:len(want):len(want)], m...)
			}
			_, err := Publish(&Env{View: oneContainer{}, Facts: &hostSockets{held: tc.held}}, "web", want)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
			for _, s := range tc.naming {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not name %q", err, s)
				}
			}
		})
	}
}
