package kernel

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/testenv"
)

// fakeServer listens on a name server's control socket in dir. It records
// the requests' ops and answers each with this process's PID, or, when
// hangUp is set, hangs up without an answer.
type fakeServer struct {
	mu     sync.Mutex
	ops    []string
	hangUp bool
}

func newFakeServer(t *testing.T, dir string, hangUp bool) *fakeServer {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, dns.SocketFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Close(t, "ln", ln) })
	f := &fakeServer{hangUp: hangUp}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer testenv.Close(t, "conn", conn)
				var req dns.Request
				if json.NewDecoder(conn).Decode(&req) != nil {
					return
				}
				f.mu.Lock()
				f.ops = append(f.ops, req.Op)
				f.mu.Unlock()
				if !f.hangUp {
					if err := json.NewEncoder(conn).Encode(dns.Reply{PID: os.Getpid()}); err != nil {
						t.Errorf("fake server's reply: %v", err)
					}
				}
			}()
		}
	}()
	return f
}

func (f *fakeServer) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// TestDNSRunningWhenItDoesNotAnswer: a name server that listens but does
// not answer (busy, or failing) is running. Taking it for gone would start
// a second server, which would take the control socket while the first
// keeps port 53: from then on every command would fail. Asking costs the
// server nothing: DNSRunning connects and hangs up, sending no request.
func TestDNSRunningWhenItDoesNotAnswer(t *testing.T) {
	dir := t.TempDir()
	k := &Kernel{DNSDir: dir, DNSCommand: []string{"false"}}
	if k.DNSRunning() {
		t.Error("no server: DNSRunning is true")
	}
	f := newFakeServer(t, dir, true)
	if !k.DNSRunning() {
		t.Error("a server that hangs up is reported not running")
	}
	if got := f.seen(); len(got) != 0 {
		t.Errorf("the server got %v from DNSRunning, want no request", got)
	}
	if err := k.DNSStart(dns.Snapshot{}); err == nil {
		t.Error("DNSStart with a server that does not answer succeeded")
	}
	if got := f.seen(); !slices.Equal(got, []string{"ping", "sync"}) {
		t.Errorf("the server got %v; want DNSStart to ping it, then send it the records", got)
	}
}

// TestDNSStartGivesARunningServerTheRecords: when a server turns out to
// run already, DNSStart starts no other and sends it every record.
func TestDNSStartGivesARunningServerTheRecords(t *testing.T) {
	dir := t.TempDir()
	f := newFakeServer(t, dir, false)
	// A command that would fail if it were run.
	k := &Kernel{DNSDir: dir, DNSCommand: []string{"false"}}
	if err := k.DNSStart(dns.Snapshot{}); err != nil {
		t.Fatalf("DNSStart: %v", err)
	}
	if got, want := f.seen(), []string{"ping", "sync"}; !slices.Equal(got, want) {
		t.Errorf("the running server got %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, dns.SnapshotFile)); err == nil {
		t.Error("DNSStart wrote a snapshot for a server it did not start")
	}
}
