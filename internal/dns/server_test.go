package dns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/testenv"
)

// serveEnv makes the test binary run a name server on the directory given
// as its last argument, as `cnet __dns DIR` does: what Client.Start
// starts in these tests.
const serveEnv = "CNET_DNS_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		s, err := NewServer(os.Args[len(os.Args)-1], slog.New(slog.NewTextHandler(os.Stderr, nil)), nil)
		if err == nil {
			err = s.Run()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serverDir returns a directory with an empty snapshot: a server on it
// listens on no network, only on its control socket, so these tests need
// no privileges.
func serverDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SnapshotFile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runServer runs a server on dir in this process until the test ends.
func runServer(t *testing.T, dir string) {
	t.Helper()
	s, err := NewServer(dir, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	c := Client{Dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Ping(); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the server does not answer")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Cleanup(func() {
		// Not c.Stop, which waits for the server's PID, this one, to end.
		if _, err := c.call(Request{Op: "stop"}); err != nil {
			t.Errorf("stop: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the server did not stop")
		}
	})
}

func shortCalls(t *testing.T, d time.Duration) {
	old := callTimeout
	callTimeout = d
	t.Cleanup(func() { callTimeout = old })
}

// TestPingTellsGoneFromBusy: for Ping and Listening, no socket, or a socket nothing accepts on,
// is a server that is not running; a socket whose listener does not
// answer is a server that runs but is busy, which must never be taken
// for gone (a command would start a second one).
func TestPingTellsGoneFromBusy(t *testing.T) {
	shortCalls(t, 200*time.Millisecond)
	dir := t.TempDir()
	c := Client{Dir: dir}
	if _, err := c.Ping(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no socket: got %v, want ErrNotRunning", err)
	}
	if c.Listening() {
		t.Error("no socket: Listening says a server listens")
	}

	sock := filepath.Join(dir, SocketFile)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	// Accepts (the kernel queues connections) but never answers.
	if _, err := c.Ping(); err == nil || errors.Is(err, ErrNotRunning) {
		t.Errorf("a listener that does not answer: got %v, want an error other than ErrNotRunning", err)
	} else if !strings.Contains(err.Error(), sock) {
		t.Errorf("the error %q does not name the socket", err)
	}
	if !c.Listening() {
		t.Error("a listener that does not answer: Listening says none listens")
	}

	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("a socket left by a dead server: got %v, want ErrNotRunning", err)
	}
	if c.Listening() {
		t.Error("a socket left by a dead server: Listening says a server listens")
	}
}

// TestSlowClientHoldsUpNoOne: a client that connects and sends nothing
// (a command the scheduler put aside) does not keep the server from
// answering others, and is itself still served afterwards.
func TestSlowClientHoldsUpNoOne(t *testing.T) {
	shortCalls(t, 3*time.Second)
	dir := serverDir(t)
	runServer(t, dir)
	slow, err := net.Dial("unix", filepath.Join(dir, SocketFile))
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "slow", slow)
	c := Client{Dir: dir}
	for i := range 3 {
		if _, err := c.Ping(); err != nil {
			t.Fatalf("ping %d while another client is silent: %v", i, err)
		}
	}
	if err := slow.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(slow).Encode(Request{Op: "ping"}); err != nil {
		t.Fatalf("the slow client's request: %v", err)
	}
	var rep Reply
	if err := json.NewDecoder(slow).Decode(&rep); err != nil || rep.PID != os.Getpid() {
		t.Errorf("the slow client got %+v, %v; want an answer", rep, err)
	}
}

// TestSecondServerLeavesTheSocket: a server started while another listens
// refuses to run, and the first keeps its socket.
func TestSecondServerLeavesTheSocket(t *testing.T) {
	dir := serverDir(t)
	runServer(t, dir)
	second, err := NewServer(dir, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Run() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("second Run: got %v, want ErrAlreadyRunning", err)
		}
	case <-time.After(10 * time.Second):
		close(second.stop) // it took the socket; let it go
		t.Fatal("a second server runs beside the first")
	}
	if _, err := (Client{Dir: dir}).Ping(); err != nil {
		t.Errorf("the first server lost its socket: %v", err)
	}
}

