// Package netns creates, opens and removes named network namespaces the
// way `ip netns` does, so either tool can use the other's namespaces. It is
// the only package that locks OS threads, calls unshare or setns, or
// bind-mounts.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/faults"
)

// Dir is where named namespaces are bound, shared with `ip netns`.
const Dir = "/run/netns"

const nsfsMagic = 0x6e736673 // NSFS_MAGIC

// NS is an open named namespace: a descriptor that keeps it alive, and a
// netlink handle whose socket lives inside it, usable from any goroutine.
type NS struct {
	Name  string
	Path  string
	fd    int
	Link  *netlink.Handle
	route *nl.SocketHandle
}

// Fd returns the namespace descriptor (for IFLA_NET_NS_FD and setns).
func (n *NS) Fd() int { return n.fd }

// Route returns a bare route netlink socket inside the namespace, for
// requests cnet builds itself; it is opened on first use (a namespace
// cnet creates gets it while being created, from inside).
func (n *NS) Route() (*nl.SocketHandle, error) {
	if n.route == nil {
		s, err := nl.GetNetlinkSocketAt(netns.NsHandle(n.fd), netns.None(), unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink socket in netns %s: %w", n.Name, err)
		}
		_ = s.SetExtAck(true) // the kernel's reason joins the error; a kernel without extended acks still gives the errno
		n.route = &nl.SocketHandle{Socket: s}
	}
	return n.route, nil
}

// Close releases the descriptor and the netlink sockets.
func (n *NS) Close() {
	if n.Link != nil {
		n.Link.Close()
	}
	if n.route != nil {
		n.route.Close()
	}
	if n.fd >= 0 {
		CloseFd(n.fd)
	}
}

// ensureDir makes dir a shared mount point, as `ip netns add` does, so
// namespaces bound in it propagate to other mount namespaces.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount --rbind %s %s: %w", dir, dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("mount --make-rshared %s: %w", dir, err)
	}
	return nil
}

// Create makes a new network namespace bound at dir/name and returns it
// open. inside runs on the creating thread, in the new namespace, before
// the namespace appears at its path: cnet marks lo there, so a namespace
// at a cnet path is always recognisable as cnet's. Equivalent to:
//
//	ip netns add NAME
func Create(dir, name string, inside func(route *nl.SocketHandle) error) (*NS, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	f, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	CloseFd(f)
	faults.Point()

	type result struct {
		ns  *NS
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, err, restored := createOnThread(path, inside)
		if restored {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and the runtime discards it
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		// The file was made above (O_EXCL): it is this create's own. The
		// bind mount may not have happened (EINVAL) and the file may be
		// gone: only other failures are worth reporting.
		errList := []error{r.err}
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errList = append(errList, fmt.Errorf("umount %s: %w", path, err))
		}
		if err := unix.Unlinkat(unix.AT_FDCWD, path, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			errList = append(errList, fmt.Errorf("remove %s: %w", path, err))
		}
		return nil, errors.Join(errList...)
	}
	r.ns.Name = name
	return r.ns, nil
}

func createOnThread(path string, inside func(route *nl.SocketHandle) error) (ns *NS, err error, restored bool) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open current netns: %w", err), true
	}
	defer CloseFd(orig)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("unshare netns: %w", err), true
	}
	restore := func() bool { return unix.Setns(orig, unix.CLONE_NEWNET) == nil }

	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket in new netns: %w", err), restore()
	}
	route, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket in new netns: %w", err), restore()
	}
	_ = route.SetExtAck(true) // the kernel's reason joins the error; a kernel without extended acks still gives the errno
	rh := &nl.SocketHandle{Socket: route}
	fail := func(err error) (*NS, error, bool) {
		h.Close()
		rh.Close()
		return nil, err, restore()
	}
	if err := inside(rh); err != nil {
		return fail(err)
	}
	if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
		return fail(fmt.Errorf("bind netns to %s: %w", path, err))
	}
	faults.Point()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", path, err))
	}
	return &NS{Path: path, fd: fd, Link: h, route: rh}, nil, restore()
}

