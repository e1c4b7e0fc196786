package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Snapshot renders the sandbox's network state as sorted text, read with
// ip, nft and the file system, never through cnet's own code: host links
// (type, master, alias, up), IPv4 addresses and routes, every namespace
// under /run/netns with its links, addresses and routes, every file under
// /etc/netns, the nftables ruleset and ip_forward. Host veth names
// (vethXXXXXXX) read as veth*, since a re-created endpoint gets a new one;
// the alias still says whose it is.
func Snapshot(t testing.TB) string {
	t.Helper()
	return snapshot(t.Fatalf)
}

// snapshot is Snapshot, reporting a failure to read the kernel to fail.
func snapshot(fail func(format string, args ...any)) string {
	var b strings.Builder
	describeNetns(fail, &b, "")
	spaces, _ := os.ReadDir("/run/netns")
	for _, e := range spaces {
		fmt.Fprintf(&b, "netns %s\n", e.Name())
		describeNetns(fail, &b, e.Name())
	}
	if err := filepath.Walk("/etc/netns", func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			// Recorded, never followed: a link planted there must be
			// left exactly as it was, and its target is not cnet's.
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "link %s -> %s\n", path, target)
			return nil
		}
		if !info.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "file %s\n%s", path, data)
		}
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fail("read /etc/netns: %v", err)
	}
	rs, _ := Try("nft", "list", "ruleset")
	b.WriteString("nft:\n" + normalizeElements(rs))
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	fmt.Fprintf(&b, "ip_forward=%s", fwd)
	return b.String()
}

// ipJSON runs one `ip -j -d -4 -batch -` in ns ("" for the sandbox host)
// with the commands given, and returns each command's JSON array.
func ipJSON(fail func(format string, args ...any), ns string, cmds ...string) [][]map[string]any {
	full := []string{"-j", "-d", "-4"}
	if ns != "" {
		full = append(full, "-n", ns)
	}
	full = append(full, "-batch", "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := cmd.Output()
	res := make([][]map[string]any, len(cmds))
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if ee, ok := err.(*exec.ExitError); ok {
			msg += strings.TrimSpace(string(ee.Stderr))
		}
		for i := range res {
			res[i] = []map[string]any{{"error": msg}}
		}
		return res
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for i := range cmds {
		if err := dec.Decode(&res[i]); err != nil {
			fail("parse ip %s: %v\n%s", cmds[i], err, out)
		}
	}
	return res
}

func describeNetns(fail func(format string, args ...any), b *strings.Builder, ns string) {
	var lines []string
	all := ipJSON(fail, ns, "link show", "addr show", "route show table all")
	for _, l := range all[0] {
		kind := ""
		if li, ok := l["linkinfo"].(map[string]any); ok {
			kind, _ = li["info_kind"].(string)
		}
		flags, _ := l["flags"].([]any)
		up := slices.ContainsFunc(flags, func(f any) bool { return f == "UP" })
		lines = append(lines, fmt.Sprintf("  link %v kind=%s master=%v alias=%v up=%v mtu=%v group=%v",
			l["ifname"], kind, or(l["master"]), or(l["ifalias"]), up, l["mtu"], l["group"]))
	}
	for _, a := range all[1] {
		infos, _ := a["addr_info"].([]any)
		for _, i := range infos {
			m := i.(map[string]any)
			lines = append(lines, fmt.Sprintf("  addr %v %v/%v", a["ifname"], m["local"], m["prefixlen"]))
		}
	}
	for _, r := range all[2] {
		if r["table"] == "local" {
			continue
		}
		lines = append(lines, fmt.Sprintf("  route %v via %v dev %v table %v", r["dst"], or(r["gateway"]), r["dev"], or(r["table"])))
	}
	for i := range lines {
		lines[i] = vethName.ReplaceAllString(lines[i], "veth*")
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
}

var elementsBlock = regexp.MustCompile(`elements = \{[^}]*\}`)

// normalizeElements masks host veth names in set elements (as in link
// lines) and sorts each set's elements, which nft lists in key order: an
// endpoint re-created with a new veth name may sort elsewhere.
func normalizeElements(ruleset string) string {
	return elementsBlock.ReplaceAllStringFunc(ruleset, func(block string) string {
		body := strings.TrimSuffix(strings.TrimPrefix(block, "elements = {"), "}")
		var items []string
		for _, it := range strings.Split(body, ",") {
			items = append(items, vethName.ReplaceAllString(strings.Join(strings.Fields(it), " "), "veth*"))
		}
		slices.Sort(items)
		return "elements = { " + strings.Join(items, ", ") + " }"
	})
}

var vethName = regexp.MustCompile(`\bveth[0-9a-f]{7}\b`)

func or(v any) any {
	if v == nil {
		return "-"
	}
	return v
}

// WaitSnapshot polls until the sandbox matches want (veths of a deleted
// namespace disappear asynchronously) and fails t with both if it never
// does.
func WaitSnapshot(t testing.TB, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got = Snapshot(t); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox differs from the expected state\ngot:\n%s\nwant:\n%s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var epAlias = regexp.MustCompile(`(?m)^  link veth\* kind=veth .* alias=cnet/[0-9a-f]+/ep/([^/\s]+)/\S+`)

// Settled returns the snapshot once no host veth belongs to a container
// whose namespace is gone: deleting a namespace frees its veths
// asynchronously, some 20-30 ms later.
func Settled(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := Snapshot(t)
		dying := false
		for _, m := range epAlias.FindAllStringSubmatch(s, -1) {
			if !strings.Contains(s, "\nnetns "+m[1]+"\n") && !strings.HasPrefix(s, "netns "+m[1]+"\n") {
				dying = true
			}
		}
		if !dying || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Diff lists the lines only in got (+) and only in want (-), in order,
// for messages about two snapshots that differ.
func Diff(got, want string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		if count[l] > 0 {
			count[l]--
			continue
		}
		b.WriteString("+ " + l + "\n")
	}
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			count[l]--
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}
