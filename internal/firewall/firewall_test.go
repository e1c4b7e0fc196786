package firewall

import (
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestMain(m *testing.M) { testenv.Main(m) }

func sampleNetworks() []*model.Network {
	return []*model.Network{
		{Name: "seed", Bridge: "cont-br0", Subnet: netip.MustParsePrefix("172.18.0.0/24")},
		{Name: "cnet", Bridge: "cnet0", Subnet: netip.MustParsePrefix("10.89.0.0/24")},
		{Name: "lab", Bridge: "cnet-lab", Subnet: netip.MustParsePrefix("10.90.0.0/16"), Internal: true},
	}
}

func samplePorts() []model.PortElem {
	a := netip.MustParseAddr
	return []model.PortElem{
		{Proto: "tcp", HostIP: a("0.0.0.0"), HostPort: 8080, Addr: a("172.18.0.2"), Port: 80},
		{Proto: "tcp", HostIP: a("192.0.2.10"), HostPort: 443, Addr: a("172.18.0.3"), Port: 8443},
		{Proto: "udp", HostIP: a("127.0.0.1"), HostPort: 5353, Addr: a("10.89.0.2"), Port: 53},
		{Proto: "udp", HostIP: a("0.0.0.0"), HostPort: 9000, Addr: a("10.89.0.2"), Port: 9000},
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("ruleset differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestRulesetGolden(t *testing.T) {
	golden(t, "three-networks.nft", FromState(sampleNetworks(), samplePorts()).String())
}

// TestGuardTableGolden: the anti-spoofing table, in nft syntax. From an
// endpoint only untagged IPv4 and ARP pass the ether type allow-list,
// before the address checks that read their headers.
func TestGuardTableGolden(t *testing.T) {
	golden(t, "guards.nft", GuardTableText([]model.GuardSpec{
		{HostIf: "veth1111111", MAC: "02:63:0a:01:00:02", Addr: netip.MustParseAddr("10.1.0.2")},
		{HostIf: "veth3333333", MAC: "02:63:0a:01:00:03", Addr: netip.MustParseAddr("10.1.0.3"), Router: true},
	}))
}

func TestRulesetEmpty(t *testing.T) {
	rs := FromState(nil, nil)
	if !rs.Empty() || rs.String() != "" {
		t.Errorf("no networks: got %q, want an empty ruleset", rs.String())
	}
}

func TestRulesetInternalHasNoMasquerade(t *testing.T) {
	rs := FromState(sampleNetworks(), samplePorts())
	for _, p := range rs.Masq {
		if p.String() == "10.90.0.0/16" {
			t.Errorf("internal subnet %s is in the masquerade set", p)
		}
	}
	if len(rs.Internal) != 1 || rs.Internal[0] != "cnet-lab" {
		t.Errorf("internal = %v, want [cnet-lab]", rs.Internal)
	}
}

// TestSyncMatchesNft writes the ruleset through netlink, then loads the
// rendered text with nft in another namespace: nft must list both alike.
// nft is the independent judge of what the netlink expressions mean.
func TestSyncMatchesNft(t *testing.T) {
	testenv.RequirePrivileged(t)
	rs := FromState(sampleNetworks(), samplePorts())
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Sync(rs); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	t.Cleanup(func() { _ = Sync(Ruleset{}) })
	got := testenv.Run(t, "nft", "list", "table", "inet", Table)

	testenv.Run(t, "ip", "netns", "add", "fwjudge")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "fwjudge") })
	file := filepath.Join(t.TempDir(), "rs.nft")
	if err := os.WriteFile(file, []byte(rs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "ip", "netns", "exec", "fwjudge", "nft", "-f", file)
	want := testenv.Run(t, "ip", "netns", "exec", "fwjudge", "nft", "list", "table", "inet", Table)
	if got != want {
		t.Errorf("netlink-written table differs from nft's reading of the rendered text\nnetlink:\n%s\nnft -f:\n%s", got, want)
	}

	// A second Sync replaces, never duplicates, and an empty one removes the table.
	if err := Sync(rs); err != nil {
		t.Fatal(err)
	}
	if again := testenv.Run(t, "nft", "list", "table", "inet", Table); again != got {
		t.Errorf("second Sync changed the table:\n%s", again)
	}
	if err := Sync(Ruleset{}); err != nil {
		t.Fatal(err)
	}
	if out, _ := testenv.Try("nft", "list", "tables"); strings.Contains(out, Table) {
		t.Errorf("table still present after empty Sync: %s", out)
	}
	if ok, err := Exists(conn); err != nil || ok {
		t.Errorf("Exists = %v, %v; want false", ok, err)
	}
}

// TestPortDeltas: adding and deleting port elements gives exactly the
// table a full rebuild would.
func TestPortDeltas(t *testing.T) {
	testenv.RequirePrivileged(t)
	all := samplePorts()
	base := FromState(sampleNetworks(), all[:1])
	if err := Sync(base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Logged(t, "nft delete table", Sync(Ruleset{})) })
	list := func() string { return testenv.Run(t, "nft", "list", "table", "inet", Table) }
	before := list()
	if err := AddPorts(all[1:]); err != nil {
		t.Fatal(err)
	}
	added := list()
	if err := Sync(FromState(sampleNetworks(), all)); err != nil {
		t.Fatal(err)
	}
	if rebuilt := list(); added != rebuilt {
		t.Errorf("after AddPorts:\n%s\nwant what a rebuild gives:\n%s", added, rebuilt)
	}
	if err := DelPorts(all[1:]); err != nil {
		t.Fatal(err)
	}
	if after := list(); after != before {
		t.Errorf("after DelPorts:\n%s\nwant:\n%s", after, before)
	}
	// Deleting what is absent fails as a whole and changes nothing.
	if err := DelPorts(all[1:]); err == nil {
		t.Error("deleting absent elements succeeded")
	}
	if after := list(); after != before {
		t.Errorf("a failed batch changed the table:\n%s", after)
	}
}

