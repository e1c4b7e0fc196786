// Package state persists cnet's records in a bbolt database and serializes
// cnet processes with a host-wide lock.
//
// Layout (bucket → key → value):
//
//	meta        schema, boot_id, endpoint_gen
//	networks    NAME → JSON model.Network
//	containers  NAME → JSON model.Container
//	addrs       NETWORK (nested bucket) → 4-byte IPv4 → container name
//	hostifs     IFNAME → container name
//	ports       PROTO(1) PORT(2) HOSTIP(4) → container name, 0, CPORT(2)
//	cports      CONTAINER (nested bucket) → PROTO(1) PORT(2) HOSTIP(4) → CPORT(2)
//	intents     8-byte ID → JSON model.Intent
//
// addrs, hostifs and ports are indexes derived from containers; the
// commit of a container record keeps them in step, so address allocation
// walks one small sorted bucket instead of decoding every container, a
// port conflict is one prefix scan, and the firewall's DNAT maps are read
// from one bucket.
package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/model"
)

var (
	bMeta       = []byte("meta")
	bNetworks   = []byte("networks")
	bContainers = []byte("containers")
	bAddrs      = []byte("addrs")
	bHostIfs    = []byte("hostifs")
	bPorts      = []byte("ports")
	bCPorts     = []byte("cports")
	bIntents    = []byte("intents")
	// Indexes of the networks bucket, so that planning a network reads
	// what it must check, not every network: subnets (family length,
	// address, bits, name: empty) and bridges (bridge: network name).
	bSubnets = []byte("subnets")
	bBridges = []byte("bridges")

	kSchema      = []byte("schema")
	kBootID      = []byte("boot_id")
	kEndpointGen = []byte("endpoint_gen")
)

// File is the database file name inside the state directory.
const File = "state.db"

// Store is an open state database plus the host-wide lock that guards it.
type Store struct {
	db   *bolt.DB
	lock *os.File
}

// ErrNoState is returned by OpenShared when no database exists yet.
var ErrNoState = errors.New("no state yet")

// ErrLocked is returned when the lock is not granted within the timeout.
var ErrLocked = errors.New("another cnet command holds the state lock")

// Lock takes the host-wide lock in runDir: exclusive for commands that
// change anything, shared for readers. It blocks until granted; the kernel
// queues waiters, so there is no polling. Equivalent to `flock RUNDIR/lock`.
func Lock(runDir string, exclusive bool) (*os.File, error) { return LockWithin(runDir, exclusive, 0) }

// LockWithin is Lock giving up after timeout (0: never), for callers that
// must answer rather than wait, such as a CNI plugin.
func LockWithin(runDir string, exclusive bool, timeout time.Duration) (*os.File, error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(runDir, "lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	return flock(f, exclusive, timeout)
}

func flock(f *os.File, exclusive bool, timeout time.Duration) (*os.File, error) {
	var err error
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		if timeout > 0 {
			err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
			if errors.Is(err, unix.EWOULDBLOCK) {
				if time.Now().After(deadline) {
					unlock(f)
					return nil, ErrLocked
				}
				time.Sleep(time.Millisecond) // no way to wait on flock with a deadline
				continue
			}
		} else {
			err = unix.Flock(int(f.Fd()), how)
		}
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unlock(f)
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// Open takes the exclusive lock and opens the database in stateDir,
// creating it only when there is no file at all. An existing file that is
// empty, truncated or damaged is refused with a *CorruptError and left
// exactly as it is.
func Open(stateDir, runDir string) (*Store, error) { return OpenWithin(stateDir, runDir, 0) }

// boltOptions are the options of a writer. The freelist is persisted:
// without it, every open walks every page of the database to rebuild it,
// and each command would slow down as state grows.
var boltOptions = bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType}

// OpenWithin is Open giving up on the lock after timeout (0: never).
func OpenWithin(stateDir, runDir string, timeout time.Duration) (*Store, error) {
	lock, err := LockWithin(runDir, true, timeout)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		unlock(lock)
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(stateDir, File)
	fresh, err := missing(path)
	if err == nil && fresh {
		err = create(path)
	}
	if err != nil {
		unlock(lock)
		return nil, err
	}
	opts := boltOptions
	s, err := openChecked(path, lock, &opts)
	if err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		return nil, s.closeAfter(err)
	}
	return s, nil
}

