package main

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/testenv"
)

// podman drives Debian 12's Podman 4.3 on its CNI backend, with every
// directory it writes private to the test: storage, run and tmp dirs,
// containers.conf, the CNI config and plugin dirs, and the fixed host
// paths Podman and its plugins write (/var/lib/cni, /run/crun,
// /run/containers/cni/dnsname...) through overlays that send their writes
// to a tmpfs.
type podman struct {
	t                *testing.T
	dir, conf, plugs string
	env              []string
	image            string
}

// podmanNeeds are the Debian 12 packages TestPodman needs, by the file
// each must provide.
var podmanNeeds = []struct{ file, pkg string }{
	{"/usr/bin/podman", "podman"},
	{"/usr/bin/conmon", "conmon"},
	{"/usr/bin/crun", "crun"},
	{"/usr/sbin/dnsmasq", "dnsmasq-base"},
	{"/usr/lib/cni/portmap", "containernetworking-plugins"},
	{"/usr/lib/cni/firewall", "containernetworking-plugins"},
	{"/usr/lib/cni/tuning", "containernetworking-plugins"},
	{"/usr/lib/cni/dnsname", "golang-github-containernetworking-plugin-dnsname"},
	{"/bin/busybox", "busybox-static"},
}

func newPodman(t *testing.T, c *cli) *podman {
	t.Helper()
	var missing []string
	for _, n := range podmanNeeds {
		if _, err := os.Stat(n.file); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", n.file, n.pkg))
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("Podman is not installed: missing %s; apt-get install podman uidmap slirp4netns fuse-overlayfs catatonit crun conmon golang-github-containernetworking-plugin-dnsname dnsmasq-base busybox-static (all in scripts/deps.txt)",
			strings.Join(missing, ", "))
		// CI installs scripts/deps.txt, so there a missing piece is a
		// broken install, not a machine without Podman.
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if f, err := elf.Open("/bin/busybox"); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatal("/bin/busybox is dynamically linked; the image needs busybox-static's")
			}
		}
		testenv.Close(t, "/bin/busybox", f)
	}
	p := &podman{t: t, dir: t.TempDir(), image: "localhost/cnet-echo:test"}
	p.isolateHostDirs()
	for _, d := range []string{"root", "runroot", "tmp", "conf", "plugins", "vartmp"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p.conf, p.plugs = filepath.Join(p.dir, "conf"), filepath.Join(p.dir, "plugins")
	if err := os.Symlink(bin.cnet, filepath.Join(p.plugs, "cnet")); err != nil {
		t.Fatal(err)
	}
	for _, pl := range []string{"portmap", "firewall", "tuning", "dnsname"} {
		if err := os.Symlink("/usr/lib/cni/"+pl, filepath.Join(p.plugs, pl)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CONTAINERS_CONF=" + filepath.Join(p.dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(p.dir, "storage.conf"),
		"TMPDIR=" + filepath.Join(p.dir, "vartmp"),
		"CNET_ROOT=" + c.root,
	}
	quoted := make([]string, len(env))
	for i, e := range env {
		quoted[i] = strconv.Quote(e)
	}
	// cgroups are off (the sandbox is not a systemd machine); the ulimits
	// stay under the sandbox's hard limits; conmon's environment, which
	// runs `podman container cleanup`, is the test's.
	write(t, filepath.Join(p.dir, "containers.conf"), fmt.Sprintf(`[containers]
cgroups = "disabled"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "bridge"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
lock_type = "file"
runtime = "crun"
conmon_env_vars = [%s]
static_dir = %q
volume_path = %q
tmp_dir = %q
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
`, strings.Join(quoted, ", "), filepath.Join(p.dir, "root", "libpod"), filepath.Join(p.dir, "root", "volumes"),
		filepath.Join(p.dir, "tmp"), p.plugs, p.conf))
	write(t, filepath.Join(p.dir, "storage.conf"), fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(p.dir, "root"), filepath.Join(p.dir, "runroot")))
	p.env = env
	t.Cleanup(func() {
		// Whatever a failed check left running: Podman stops its own.
		p.try("rm", "-a", "-f", "-t", "0")
		// What the reference plugins (portmap, firewall) leave in iptables.
		for _, tbl := range []string{"ip filter", "ip nat", "ip mangle", "ip6 filter", "ip6 nat", "ip6 mangle"} {
			testenv.Try("nft", "delete", "table", strings.Fields(tbl)[0], strings.Fields(tbl)[1])
		}
	})
	p.importImage()
	return p
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// isolateHostDirs sends every write under /var/lib and /run to a tmpfs
// (an overlay over each, in the sandbox's private mount namespace), so
// what Podman, crun and the plugins write at fixed paths never reaches the
// machine's disk; /run/netns, the sandbox's own tmpfs, is moved in on top.
// On a hybrid cgroup machine /sys/fs/cgroup/unified is covered, as crun
// refuses a cgroup2 hierarchy with controllers beside cgroup v1.
func (p *podman) isolateHostDirs() {
	t := p.t
	upper := filepath.Join(p.dir, "overlays")
	if err := os.Mkdir(upper, 0o700); err != nil {
		t.Fatal(err)
	}
	mount := func(src, target, fstype string, flags uintptr, data string) {
		t.Helper()
		if err := unix.Mount(src, target, fstype, flags, data); err != nil {
			t.Fatalf("mount %s on %s: %v", fstype, target, err)
		}
	}
	mount("tmpfs", upper, "tmpfs", 0, "mode=0700")
	t.Cleanup(func() { testenv.Logged(t, "unmount "+upper, unix.Unmount(upper, unix.MNT_DETACH)) })
	overlay := func(dir string) {
		t.Helper()
		name := strings.ReplaceAll(strings.Trim(dir, "/"), "/", "-")
		up, work := filepath.Join(upper, name, "up"), filepath.Join(upper, name, "work")
		for _, d := range []string{up, work} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		mount("overlay", dir, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", dir, up, work))
	}
	overlay("/var/lib")
	t.Cleanup(func() { testenv.Logged(t, "unmount /var/lib", unix.Unmount("/var/lib", unix.MNT_DETACH)) })
	// Move the sandbox's /run/netns aside, lay the overlay on /run, and
	// move it back on top; undone in reverse.
	parked := filepath.Join(p.dir, "netns")
	if err := os.Mkdir(parked, 0o700); err != nil {
		t.Fatal(err)
	}
	var moved, overlaid, back bool
	t.Cleanup(func() { // undoes as much as was done, in reverse
		if back {
			if err := unix.Mount("/run/netns", parked, "", unix.MS_MOVE, ""); err != nil {
				t.Errorf("move /run/netns out of the overlay: %v", err)
				return
			}
		}
		if overlaid {
			if err := unix.Unmount("/run", unix.MNT_DETACH); err != nil {
				t.Errorf("unmount the overlay on /run: %v", err)
			}
		}
		if moved {
			if err := unix.Mount(parked, "/run/netns", "", unix.MS_MOVE, ""); err != nil {
				t.Errorf("move /run/netns back: %v", err)
			}
		}
	})
	mount("/run/netns", parked, "", unix.MS_MOVE, "")
	moved = true
	overlay("/run")
	overlaid = true
	mount(parked, "/run/netns", "", unix.MS_MOVE, "")
	back = true
	var root, unified unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &root) == nil && root.Type != unix.CGROUP2_SUPER_MAGIC &&
		unix.Statfs("/sys/fs/cgroup/unified", &unified) == nil && unified.Type == unix.CGROUP2_SUPER_MAGIC {
		mount("tmpfs", "/sys/fs/cgroup/unified", "tmpfs", 0, "mode=0755")
		t.Cleanup(func() {
			testenv.Logged(t, "unmount /sys/fs/cgroup/unified", unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH))
		})
	}
}

