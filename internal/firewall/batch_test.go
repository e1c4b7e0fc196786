package firewall

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/model"
)

// manyPorts returns n mappings of one protocol on host address ip,
// host port i to container port i, from port 1 up.
func manyPorts(n int, proto, ip string) []model.PortElem {
	out := make([]model.PortElem, n)
	for i := range out {
		p := uint16(i + 1)
		out[i] = model.PortElem{Proto: proto, HostIP: netip.MustParseAddr(ip), HostPort: p, Addr: netip.MustParseAddr("10.89.0.2"), Port: p}
	}
	return out
}

func manyGuards(n int) []model.GuardSpec {
	out := make([]model.GuardSpec, n)
	for i := range out {
		out[i] = model.GuardSpec{HostIf: fmt.Sprintf("veth%07x", i), MAC: fmt.Sprintf("02:63:0a:00:%02x:%02x", i>>8&0xff, i&0xff),
			Addr: netip.AddrFrom4([4]byte{10, 90, byte(i >> 8), byte(i)}), Router: i%2 == 0}
	}
	return out
}

// sent is a batch as google/nftables hands it to the socket.
type sent struct {
	msgs  []netlink.Message
	bytes int // on the wire
}

// capture queues a batch with queue on a connection that records what
// Flush would send instead of sending it.
func capture(t *testing.T, queue func(*batch) error) (*batch, sent) {
	t.Helper()
	var s sent
	conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			b, err := m.MarshalBinary()
			if err != nil {
				return nil, err
			}
			s.bytes += len(b)
		}
		s.msgs = append(s.msgs, req...)
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	b := &batch{conn: conn}
	if err := queue(b); err != nil {
		t.Fatal(err)
	}
	// Flush reports a missing acknowledgement: there is no kernel.
	_ = b.conn.Flush()
	return b, s
}

// elementLists decodes every element message of s: the elements each
// set gets, and the byte length of every element list.
func elementLists(t *testing.T, s sent) (perSet map[string]int, lists []int) {
	t.Helper()
	perSet = map[string]int{}
	for _, m := range s.msgs {
		typ := uint16(m.Header.Type) & 0xff
		if typ != unix.NFT_MSG_NEWSETELEM && typ != unix.NFT_MSG_DELSETELEM {
			continue
		}
		attrs, err := netlink.UnmarshalAttributes(m.Data[4:]) // after the nfgenmsg header
		if err != nil {
			t.Fatalf("element message does not decode: %v", err)
		}
		var name string
		var elems []netlink.Attribute
		rest := 0
		for _, a := range attrs {
			switch a.Type &^ unix.NLA_F_NESTED {
			case unix.NFTA_SET_ELEM_LIST_SET:
				name = string(a.Data[:len(a.Data)-1])
			case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
				lists = append(lists, len(a.Data))
				if elems, err = netlink.UnmarshalAttributes(a.Data); err != nil {
					t.Fatalf("element list of %s does not decode: %v", name, err)
				}
			case unix.NFTA_SET_ELEM_LIST_TABLE, unix.NFTA_SET_ELEM_LIST_SET_ID:
			default:
				rest++ // the kernel would read a wrapped list's tail as these
			}
		}
		if rest > 0 {
			t.Errorf("element message for %s has %d stray attributes: its list's length wrapped", name, rest)
		}
		perSet[name] += len(elems)
	}
	return perSet, lists
}