// TestGuardsMatchNft: the anti-spoofing table written through netlink
// lists as nft lists the rendered text, and element deltas give exactly
// the table a rebuild would.
func TestGuardsMatchNft(t *testing.T) {
	testenv.RequirePrivileged(t)
	gs := []model.GuardSpec{
		{HostIf: "veth1111111", MAC: "02:63:0a:01:00:02", Addr: netip.MustParseAddr("10.1.0.2")},
		{HostIf: "veth2222222", MAC: "02:AA:BB:CC:DD:01", Addr: netip.MustParseAddr("10.2.0.9")},
		{HostIf: "veth3333333", MAC: "02:63:0a:01:00:03", Addr: netip.MustParseAddr("10.1.0.3"), Router: true},
	}
	rs := FromState(sampleNetworks(), nil)
	rs.Guards = gs
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Sync(rs); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	t.Cleanup(func() { _ = Sync(Ruleset{}) })
	got := testenv.Run(t, "nft", "list", "table", "bridge", Table)

	testenv.Run(t, "ip", "netns", "add", "guardjudge")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "guardjudge") })
	file := filepath.Join(t.TempDir(), "guard.nft")
	if err := os.WriteFile(file, []byte(GuardTableText(gs)), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "ip", "netns", "exec", "guardjudge", "nft", "-f", file)
	want := testenv.Run(t, "ip", "netns", "exec", "guardjudge", "nft", "list", "table", "bridge", Table)
	if got != want {
		t.Errorf("netlink-written table differs from nft's reading of the rendered text\nnetlink:\n%s\nnft -f:\n%s", got, want)
	}
	if problem, err := Check(conn, rs); err != nil || problem != "" {
		t.Errorf("Check after Sync: %q %v", problem, err)
	}
	// Deltas: delete one, add it back; deleting what is absent is no error.
	if err := DelGuards(gs[1:]); err != nil {
		t.Fatal(err)
	}
	if problem, _ := Check(conn, rs); !strings.Contains(problem, "elements") {
		t.Errorf("Check with an element missing: %q", problem)
	}
	if err := DelGuards(gs[1:]); err != nil {
		t.Errorf("deleting an absent guard: %v", err)
	}
	// One present, one absent: the first batch fails whole, and the
	// second deletes the present one.
	if err := DelGuards(gs[:2]); err != nil {
		t.Errorf("deleting a present and an absent guard: %v", err)
	}
	if out := testenv.Run(t, "nft", "list", "set", "bridge", Table, "ports"); strings.Contains(out, gs[0].HostIf) {
		t.Errorf("%s still guarded after DelGuards:\n%s", gs[0].HostIf, out)
	}
	if err := AddGuards(gs); err != nil {
		t.Fatal(err)
	}
	if again := testenv.Run(t, "nft", "list", "table", "bridge", Table); again != got {
		t.Errorf("after delete and add:\n%s\nwant:\n%s", again, got)
	}
	if err := AddGuards(gs[1:]); err != nil {
		t.Errorf("adding a present guard again: %v", err)
	}
	if err := Sync(Ruleset{}); err != nil {
		t.Fatal(err)
	}
	if out, _ := testenv.Try("nft", "list", "tables"); strings.Contains(out, "bridge "+Table) {
		t.Errorf("bridge table still present after empty Sync: %s", out)
	}
}

