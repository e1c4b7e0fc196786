package main

import (
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// foreignRuleset is another tool's nftables state: tables in three
// families, with sets, maps and rules in hooks cnet also uses.
const foreignRuleset = `table inet neighbour {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.7, 192.0.2.8 }
	}
	map ports {
		type inet_service : inet_service
		elements = { 2222 : 22 }
	}
	chain in {
		type filter hook input priority filter; policy accept;
		ip saddr @blocked drop
		tcp dport 22 accept
	}
	chain forward {
		type filter hook forward priority filter + 10; policy accept;
		ip daddr 192.0.2.0/24 drop
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 2222 redirect to :22
	}
}
table ip neighbour_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 192.0.2.0/24 oifname "nope0" masquerade
	}
}
table bridge neighbour_br {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ether type arp accept
	}
}
`

func listForeign(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, tbl := range []string{"inet neighbour", "ip neighbour_nat", "bridge neighbour_br"} {
		b.WriteString(testenv.Run(t, "nft", append([]string{"-a", "list", "table"}, strings.Fields(tbl)...)...))
	}
	return b.String()
}

// TestNeighbours: another tool's nftables tables stay byte-identical
// (handles included) through every cnet operation and gc; after `nft
// flush ruleset`, `cnet gc` puts cnet's table back exactly as it was and
// touches nothing else.
func TestNeighbours(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() {
		for _, tbl := range []string{"inet neighbour", "ip neighbour_nat", "bridge neighbour_br"} {
			testenv.Try("nft", append([]string{"delete", "table"}, strings.Fields(tbl)...)...)
		}
	})
	load := func() {
		t.Helper()
		if out, err := testenv.TryIn(foreignRuleset, "nft", "-f", "-"); err != nil {
			t.Fatalf("load the neighbour's ruleset: %v\n%s", err, out)
		}
	}
	load()
	want := listForeign(t)
	testenv.Run(t, "ip", "netns", "add", "podn")
	t.Cleanup(func() { testenv.Try("ip", "netns", "del", "podn") })
	conf := `{"cniVersion":"1.1.0","name":"front","type":"cnet","subnet":"172.31.1.0/24"}`
	steps := []action{
		cmd("network", "create", "front", "--subnet", "172.31.1.0/24"),
		cmd("network", "create", "back", "--subnet", "172.31.2.0/24", "--internal"),
		cmd("create", "a", "--network", "front", "-p", "8080:80"),
		cmd("connect", "back", "a"),
		cmd("publish", "a", "127.0.0.1:8081:81/udp"),
		cniAct("ADD", "podn", conf),
		cmd("gc"),
		cmd("unpublish", "a", "127.0.0.1:8081:81/udp"),
		cmd("disconnect", "back", "a"),
		cniAct("DEL", "podn", conf),
		cmd("rm", "a"),
		cmd("network", "rm", "back"),
		cmd("create", "b", "--network", "front"),
	}
	for _, s := range steps {
		c.must(s)
		if got := listForeign(t); got != want {
			t.Fatalf("after %s the neighbour's tables changed (+ now, - before):\n%s", s, testenv.Diff(got, want))
		}
	}

	ours := testenv.Run(t, "nft", "list", "table", "inet", "cnet")
	testenv.Run(t, "nft", "flush", "ruleset")
	load()
	foreign := listForeign(t) // re-created: new handles
	gc := c.ok("gc")
	if !strings.Contains(gc, "firewall table inet cnet") {
		t.Errorf("gc did not report repairing the table:\n%s", gc)
	}
	if got := testenv.Run(t, "nft", "list", "table", "inet", "cnet"); got != ours {
		t.Errorf("after flush and gc, cnet's table differs (+ now, - before):\n%s", testenv.Diff(got, ours))
	}
	if got := listForeign(t); got != foreign {
		t.Errorf("gc changed the neighbour's tables (+ now, - before):\n%s", testenv.Diff(got, foreign))
	}
	if again := c.ok("gc"); !strings.Contains(again, "nothing to do") {
		t.Errorf("second gc still acts:\n%s", again)
	}
}
