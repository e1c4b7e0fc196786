package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// CorruptError says the database file exists but cannot be trusted: it is
// empty, truncated, not a bbolt file, or its pages do not hold together.
// cnet then changes nothing, not even the file: starting an empty database
// over it would make `cnet gc` see every object cnet made as an orphan.
type CorruptError struct {
	Path   string
	Reason string
	Err    error // the underlying error, if any
}

func (e *CorruptError) Unwrap() error { return e.Err }

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state database %s is unusable: %s. cnet changed nothing and will not use it or start a new one over it. "+
		"Restore it from a backup, or move it aside (mv %s %s.broken) to start with no state; "+
		"with no state, cnet knows no networks or containers, and `cnet gc` removes every bridge, veth, namespace and file carrying its mark",
		e.Path, e.Reason, e.Path, e.Path)
}

func corrupt(path, format string, args ...any) error {
	return &CorruptError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// bbolt's file format (version 2): every page starts with a 16-byte
// header (id uint64, flags uint16, count uint16, overflow uint32); page 0
// and page 1 are meta pages.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeader      = 16
	elemSize        = 16 // branch and leaf elements are both 16 bytes
	metaSize        = 64
	metaSumLen      = 56 // the meta bytes the checksum covers
	flagBranch      = 0x01
	flagLeaf        = 0x02
	flagMeta        = 0x04
	flagFreelist    = 0x10
	bucketLeafFlag  = 0x01
	noFreelist      = ^uint64(0)
	maxTreeDepth    = 64
	minPageSize     = 512
	maxPageSize     = 1 << 24
	inBucketSize    = 16
	freelistOverCnt = 0xFFFF
)

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// checkFile validates the bbolt database at path before bbolt maps it:
// bbolt trusts its pages and faults or panics on a damaged one. It reads
// the file (never writing it) and checks both meta pages (magic, version,
// checksum), that every page the newest one counts lies inside the file,
// and that the freelist and every bucket's pages, down to each element,
// lie in bounds, have the right type, are referenced once, and hold their
// keys in order. The walk never dereferences memory outside the bytes it
// read, so a damaged file yields an error, never a crash.
func checkFile(path string) (err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("open state %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if fi, err = os.Stat(path); err != nil {
			return corrupt(path, "it is a symbolic link to a file that cannot be read (%s)", err)
		}
	}
	if !fi.Mode().IsRegular() {
		return corrupt(path, "it is not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() == 0 {
		return corrupt(path, "it is empty (0 bytes); a database cnet writes always holds at least its meta pages")
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read state %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // opened read-only: its close has nothing to report that matters
	// Mapped read-only and shared, as bbolt maps it: only the pages the
	// walk reads are brought in, and nothing can be written through it.
	data, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map state %s: %w", path, err)
	}
	defer func() {
		if merr := unix.Munmap(data); merr != nil {
			err = errors.Join(err, fmt.Errorf("unmap state %s: %w", path, merr))
		}
	}()
	// A file cut short while being read faults instead of reading short.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil { // a fault, or a bounds check missed: still a damaged file, not a crash
			err = corrupt(path, "its pages do not hold together (%v)", r)
		}
	}()
	if reason := checkPages(data); reason != "" {
		return corrupt(path, "%s", reason)
	}
	return nil
}

func readMeta(data []byte, off int) (meta, string) {
	if len(data) < off+pageHeader+metaSize {
		return meta{}, fmt.Sprintf("it is %d bytes long, too short for a meta page at byte %d: it was truncated or is not a cnet database", len(data), off)
	}
	p := data[off:]
	if fl := binary.LittleEndian.Uint16(p[8:]); fl != flagMeta {
		return meta{}, fmt.Sprintf("the page at byte %d is not a bbolt meta page (flags %#x): the file is not a bbolt database, or is damaged", off, fl)
	}
	m := p[pageHeader : pageHeader+metaSize]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
		return meta{}, fmt.Sprintf("the meta page at byte %d lacks the bbolt magic number: it is not a bbolt database", off)
	}
	if v := binary.LittleEndian.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Sprintf("the meta page at byte %d has format version %d, not %d", off, v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if h.Sum64() != binary.LittleEndian.Uint64(m[metaSumLen:]) {
		return meta{}, fmt.Sprintf("the meta page at byte %d fails its checksum", off)
	}
	return meta{
		pageSize: binary.LittleEndian.Uint32(m[8:]),
		root:     binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}, ""
}