// openChecked checks the file at path (checkFile), opens it with opts
// and verifies cnet's layout in it; lock (nil: none) goes with the store,
// or is released when it cannot be opened.
func openChecked(path string, lock *os.File, opts *bolt.Options) (*Store, error) {
	release := func() {
		if lock != nil {
			unlock(lock)
		}
	}
	if err := checkFile(path); err != nil {
		release()
		return nil, err
	}
	db, err := openBolt(path, opts)
	if err != nil {
		release()
		return nil, err
	}
	s := &Store{db: db, lock: lock}
	if err := s.verify(); err != nil {
		return nil, s.closeAfter(err)
	}
	return s, nil
}

// closeAfter closes a store that failed err, reporting both.
func (s *Store) closeAfter(err error) error {
	if cerr := s.Close(); cerr != nil {
		return errors.Join(err, fmt.Errorf("close state: %w", cerr))
	}
	return err
}

// coreBuckets are in every database cnet has initialized, whatever its
// version.
var coreBuckets = [][]byte{bMeta, bNetworks, bContainers, bAddrs, bHostIfs, bIntents}

// verify checks what checkFile cannot, since it knows bbolt and not cnet:
// that the top level holds only buckets, and either all the core buckets
// or none (a database whose creation stopped before cnet's first
// transaction). A bucket whose name or flag was damaged would otherwise
// read as empty, and gc would remove everything it held.
func (s *Store) verify() error {
	return s.db.View(func(btx *bolt.Tx) error {
		c := btx.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				return corrupt(s.db.Path(), "its top level holds %q, which is not a bucket", k)
			}
		}
		var have, lack []string
		for _, name := range coreBuckets {
			if btx.Bucket(name) != nil {
				have = append(have, string(name))
			} else {
				lack = append(lack, string(name))
			}
		}
		if len(have) > 0 && len(lack) > 0 {
			return corrupt(s.db.Path(), "it lacks the bucket %s that every cnet database holds (it has %s)",
				strings.Join(lack, ", "), strings.Join(have, ", "))
		}
		return nil
	})
}

// create makes a new, initialized database at path, which must not exist.
// It is built under a temporary name and renamed into place only once
// complete, so a process killed while creating it leaves no database, and
// never an empty or partial one that the next command would refuse.
func create(path string) error {
	tmp := path + ".new"
	// A leftover of a create that was killed: the lock is held, so no
	// other cnet is writing it.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create state %s: %w", path, err)
	}
	opts := boltOptions
	db, err := bolt.Open(tmp, 0o600, &opts)
	if err != nil {
		return fmt.Errorf("create state %s: %w", tmp, err)
	}
	err = (&Store{db: db}).init()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// RENAME_NOREPLACE: never over a file that appeared meanwhile.
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) { // a file system without it: link(2) never replaces either
			if err = os.Link(tmp, path); err == nil {
				err = os.Remove(tmp)
			}
		}
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort: the next create removes it too
		return fmt.Errorf("create state %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync() // the rename survives a power cut
		_ = d.Close()  // a directory opened read-only: Sync above reported what matters
		if err != nil {
			return fmt.Errorf("create state %s: sync %s: %w", path, filepath.Dir(path), err)
		}
	}
	return nil
}

// openBolt opens a database checkFile accepted. bbolt maps the file and
// trusts its pages; should one still be bad (the file changed behind
// cnet's lock), the fault or panic becomes a *CorruptError here instead of
// a crash.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, corrupt(path, "bbolt could not read it (%v)", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
		return nil, &CorruptError{Path: path, Reason: "bbolt refuses it: " + err.Error(), Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return db, nil
}

