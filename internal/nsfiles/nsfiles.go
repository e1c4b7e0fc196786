// Package nsfiles renders and writes the per-container files under
// /etc/netns/NAME. `ip netns exec` and `cnet exec` bind-mount each of them
// over the file of the same name in /etc.
package nsfiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/errs"
	"github.com/cnetdev/cnet/internal/faults"
	"github.com/cnetdev/cnet/internal/model"
)

// Dir is where `ip netns exec` looks for per-namespace files.
const Dir = "/etc/netns"

// Paths of the host's resolver configuration.
const (
	HostResolv    = "/etc/resolv.conf"
	SystemdResolv = "/run/systemd/resolve/resolv.conf" // the real upstreams behind 127.0.0.53
)

// Fallback is the nameserver used when the host has none usable.
var Fallback = netip.MustParseAddr("1.1.1.1")

// Upstream is the host's resolver configuration, minus loopback servers
// (unreachable from a container's namespace).
type Upstream struct {
	Nameservers []netip.Addr
	Search      []string
	Options     []string
}

// ReadUpstream reads the host's nameservers. When the host points at the
// systemd-resolved stub (127.0.0.53), it reads systemdPath instead, as
// Docker does. Loopback servers are dropped; if none remain, Fallback is
// used.
func ReadUpstream(hostPath, systemdPath string) Upstream {
	up, stub := parse(hostPath)
	if stub {
		if s, _ := parse(systemdPath); len(s.Nameservers) > 0 {
			s.Search, s.Options = up.Search, up.Options
			up = s
		}
	}
	if len(up.Nameservers) == 0 {
		up.Nameservers = []netip.Addr{Fallback}
	}
	return up
}

func parse(path string) (up Upstream, stub bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return up, false // a host without resolv.conf: use the fallback
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				continue
			}
			if a.IsLoopback() {
				stub = stub || a == netip.MustParseAddr("127.0.0.53")
				continue
			}
			if a.Is4() {
				up.Nameservers = append(up.Nameservers, a)
			}
		case "search":
			up.Search = f[1:]
		case "options":
			up.Options = append(up.Options, f[1:]...)
		}
	}
	return up, stub
}

// Local is cnet's own name service for a container: the gateways of its
// DNS-enabled networks, and their NETWORK.cnet search domains.
type Local struct {
	Servers []netip.Addr
	Search  []string
}

// HostServers returns the nameservers of the host's resolv.conf as they
// are, loopback ones included: cnet's name server runs in the host's
// namespace and can reach them. Without any, it returns Fallback.
func HostServers(hostPath string) []netip.Addr {
	data, _ := os.ReadFile(hostPath)
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		out = []netip.Addr{Fallback}
	}
	return out
}

// Resolv renders resolv.conf: servers if given, else cnet's name servers
// (searching NETWORK.cnet first, so bare names are answered at once), else
// the upstreams. The host's search domains and options are kept.
func Resolv(marker string, servers []netip.Addr, local Local, up Upstream) string {
	var b strings.Builder
	b.WriteString(marker + "\n")
	search := up.Search
	if len(servers) == 0 && len(local.Servers) > 0 {
		servers = local.Servers
		search = append(append([]string{}, local.Search...), up.Search...)
	}
	if len(servers) == 0 {
		servers = up.Nameservers
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(up.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(up.Options, " "))
	}
	return b.String()
}

// Hosts renders the hosts file: localhost and the container's own name on
// each of its addresses.
func Hosts(marker, name string, addrs []netip.Addr) string {
	var b strings.Builder
	b.WriteString(marker + "\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s\t%s\n", a, name)
	}
	return b.String()
}

// For renders both files for a container.
func For(marker string, c *model.Container, local Local, up Upstream) *model.FilesSpec {
	var addrs []netip.Addr
	for _, ep := range c.Endpoints {
		addrs = append(addrs, ep.Addr)
	}
	return &model.FilesSpec{
		Name:   c.Name,
		Resolv: Resolv(marker, c.DNS, local, up),
		Hosts:  Hosts(marker, c.Name, addrs),
	}
}

// files are the files cnet keeps in a container's directory.
var files = []string{"resolv.conf", "hosts"}

const tmpSuffix = ".cnet-tmp"