// checkPages returns what is wrong with data as a bbolt file, or "".
func checkPages(data []byte) string {
	m0, bad := readMeta(data, 0)
	if bad != "" {
		return bad
	}
	ps := int(m0.pageSize)
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return fmt.Sprintf("its meta page gives a page size of %d bytes", ps)
	}
	m1, bad := readMeta(data, ps)
	if bad != "" {
		return bad
	}
	if m1.pageSize != m0.pageSize {
		return fmt.Sprintf("its two meta pages disagree on the page size (%d and %d)", m0.pageSize, m1.pageSize)
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	npages := uint64(len(data) / ps)
	if m.pgid < 2 || m.pgid > npages {
		return fmt.Sprintf("it is %d bytes long (%d pages of %d), but its meta page counts %d pages: it was truncated", len(data), npages, ps, m.pgid)
	}
	c := &pageCheck{data: data, ps: ps, hwm: m.pgid, seen: newBits(m.pgid), free: newBits(m.pgid)}
	c.seen.set(0)
	c.seen.set(1)
	if m.freelist != noFreelist {
		if bad := c.freelist(m.freelist); bad != "" {
			return bad
		}
	}
	return c.tree(m.root, 0)
}

type pageCheck struct {
	data       []byte
	ps         int
	hwm        uint64
	seen, free bits // by page id, below hwm
}

type bits []uint64

func newBits(n uint64) bits      { return make(bits, (n+63)/64) }
func (b bits) has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bits) set(i uint64)      { b[i/64] |= 1 << (i % 64) }

// page returns the bytes of page id and its overflow pages, after checking
// that they lie below the high water mark and are referenced only once.
func (c *pageCheck) page(id uint64, want uint16) ([]byte, string) {
	if id < 2 || id >= c.hwm {
		return nil, fmt.Sprintf("a reference to page %d, outside pages 2 to %d", id, c.hwm-1)
	}
	p := c.data[int(id)*c.ps:]
	if got := binary.LittleEndian.Uint64(p[0:]); got != id {
		return nil, fmt.Sprintf("page %d calls itself page %d", id, got)
	}
	fl := binary.LittleEndian.Uint16(p[8:])
	if want == flagFreelist && fl != flagFreelist || want != flagFreelist && fl != flagBranch && fl != flagLeaf {
		return nil, fmt.Sprintf("page %d has unexpected type (flags %#x)", id, fl)
	}
	overflow := uint64(binary.LittleEndian.Uint32(p[12:]))
	if id+overflow >= c.hwm {
		return nil, fmt.Sprintf("page %d runs %d pages past the last page %d", id, overflow, c.hwm-1)
	}
	for i := id; i <= id+overflow; i++ {
		if c.seen.has(i) {
			return nil, fmt.Sprintf("page %d is referenced twice", i)
		}
		if c.free.has(i) {
			return nil, fmt.Sprintf("page %d is in use and free at once", i)
		}
		c.seen.set(i)
	}
	return p[:int(overflow+1)*c.ps], ""
}