// OpenShared takes the shared lock and opens the database read-only. It
// returns ErrNoState when there is no database yet, and a *CorruptError
// when the file is there but unusable.
func OpenShared(stateDir, runDir string) (*Store, error) {
	path := filepath.Join(stateDir, File)
	if fresh, err := missing(path); err != nil {
		return nil, err
	} else if fresh {
		return nil, ErrNoState
	}
	lock, err := Lock(runDir, false)
	if err != nil {
		return nil, err
	}
	return openChecked(path, lock, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
}

// OpenReadOnly opens the database read-only for a caller that must change
// nothing, not even create the run directory or the lock file: it takes
// the shared lock only if the lock file exists (every writer creates it
// before opening the database), and waits at most timeout (0: as long as
// it takes). It returns ErrNoState when there is no database, and a
// *CorruptError when the file is there but unusable.
func OpenReadOnly(stateDir, runDir string, timeout time.Duration) (*Store, error) {
	path := filepath.Join(stateDir, File)
	if fresh, err := missing(path); err != nil {
		return nil, err
	} else if fresh {
		return nil, ErrNoState
	}
	var lock *os.File
	f, err := os.OpenFile(filepath.Join(runDir, "lock"), os.O_RDONLY|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		if lock, err = flock(f, false, timeout); err != nil {
			return nil, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open lock: %w", err)
	}
	return openChecked(path, lock, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
}

func (s *Store) init() error {
	ready := false
	if err := s.db.View(func(btx *bolt.Tx) error {
		ready = btx.Bucket(bIntents) != nil && btx.Bucket(bPorts) != nil && btx.Bucket(bSubnets) != nil && btx.Bucket(bBridges) != nil && btx.Bucket(bCPorts) != nil && btx.Bucket(bMeta) != nil && btx.Bucket(bMeta).Get(kSchema) != nil
		if ready {
			n, _ := strconv.Atoi(string(btx.Bucket(bMeta).Get(kSchema)))
			ready = n <= model.SchemaVersion
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read state %s: %w", s.db.Path(), err)
	}
	if ready { // the common case: no write transaction, no fsync
		return nil
	}
	return s.db.Update(func(btx *bolt.Tx) error {
		indexed := btx.Bucket(bSubnets) != nil && btx.Bucket(bBridges) != nil
		for _, b := range [][]byte{bMeta, bNetworks, bContainers, bAddrs, bHostIfs, bPorts, bCPorts, bIntents, bSubnets, bBridges} {
			if _, err := btx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if !indexed { // state from before the network indexes: build them
			t := &Tx{btx: btx}
			nets, err := t.Networks()
			if err != nil {
				return err
			}
			for _, n := range nets {
				if err := t.indexNetwork(n); err != nil {
					return fmt.Errorf("index network %s: %w", n.Name, err)
				}
			}
		}
		meta := btx.Bucket(bMeta)
		if v := meta.Get(kSchema); v != nil {
			n, _ := strconv.Atoi(string(v))
			if n > model.SchemaVersion {
				return fmt.Errorf("state schema %d is newer than this cnet understands (%d): upgrade cnet", n, model.SchemaVersion)
			}
			return nil
		}
		return meta.Put(kSchema, []byte(strconv.Itoa(model.SchemaVersion)))
	})
}

// Close closes the database and releases the lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.lock != nil {
		unlock(s.lock)
	}
	return err
}

// unlock closes a lock file, which releases its flock. The file is empty
// and was never written, so a failed close loses nothing, and the kernel
// drops the lock with the descriptor whatever close reports.
func unlock(f *os.File) { _ = f.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// Size is the database file size in bytes.
func (s *Store) Size() (int64, error) {
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// View runs fn in a read transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.damaged(s.db.View(func(btx *bolt.Tx) error { return fn(&Tx{btx: btx}) }))
}

// RecordError is a record in the database that does not decode.
type RecordError struct {
	What, Key string
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("its %s record %q does not decode (%s)", e.What, e.Key, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

func undecodable(what, key string, err error) error {
	return &RecordError{What: what, Key: key, Err: err}
}

// damaged turns a record that does not decode into a *CorruptError
// naming the file: what cnet read cannot be trusted, so neither can a
// decision made from it.
func (s *Store) damaged(err error) error {
	var re *RecordError
	if errors.As(err, &re) {
		return &CorruptError{Path: s.db.Path(), Reason: re.Error(), Err: err}
	}
	return err
}

// Update runs fn in a write transaction. With durable false the commit is
// not fsynced: used for intent records, which only need to survive the
// process (the page cache outlives a SIGKILL), since the kernel objects
// they describe do not survive a reboot either.
func (s *Store) Update(durable bool, fn func(*Tx) error) error {
	s.db.NoSync = !durable
	defer func() { s.db.NoSync = false }()
	return s.damaged(s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{btx: btx}) }))
}

// Tx is a transaction over the state. A nil *Tx reads as empty state, for
// readers on a machine where cnet has never run.
type Tx struct{ btx *bolt.Tx }

func (t *Tx) bucket(name []byte) *bolt.Bucket {
	if t == nil || t.btx == nil {
		return nil
	}
	return t.btx.Bucket(name)
}

func (t *Tx) meta() *bolt.Bucket { return t.bucket(bMeta) }

// BootID returns the boot ID recorded by the last mutating command.
func (t *Tx) BootID() string {
	if b := t.meta(); b != nil {
		return string(b.Get(kBootID))
	}
	return ""
}

// SetBootID records the current boot ID.
func (t *Tx) SetBootID(id string) error { return t.meta().Put(kBootID, []byte(id)) }

// EndpointGen returns the endpoint generation counter.
func (t *Tx) EndpointGen() uint64 {
	if b := t.meta(); b != nil {
		if v := b.Get(kEndpointGen); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

func (t *Tx) setEndpointGen(n uint64) error {
	return t.meta().Put(kEndpointGen, binary.BigEndian.AppendUint64(nil, n))
}

// Network returns the named network, or nil.
func (t *Tx) Network(name string) (*model.Network, error) {
	b := t.bucket(bNetworks)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return nil, nil
	}
	var n model.Network
	if err := json.Unmarshal(v, &n); err != nil {
		return nil, undecodable("network", name, err)
	}
	return &n, nil
}

// Networks returns every network, by name.
func (t *Tx) Networks() ([]*model.Network, error) {
	var out []*model.Network
	b := t.bucket(bNetworks)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var n model.Network
		if err := json.Unmarshal(v, &n); err != nil {
			return undecodable("network", string(k), err)
		}
		out = append(out, &n)
		return nil
	})
	return out, err
}

// Container returns the named container, or nil.
func (t *Tx) Container(name string) (*model.Container, error) {
	b := t.bucket(bContainers)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return nil, nil
	}
	var c model.Container
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, undecodable("container", name, err)
	}
	return &c, nil
}

// Containers returns every container, by name.
func (t *Tx) Containers() ([]*model.Container, error) {
	var out []*model.Container
	b := t.bucket(bContainers)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var c model.Container
		if err := json.Unmarshal(v, &c); err != nil {
			return undecodable("container", string(k), err)
		}
		out = append(out, &c)
		return nil
	})
	return out, err
}

