package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnetdev/cnet/internal/testenv"
)

// badCommands are commands that cannot start, with the exit status and
// what the error must say.
func badCommands(t *testing.T) []struct {
	name string
	argv []string
	code int
	says string
} {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.sh")
	interp := filepath.Join(dir, "interp.sh")
	if err := os.WriteFile(plain, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(interp, []byte("#!/nonexistent/interp\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		argv []string
		code int
		says string
	}{
		{"not found", []string{"no-such-command", "-x"}, exitCmdNotFound, `cannot start "no-such-command" in container x: command not found in PATH`},
		{"no such file", []string{filepath.Join(dir, "gone")}, exitCmdNotFound, "no such file " + filepath.Join(dir, "gone")},
		{"not executable", []string{plain}, exitCannotInvoke, plain + " is not executable (permission denied)"},
		{"directory", []string{dir}, exitCannotInvoke, dir + " is a directory"},
		{"missing interpreter", []string{interp}, exitCannotInvoke, "its interpreter /nonexistent/interp does not exist"},
	}
}

// TestRunCommandCannotStart: run with a command that cannot start fails
// with the shell's status and the reason, and removes what it made (the
// container, and the default network it made on first use), detached or
// not.
func TestRunCommandCannotStart(t *testing.T) {
	c := newCLI(t)
	before := testenv.Snapshot(t)
	for _, tc := range badCommands(t) {
		for _, mode := range [][]string{{"-d"}, {}, {"--rm"}} {
			t.Run(tc.name+" "+strings.Join(mode, ""), func(t *testing.T) {
				args := append(append([]string{"run", "--name", "x"}, mode...), "--")
				r := c.run(append(args, tc.argv...)...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
					t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, no output, saying %q", r.code, r.stdout, r.stderr, tc.code, tc.says)
				}
				if out := c.ok("ls", "--json"); strings.TrimSpace(out) != "[]" {
					t.Errorf("the container stayed: %s", out)
				}
				if out := c.ok("network", "ls", "--json"); strings.TrimSpace(out) != "[]" {
					t.Errorf("the default network run made stayed: %s", out)
				}
				if _, err := os.Stat(filepath.Join(c.root, "run", "logs", "x.log")); !os.IsNotExist(err) {
					t.Errorf("the log stayed: %v", err)
				}
				testenv.WaitSnapshot(t, before) // the veth of a deleted namespace goes asynchronously
			})
		}
	}
	// On a network that was there before, the network stays.
	c.ok("network", "create", "kept", "--subnet", "172.18.0.0/24")
	if r := c.run("run", "-d", "--name", "x", "--network", "kept", "--", "no-such-command"); r.code != exitCmdNotFound {
		t.Errorf("run on an existing network: exit %d %q", r.code, r.stderr)
	}
	if out := c.ok("network", "ls"); !strings.Contains(out, "kept") {
		t.Errorf("run removed a network it did not make:\n%s", out)
	}
	// exec says the same, and changes nothing.
	c.ok("create", "box", "--network", "kept")
	r := c.run("exec", "box", "--", "no-such-command")
	if r.code != exitCmdNotFound || !strings.Contains(r.stderr, `cannot start "no-such-command" in container box: command not found`) {
		t.Errorf("exec: exit %d %q", r.code, r.stderr)
	}
	// A command that starts and fails is the command's own status, and
	// run leaves the container (only --rm removes it).
	if r := c.run("run", "--name", "fails", "--network", "kept", "--", "sh", "-c", "exit 127"); r.code != 127 || r.stderr != "" {
		t.Errorf("a command exiting 127 itself: exit %d %q", r.code, r.stderr)
	}
	c.ok("inspect", "fails")
}

// TestApplyCommandCannotStart: a lab whose command is not there is
// refused at its line before anything changes; one that is found but
// cannot run fails the apply with the reason.
func TestApplyCommandCannotStart(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "broken.yaml")
	write := func(cmd string) {
		t.Helper()
		y := "lab: broken\nnetworks:\n  n1: {subnet: 172.31.9.0/24}\ncontainers:\n  web:\n    networks: [n1]\n    command: [" + cmd + ", -v]\n"
		if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := testenv.Snapshot(t)
	write("no-such-command")
	for _, verb := range []string{"apply", "diff"} {
		r := c.run(verb, "-f", file)
		want := file + `:7: containers.web.command: cannot start "no-such-command": command not found in PATH`
		if r.code != exitInvalid || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d %q; want exit %d saying %q", verb, r.code, r.stderr, exitInvalid, want)
		}
	}
	if out := c.ok("ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("the refused apply made a container: %s", out)
	}
	if after := testenv.Snapshot(t); after != before {
		t.Errorf("the refused apply changed the sandbox:\n%s\nwant:\n%s", after, before)
	}

	// Found, but its interpreter is missing: only starting it tells.
	interp := filepath.Join(dir, "interp.sh")
	if err := os.WriteFile(interp, []byte("#!/nonexistent/interp\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(interp)
	r := c.run("apply", "-f", file)
	if r.code != exitCannotInvoke || !strings.Contains(r.stderr, `start command web: cannot start "`+interp+`" in container web: exec `+interp+`: its interpreter /nonexistent/interp does not exist`) ||
		strings.Contains(r.stdout, "applied\n") {
		t.Errorf("apply: exit %d\n%s%s\nwant exit %d naming the command and its missing interpreter", r.code, r.stdout, r.stderr, exitCannotInvoke)
	}
	var res labResult
	c.json(&res, "diff", "-f", file)
	if len(res.Actions) != 1 || res.Actions[0].Op != "start" {
		t.Errorf("after the failed start, diff plans %+v; want only the start again", res.Actions)
	}
}
