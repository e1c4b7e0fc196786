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
	"strings"
	"syscall"
	"time"
)

// Client talks to the server over its control socket, and starts it.
type Client struct{ Dir string } // RUNDIR/dns

// ErrNotRunning means no server answers on the control socket.
var ErrNotRunning = errors.New("the dns server is not running")

func (c Client) call(req Request) (*Reply, error) {
	conn, err := net.DialTimeout("unix", filepath.Join(c.Dir, SocketFile), time.Second)
	if err != nil {
		return nil, ErrNotRunning
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	var rep Reply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
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

// Ping returns the server's PID, or ErrNotRunning.
func (c Client) Ping() (int, error) {
	rep, err := c.call(Request{Op: "ping"})
	if err != nil {
		return 0, err
	}
	return rep.PID, nil
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
func (c Client) Start(argv []string, s Snapshot) error {
	if len(argv) == 0 {
		return errors.New("no command to start the dns server with")
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
	defer log.Close()
	cmd := exec.Command(argv[0], append(argv[1:], c.Dir)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dns server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies; it normally outlives us
	deadline := time.Now().Add(5 * time.Second)
	for {
		rep, err := c.call(Request{Op: "ping"})
		if err == nil {
			return rep.err()
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("dns server exited: %v (see %s)", werr, filepath.Join(c.Dir, LogFile))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dns server did not start within 5 s (see %s)", filepath.Join(c.Dir, LogFile))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