// AttachedCount returns the number of endpoints on a network without
// decoding anything.
func (t *Tx) AttachedCount(network string) int {
	root := t.bucket(bAddrs)
	if root == nil {
		return 0
	}
	if b := root.Bucket([]byte(network)); b != nil {
		return b.Stats().KeyN
	}
	return 0
}

// ContainerCount returns the number of containers without decoding them.
func (t *Tx) ContainerCount() int {
	if b := t.bucket(bContainers); b != nil {
		return b.Stats().KeyN
	}
	return 0
}

// UsedAddrs yields the addresses taken on a network, ascending.
func (t *Tx) UsedAddrs(network string) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		root := t.bucket(bAddrs)
		if root == nil {
			return
		}
		b := root.Bucket([]byte(network))
		if b == nil {
			return
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 4 || !yield(netip.AddrFrom4([4]byte(k))) {
				return
			}
		}
	}
}

// AddrOwner returns the container holding addr on network.
func (t *Tx) AddrOwner(network string, addr netip.Addr) (string, bool) {
	root := t.bucket(bAddrs)
	if root == nil {
		return "", false
	}
	b := root.Bucket([]byte(network))
	if b == nil {
		return "", false
	}
	k := addr.As4()
	v := b.Get(k[:])
	return string(v), v != nil
}

