package dns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Client talks to the server over its control socket, and starts it.
type Client struct{ Dir string } // RUNDIR/dns

// ErrNotRunning means no server listens on the control socket: there is
// no socket, or nothing accepts on it (its server is gone).
var ErrNotRunning = errors.New("the dns server is not running")

// ErrAlreadyRunning means a server already listens on the control socket,
// so another one was not started.
var ErrAlreadyRunning = errors.New("a cnet name server is already running")

// callTimeout bounds one exchange on the control socket.
var callTimeout = 10 * time.Second

// listening reports whether a dial error still means that a server
// listens: only a missing socket or a refused connection say none does.
// Anything else (a full accept queue, a timeout) is a server too busy to
// take the connection at once, and starting a second one would take its
// socket away from it.
func listening(dialErr error) bool {
	return !errors.Is(dialErr, syscall.ENOENT) && !errors.Is(dialErr, syscall.ECONNREFUSED)
}

func (c Client) call(req Request) (*Reply, error) {
	sock := filepath.Join(c.Dir, SocketFile)
	conn, err := net.DialTimeout("unix", sock, callTimeout)
	if err != nil {
		if !listening(err) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("cnet's name server does not answer on %s (see %s): %w", sock, filepath.Join(c.Dir, LogFile), err)
	}
	// The reply was read in full (or the call failed already): closing
	// the connection has nothing left to report.
	defer func() { _ = conn.Close() }()
	if err := conn.SetDeadline(time.Now().Add(callTimeout)); err != nil {
		return nil, fmt.Errorf("cnet's name server on %s: %w", sock, err)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("cnet's name server on %s: %w", sock, err)
	}
	var rep Reply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		return nil, fmt.Errorf("cnet's name server does not answer on %s (see %s): %w", sock, filepath.Join(c.Dir, LogFile), err)
	}
	return &rep, nil
}

// BindError says the server could not listen on a gateway, typically
// because another process holds port 53 there.
type BindError struct {
	Addrs   []string // gateways
	Reasons []string
}

func (e *BindError) Error() string { return strings.Join(e.Reasons, "; ") }

func (r *Reply) err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	var e BindError
	for a := range r.Errors {
		e.Addrs = append(e.Addrs, a)
	}
	sort.Strings(e.Addrs)
	for _, a := range e.Addrs {
		e.Reasons = append(e.Reasons, r.Errors[a])
	}
	return &e
}

// Ping returns the server's PID, or ErrNotRunning when none listens. A
// server that listens but does not answer in time is another error: it is
// running, only busy or stuck.
func (c Client) Ping() (int, error) {
	rep, err := c.call(Request{Op: "ping"})
	if err != nil {
		return 0, err
	}
	return rep.PID, nil
}

// Listening reports whether a server listens on the control socket, by
// connecting and hanging up: unlike Ping it does not wait for the server
// to be scheduled and answer. A server too busy to accept at once still
// listens.
func (c Client) Listening() bool {
	conn, err := net.DialTimeout("unix", filepath.Join(c.Dir, SocketFile), callTimeout)
	if err != nil {
		return listening(err)
	}
	_ = conn.Close() // a probe that sent nothing: nothing to lose
	return true
}

// Apply sends a change and returns once the server serves it.
func (c Client) Apply(ch Change) error {
	rep, err := c.call(Request{Op: "apply", Change: &ch})
	if err != nil {
		return err
	}
	return rep.err()
}

// Sync replaces every record.
func (c Client) Sync(s Snapshot) error {
	rep, err := c.call(Request{Op: "sync", Snapshot: &s})
	if err != nil {
		return err
	}
	return rep.err()
}

