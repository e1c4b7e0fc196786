package dns

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/testenv"
)

// TestDump: a table built by changes dumps exactly as one loaded from the
// resulting snapshot, and a removed container leaves no line.
func TestDump(t *testing.T) {
	tab := NewTable(Snapshot{Networks: sample.Networks})
	tab.Apply(Change{SetContainers: sample.Containers})
	if got, want := tab.Dump(), NewTable(sample).Dump(); !slices.Equal(got, want) {
		t.Errorf("dump after changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, want := range []string{"name www.front [10.1.0.2]", "addr 10.2.0.3 container api network back", "gateway 10.1.0.1 network front"} {
		if !slices.Contains(tab.Dump(), want) {
			t.Errorf("dump lacks %q:\n%s", want, strings.Join(tab.Dump(), "\n"))
		}
	}
	tab.Apply(Change{DelContainers: []string{"web"}})
	for _, l := range tab.Dump() {
		if strings.Contains(l, "web") || strings.Contains(l, "www") {
			t.Errorf("removed container still dumped: %q", l)
		}
	}
}

// TestAliveZombie: a process that exited but is not yet reaped has
// stopped, whoever reaps it.
func TestAliveZombie(t *testing.T) {
	cmd := exec.Command("sleep", "0.05")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { testenv.Logged(t, "cmd.Wait()", cmd.Wait()) }()
	if !alive(cmd.Process.Pid) {
		t.Fatal("a running process is reported stopped")
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("an exited, unreaped process is still reported alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
