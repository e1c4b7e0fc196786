package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/nsfiles"
	"github.com/cnetdev/cnet/internal/script"
)

// Exit statuses of exec and run for their own failures (as docker run).
const (
	exitExecFailed   = 125
	exitCannotInvoke = 126
	exitCmdNotFound  = 127
)

// nsexecArg is the hidden first argument of the child that exec and run
// start: `cnet __nsexec NAME CMD ARG...`.
const nsexecArg = "__nsexec"

func (a *app) execCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec NAME -- CMD [ARG...]",
		Short: "Run a command inside a container, like ip netns exec",
		Long: `Run a command inside a container's network namespace, as 'ip netns exec' does:
in a private mount namespace where each file of /etc/netns/NAME is mounted
over the same file in /etc (so resolv.conf and hosts are the container's) and
/sys shows the container's interfaces. Standard input and output pass
through, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to cnet are forwarded, and
cnet exits with the command's status (128+N if it died of signal N). A
command that cannot start exits 127 (not found) or 126 (cannot run), with
the reason.`,
		Example: "  cnet exec container-1 -- ping -c1 172.18.0.3\n  cnet exec web -- sh",
		GroupID: "processes",
		Args:    args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := a.checkNetns(argv[0]); err != nil {
				return err
			}
			if len(command(argv[1:])) == 0 {
				return usageError{errors.New("missing the command to run after --")}
			}
			return foreground(a.eng.NetnsPath(argv[0]), argv[0], command(argv[1:]))
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func (a *app) checkNetns(name string) error {
	if err := names.CheckName("container", name); err != nil {
		return err
	}
	if _, err := os.Stat(a.eng.NetnsPath(name)); err != nil {
		return &cnet.NotFoundError{What: "container", Name: name, Hint: "no namespace at " + a.eng.NetnsPath(name) + "; see `cnet ls`"}
	}
	return nil
}