// Stop stops the server and waits for it to exit.
func (c Client) Stop() error {
	rep, err := c.call(Request{Op: "stop"})
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(rep.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("dns server (pid %d) did not stop", rep.PID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// alive reports whether pid runs. The server is detached, so once it
// exits it is a zombie until PID 1 reaps it, which some inits do only
// now and then: a zombie has stopped.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// Dump returns the records the server holds, one sorted line each.
func (c Client) Dump() ([]string, error) {
	rep, err := c.call(Request{Op: "dump"})
	if err != nil {
		return nil, err
	}
	return rep.Records, nil
}

// Start writes the snapshot and starts `argv` (which runs Serve on Dir)
// detached, then waits until it answers. Equivalent to running
// `cnet __dns DIR` in the background.
//
// It never starts a second server: when one already listens on the
// control socket (busy, or started by someone else meanwhile), it returns
// ErrAlreadyRunning, and the caller sends that one the snapshot instead.
// The server it started is stopped again if it does not answer in time.
func (c Client) Start(argv []string, s Snapshot) error {
	if len(argv) == 0 {
		return errors.New("no command to start the dns server with")
	}
	if _, err := c.Ping(); !errors.Is(err, ErrNotRunning) {
		return ErrAlreadyRunning
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, SnapshotFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(c.Dir, SnapshotFile)); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(c.Dir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The child has its own descriptor for the log; this one only handed
	// it over and wrote nothing, so its close has nothing to report.
	defer func() { _ = log.Close() }()
	cmd := exec.Command(argv[0], append(argv[1:], c.Dir)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dns server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies; it normally outlives us
	// Stop what was started, so that no half-started server takes the
	// socket from the next one.
	abandon := func() {
		// Kill fails only when the process is gone already, which is
		// what is wanted; its exit status then says it was killed.
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			return // "signal: killed", as asked
		}
	}
	deadline := time.Now().Add(startTimeout)
	for {
		rep, err := c.call(Request{Op: "ping"})
		switch {
		case err == nil && rep.PID == cmd.Process.Pid:
			return rep.err()
		case err == nil: // another server answers: ours leaves the socket to it
			abandon()
			return ErrAlreadyRunning
		}
		select {
		case werr := <-exited:
			if _, err := c.Ping(); !errors.Is(err, ErrNotRunning) {
				return ErrAlreadyRunning
			}
			return fmt.Errorf("dns server exited: %v (see %s)", werr, filepath.Join(c.Dir, LogFile))
		default:
		}
		if time.Now().After(deadline) {
			abandon()
			return fmt.Errorf("dns server did not start within %s (see %s)", startTimeout, filepath.Join(c.Dir, LogFile))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startTimeout bounds how long Start waits for the server to answer.
var startTimeout = 10 * time.Second

// ListenerPID returns the PID of the process that listens on the control
// socket, from the socket's peer credentials, so the server need not
// answer; 0 when none listens. Equivalent to: `ss -xlp src SOCKET`.
func (c Client) ListenerPID() int {
	conn, err := net.DialTimeout("unix", filepath.Join(c.Dir, SocketFile), callTimeout)
	if err != nil {
		return 0
	}
	defer func() { _ = conn.Close() }() // a probe that sent nothing: there is nothing its close could lose
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var pid int
	if err := raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	}); err != nil {
		return 0
	}
	return pid
}

// Stale returns the PIDs of the name servers of c.Dir (`cnet __dns DIR`)
// other than the one that listens on its control socket: servers that
// lost their socket (someone removed it, or another took it) and go on
// holding port 53 on their gateways, where nothing can update them.
func (c Client) Stale() []int {
	owner := c.ListenerPID()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil // no /proc: nothing can be told, nothing is stopped
	}
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == owner || pid == os.Getpid() || !alive(pid) {
			continue
		}
		if dir, ok := ServerDir(pid); ok && filepath.Clean(dir) == filepath.Clean(c.Dir) {
			out = append(out, pid)
		}
	}
	return out
}

// Kill stops a stale server of c.Dir: SIGTERM, then SIGKILL if it has
// not exited within 2 s. A pid that is no longer a server of c.Dir is
// left alone. Equivalent to: `kill PID`.
func (c Client) Kill(pid int) error {
	if dir, ok := ServerDir(pid); !ok || filepath.Clean(dir) != filepath.Clean(c.Dir) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill -KILL %d: %w", pid, err)
			}
			deadline = time.Now().Add(time.Second)
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