// HostIfOwner returns the container whose endpoint uses the host interface.
func (t *Tx) HostIfOwner(name string) (string, bool) {
	b := t.bucket(bHostIfs)
	if b == nil {
		return "", false
	}
	v := b.Get([]byte(name))
	return string(v), v != nil
}

// NetworkOfBridge returns the network whose bridge is named bridge.
func (t *Tx) NetworkOfBridge(bridge string) (string, bool, error) {
	if b := t.bucket(bBridges); b != nil {
		v := b.Get([]byte(bridge))
		return string(v), v != nil, nil
	}
	nets, err := t.Networks() // read-only state from before the index
	for _, n := range nets {
		if n.Bridge == bridge {
			return n.Name, true, nil
		}
	}
	return "", false, err
}

// subnetKey is p's key in the subnets index, without the name: the
// address length, the address, the prefix length. Keys of one family sort
// by address, then length.
func subnetKey(p netip.Prefix) []byte {
	a := p.Masked().Addr().AsSlice()
	return append(append([]byte{byte(len(a))}, a...), byte(p.Bits()))
}

// SubnetOverlap returns a network whose subnet overlaps p, and that
// subnet. Two prefixes overlap when one contains the other: those that
// contain p start at p's address masked to each length up to p's, and
// those p contains start inside p. That is at most 33 lookups and a seek
// for IPv4, whatever the number of networks.
func (t *Tx) SubnetOverlap(p netip.Prefix) (name string, subnet netip.Prefix, ok bool, err error) {
	b := t.bucket(bSubnets)
	if b == nil { // read-only state from before the index
		nets, err := t.Networks()
		for _, n := range nets {
			if n.Subnet.Overlaps(p) {
				return n.Name, n.Subnet, true, nil
			}
		}
		return "", netip.Prefix{}, false, err
	}
	p = p.Masked()
	found := func(k []byte, bits int) (string, netip.Prefix, bool, error) {
		n := 1 + int(k[0])
		a, _ := netip.AddrFromSlice(k[1:n])
		return string(k[n+1:]), netip.PrefixFrom(a, bits), true, nil
	}
	c := b.Cursor()
	for bits := 0; bits <= p.Bits(); bits++ {
		q, err := p.Addr().Prefix(bits)
		if err != nil {
			return "", netip.Prefix{}, false, err
		}
		key := subnetKey(q)
		if k, _ := c.Seek(key); k != nil && bytes.HasPrefix(k, key) {
			return found(k, bits)
		}
	}
	lo, hi := p.Addr().AsSlice(), lastAddr(p).AsSlice()
	fam := len(lo)
	if k, _ := c.Seek(append([]byte{byte(fam)}, lo...)); len(k) > fam+1 && int(k[0]) == fam && bytes.Compare(k[1:1+fam], hi) <= 0 {
		return found(k, int(k[1+fam]))
	}
	return "", netip.Prefix{}, false, nil
}

// lastAddr is the last address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(a)
	return last
}