// importImage makes the test's image offline: a static echo-server and
// busybox (for sh, wget and nslookup), through `podman import`.
func (p *podman) importImage() {
	t := p.t
	echo := filepath.Join(p.dir, "echo-server")
	build := exec.Command("go", "build", "-o", echo, "../echo-server")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a static echo-server: %v\n%s", err, out)
	}
	tarball := filepath.Join(p.dir, "image.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, d := range []string{"bin/", "etc/", "tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []struct{ from, to string }{{echo, "bin/echo-server"}, {"/bin/busybox", "bin/busybox"}} {
		src, err := os.Open(e.from)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := src.Stat()
		if err := tw.WriteHeader(&tar.Header{Name: e.to, Typeflag: tar.TypeReg, Mode: 0o755, Size: st.Size()}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, src); err != nil {
			t.Fatal(err)
		}
		testenv.Close(t, e.from, src)
	}
	for _, l := range []string{"sh", "wget", "nslookup", "cat", "sleep"} {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // the image's last bytes may be in it
		t.Fatal(err)
	}
	p.ok("import", tarball, p.image)
}

func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "runroot"),
		"--tmpdir", filepath.Join(p.dir, "tmp"), "--storage-driver", "vfs", "--network-backend", "cni", "--network-config-dir", p.conf}, args...)
	cmd := exec.CommandContext(ctx, "podman", full...)
	cmd.Env = p.env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (p *podman) ok(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// try runs a cleanup: a failure is the check's to report, and logged.
func (p *podman) try(args ...string) {
	_, err := p.run(args...)
	testenv.Logged(p.t, "podman", err)
}

// conflist reads the conflist Podman wrote for network, decoded.
func (p *podman) conflist(network string) map[string]any {
	p.t.Helper()
	data, err := os.ReadFile(filepath.Join(p.conf, network+".conflist"))
	if err != nil {
		p.t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(data, &list); err != nil {
		p.t.Fatal(err)
	}
	return list
}

func (p *podman) writeConflist(network string, list map[string]any) {
	p.t.Helper()
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		p.t.Fatal(err)
	}
	write(p.t, filepath.Join(p.conf, network+".conflist"), string(data))
}

// TestPodman runs Debian 12's Podman 4.3 on its CNI backend with cnet as
// the network plugin, in two conflists: Podman's own (from `podman network
// create`, its bridge plugin swapped for cnet, with portmap, firewall,
// tuning and dnsname after it) and docs/cni.md's (cnet alone, serving
// ports and names). Each publishes a port, resolves a container by name
// from another, survives `podman network reload`, and leaves nothing of
// cnet's after `podman rm`.
func TestPodman(t *testing.T) {
	c := newCLI(t)
	pm := newPodman(t, c)

	t.Run("podman's conflist", func(t *testing.T) {
		pm.t = t
		pm.ok("network", "create", "--subnet", "10.89.40.0/24", "podnet")
		list := pm.conflist("podnet")
		plugins, _ := list["plugins"].([]any)
		var types []string
		for _, pl := range plugins {
			types = append(types, fmt.Sprint(pl.(map[string]any)["type"]))
		}
		if got := strings.Join(types, " "); got != "bridge portmap firewall tuning dnsname" {
			t.Fatalf("Podman's conflist chains %q, want bridge portmap firewall tuning dnsname", got)
		}
		first := plugins[0].(map[string]any)
		first["type"], first["cnetRoot"] = "cnet", c.root // conmon's cleanup does not pass CNET_ROOT on
		pm.writeConflist("podnet", list)

		pm.ok("run", "-d", "--name", "web", "--network", "podnet", "-p", "18300:8000", pm.image, "/bin/echo-server", "-listen", ":8000")
		if ls := c.ok("ls"); !strings.Contains(ls, "podnet") || !strings.Contains(ls, "10.89.40.") {
			t.Errorf("cnet ls does not show Podman's container:\n%s", ls)
		}
		// portmap's DNAT, to cnet's interface.
		testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "127.0.0.1:18300") })
		// dnsname's dnsmasq holds the gateway's port 53 (cnet's name
		// server stays off) and resolves web for another container.
		out := pm.ok("run", "--rm", "--network", "podnet", pm.image, "/bin/wget", "-qO-", "http://web:8000/echo")
		if !strings.Contains(out, "Echo response") {
			t.Errorf("web by name through dnsname: %q", out)
		}
		pm.ok("network", "reload", "web")
		testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "127.0.0.1:18300") })
		pm.ok("rm", "-f", "-t", "0", "web")
		nothingLeft(t, c)
	})

	t.Run("docs conflist", func(t *testing.T) {
		pm.t = t
		// docs/cni.md's, with a subnet of its own.
		pm.writeConflist("docnet", map[string]any{"cniVersion": "0.4.0", "name": "docnet", "plugins": []any{map[string]any{
			"type": "cnet", "bridge": "cni-podman9", "isGateway": true, "ipMasq": true, "hairpinMode": true, "cnetDNS": true, "cnetRoot": c.root,
			"ipam": map[string]any{"type": "host-local", "routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				"ranges": []any{[]any{map[string]any{"subnet": "10.89.41.0/24", "gateway": "10.89.41.1"}}}},
			"capabilities": map[string]any{"portMappings": true, "ips": true, "aliases": true}}}})
		pm.ok("run", "-d", "--name", "web2", "--network", "docnet", "-p", "18301:8000", pm.image, "/bin/echo-server", "-listen", ":8000")
		testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "127.0.0.1:18301") })
		// cnet's name server, by the name Podman passes (K8S_POD_NAME).
		out := pm.ok("run", "--rm", "--network", "docnet", pm.image, "/bin/wget", "-qO-", "http://web2:8000/echo")
		if !strings.Contains(out, "Echo response") {
			t.Errorf("web2 by name through cnet's name server: %q", out)
		}
		// conmon holds 18301 to reserve it: the ADD of the reload publishes
		// it all the same.
		pm.ok("network", "reload", "web2")
		testenv.Eventually(t, 10*time.Second, func() error { return httpFrom("", "127.0.0.1:18301") })
		pm.ok("rm", "-f", "-t", "0", "web2")
		nothingLeft(t, c)
	})
	c.ok("network", "rm", "podnet") // then newCLI's cleanup compares the whole sandbox
	c.ok("network", "rm", "docnet")
}

// nothingLeft checks that no container, veth or published port of cnet's
// outlives the runtime's containers.
func nothingLeft(t *testing.T, c *cli) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if ls := c.ok("ls", "--json"); strings.TrimSpace(ls) != "[]" {
			return fmt.Errorf("cnet ls after podman rm: %s", ls)
		}
		if veths := testenv.Run(t, "ip", "-o", "link", "show", "type", "veth"); veths != "" {
			return fmt.Errorf("veths after podman rm:\n%s", veths)
		}
		if m := testenv.Run(t, "nft", "list", "map", "inet", "cnet", "dnat_tcp"); strings.Contains(m, "elements") {
			return fmt.Errorf("published ports after podman rm:\n%s", m)
		}
		return nil
	})
}
