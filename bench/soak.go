package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/link"
	bolt "go.etcd.io/bbolt"
)

// The soak: SoakCycles of `cnet create` then `cnet rm` of a new container
// on one network, through the CLI. At the end nothing may be left that
// was not there after the first cycle: links, namespaces, /etc/netns
// directories, nftables elements, state records. Memory and the database
// must stay flat.

// SoakResult is the soak part.
type SoakResult struct {
	Cycles int
	// Window is how many cycles the first and last figures summarise.
	Window int
	// Create and Rm at the first and the last Window cycles.
	CreateFirst, CreateLast, RmFirst, RmLast Stat
	// CreateRSS: median peak RSS (KiB) of `cnet create` in the first and
	// last Window cycles.
	CreateRSSFirst, CreateRSSLast int64
	// DNSRSS: the name server's RSS (KiB) after the first cycle, after
	// the first Window cycles and at the end; DB: state.db's size after
	// the first cycle and at the end. A Go process's RSS rises over its
	// first cycles to the garbage collector's working size, so the
	// server is flat when the end matches the warm figure.
	DNSRSSFirst, DNSRSSWarm, DNSRSSLast int64
	DBFirst, DBLast                     int64
	// Leaks lists what the end has that the start did not.
	Leaks   []string
	Elapsed time.Duration
	Err     string
}

// inventory is what cnet owns in the sandbox at one moment.
type inventory struct {
	links, netns, etcNetns []string
	nft                    string
	buckets                map[string]int // bucket path → keys
}

func takeInventory(root string) (inventory, error) {
	var inv inventory
	links, err := link.LinkList(nil)
	if err != nil {
		return inv, err
	}
	for _, l := range links {
		inv.links = append(inv.links, l.Type()+" "+l.Attrs().Name)
	}
	for _, d := range []struct {
		dir string
		out *[]string
	}{{netnsDir, &inv.netns}, {"/etc/netns", &inv.etcNetns}} {
		entries, err := os.ReadDir(d.dir)
		if err != nil {
			return inv, err
		}
		for _, e := range entries {
			*d.out = append(*d.out, e.Name())
		}
	}
	// The tables with their elements, as nft prints them (handles left
	// out): the firewall and NAT table, and the anti-spoofing table.
	for _, family := range []string{"inet", "bridge"} {
		out, err := output("nft", "list", "table", family, "cnet")
		if err != nil {
			return inv, err
		}
		inv.nft += string(out)
	}
	// Every bucket's key count, nested buckets by path. No cnet command
	// runs now; the name server never opens the database.
	db, err := bolt.Open(stateDB(root), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return inv, fmt.Errorf("open %s: %w", stateDB(root), err)
	}
	defer func() { note(db.Close()) }()
	inv.buckets = map[string]int{}
	var walk func(path string, b *bolt.Bucket) error
	walk = func(path string, b *bolt.Bucket) error {
		inv.buckets[path] += 0
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(path+"/"+string(k), b.Bucket(k))
			}
			inv.buckets[path]++
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) })
	})
	return inv, err
}

// leaksSince lists what now has beyond before.
func (now inventory) leaksSince(before inventory) []string {
	var leaks []string
	extra := func(what string, a, b []string) {
		for _, x := range b {
			if !slices.Contains(a, x) {
				leaks = append(leaks, what+x)
			}
		}
	}
	extra("link ", before.links, now.links)
	extra("namespace /run/netns/", before.netns, now.netns)
	extra("directory /etc/netns/", before.etcNetns, now.etcNetns)
	if now.nft != before.nft {
		leaks = append(leaks, "nftables tables inet cnet and bridge cnet differ:\n"+lineDiff(before.nft, now.nft))
	}
	for path, n := range now.buckets {
		// meta holds counters (the endpoint generation) that grow by design.
		if path == "meta" {
			continue
		}
		if n > before.buckets[path] {
			leaks = append(leaks, fmt.Sprintf("state bucket %s: %d keys, %d at the start", path, n, before.buckets[path]))
		}
	}
	slices.Sort(leaks)
	return leaks
}