// Subnets returns every network's subnet, read from the index.
func (t *Tx) Subnets() ([]netip.Prefix, error) {
	b := t.bucket(bSubnets)
	if b == nil { // read-only state from before the index
		nets, err := t.Networks()
		var out []netip.Prefix
		for _, n := range nets {
			out = append(out, n.Subnet)
		}
		return out, err
	}
	var out []netip.Prefix
	err := b.ForEach(func(k, _ []byte) error {
		n := 1 + int(k[0])
		a, _ := netip.AddrFromSlice(k[1:n])
		out = append(out, netip.PrefixFrom(a, int(k[n])))
		return nil
	})
	return out, err
}

func (t *Tx) indexNetwork(n *model.Network) error {
	if n.Subnet.IsValid() {
		if err := t.bucket(bSubnets).Put(append(subnetKey(n.Subnet), n.Name...), nil); err != nil {
			return err
		}
	}
	return t.bucket(bBridges).Put([]byte(n.Bridge), []byte(n.Name))
}

func (t *Tx) unindexNetwork(name string) error {
	old, err := t.Network(name)
	if err != nil || old == nil {
		return err
	}
	if old.Subnet.IsValid() {
		if err := t.bucket(bSubnets).Delete(append(subnetKey(old.Subnet), old.Name...)); err != nil {
			return err
		}
	}
	if v := t.bucket(bBridges).Get([]byte(old.Bridge)); string(v) == name {
		return t.bucket(bBridges).Delete([]byte(old.Bridge))
	}
	return nil
}

func (t *Tx) putNetwork(n *model.Network) error {
	if err := t.unindexNetwork(n.Name); err != nil {
		return err
	}
	v, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := t.bucket(bNetworks).Put([]byte(n.Name), v); err != nil {
		return err
	}
	return t.indexNetwork(n)
}