// Open opens the namespace bound at dir/name, or at name itself when it
// is an absolute path (a container runtime's namespace).
func Open(dir, name string) (*NS, error) {
	path, fd, err := OpenFd(dir, name)
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_ROUTE)
	if err != nil {
		CloseFd(fd)
		return nil, fmt.Errorf("netlink socket in netns %s: %w", name, err)
	}
	return &NS{Name: name, Path: path, fd: fd, Link: h}, nil
}

// OpenFd opens the namespace bound at dir/name (or at name, an absolute
// path) as a file, without a socket inside it: enough to name it to the
// kernel. The caller closes fd.
func OpenFd(dir, name string) (path string, fd int, err error) {
	path = filepath.Join(dir, name)
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW // under dir, a link is not a namespace
	if filepath.IsAbs(name) {
		path, flags = name, unix.O_RDONLY|unix.O_CLOEXEC
	}
	fd, err = unix.Open(path, flags, 0)
	if err != nil {
		return path, -1, fmt.Errorf("open netns %s: %w", path, err)
	}
	if !isNsfs(fd) {
		CloseFd(fd)
		return path, -1, fmt.Errorf("open netns %s: not a network namespace mount: %w", path, fs.ErrNotExist)
	}
	return path, fd, nil
}

// DiagSocket opens a sock_diag netlink socket inside n (in the calling
// process's own namespace when n is nil): it answers for that namespace's
// sockets, as `ip netns exec NAME ss` does. The caller closes it.
func DiagSocket(n *NS) (*nl.NetlinkSocket, error) {
	ns, name := netns.None(), "of the host"
	if n != nil {
		ns, name = netns.NsHandle(n.fd), n.Name
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket in netns %s: %w", name, err)
	}
	if err := s.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func isNsfs(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Type == nsfsMagic
}

// State says what is at dir/name.
type State int

const (
	Missing    State = iota // nothing
	Bound                   // a namespace is bound there
	Incomplete              // an empty file, no namespace mounted on it: what an interrupted create leaves
	Foreign                 // something no create leaves: a symbolic link, a directory, a file with content, another mount
	Unknown                 // it could not be read (permission, I/O): nothing may be decided from it
)

func (s State) String() string {
	switch s {
	case Missing:
		return "missing"
	case Bound:
		return "a namespace"
	case Incomplete:
		return "an empty file without a namespace"
	case Foreign:
		return "something that is not a namespace (a symbolic link, directory, file with content or another mount)"
	}
	return "unreadable"
}

// Stat reports what is at dir/name (or at name, an absolute path). Under
// dir it never follows a symbolic link: a link there is Foreign, whatever
// it points at. An absolute path (a container runtime's, which may well
// be a link such as /proc/PID/ns/net) is followed.
func Stat(dir, name string) State {
	if filepath.IsAbs(name) {
		var st unix.Statfs_t
		if err := unix.Statfs(name, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return Missing
			}
			return Unknown
		}
		if st.Type == nsfsMagic {
			return Bound
		}
		return Incomplete
	}
	path := filepath.Join(dir, name)
	var lst, dst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Missing
		}
		return Unknown
	}
	if lst.Mode&unix.S_IFMT != unix.S_IFREG {
		return Foreign
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil { // path is no link: nothing is followed
		return Unknown
	}
	if st.Type == nsfsMagic {
		return Bound
	}
	if err := unix.Stat(dir, &dst); err != nil {
		return Unknown
	}
	if lst.Size != 0 || lst.Dev != dst.Dev { // content, or a file of another file system mounted there
		return Foreign
	}
	return Incomplete
}

// Describe says what is at dir/name, for a message: "a symbolic link to
// TARGET", "a directory", "a file of N bytes", and so on.
func Describe(dir, name string) string {
	path := filepath.Join(dir, name)
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return "nothing"
		}
		return fmt.Sprintf("unreadable (%s)", err)
	}
	switch lst.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			return "a symbolic link"
		}
		return "a symbolic link to " + target
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFREG:
	default:
		return "a special file"
	}
	switch Stat(dir, name) {
	case Bound:
		return "a namespace"
	case Incomplete:
		return "an empty file with no namespace mounted on it"
	}
	if lst.Size == 0 {
		return "a mount of another file system"
	}
	return fmt.Sprintf("a file of %d bytes", lst.Size)
}

