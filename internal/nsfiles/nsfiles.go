// Package nsfiles renders and writes the per-container files under
// /etc/netns/NAME. `ip netns exec` and `cnet exec` bind-mount each of them
// over the file of the same name in /etc.
package nsfiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// Write writes the files atomically (write to a temporary file, rename).
// A file that exists without marker was written by someone else (a
// namespace cnet adopted) and is left alone. Equivalent to:
//
//	mkdir -p /etc/netns/NAME && echo ... > /etc/netns/NAME/resolv.conf
func Write(dir, marker string, f *model.FilesSpec) error {
	d := filepath.Join(dir, f.Name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", d, err)
	}
	faults.Point()
	for _, file := range []struct{ name, content string }{{"resolv.conf", f.Resolv}, {"hosts", f.Hosts}} {
		path := filepath.Join(d, file.name)
		if !ours(path, marker) {
			continue
		}
		tmp := path + ".cnet-tmp"
		if err := os.WriteFile(tmp, []byte(file.content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			err = fmt.Errorf("rename %s: %w", path, err)
			if rerr := os.Remove(tmp); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp, rerr))
			}
			return err
		}
		faults.Point()
	}
	return nil
}

// ours reports whether path is missing or carries marker.
func ours(path, marker string) bool {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && bytes.HasPrefix(data, []byte(marker+"\n"))
}

// Remove deletes the files cnet wrote for a container, then the directory
// if nothing else is left in it. Missing files are success. Equivalent to:
// `rm -r /etc/netns/NAME`.
func Remove(dir, marker, name string) error {
	d := filepath.Join(dir, name)
	var errs []error
	for _, file := range []string{"resolv.conf", "hosts", "resolv.conf.cnet-tmp", "hosts.cnet-tmp"} {
		path := filepath.Join(d, file)
		if strings.HasSuffix(file, ".cnet-tmp") || ours(path, marker) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			faults.Point()
		}
	}
	if ents, err := os.ReadDir(d); err == nil && len(ents) == 0 {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Marked lists the directories in dir holding a file with marker: the
// ones cnet wrote.
func Marked(dir, marker string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		for _, f := range []string{"resolv.conf", "hosts"} {
			path := filepath.Join(dir, e.Name(), f)
			if _, err := os.Stat(path); err == nil && ours(path, marker) {
				out = append(out, e.Name())
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