func (t *Tx) delNetwork(name string) error {
	if err := t.unindexNetwork(name); err != nil {
		return err
	}
	if err := t.bucket(bNetworks).Delete([]byte(name)); err != nil {
		return err
	}
	if err := t.bucket(bAddrs).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

func (t *Tx) putContainer(c *model.Container) error {
	if err := t.unindexContainer(c.Name); err != nil {
		return err
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := t.bucket(bContainers).Put([]byte(c.Name), v); err != nil {
		return err
	}
	for _, ep := range c.Endpoints {
		b, err := t.bucket(bAddrs).CreateBucketIfNotExists([]byte(ep.Network))
		if err != nil {
			return err
		}
		k := ep.Addr.As4()
		if err := b.Put(k[:], []byte(c.Name)); err != nil {
			return err
		}
		if err := t.bucket(bHostIfs).Put([]byte(ep.HostIf), []byte(c.Name)); err != nil {
			return err
		}
	}
	return nil
}

// delContainer removes a container, its published ports and its indexes.
func (t *Tx) delContainer(name string) error {
	if b := t.bucket(bCPorts).Bucket([]byte(name)); b != nil {
		if err := b.ForEach(func(k, _ []byte) error { return t.bucket(bPorts).Delete(k) }); err != nil {
			return err
		}
		if err := t.bucket(bCPorts).DeleteBucket([]byte(name)); err != nil {
			return err
		}
	}
	return t.unindexContainer(name)
}

// unindexContainer removes a container record and its address and
// interface indexes, keeping its published ports.
func (t *Tx) unindexContainer(name string) error {
	old, err := t.Container(name)
	if err != nil || old == nil {
		return err
	}
	for _, ep := range old.Endpoints {
		if b := t.bucket(bAddrs).Bucket([]byte(ep.Network)); b != nil {
			k := ep.Addr.As4()
			if err := b.Delete(k[:]); err != nil {
				return err
			}
		}
		if err := t.bucket(bHostIfs).Delete([]byte(ep.HostIf)); err != nil {
			return err
		}
	}
	return t.bucket(bContainers).Delete([]byte(name))
}

func portKey(proto string, port uint16, hostIP netip.Addr) []byte {
	k := []byte{proto[0]}
	k = binary.BigEndian.AppendUint16(k, port)
	a := hostIP.As4()
	return append(k, a[:]...)
}

// PortHolder is who holds a published host socket.
type PortHolder struct {
	HostIP    netip.Addr
	Container string
}

// PortHolders returns the mappings of proto and host port, on any host
// address: one prefix scan.
func (t *Tx) PortHolders(proto string, port uint16) []PortHolder {
	b := t.bucket(bPorts)
	if b == nil {
		return nil
	}
	prefix := binary.BigEndian.AppendUint16([]byte{proto[0]}, port)
	var out []PortHolder
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		name, _, _ := bytes.Cut(v, []byte{0})
		out = append(out, PortHolder{HostIP: netip.AddrFrom4([4]byte(k[3:7])), Container: string(name)})
	}
	return out
}

// PortOwner returns the container holding exactly this host socket and
// the container port it leads to.
func (t *Tx) PortOwner(proto string, port uint16, hostIP netip.Addr) (name string, cport uint16, ok bool) {
	b := t.bucket(bPorts)
	if b == nil {
		return "", 0, false
	}
	v := b.Get(portKey(proto, port, hostIP))
	n, rest, found := bytes.Cut(v, []byte{0})
	if v == nil || !found || len(rest) != 2 {
		return "", 0, false
	}
	return string(n), binary.BigEndian.Uint16(rest), true
}

// ContainerPorts returns a container's published ports.
func (t *Tx) ContainerPorts(name string) []model.PortMapping {
	var out []model.PortMapping
	root := t.bucket(bCPorts)
	if root == nil {
		return nil
	}
	if b := root.Bucket([]byte(name)); b != nil {
		_ = b.ForEach(func(k, v []byte) error { // fails only when the callback does, and it never does
			if m, ok := decodePort(k, v); ok {
				out = append(out, m)
			}
			return nil
		})
	}
	return out
}

// PortsAtLeast reports whether a container publishes at least n ports.
// It reads at most n keys: bolt keeps no key count, and counting (bucket
// Stats) would walk every page of the container's ports.
func (t *Tx) PortsAtLeast(name string, n int) bool {
	if n <= 0 {
		return true
	}
	root := t.bucket(bCPorts)
	if root == nil {
		return false
	}
	b := root.Bucket([]byte(name))
	if b == nil {
		return false
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if n--; n == 0 {
			return true
		}
	}
	return false
}

func decodePort(k, cport []byte) (model.PortMapping, bool) {
	if len(k) != 7 || len(cport) != 2 {
		return model.PortMapping{}, false
	}
	proto := "tcp"
	if k[0] == 'u' {
		proto = "udp"
	}
	return model.PortMapping{Proto: proto, HostPort: binary.BigEndian.Uint16(k[1:3]),
		HostIP: netip.AddrFrom4([4]byte(k[3:7])), Port: binary.BigEndian.Uint16(cport)}, true
}

// PortElems returns every published port as a DNAT map element, to its
// container's default-route address. A port record that does not decode,
// or whose container does not, is an error: a table built without it
// would drop the mapping.
func (t *Tx) PortElems() ([]model.PortElem, error) {
	b := t.bucket(bPorts)
	if b == nil {
		return nil, nil
	}
	targets := map[string]netip.Addr{}
	var out []model.PortElem
	err := b.ForEach(func(k, v []byte) error {
		name, cport, ok := bytes.Cut(v, []byte{0})
		m, okp := decodePort(k, cport)
		if !ok || !okp {
			return undecodable("port", fmt.Sprintf("%x", k), errors.New("malformed key or value"))
		}
		addr, seen := targets[string(name)]
		if !seen {
			c, err := t.Container(string(name))
			if err != nil {
				return err
			}
			if c != nil && c.Target() != nil {
				addr = c.Target().Addr
			}
			targets[string(name)] = addr
		}
		if addr.IsValid() { // a container without a default route has no DNAT target
			out = append(out, model.PortElem{Proto: m.Proto, HostIP: m.HostIP, HostPort: m.HostPort, Addr: addr, Port: m.Port})
		}
		return nil
	})
	return out, err
}

func (t *Tx) putPort(name string, m model.PortMapping) error {
	k := portKey(m.Proto, m.HostPort, m.HostIP)
	cport := binary.BigEndian.AppendUint16(nil, m.Port)
	if err := t.bucket(bPorts).Put(k, append(append([]byte(name), 0), cport...)); err != nil {
		return err
	}
	b, err := t.bucket(bCPorts).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return err
	}
	return b.Put(k, cport)
}