func (a *app) runCmd() *cobra.Command {
	var (
		f      createFlags
		name   string
		detach bool
		remove bool
	)
	cmd := &cobra.Command{
		Use:   "run [--name NAME] [create flags] [-d] -- CMD [ARG...]",
		Short: "Create a container and run a command in it",
		Long: `Create a container (as 'cnet create') and run a command in it (as 'cnet exec').

With -d the command is detached: it runs in its own session with its output
appended to a log file that 'cnet logs NAME' shows (-f to follow it), and cnet
prints its PID once it runs. Without -d, cnet waits and exits with the
command's status; --rm then removes the container when the command ends.

A command that cannot start is an error, with or without -d: cnet says why
and exits 127 (not found) or 126 (not executable, or its #! interpreter is
missing), and removes the container it made, so nothing is left behind.`,
		Example: "  cnet run -d --name container-1 --network seed -- echo-server\n  cnet run --rm -- curl -s 1.1.1.1",
		GroupID: "processes",
		Args: func(cmd *cobra.Command, argv []string) error {
			if len(argv) == 0 {
				return usageError{errors.New("missing the command to run: cnet run [flags] -- CMD [ARG...]")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, argv []string) error {
			argv = command(argv)
			if len(argv) == 0 {
				return usageError{errors.New("missing the command to run after --")}
			}
			if detach && remove {
				return usageError{errors.New("--rm cannot be combined with -d")}
			}
			if name == "" {
				name = "run-" + randomHex(3)
			}
			spec, err := f.spec(name)
			if err != nil {
				return err
			}
			// The default network is made on first use; if run makes it
			// for a command that then cannot start, it goes again too.
			var madeNet string
			if !a.dryRun && (spec.Network == "" || spec.Network == names.DefaultNetwork) {
				if _, err := a.eng.Network(names.DefaultNetwork); errors.Is(err, cnet.ErrNotFound) {
					madeNet = names.DefaultNetwork
				}
			}
			c, err := a.eng.CreateContainer(spec)
			if err != nil {
				return err
			}
			unrun := func(err error) error { return a.unrun(name, madeNet, err) }
			if a.dryRun {
				return a.printPreview(runPreview(name, argv, detach, remove, a.eng.LogPath(name)))
			}
			if detach {
				pid, err := background(a.eng.NetnsPath(name), name, argv, a.eng.LogPath(name))
				if err != nil {
					return unrun(err)
				}
				if a.json {
					return printJSON(struct {
						*cnet.Container
						PID int    `json:"pid"`
						Log string `json:"log"`
					}{c, pid, a.eng.LogPath(name)})
				}
				fmt.Println(pid)
				return nil
			}
			err = foreground(a.eng.NetnsPath(name), name, argv)
			var se *startError
			if errors.As(err, &se) {
				return unrun(err)
			}
			if remove {
				if rerr := a.eng.RemoveContainers([]string{name}, cnet.RemoveOptions{Force: true}); rerr != nil {
					fmt.Fprintf(os.Stderr, "cnet: remove %s: %s\n", name, rerr)
				}
			}
			return err
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&name, "name", "", "container `NAME` (default: run-XXXXXX, six random hex digits)")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background with output to the log (cnet logs [-f] NAME); print the PID once the command runs")
	cmd.Flags().BoolVar(&remove, "rm", false, "remove the container when the command exits")
	f.add(cmd)
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

// unrun removes the container run made for a command that could not
// start, and the network if run made that too, so a failed run leaves
// nothing behind.
func (a *app) unrun(name, network string, err error) error {
	if rerr := a.eng.RemoveContainers([]string{name}, cnet.RemoveOptions{Force: true}); rerr != nil {
		return fmt.Errorf("%w; removing container %s again also failed: %w", err, name, rerr)
	}
	if network == "" {
		return err
	}
	rerr := a.eng.RemoveNetwork(network, false)
	if rerr != nil && !errors.Is(rerr, cnet.ErrBusy) { // busy: another container joined it meanwhile, so it stays
		return fmt.Errorf("%w; removing network %s again also failed: %w", err, network, rerr)
	}
	return err
}

// runPreview is the exec part of `cnet run`, as a command: what `cnet exec`
// does is what `ip netns exec` does.
func runPreview(name string, argv []string, detach, remove bool, logPath string) cnet.PreviewStep {
	cmd := "ip netns exec " + script.Quote(name) + " " + script.Join(argv)
	st := cnet.PreviewStep{Kind: "exec", Action: "add", Comment: "run the command in the container, with its /etc/netns files over /etc"}
	switch {
	case detach:
		st.Comment += ", detached in its own session, output appended to its log"
		cmd = "setsid " + cmd + " >>" + script.Quote(logPath) + " 2>&1 </dev/null &"
		st.Commands = []string{"mkdir -p " + script.Quote(filepath.Dir(logPath)), cmd}
	case remove:
		st.Comment += "; --rm then removes the container (cnet rm -f " + name + ")"
		st.Commands = []string{cmd}
	default:
		st.Commands = []string{cmd}
	}
	return st
}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs NAME [-f]",
		Short: "Show the output of a container's detached command",
		Long: `Show the output of the command 'cnet run -d' (or a lab's command) started in
a container: its standard output and error, appended to RUNDIR/logs/NAME.log
(/run/cnet/logs, or DIR/run/logs with --root DIR). The log goes with the
container ('cnet rm').

With -f, keep printing what is appended until no process is left in the
container (then the rest of the log is printed and cnet exits 0), the
container is removed, or cnet is interrupted (^C).`,
		Example: "  cnet logs web\n  cnet logs -f web",
		GroupID: "processes",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := names.CheckName("container", argv[0]); err != nil {
				return err
			}
			if _, err := a.eng.Container(argv[0]); err != nil {
				return err
			}
			f, err := os.Open(a.eng.LogPath(argv[0]))
			if errors.Is(err, fs.ErrNotExist) {
				return &cnet.NotFoundError{What: "log of container", Name: argv[0], Hint: "only `cnet run -d` writes one"}
			}
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }() // opened to read: its close cannot lose anything
			if follow {
				return a.follow(argv[0], f)
			}
			_, err = io.Copy(os.Stdout, f)
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the command writes, until it exits or ^C")
	return cmd
}

// followPoll is how often logs -f looks for more output.
const followPoll = 100 * time.Millisecond

// follow prints f and what is appended to it until the container has no
// process left (the rest printed first), it is removed, or a signal.
func (a *app) follow(name string, f *os.File) error {
	debug.SetGCPercent(100) // a long-lived cnet: collect garbage as usual
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	drain := func() error {
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := os.Stdout.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", f.Name(), err)
			}
		}
	}
	for {
		if err := drain(); err != nil {
			return err
		}
		c, err := a.eng.Container(name)
		if errors.Is(err, cnet.ErrNotFound) {
			return drain() // removed: what it wrote last is still in the open file
		}
		if err != nil {
			return err
		}
		if len(c.PIDs) == 0 {
			return drain() // the command exited: print what it wrote last
		}
		if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
			if st, err := f.Stat(); err == nil && st.Size() < pos {
				if _, err := f.Seek(0, io.SeekStart); err != nil { // truncated: follow it from its start
					return fmt.Errorf("seek %s: %w", f.Name(), err)
				}
			}
		}
		select {
		case <-sigs:
			return nil
		case <-tick.C:
		}
	}
}