// TestBatchSplitsElements: a rebuild with 65,535 mappings (in two maps)
// and 2,000 endpoints carries every element, in
// lists whose length fits the attribute's 16 bits, and the socket's
// buffers are sized for all it sends and for every acknowledgement.
// Sent as one list per set, a set's list wraps at 64 KiB and the kernel
// would see a few hundred elements.
func TestBatchSplitsElements(t *testing.T) {
	rs := FromState(sampleNetworks(), append(manyPorts(40000, "tcp", "0.0.0.0"), manyPorts(25535, "udp", "192.0.2.10")...))
	rs.Guards = manyGuards(2000)
	b, s := capture(t, func(b *batch) error { return queueSync(b, rs) })
	perSet, lists := elementLists(t, s)
	want := map[string]int{}
	for _, sd := range sets {
		for _, e := range sd.elems(rs) {
			want[sd.name] += len(e.keys)
		}
	}
	for i, g := range guardElems(rs.Guards) {
		want[guardSets[i].set.Name] += len(g)
	}
	for name, n := range want {
		if perSet[name] != n {
			t.Errorf("set %s: the batch carries %d elements, want %d", name, perSet[name], n)
		}
	}
	if want["dnat_tcp_any"]+want["dnat_udp"] != 65535 {
		t.Fatalf("the sample lost mappings: %v", want)
	}
	listBytes := 0
	for _, n := range lists {
		if n > maxListBytes {
			t.Errorf("an element list has %d bytes, over %d", n, maxListBytes)
		}
		listBytes += n
	}
	if got := b.bytes - b.chunks*chunkHeader; got != listBytes {
		t.Errorf("elemBytes sums to %d bytes, google/nftables encoded %d", got, listBytes)
	}
	if b.chunks != len(lists) {
		t.Errorf("batch counted %d element messages, sent %d", b.chunks, len(lists))
	}
	if s.bytes > b.sendBuffer()-sockOverhead {
		t.Errorf("the batch is %d bytes, the send buffer is sized for %d", s.bytes, b.sendBuffer()-sockOverhead)
	}
	if acks := len(s.msgs) * ackTruesize; acks+s.bytes > b.recvBuffer() {
		t.Errorf("%d messages and their echoes need %d bytes, the receive buffer is sized for %d", len(s.msgs), acks+s.bytes, b.recvBuffer())
	}
	if nonElem := len(s.msgs) - len(lists); nonElem > fixedAcks {
		t.Errorf("%d messages besides element lists, fixedAcks allows %d", nonElem, fixedAcks)
	}
	t.Logf("%d messages, %d bytes, %d element lists", len(s.msgs), s.bytes, len(lists))
}

// TestBatchSplitsPortDeltas: adding and deleting 65,535 mappings at
// once splits the same way.
func TestBatchSplitsPortDeltas(t *testing.T) {
	ps := manyPorts(65535, "tcp", "0.0.0.0")
	for _, add := range []bool{true, false} {
		_, s := capture(t, func(b *batch) error { return queuePorts(b, ps, add) })
		perSet, lists := elementLists(t, s)
		if perSet["dnat_tcp_any"] != len(ps) || len(perSet) != 1 {
			t.Errorf("add %v: the batch carries %v, want 65535 in dnat_tcp_any", add, perSet)
		}
		if len(lists) < 2 {
			t.Errorf("add %v: %d element lists, want the mappings split", add, len(lists))
		}
	}
}

// TestChunksKeepIntervals: an interval's start and end stay in one
// message, and every element is in exactly one chunk.
func TestChunksKeepIntervals(t *testing.T) {
	var vals []nftables.SetElement
	for i := 0; i < 5000; i++ {
		vals = append(vals, nftables.SetElement{Key: []byte{10, byte(i >> 8), byte(i), 0}},
			nftables.SetElement{Key: []byte{10, byte(i >> 8), byte(i), 255}, IntervalEnd: true})
	}
	n := 0
	for _, c := range chunks(vals) {
		if c[0].IntervalEnd {
			t.Fatalf("a chunk starts with an interval's end")
		}
		size := 0
		for _, e := range c {
			size += elemBytes(e)
		}
		if size > maxListBytes {
			t.Errorf("chunk of %d bytes, over %d", size, maxListBytes)
		}
		n += len(c)
	}
	if n != len(vals) {
		t.Errorf("chunks hold %d elements, want %d", n, len(vals))
	}
}