func (t *Tx) delPort(name string, m model.PortMapping) error {
	k := portKey(m.Proto, m.HostPort, m.HostIP)
	if owner, _, ok := t.PortOwner(m.Proto, m.HostPort, m.HostIP); ok && owner == name {
		if err := t.bucket(bPorts).Delete(k); err != nil {
			return err
		}
	}
	if b := t.bucket(bCPorts).Bucket([]byte(name)); b != nil {
		return b.Delete(k)
	}
	return nil
}

// Apply commits a change set: networks first, then containers.
func (t *Tx) Apply(ch model.Changes) error {
	for name, n := range ch.Networks {
		var err error
		if n == nil {
			err = t.delNetwork(name)
		} else {
			err = t.putNetwork(n)
		}
		if err != nil {
			return fmt.Errorf("commit network %s: %w", name, err)
		}
	}
	for name, c := range ch.Containers {
		var err error
		if c == nil {
			err = t.delContainer(name)
		} else {
			err = t.putContainer(c)
		}
		if err != nil {
			return fmt.Errorf("commit container %s: %w", name, err)
		}
	}
	for _, pc := range ch.Ports {
		var err error
		if pc.Del {
			err = t.delPort(pc.Container, pc.Mapping)
		} else {
			err = t.putPort(pc.Container, pc.Mapping)
		}
		if err != nil {
			return fmt.Errorf("commit port of %s: %w", pc.Container, err)
		}
	}
	if ch.EndpointGen > t.EndpointGen() {
		return t.setEndpointGen(ch.EndpointGen)
	}
	return nil
}

// PutIntent stores an intent and assigns its ID.
func (t *Tx) PutIntent(in *model.Intent) error {
	b := t.bucket(bIntents)
	id, err := b.NextSequence()
	if err != nil {
		return err
	}
	in.ID = id
	v, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return b.Put(binary.BigEndian.AppendUint64(nil, id), v)
}

// DelIntent removes an intent.
func (t *Tx) DelIntent(id uint64) error {
	return t.bucket(bIntents).Delete(binary.BigEndian.AppendUint64(nil, id))
}

// HasIntents reports whether any intent is recorded, without decoding.
func (t *Tx) HasIntents() bool {
	b := t.bucket(bIntents)
	if b == nil {
		return false
	}
	k, _ := b.Cursor().First()
	return k != nil
}

// Intents returns every recorded intent, oldest first.
func (t *Tx) Intents() ([]*model.Intent, error) {
	var out []*model.Intent
	b := t.bucket(bIntents)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var in model.Intent
		if err := json.Unmarshal(v, &in); err != nil {
			return undecodable("intent", fmt.Sprintf("%x", k), err)
		}
		out = append(out, &in)
		return nil
	})
	return out, err
}

// Attached returns the names of containers with an endpoint on network,
// sorted and without duplicates.
func (t *Tx) Attached(network string) []string {
	root := t.bucket(bAddrs)
	if root == nil {
		return nil
	}
	b := root.Bucket([]byte(network))
	if b == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	_ = b.ForEach(func(_, v []byte) error { // fails only when the callback does, and it never does
		if !seen[string(v)] {
			seen[string(v)] = true
			out = append(out, string(v))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// CopyTo writes a consistent copy of the database to path, as of one read
// transaction.
func (s *Store) CopyTo(path string) error {
	return s.db.View(func(btx *bolt.Tx) error { return btx.CopyFile(path, 0o600) })
}