// command strips the "--" that separates cnet's arguments from the
// command's; flag parsing stops at the container name, so it is still there.
func command(argv []string) []string {
	if len(argv) > 0 && argv[0] == "--" {
		return argv[1:]
	}
	return argv
}

func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b)
}

// startError is a command that could not be started in a container: not
// found, not executable, or cnet could not prepare its mounts.
type startError struct {
	Container, Command string
	Why                string
	Code               int // the exit status: 127 not found, 126 cannot run, 125 cnet's own failure
	Err                error
}

func (e *startError) Error() string {
	return fmt.Sprintf("cannot start %q in container %s: %s", e.Command, e.Container, e.Why)
}

func (e *startError) Unwrap() error { return e.Err }

// statusFd is the descriptor on which the __nsexec child reports why it
// could not become the command. It is close-on-exec in the child, so the
// parent reads end of file with nothing in it once the command runs.
const statusFd = 3

// start starts `cnet __nsexec NAME ARGV...` from a thread inside the
// namespace at path, with a new mount namespace: the child inherits the
// network namespace of the thread that forks it. It returns once the
// child has become the command, or a *startError if it could not.
func start(path, name string, argv []string, setup func(*exec.Cmd)) (*exec.Cmd, error) {
	failed := func(err error) error {
		return &startError{Container: name, Command: argv[0], Why: err.Error(), Code: exitExecFailed, Err: err}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, failed(err)
	}
	cmd := exec.Command(self, append([]string{nsexecArg, name}, argv...)...)
	cmd.Args[0] = "cnet"
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}
	setup(cmd)
	status, statusW, err := os.Pipe()
	if err != nil {
		return nil, failed(fmt.Errorf("status pipe: %w", err))
	}
	defer func() { _ = status.Close() }() // the read end of a pipe: its close cannot lose anything
	cmd.ExtraFiles = []*os.File{statusW}  // fd 3 in the child: statusFd
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = statusW.Close() // never handed to a child nor written: its close cannot lose anything
		return nil, failed(fmt.Errorf("open %s: %w", path, err))
	}
	defer netns.CloseFd(fd)
	err = netns.DoFd(fd, path, cmd.Start)
	_ = statusW.Close() // the child holds its own copy; the parent never writes to it, so its close loses nothing
	if err != nil {
		return nil, failed(err)
	}
	msg, err := io.ReadAll(status)
	if err != nil {
		msg = []byte(fmt.Sprintf("%d read the start status: %s", exitExecFailed, err))
	}
	if len(msg) == 0 {
		return cmd, nil // the command runs: exec closed the descriptor
	}
	_ = cmd.Wait() // the child exits right after reporting; its status is the report's
	code, why, _ := strings.Cut(string(msg), " ")
	se := &startError{Container: name, Command: argv[0], Why: why, Code: exitExecFailed}
	if n, err := strconv.Atoi(code); err == nil {
		se.Code = n
	}
	return nil, se
}

// foreground runs argv in the container and returns its exit status.
func foreground(path, name string, argv []string) error {
	// Signals sent to cnet are forwarded to the command; the ones that
	// come while it starts wait in sigs. (A handled signal is reset to its
	// default in the child, an ignored one would stay ignored.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	cmd, err := start(path, name, argv, func(c *exec.Cmd) {
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	})
	if err != nil {
		signal.Stop(sigs)
		return err
	}
	// Terminal signals (^C, ^\) reach the whole foreground process group,
	// the command included; ignore them here.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		for s := range sigs {
			// Fails only once the command has exited, when there is
			// nobody left to tell.
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	close(sigs)
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exitStatus(128 + int(ws.Signal()))
		}
		return exitStatus(ee.ExitCode())
	}
	return err
}