// LinkError says a path under Dir is a symbolic link (or not the kind of
// file cnet makes there), which cnet neither follows nor removes.
type LinkError struct {
	Path string
	What string // "a symbolic link", "not a directory", ...
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s is %s: cnet writes and removes a container's files only in a directory of its own and never through a link, "+
		"so it left that path and whatever it points at alone; remove it yourself, then try again", e.Path, e.What)
}

func (e *LinkError) Unwrap() error { return errs.ErrConflict }

// resolveBeneath opens without following a symbolic link at any component,
// and never leaving the directory it starts from.
const resolveBeneath = unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// openat2 opens name relative to dirfd, refusing symbolic links (ELOOP
// becomes a *LinkError naming path).
func openat2(dirfd int, name, path string, flags uint64, mode uint64) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolveBeneath})
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN): // EAGAIN: a rename raced the lookup
			continue
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
			return -1, &LinkError{Path: path, What: "a symbolic link"}
		case errors.Is(err, unix.ENOTDIR) && flags&unix.O_DIRECTORY != 0:
			return -1, &LinkError{Path: path, What: "not a directory"}
		case err != nil:
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		return fd, nil
	}
}

// containerDir opens dir/name, the directory of one container, without
// following a link at either; with create it makes name first. The
// caller closes both descriptors.
// closeFd closes a directory descriptor: nothing is written through one,
// so close has nothing to report that matters.
func closeFd(fd int) { _ = unix.Close(fd) }

func containerDir(dir, name string, create bool) (root, d int, err error) {
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return -1, -1, fmt.Errorf("mkdir %s: %w", dir, err)
		}
	}
	root, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("open %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	if create {
		// mkdirat does not follow a link at name: one there is EEXIST,
		// and the open below refuses it.
		if err := unix.Mkdirat(root, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			closeFd(root)
			return -1, -1, fmt.Errorf("mkdir %s: %w", path, err)
		}
		faults.Point()
	}
	d, err = openat2(root, name, path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		closeFd(root)
		return -1, -1, err
	}
	return root, d, nil
}

