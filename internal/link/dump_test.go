package link

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/nlreq"
	"github.com/cnetdev/cnet/internal/testenv"
)

// TestDumpDuringTeardown lists links while the kernel tears down the veths
// of deleted namespaces (what follows `cnet rm`), until one of the
// library's dumps is interrupted (the race is hit); the listing through
// Dump must never fail. Without the retry, that interrupted try would have
// been the listing's error.
func TestDumpDuringTeardown(t *testing.T) {
	testenv.RequirePrivileged(t)
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Enough links that a dump takes many datagrams, so a change can land
	// between two of them.
	const pairs, background = 40, 400
	script := ""
	for i := range background {
		script += fmt.Sprintf("link add dtbg%d type veth peer name dtbgp%d\n", i, i)
	}
	if out, err := testenv.TryIn(script, "ip", "-batch", "-"); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		script := ""
		for i := range background {
			script += fmt.Sprintf("link del dtbg%d\n", i)
		}
		testenv.TryIn(script, "ip", "-batch", "-")
	})
	rawInterrupted, failures := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; rawInterrupted == 0 && time.Now().Before(deadline); round++ {
		ns := fmt.Sprintf("dumpt%d", round)
		testenv.Run(t, "ip", "netns", "add", ns)
		script = ""
		for i := range pairs {
			script += fmt.Sprintf("link add dt%d-%d type veth peer name p%d netns %s\n", round, i, i, ns)
		}
		if out, err := testenv.TryIn(script, "ip", "-batch", "-"); err != nil {
			t.Fatalf("ip -batch: %v\n%s", err, out)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var mu sync.Mutex
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					// LinkList itself, counting the interrupted tries.
					_, err := nlreq.Dump(func() ([]netlink.Link, error) {
						links, err := h.LinkList()
						if errors.Is(err, netlink.ErrDumpInterrupted) {
							mu.Lock()
							rawInterrupted++
							mu.Unlock()
						}
						return links, err
					})
					mu.Lock()
					if err != nil {
						failures++
						t.Errorf("LinkList during teardown: %v", err)
					}
					mu.Unlock()
				}
			}()
		}
		testenv.Run(t, "ip", "netns", "del", ns)
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if _, err := netlink.LinkByName(fmt.Sprintf("dt%d-0", round)); err != nil {
				break
			}
		}
		close(stop)
		wg.Wait()
		if failures > 0 {
			return
		}
	}
	if rawInterrupted == 0 {
		t.Fatal("no raw dump was interrupted in 30 s: the test did not reach the race it is about")
	}
	t.Logf("raw dumps interrupted: %d; LinkList failed: %d", rawInterrupted, failures)
}