// background starts argv detached, output appended to logPath.
func background(path, name string, argv []string, logPath string, env ...string) (int, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return 0, err
	}
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	// The child gets descriptors of its own; these only hand them over
	// and write nothing, so their close has nothing to report.
	defer func() { _ = log.Close() }()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer func() { _ = devnull.Close() }()
	cmd, err := start(path, name, argv, func(c *exec.Cmd) {
		c.Stdin, c.Stdout, c.Stderr = devnull, log, log
		c.SysProcAttr.Setsid = true
		if len(env) > 0 {
			c.Env = append(os.Environ(), env...)
		}
	})
	if err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release() // it outlives cnet; init reaps it (Release only frees a handle, and never fails on Linux)
	return pid, nil
}

// nsexecMain is the child: already in the container's network namespace
// and in a fresh mount namespace. It mounts the container's files over
// /etc and a fresh sysfs over /sys, then becomes the command.
func nsexecMain(argv []string) {
	// The parent reads why the command could not start from statusFd;
	// exec closes it once the command runs.
	unix.CloseOnExec(statusFd)
	status := os.NewFile(statusFd, "start status")
	fail := func(code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if _, err := fmt.Fprintf(status, "%d %s", code, msg); err != nil {
			fmt.Fprintf(os.Stderr, "cnet: %s\n", msg) // started by hand, with no status pipe
		}
		os.Exit(code)
	}
	if len(argv) < 2 {
		fail(exitExecFailed, "%s: want NAME CMD [ARG...]", nsexecArg)
	}
	name, cmdArgv := argv[0], argv[1:]
	// Mounts made here must not propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		fail(exitExecFailed, "mount --make-rslave /: %s", err)
	}
	// /sys of the new network namespace, so /sys/class/net lists its links.
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err == nil {
		if err := unix.Mount(name, "/sys", "sysfs", 0, ""); err != nil {
			fmt.Fprintf(os.Stderr, "cnet: mount sysfs on /sys: %s\n", err)
		}
	}
	dir := filepath.Join(nsfiles.Dir, name)
	ents, _ := os.ReadDir(dir) // no directory: nothing to mount, as ip netns exec
	for _, e := range ents {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if _, err := os.Stat(dst); err != nil {
			continue // ip netns exec also skips files /etc lacks
		}
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			fail(exitExecFailed, "bind %s over %s: %s", src, dst, err)
		}
	}
	path, err := exec.LookPath(cmdArgv[0])
	if err != nil {
		code, why := lookPathFailure(cmdArgv[0], err)
		fail(code, "%s", why)
	}
	err = syscall.Exec(path, cmdArgv, os.Environ())
	fail(exitCannotInvoke, "%s", execFailure(path, err))
}

// lookPathFailure says why a command was not found or cannot be run, with
// the exit status a shell would give.
func lookPathFailure(cmd string, err error) (int, string) {
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return exitCmdNotFound, fmt.Sprintf("command not found in PATH %s", os.Getenv("PATH"))
	case errors.Is(err, fs.ErrNotExist):
		return exitCmdNotFound, fmt.Sprintf("no such file %s", cmd)
	case errors.Is(err, fs.ErrPermission):
		return exitCannotInvoke, fmt.Sprintf("%s is not executable (permission denied)", cmd)
	case errors.Is(err, syscall.EISDIR):
		return exitCannotInvoke, fmt.Sprintf("%s is a directory", cmd)
	}
	return exitCannotInvoke, err.Error()
}

// execFailure says why execve refused a file that LookPath found.
func execFailure(path string, err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT):
		// The file is there, so what is missing is its interpreter.
		if interp := shebang(path); interp != "" {
			return fmt.Sprintf("exec %s: its interpreter %s does not exist", path, interp)
		}
	case errors.Is(err, syscall.ENOEXEC):
		return fmt.Sprintf("exec %s: not a program the kernel can run (a script needs a #! line)", path)
	}
	return fmt.Sprintf("exec %s: %s", path, err)
}

// shebang returns the interpreter a script's #! line names, or "".
func shebang(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }() // opened to read: its close cannot lose anything
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf) // a short file is read whole
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if !strings.HasPrefix(line, "#!") {
		return ""
	}
	fields := strings.Fields(line[2:])
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}