// TestStart: Start runs a server that answers with its own PID; with one
// running, Start starts none and says so; a server that never answers is
// stopped again, so that it cannot take the socket from the next one.
func TestStart(t *testing.T) {
	t.Setenv(serveEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{self, "-test.run=^$"}
	dir := t.TempDir()
	c := Client{Dir: dir}
	if err := c.Start(argv, Snapshot{}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid, err := c.Ping()
	if err != nil || pid == os.Getpid() || !alive(pid) {
		t.Fatalf("after Start, ping gives pid %d (%v); want the started server's", pid, err)
	}
	if err := c.Start(argv, Snapshot{}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("Start beside a running server: got %v, want ErrAlreadyRunning", err)
	}
	if again, err := c.Ping(); err != nil || again != pid {
		t.Errorf("after the second Start, ping gives pid %d (%v); want %d", again, err, pid)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("server %d still runs after Stop", pid)
	}

	// Another server comes up while Start waits for its own (here one the
	// started command forks): Start stops its own and leaves the socket.
	forks := []string{"sh", "-c", `"$0" -test.run='^$' "$1" & exec sleep 60`, self}
	if err := c.Start(forks, Snapshot{}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("Start while another server comes up: got %v, want ErrAlreadyRunning", err)
	}
	if other, err := c.Ping(); err != nil || other == pid {
		t.Errorf("the other server: pid %d, %v", other, err)
	} else if err := c.Stop(); err != nil {
		t.Error(err)
	}

	old := startTimeout
	startTimeout = 300 * time.Millisecond
	t.Cleanup(func() { startTimeout = old })
	pidFile := filepath.Join(t.TempDir(), "pid")
	mute := []string{"sh", "-c", `echo $$ > "$0"; exec sleep 60`, pidFile}
	if err := c.Start(mute, Snapshot{}); err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Errorf("Start of a server that never answers: got %v", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := strconv.Atoi(strings.TrimSpace(string(data))); p == 0 || alive(p) {
		t.Errorf("the server that never answered (pid %d) still runs", p)
	}
}

// TestHeldBy: a port the server cannot bind is explained by its holder:
// an earlier server of the same directory (run `cnet gc`), the server of
// another cnet instance, or another program (free the port).
func TestHeldBy(t *testing.T) {
	dir := serverDir(t)
	start := func(argv ...string) int {
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			testenv.Logged(t, "kill "+argv[0], cmd.Process.Kill())
			_ = cmd.Wait() // killed just above: it can only report the signal
		})
		return cmd.Process.Pid
	}
	// Processes whose command lines look like `cnet __dns DIR`.
	same := start("sh", "-c", "sleep 60; :", ServeArg, dir)
	other := start("sh", "-c", "sleep 60; :", ServeArg, "/run/other-cnet/dns")
	program := start("sleep", "60")
	gw := netip.MustParseAddr("10.1.0.1")
	for _, tc := range []struct {
		name string
		pid  int
		want []string
	}{
		{"stale server of this directory", same, []string{"earlier cnet name server", fmt.Sprintf("pid %d", same), "lost its control socket", "run `cnet gc`"}},
		{"another instance's server", other, []string{"another cnet instance", fmt.Sprintf("pid %d", other), "/run/other-cnet/dns"}},
		{"another program", program, []string{"held by sleep", fmt.Sprintf("pid %d", program), "free the port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(dir, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string, netip.Addr, uint16) (string, int) {
				return "sleep", tc.pid
			})
			if err != nil {
				t.Fatal(err)
			}
			got := s.heldBy("udp", gw, syscall.EADDRINUSE).Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			if tc.pid != program && strings.Contains(got, "free the port") {
				t.Errorf("%q says to free the port, which is cnet's own", got)
			}
		})
	}
}
