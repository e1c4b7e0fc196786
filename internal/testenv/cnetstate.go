package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// State renders a cnet state database as sorted text, read with bbolt
// directly (not through cnet's state package) under a shared `flock
// RUNDIR/lock`, so no cnet command writes while it is read. Every bucket
// and key is listed, so a stale index entry or a left-over intent shows.
// What differs between two runs of the same operation, or only records
// that something once existed, is left out or masked: creation times,
// host veth names (as in Snapshot), namespace identities, the endpoint generation counter
// (which only grows, so new veths never reuse a dying one's name) and
// empty nested index buckets (an addrs/NETWORK bucket whose last
// container went).
func State(t testing.TB, stateDir, runDir string) string {
	t.Helper()
	path := filepath.Join(stateDir, "state.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "state: none\n"
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(runDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Close() }() // releases the shared lock; the file was never written
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer func() { _ = db.Close() }() // opened read-only: its close cannot lose anything
	var lines []string
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			name := prefix + "/" + printable(k)
			if v == nil {
				nested := b.Bucket(k)
				if nested.Stats().KeyN == 0 {
					return nil
				}
				lines = append(lines, "bucket "+name)
				return walk(name, nested)
			}
			if name == "/meta/endpoint_gen" {
				return nil
			}
			lines = append(lines, name+" = "+printable(v))
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			lines = append(lines, "bucket /"+string(name))
			return walk("/"+string(name), b)
		})
	})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	for i := range lines {
		lines[i] = created.ReplaceAllString(vethName.ReplaceAllString(lines[i], "veth*"), `"created":"*"`)
		lines[i] = netnsID.ReplaceAllString(lines[i], `"netns_id":*`)
	}
	slices.Sort(lines)
	return "state:\n  " + strings.Join(lines, "\n  ") + "\n"
}

var created = regexp.MustCompile(`"created":"[^"]*"`)

// netnsID matches a namespace's identity (its nsfs inode), which the
// kernel picks anew for every namespace.
var netnsID = regexp.MustCompile(`"netns_id":\{[^}]*\}`)

// printable shows text as is and anything else (index keys) as hex.
func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", b)
		}
	}
	return string(b)
}

// DNS renders what cnet's name server under runDir serves: it asks the
// server over its control socket (RUNDIR/dns/control.sock) for every
// record it answers from. "dns: not running" when no server answers.
func DNS(t testing.TB, runDir string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", filepath.Join(runDir, "dns", "control.sock"), time.Second)
	if err != nil {
		return "dns: not running\n"
	}
	defer func() { _ = conn.Close() }() // the dump is read in full before
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("dns dump: %v", err)
	}
	if _, err := conn.Write([]byte(`{"op":"dump"}` + "\n")); err != nil {
		t.Fatalf("dns dump: %v", err)
	}
	var rep struct{ Records []string }
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		// A server that is stopping closes the socket unanswered.
		return "dns: not running\n"
	}
	return "dns:\n  " + strings.Join(rep.Records, "\n  ") + "\n"
}

// Full is Snapshot plus the state database and the name server's records
// of the cnet whose state is in stateDir and run files in runDir.
func Full(t testing.TB, stateDir, runDir string) string {
	t.Helper()
	return Snapshot(t) + State(t, stateDir, runDir) + DNS(t, runDir)
}