// liveElems counts the elements of a map or set of table FAMILY cnet, as
// nft lists them.
func liveElems(t *testing.T, family, name string) int {
	kind := "set"
	if strings.HasPrefix(name, "dnat_") {
		kind = "map"
	}
	t.Helper()
	var out struct {
		Nftables []struct {
			Map *struct{ Elem []json.RawMessage }
			Set *struct{ Elem []json.RawMessage }
		}
	}
	if err := json.Unmarshal([]byte(testenv.Run(t, "nft", "-j", "list", kind, family, Table, name)), &out); err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Nftables {
		if o.Map != nil {
			return len(o.Map.Elem)
		}
		if o.Set != nil {
			return len(o.Set.Elem)
		}
	}
	t.Fatalf("nft lists no set %s %s", family, name)
	return 0
}

// TestManyPorts: 65,535 mappings (every port, on every address) and
// 2,000 endpoints go into the kernel whole, by a rebuild and by element
// deltas, and Check finds nothing amiss. Before batches were split and
// their socket sized, a rebuild failed with EMSGSIZE beyond some 5,500
// mappings, and below that silently kept a few hundred of every 1,800.
func TestManyPorts(t *testing.T) {
	testenv.RequirePrivileged(t)
	all := manyPorts(65535, "tcp", "0.0.0.0")
	rs := FromState(sampleNetworks(), all)
	rs.Guards = manyGuards(2000)
	if err := Sync(rs); err != nil {
		t.Fatalf("Sync with %d mappings: %v", len(all), err)
	}
	t.Cleanup(func() { _ = Sync(Ruleset{}) })
	if n := liveElems(t, "inet", "dnat_tcp_any"); n != len(all) {
		t.Errorf("after Sync: dnat_tcp_any has %d elements, want %d", n, len(all))
	}
	if n := liveElems(t, "bridge", "portmac"); n != len(rs.Guards) {
		t.Errorf("after Sync: portmac has %d elements, want %d", n, len(rs.Guards))
	}
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { testenv.Logged(t, "close the nftables connection", conn.CloseLasting()) }()
	if problem, err := Check(conn, rs); problem != "" || err != nil {
		t.Errorf("Check after Sync: %q %v", problem, err)
	}
	if err := DelPorts(all); err != nil {
		t.Fatalf("DelPorts of %d: %v", len(all), err)
	}
	if n := liveElems(t, "inet", "dnat_tcp_any"); n != 0 {
		t.Errorf("after DelPorts: dnat_tcp_any has %d elements, want none", n)
	}
	// A large batch that fails reports the kernel's reason: every one of
	// its messages fails, and their answers must not overflow the socket.
	if err := DelPorts(all); !errors.Is(err, unix.ENOENT) {
		t.Errorf("deleting %d absent mappings: %v, want ENOENT", len(all), err)
	}
	if err := AddPorts(all); err != nil {
		t.Fatalf("AddPorts of %d: %v", len(all), err)
	}
	if n := liveElems(t, "inet", "dnat_tcp_any"); n != len(all) {
		t.Errorf("after AddPorts: dnat_tcp_any has %d elements, want %d", n, len(all))
	}
	if err := DelGuards(rs.Guards); err != nil {
		t.Fatalf("DelGuards of %d: %v", len(rs.Guards), err)
	}
	if n := liveElems(t, "bridge", "portmac"); n != 0 {
		t.Errorf("after DelGuards: portmac has %d elements, want none", n)
	}
	if err := AddGuards(rs.Guards); err != nil {
		t.Fatalf("AddGuards of %d: %v", len(rs.Guards), err)
	}
	if problem, err := Check(conn, rs); problem != "" || err != nil {
		t.Errorf("Check after deltas: %q %v", problem, err)
	}
}
