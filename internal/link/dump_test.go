package link

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/testenv"
)

// TestDumpRetriesInterrupted: an interrupted dump is taken again, and its
// partial result is never returned; other errors are returned at once.
func TestDumpRetriesInterrupted(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		fails     int   // interrupted answers before the good one
		other     error // returned instead of the good answer
		wantCalls int
		want      []int
		wantErr   error
	}{
		{name: "complete at once", wantCalls: 1, want: []int{1, 2, 3}},
		{name: "interrupted twice", fails: 2, wantCalls: 3, want: []int{1, 2, 3}},
		{name: "interrupted every time", fails: 1000, wantCalls: dumpRetries, wantErr: netlink.ErrDumpInterrupted},
		{name: "another error", other: boom, wantCalls: 1, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Dump(func() ([]int, error) {
				calls++
				if calls <= tt.fails {
					return []int{1}, netlink.ErrDumpInterrupted // partial
				}
				if tt.other != nil {
					return nil, tt.other
				}
				return []int{1, 2, 3}, nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls: got %d, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("result: got %v, want %v", got, tt.want)
			}
		})
	}
}

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
					_, err := Dump(func() ([]netlink.Link, error) {
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