// Mark returns the alias of lo in the namespace at dir/name ("" if none).
func Mark(dir, name string) (string, error) {
	ns, err := Open(dir, name)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	lo, err := ns.Link.LinkByName("lo")
	if err != nil {
		return "", fmt.Errorf("find lo in netns %s: %w", name, err)
	}
	return lo.Attrs().Alias, nil
}

// Remove unbinds and deletes dir/name. A missing path is success; an
// incomplete one (an empty mount point) is removed. It never follows a
// symbolic link: one at dir/name is refused, not unmounted through or
// deleted. The namespace itself, with every link in it, is freed by the
// kernel once nothing else holds it; veth peers go with it. Equivalent
// to: `ip netns del NAME`.
func Remove(dir, name string) error {
	path := filepath.Join(dir, name)
	switch st := Stat(dir, name); st {
	case Missing:
		return nil
	case Foreign, Unknown:
		return fmt.Errorf("remove %s: it is %s, which cnet did not make: left in place: %w", path, st, fs.ErrExist)
	}
	err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("umount %s: %w", path, err)
	}
	faults.Point()
	if err := unix.Unlinkat(unix.AT_FDCWD, path, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	faults.Point()
	return nil
}

// List returns the names bound in dir.
func List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// Do runs fn on a locked OS thread inside the namespace at path, as
// DoFd does. Equivalent to: `nsenter --net=PATH ...` for the work of fn.
func Do(path string, fn func() error) error {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer CloseFd(target)
	return DoFd(target, path, fn)
}

// DoFd runs fn on a thread switched into the network namespace open as fd
// (name, usually its path, is for error messages) and returns fn's error.
// This is the one place that switches a thread of this process into
// another namespace and back, and it keeps to three rules:
//
//   - fn runs on a fresh goroutine locked to its OS thread, so no other
//     goroutine ever runs in the namespace;
//   - fn must spawn no goroutines: they would run on other threads, in
//     the caller's namespace (a child process started by fn inherits the
//     thread's namespace, which is how `cnet exec` starts one);
//   - the thread is unlocked only after it is back in its own namespace;
//     when switching back fails it stays locked, and the runtime discards
//     it when the goroutine ends.
//
// Equivalent to: `nsenter --net=PATH ...` for the work of fn.
func DoFd(fd int, name string, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread() // not switched yet: the thread is as it was
			ch <- fmt.Errorf("open /proc/thread-self/ns/net: %w", err)
			return
		}
		defer CloseFd(orig)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // the switch failed: the thread is as it was
			ch <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		ferr := fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and the runtime discards it
		ch <- ferr
	}()
	return <-ch
}

// Processes returns the PIDs of processes whose network namespace is the
// one bound at path.
func Processes(path string) ([]int, error) {
	id, err := IDOf(path)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	all, err := ProcessesByNetns()
	if err != nil {
		return nil, err
	}
	return all[id], nil
}

// ID identifies a namespace: its inode on nsfs, the one file system that
// holds every namespace.
type ID uint64

// IDOf returns the ID of the namespace bound at path.
func IDOf(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return ID(st.Ino), nil
}

// ProcessesByNetns scans /proc once and groups PIDs by network namespace.
// It reads each /proc/PID/ns/net link ("net:[INODE]") rather than
// following it, which costs a third less.
func ProcessesByNetns() (map[ID][]int, error) {
	proc, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer func() { _ = proc.Close() }() // a directory read only: nothing to lose
	names, err := proc.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := map[ID][]int{}
	buf := make([]byte, 64)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		n, err := unix.Readlinkat(int(proc.Fd()), name+"/ns/net", buf)
		if err != nil {
			continue // exited, or not ours to inspect
		}
		link := string(buf[:n])
		if !strings.HasPrefix(link, "net:[") || !strings.HasSuffix(link, "]") {
			continue
		}
		ino, err := strconv.ParseUint(link[5:len(link)-1], 10, 64)
		if err != nil {
			continue
		}
		out[ID(ino)] = append(out[ID(ino)], pid)
	}
	return out, nil
}

// CloseFd closes a descriptor opened read-only (a namespace file, /proc):
// nothing was written through it, so close has nothing to report that
// matters, and Linux frees the descriptor whatever it returns.
func CloseFd(fd int) { _ = unix.Close(fd) }
