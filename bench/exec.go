package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/netns"
)

// cmdTimeout bounds every command the harness runs.
const cmdTimeout = 2 * time.Minute

// command describes one process to run to completion.
type command struct {
	name  string
	args  []string
	stdin []byte
	env   []string // nil: inherit
	// stdout: return standard output alone (standard error is kept for
	// the error message) instead of both.
	stdout bool
}

// run runs c and returns its exit state and combined output; a failure
// carries the command line and output.
func (c command) run() (*os.ProcessState, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if c.stdout {
		cmd.Stderr = &errOut
	}
	if c.stdin != nil {
		cmd.Stdin = bytes.NewReader(c.stdin)
	}
	cmd.Env = c.env
	err := cmd.Run()
	if err != nil {
		line := strings.Join(append([]string{c.name}, c.args...), " ")
		if len(line) > 120 {
			line = line[:117] + "..."
		}
		return cmd.ProcessState, out.Bytes(), fmt.Errorf("%s: %v: %s", line, err, strings.TrimSpace(out.String()+errOut.String()))
	}
	return cmd.ProcessState, out.Bytes(), nil
}

func run(name string, args ...string) error {
	_, _, err := command{name: name, args: args}.run()
	return err
}

func output(name string, args ...string) ([]byte, error) {
	_, out, err := command{name: name, args: args}.run()
	return out, err
}

// lookPath finds a binary on PATH or at one of the given places.
func lookPath(name string, also ...string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, p := range also {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func needBinary(name, pkg string, also ...string) (string, error) {
	if p, ok := lookPath(name, also...); ok {
		return p, nil
	}
	return "", &missingError{binary: name, pkg: pkg}
}

// waitNoVeths polls until no veth is left in the sandbox's own namespace:
// the kernel frees the veths of a deleted namespace asynchronously.
func waitNoVeths(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		links, err := link.LinkList(nil)
		if err != nil {
			return err
		}
		var left []string
		for _, l := range links {
			// The LAN's veth stays while the published-ports part runs.
			if l.Type() == "veth" && l.Attrs().Name != lanHostIf {
				left = append(left, l.Attrs().Name)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d veths still present after %s (first: %s)", len(left), within, left[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inNetns runs f on a thread switched into the namespace at path. The
// thread goes back to where it was, or is discarded if that fails.
func inNetns(path string, f func() error) error {
	return netns.Do(path, f)
}

// waitListening polls until a TCP connection to addr succeeds from inside
// the namespace at path.
func waitListening(path, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := inNetns(path, func() error {
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				note(c.Close())
			}
			return err
		})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s in %s after %s: %w", addr, path, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// background is a long-running process the harness started; stop ends it
// by its PID.
type background struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

func start(name string, args ...string) (*background, error) {
	b := &background{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { b.done <- b.cmd.Wait() }()
	return b, nil
}

func (b *background) stop() error {
	select {
	case err := <-b.done:
		return fmt.Errorf("%s exited early: %v: %s", b.cmd.Path, err, strings.TrimSpace(b.out.String()))
	default:
	}
	note(b.cmd.Process.Kill())
	select {
	case err := <-b.done:
		_ = err // "signal: killed", as asked
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("process did not exit after SIGKILL")
	}
}