func (c *pageCheck) freelist(id uint64) string {
	p, bad := c.page(id, flagFreelist)
	if bad != "" {
		return "its freelist: " + bad
	}
	start, count := pageHeader, uint64(binary.LittleEndian.Uint16(p[10:]))
	if count == freelistOverCnt {
		if len(p) < pageHeader+8 {
			return fmt.Sprintf("its freelist page %d is cut short", id)
		}
		count = binary.LittleEndian.Uint64(p[pageHeader:])
		start += 8
	}
	if count > uint64(len(p)-start)/8 {
		return fmt.Sprintf("its freelist page %d lists %d pages, more than it holds", id, count)
	}
	for i := range count {
		f := binary.LittleEndian.Uint64(p[start+int(i)*8:])
		if f < 2 || f >= c.hwm {
			return fmt.Sprintf("its freelist lists page %d, outside pages 2 to %d", f, c.hwm-1)
		}
		if c.seen.has(f) {
			return fmt.Sprintf("page %d is in use and free at once", f)
		}
		c.free.set(f)
	}
	return ""
}

// tree checks the bucket whose root is page id.
func (c *pageCheck) tree(id uint64, depth int) string {
	if depth > maxTreeDepth {
		return fmt.Sprintf("its buckets nest deeper than %d levels at page %d", maxTreeDepth, id)
	}
	p, bad := c.page(id, 0)
	if bad != "" {
		return bad
	}
	return c.node(p, place{page: id}, depth)
}

// node checks one branch or leaf page (or inline bucket) p.
// place says where a node is, for a message: a page, or an inline bucket
// (the innermost key) in one.
type place struct {
	page   uint64
	inline []byte
}

func (w place) String() string {
	if w.inline != nil {
		return fmt.Sprintf("inline bucket %q in page %d", w.inline, w.page)
	}
	return fmt.Sprintf("page %d", w.page)
}

func (c *pageCheck) node(p []byte, at place, depth int) string {
	fl := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeader+count*elemSize > len(p) {
		return fmt.Sprintf("%s claims %d elements, more than fit in it", at, count)
	}
	var prev []byte
	for i := range count {
		e := p[pageHeader+i*elemSize:]
		var pos, ksize, vsize int
		var flags uint32
		if fl == flagBranch {
			pos, ksize = int(binary.LittleEndian.Uint32(e[0:])), int(binary.LittleEndian.Uint32(e[4:]))
		} else {
			flags = binary.LittleEndian.Uint32(e[0:])
			pos, ksize, vsize = int(binary.LittleEndian.Uint32(e[4:])), int(binary.LittleEndian.Uint32(e[8:])), int(binary.LittleEndian.Uint32(e[12:]))
		}
		off := pageHeader + i*elemSize + pos
		if pos < 0 || ksize < 0 || vsize < 0 || off < 0 || off+ksize+vsize > len(p) || off+ksize+vsize < off {
			return fmt.Sprintf("%s: element %d points outside the page", at, i)
		}
		key := p[off : off+ksize]
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return fmt.Sprintf("%s: its keys are out of order at element %d", at, i)
		}
		prev = key
		if fl == flagBranch {
			if bad := c.tree(binary.LittleEndian.Uint64(e[8:]), depth+1); bad != "" {
				return bad
			}
			continue
		}
		if flags&bucketLeafFlag == 0 {
			continue
		}
		v := p[off+ksize : off+ksize+vsize]
		if len(v) < inBucketSize {
			return fmt.Sprintf("%s: bucket %q has a header of %d bytes", at, key, len(v))
		}
		if root := binary.LittleEndian.Uint64(v); root != 0 {
			if bad := c.tree(root, depth+1); bad != "" {
				return bad
			}
			continue
		}
		inline := v[inBucketSize:]
		if len(inline) < pageHeader || binary.LittleEndian.Uint16(inline[8:]) != flagLeaf {
			return fmt.Sprintf("%s: inline bucket %q is not a leaf", at, key)
		}
		if depth+1 > maxTreeDepth {
			return fmt.Sprintf("its buckets nest deeper than %d levels", maxTreeDepth)
		}
		if bad := c.node(inline, place{page: at.page, inline: key}, depth+1); bad != "" {
			return bad
		}
	}
	return ""
}

// missing reports whether there is no database file at path: nothing at
// all, not even a dangling symbolic link. Only then may one be created.
func missing(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open state %s: %w", path, err)
	}
	return false, nil
}
