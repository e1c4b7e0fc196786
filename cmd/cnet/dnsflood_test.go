package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// procUsage reads a process's open file descriptors and resident memory.
func procUsage(pid int) (fds int, rssKiB int, err error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, 0, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }() // opened to read: its close cannot lose anything
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return len(ents), rssKiB, sc.Err()
}

// TestDNSFloodIsBounded: one container floods the name server, over UDP
// and TCP, with queries that must be forwarded to an upstream that never
// answers, with its own names, and with hundreds of idle TCP
// connections. Meanwhile the server's open files and memory stay under
// bounds the limits give, and a container on another network is still
// answered, names of its own and forwarded ones alike.
func TestDNSFloodIsBounded(t *testing.T) {
	c := newCLI(t)
	up := fakeUpstream(t)
	hostResolv(t, "nameserver 198.51.100.1\n")
	c.ok("network", "create", "front", "--subnet", "172.31.1.0/24")
	c.ok("network", "create", "back", "--subnet", "172.31.2.0/24")
	c.ok("create", "flood", "--network", "front")
	c.ok("create", "calm", "--network", "back")
	pid, err := dns.Client{Dir: filepath.Join(c.root, "run", "dns")}.Ping()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := tryDNS("calm", "172.31.2.1", "example.test.", mdns.TypeA, "udp"); err != nil || answers(m) != "192.0.2.80" {
		t.Fatalf("before the flood, calm asks for example.test: %v %v", m, err)
	}
	baseFDs, baseRSS, err := procUsage(pid)
	if err != nil {
		t.Fatal(err)
	}
	// One client holds at most its share: forwards (a socket each) and
	// TCP connections. The rest is slack for the runtime.
	lim := dns.DefaultLimits
	maxFDs := baseFDs + lim.ClientForwards + lim.ClientTCPConns + 16
	maxRSS := baseRSS + 24*1024

	const floodFor = 3 * time.Second
	stop := time.Now().Add(floodFor)
	var sent atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait() // the flooders log and fail t: they end (at stop) before the test does
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			testenv.Close(t, "idle tcp connection", cn)
		}
	}()
	err = netns.Do("/run/netns/flood", func() error {
		// Idle TCP connections: the server keeps at most its per-client
		// share and hangs up on the rest.
		for range 300 {
			cn, err := net.DialTimeout("tcp", "172.31.1.1:53", time.Second)
			if err != nil {
				continue // refused or reset: the server is turning them away
			}
			conns = append(conns, cn)
		}
		// UDP: four sockets sending forwarded and local names as fast as
		// they can, reading back whatever comes.
		for i := range 4 {
			u, err := net.Dial("udp", "172.31.1.1:53")
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer testenv.Close(t, "udp flooder", u)
				buf := make([]byte, 4096)
				for n := 0; time.Now().Before(stop) && n < 20000; {
					for range 100 {
						name := fmt.Sprintf("q%d-%d.blackhole.test.", i, n)
						if n%4 == 3 {
							name = "flood."
						}
						q := new(mdns.Msg)
						q.SetQuestion(name, mdns.TypeA)
						pkt, _ := q.Pack()
						_, _ = u.Write(pkt) // a full socket buffer drops it: that is a flood
						n++
						sent.Add(1)
					}
					if err := u.SetReadDeadline(time.Now().Add(5 * time.Millisecond)); err != nil {
						t.Errorf("udp flooder: %v", err)
						return
					}
					for {
						if _, err := u.Read(buf); err != nil {
							break
						}
					}
				}
			}()
		}
		// TCP connections that send forwarded names back to back.
		for i := range 8 {
			cn, err := net.DialTimeout("tcp", "172.31.1.1:53", time.Second)
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer testenv.Close(t, "tcp flooder", cn)
				co := &mdns.Conn{Conn: cn}
				for n := 0; time.Now().Before(stop); n++ {
					q := new(mdns.Msg)
					q.SetQuestion(fmt.Sprintf("t%d-%d.blackhole.test.", i, n), mdns.TypeA)
					if err := cn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
						t.Errorf("tcp flooder: %v", err)
						return
					}
					if co.WriteMsg(q) != nil {
						return
					}
					if _, err := co.ReadMsg(); err != nil {
						return
					}
				}
			}()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// While it floods: watch the server, and ask from calm on back.
	var peakFDs, peakRSS, asked, late int
	for time.Now().Before(stop) {
		fds, rss, err := procUsage(pid)
		if err != nil {
			t.Fatalf("the name server (pid %d) is gone: %v", pid, err)
		}
		peakFDs, peakRSS = max(peakFDs, fds), max(peakRSS, rss)
		for _, q := range []struct{ name, proto, want string }{
			{"calm.", "udp", "172.31.2.2"},
			{"example.test.", "udp", "192.0.2.80"},
			{"calm.", "tcp", "172.31.2.2"},
			{"example.test.", "tcp", "192.0.2.80"},
		} {
			// A resolver retries a lost datagram: so does calm, within
			// a deadline of 3 s for each name.
			deadline := time.Now().Add(3 * time.Second)
			for {
				m, err := tryDNS("calm", "172.31.2.1", q.name, mdns.TypeA, q.proto)
				if err == nil && answers(m) == q.want {
					break
				}
				if time.Now().After(deadline) {
					late++
					t.Errorf("during the flood, calm got no answer for %s over %s within 3 s: %v %v", q.name, q.proto, m, err)
					break
				}
			}
			asked++
		}
	}
	wg.Wait()
	t.Logf("flood: %d UDP queries, %d idle TCP connections kept open by the client; server fds %d -> peak %d (bound %d), RSS %d -> peak %d KiB (bound %d); calm asked %d times, %d late; upstream got %d queries",
		sent.Load(), len(conns), baseFDs, peakFDs, maxFDs, baseRSS, peakRSS, maxRSS, asked, late, up.queries.Load())
	if peakFDs > maxFDs {
		t.Errorf("the server held %d open files during the flood, want at most %d", peakFDs, maxFDs)
	}
	if peakRSS > maxRSS {
		t.Errorf("the server's RSS reached %d KiB during the flood, want at most %d", peakRSS, maxRSS)
	}
	if asked == 0 {
		t.Error("calm never asked during the flood")
	}
	// Once the flood stops, the server lets go of what it held.
	for _, cn := range conns {
		testenv.Close(t, "idle tcp connection", cn)
	}
	conns = nil // closed: nothing left for the deferred close
	testenv.Eventually(t, 10*time.Second, func() error {
		if fds, _, err := procUsage(pid); err != nil || fds > baseFDs+4 {
			return fmt.Errorf("%d open files after the flood (%v), want about %d", fds, err, baseFDs)
		}
		return nil
	})
}