// readAt reads the regular file name in d without following a link. It
// returns fs.ErrNotExist when there is none.
func readAt(d int, name, path string) ([]byte, error) {
	fd, err := openat2(d, name, path, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		var le *LinkError
		if errors.As(err, &le) {
			return nil, err
		}
		if errors.Is(err, unix.ENOENT) {
			return nil, fs.ErrNotExist
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	defer func() { _ = f.Close() }() // opened read-only: its close has nothing to report that matters
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &LinkError{Path: path, What: "not a regular file"}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// ownedAt reports whether name in d is missing or a regular file that
// starts with marker. A link there is a *LinkError.
func ownedAt(d int, name, path, marker string) (bool, error) {
	data, err := readAt(d, name, path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.HasPrefix(data, []byte(marker+"\n")), nil
}

// dropTemp removes a temporary file a killed write left in d: only a
// regular file, empty or starting with marker.
func dropTemp(d int, name, path, marker string) error {
	data, err := readAt(d, name, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(data) > 0 && !bytes.HasPrefix(data, []byte(marker+"\n")) {
		return &LinkError{Path: path, What: "a file cnet did not write"}
	}
	if err := unix.Unlinkat(d, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Write writes the files atomically (write to a temporary file, rename).
// A file that exists without marker was written by someone else (a
// namespace cnet adopted) and is left alone. Nothing is followed: a
// symbolic link at dir/NAME or at one of its files is refused with a
// *LinkError, and the temporary file is created with O_EXCL|O_NOFOLLOW
// in the directory opened without following links. Equivalent to:
//
//	mkdir -p /etc/netns/NAME && echo ... > /etc/netns/NAME/resolv.conf
func Write(dir, marker string, f *model.FilesSpec) error {
	root, d, err := containerDir(dir, f.Name, true)
	if err != nil {
		return err
	}
	defer closeFd(root)
	defer closeFd(d)
	base := filepath.Join(dir, f.Name)
	for _, file := range []struct{ name, content string }{{"resolv.conf", f.Resolv}, {"hosts", f.Hosts}} {
		path := filepath.Join(base, file.name)
		if ok, err := ownedAt(d, file.name, path, marker); err != nil {
			return err
		} else if !ok {
			continue
		}
		tmp := file.name + tmpSuffix
		tmpPath := filepath.Join(base, tmp)
		if err := dropTemp(d, tmp, tmpPath, marker); err != nil {
			return err
		}
		fd, err := openat2(d, tmp, tmpPath, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return fmt.Errorf("write %s: %w", tmpPath, err)
		}
		w := os.NewFile(uintptr(fd), tmpPath)
		_, err = w.WriteString(file.content)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			// Within the one directory: replaces the entry (a file cnet
			// wrote, checked above), following nothing.
			err = unix.Renameat(d, tmp, d, file.name)
		}
		if err != nil {
			err = fmt.Errorf("write %s: %w", path, err)
			// The next write drops a temporary file left here too.
			if uerr := unix.Unlinkat(d, tmp, 0); uerr != nil && !errors.Is(uerr, unix.ENOENT) {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", tmpPath, uerr))
			}
			return err
		}
		faults.Point()
	}
	return nil
}

// Remove deletes the files cnet wrote for a container (those starting
// with marker, and its temporary files), then the directory if nothing
// else is left in it. Missing files are success. A symbolic link at
// dir/NAME or at one of its files is not cnet's: it is left in place,
// not followed, and nothing is deleted through it (Marked reports it).
// Equivalent to: `rm -r /etc/netns/NAME`.
func Remove(dir, marker, name string) error {
	var le *LinkError
	root, d, err := containerDir(dir, name, false)
	if errors.Is(err, unix.ENOENT) || errors.As(err, &le) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeFd(root)
	defer closeFd(d)
	base := filepath.Join(dir, name)
	var errList []error
	for _, file := range files {
		path := filepath.Join(base, file)
		if err := dropTemp(d, file+tmpSuffix, path+tmpSuffix, marker); err != nil && !errors.As(err, &le) {
			errList = append(errList, err)
		}
		data, err := readAt(d, file, path)
		if errors.Is(err, fs.ErrNotExist) || errors.As(err, &le) {
			continue
		}
		if err != nil {
			errList = append(errList, err)
			continue
		}
		if !bytes.HasPrefix(data, []byte(marker+"\n")) {
			continue // someone else's file
		}
		if err := unix.Unlinkat(d, file, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			errList = append(errList, fmt.Errorf("remove %s: %w", path, err))
		}
		faults.Point()
	}
	// rmdir does not follow a link, and fails on a directory not empty.
	if err := unix.Unlinkat(root, name, unix.AT_REMOVEDIR); err != nil &&
		!errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		errList = append(errList, fmt.Errorf("rmdir %s: %w", base, err))
	}
	return errors.Join(errList...)
}

// Present reports whether both files of a container are there, as
// regular files (a link does not count).
func Present(dir, name string) bool {
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(dir, name, f), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return false
		}
	}
	return true
}

// Marked lists the directories in dir holding a file with marker: the
// ones cnet wrote. Links, to directories or to files, are never followed
// and never listed: left says, for each link (or other odd entry) where
// cnet would write, that it is left alone.
func Marked(dir, marker string) (marked, left []string) {
	ents, _ := os.ReadDir(dir) // no directory: no files cnet wrote
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if !e.IsDir() { // a link to a directory is not one
			if e.Type()&fs.ModeSymlink != 0 {
				left = append(left, path+" is a symbolic link; left alone")
			}
			continue
		}
		root, d, err := containerDir(dir, e.Name(), false)
		if err != nil {
			left = append(left, err.Error())
			continue
		}
		ours := false
		for _, f := range []string{"resolv.conf", "hosts", "resolv.conf" + tmpSuffix, "hosts" + tmpSuffix} {
			data, err := readAt(d, f, filepath.Join(path, f))
			var le *LinkError
			switch {
			case errors.As(err, &le):
				left = append(left, le.Path+" is "+le.What+"; left alone")
			case err == nil && !strings.HasSuffix(f, tmpSuffix) && bytes.HasPrefix(data, []byte(marker+"\n")):
				ours = true
			}
		}
		if ours {
			marked = append(marked, e.Name())
		}
		closeFd(d)
		closeFd(root)
	}
	slices.Sort(marked)
	return marked, left
}