// lineDiff lists the lines only in a (-) and only in b (+), at most 10.
func lineDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range la {
		if !slices.Contains(lb, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range lb {
		if !slices.Contains(la, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return strings.Join(out, "\n")
}

func dnsServerRSS(root string) int64 {
	pid, err := dns.Client{Dir: filepath.Join(root, "run", "dns")}.Ping()
	if err != nil {
		return 0
	}
	return rssKiB(pid)
}

func medianKiB(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// measureSoak runs the cycles. The inventory's baseline is taken after the
// first cycle, so what the first container brings for good (the name
// server, the nftables table's state, conntrack modules) is not counted.
func measureSoak(cfg *Config) *SoakResult {
	r := &SoakResult{Cycles: cfg.SoakCycles, Window: min(1000, max(cfg.SoakCycles/2, 1))}
	if _, err := needBinary("nft", "nftables"); err != nil {
		r.Err = err.Error()
		return r
	}
	c := &cnetCLI{bin: cfg.CnetBin, root: cfg.Root, network: "bsoak", subnet: netip.MustParsePrefix("10.91.0.0/24")}
	if err := c.prepare(); err != nil {
		r.Err = err.Error()
		return r
	}
	defer func() {
		if _, err := c.cnet("network", "rm", c.network); err != nil && r.Err == "" {
			r.Err = "removing the network: " + err.Error()
		}
	}()
	var creates, rms []time.Duration
	var rss []int64
	var before inventory
	start := time.Now()
	for i := 1; i <= cfg.SoakCycles; i++ {
		name := fmt.Sprintf("soak-%d", i)
		var ru *syscall.Rusage
		d, err := timed(func() error {
			st, err := c.cnet("create", name, "--network", c.network)
			if st != nil {
				ru, _ = st.SysUsage().(*syscall.Rusage)
			}
			return err
		})
		if err != nil {
			r.Err = fmt.Sprintf("cycle %d: %v", i, err)
			return r
		}
		creates = append(creates, d)
		if ru != nil {
			rss = append(rss, ru.Maxrss)
		}
		d, err = timed(func() error { _, err := c.cnet("rm", name); return err })
		if err != nil {
			r.Err = fmt.Sprintf("cycle %d: %v", i, err)
			return r
		}
		rms = append(rms, d)
		if i == 1 {
			if err := waitNoVeths(time.Minute); err != nil {
				r.Err = err.Error()
				return r
			}
			if before, err = takeInventory(cfg.Root); err != nil {
				r.Err = "inventory after the first cycle: " + err.Error()
				return r
			}
			r.DNSRSSFirst, r.DBFirst = dnsServerRSS(cfg.Root), fileSize(stateDB(cfg.Root))
		}
		if i == r.Window {
			r.DNSRSSWarm = dnsServerRSS(cfg.Root)
		}
		if i%1000 == 0 {
			cfg.Log("  soak: %d cycles (%s)", i, time.Since(start).Round(time.Second))
		}
	}
	r.Elapsed = time.Since(start)
	r.DNSRSSLast, r.DBLast = dnsServerRSS(cfg.Root), fileSize(stateDB(cfg.Root))
	w := r.Window
	r.CreateFirst, r.CreateLast = summarize(creates[:w]), summarize(creates[len(creates)-w:])
	r.RmFirst, r.RmLast = summarize(rms[:w]), summarize(rms[len(rms)-w:])
	if len(rss) == len(creates) {
		r.CreateRSSFirst, r.CreateRSSLast = medianKiB(rss[:w]), medianKiB(rss[len(rss)-w:])
	}
	// The kernel frees the last namespaces' veths asynchronously.
	if err := waitNoVeths(time.Minute); err != nil {
		r.Leaks = append(r.Leaks, err.Error())
	}
	after, err := takeInventory(cfg.Root)
	if err != nil {
		r.Err = "inventory at the end: " + err.Error()
		return r
	}
	r.Leaks = append(r.Leaks, after.leaksSince(before)...)
	return r
}
