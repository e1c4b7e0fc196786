package firewall

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"

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
	golden(t, "three-networks.nft", FromNetworks(sampleNetworks()).String())
}

func TestRulesetEmpty(t *testing.T) {
	rs := FromNetworks(nil)
	if !rs.Empty() || rs.String() != "" {
		t.Errorf("no networks: got %q, want an empty ruleset", rs.String())
	}
}

func TestRulesetInternalHasNoMasquerade(t *testing.T) {
	rs := FromNetworks(sampleNetworks())
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
	rs := FromNetworks(sampleNetworks())
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Sync(conn, rs); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	t.Cleanup(func() { _ = Sync(conn, Ruleset{}) })
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
	if err := Sync(conn, rs); err != nil {
		t.Fatal(err)
	}
	if again := testenv.Run(t, "nft", "list", "table", "inet", Table); again != got {
		t.Errorf("second Sync changed the table:\n%s", again)
	}
	if err := Sync(conn, Ruleset{}); err != nil {
		t.Fatal(err)
	}
	if out, _ := testenv.Try("nft", "list", "tables"); strings.Contains(out, Table) {
		t.Errorf("table still present after empty Sync: %s", out)
	}
	if ok, err := Exists(conn); err != nil || ok {
		t.Errorf("Exists = %v, %v; want false", ok, err)
	}
}
