package testenv

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
)

// DamagedDB is a database file broken in one way, made from a good one.
type DamagedDB struct {
	Name  string
	Bytes []byte
	// Want is what the refusal's reason must say.
	Want string
}

// DamagedDBs breaks the bbolt database good in every way cnet must refuse
// without a crash: empty, cut short at several places (inside the meta
// pages, mid-page, the last page missing), random bytes, zeros, and bytes
// flipped in the meta pages and in the root bucket's page header and
// elements.
func DamagedDBs(good []byte) []DamagedDB {
	const hdr = 16 // bbolt page header
	ps := int(binary.LittleEndian.Uint32(good[hdr+8:]))
	m := ps // the newest meta page
	if binary.LittleEndian.Uint64(good[hdr+48:]) > binary.LittleEndian.Uint64(good[ps+hdr+48:]) {
		m = 0
	}
	root := int(binary.LittleEndian.Uint64(good[m+hdr+16:]))
	hwm := int(binary.LittleEndian.Uint64(good[m+hdr+40:])) // the file may run on past it, unused
	flip := func(offs ...int) []byte {
		b := bytes.Clone(good)
		for _, o := range offs {
			b[o] ^= 0xff
		}
		return b
	}
	cut := func(n int) []byte { return bytes.Clone(good[:n]) }
	// The element of the top-level bucket "containers" in the root page
	// (a leaf in a small database): its flags, and its key.
	var bucketFlags, bucketKey int
	if binary.LittleEndian.Uint16(good[root*ps+8:]) == 0x02 {
		for i := range int(binary.LittleEndian.Uint16(good[root*ps+10:])) {
			e := root*ps + hdr + i*16
			k := e + int(binary.LittleEndian.Uint32(good[e+4:]))
			if string(good[k:k+int(binary.LittleEndian.Uint32(good[e+8:]))]) == "containers" {
				bucketFlags, bucketKey = e, k
			}
		}
	}
	garbage := make([]byte, len(good))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	out := []DamagedDB{
		{"empty file", cut(0), "empty"},
		{"header only", cut(hdr), "truncated"},
		{"cut inside the first meta page", cut(40), "truncated"},
		{"cut in the second page", cut(ps + ps/2), "truncated"},
		{"cut mid-page", cut(3*ps + ps/2), "truncated"},
		{"last page missing", cut((hwm - 1) * ps), "truncated"},
		{"random garbage", garbage, "not a bbolt database"},
		{"zeros", make([]byte, len(good)), "not a bbolt meta page"},
		{"first meta page flipped", flip(hdr + 20), "checksum"},
		{"second meta page flipped", flip(ps + hdr + 20), "checksum"},
		{"both meta magic numbers flipped", flip(hdr, ps+hdr), "magic"},
		{"root page type flipped", flip(root*ps + 8), "unexpected type"},
		{"root page id flipped", flip(root*ps + 1), "calls itself"},
		{"root page element count flipped", flip(root*ps + 11), "elements"},
		{"root page element offset flipped", flip(root*ps + hdr + 7), "outside the page"},
	}
	if bucketKey != 0 {
		renamed := bytes.Clone(good)
		renamed[bucketKey+len("containers")-1] = 'r' // "containerr": still in order
		out = append(out,
			DamagedDB{"a top-level bucket's flag cleared", flip(bucketFlags), "not a bucket"},
			DamagedDB{"a top-level bucket's name damaged", renamed, "lacks the bucket containers"})
	}
	return out
}
