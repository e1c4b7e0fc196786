// Package names validates user-chosen names and computes every kernel
// object name and ownership mark cnet uses. Names are computed here and
// nowhere else, then stored in state, so teardown never recomputes them.
package names

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cnetdev/cnet/internal/errs"
)

// IFNAMSIZ-1: the longest interface name the kernel accepts.
const MaxIfName = 15

// NamePattern is what CheckName accepts, for messages and docs.
const NamePattern = "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}"

// CheckName reports whether name may name a container or network: it must
// match NamePattern. Such names become file names under /run/netns and
// /etc/netns, so nothing with '/' or a leading '.' is accepted. (A loop,
// not a regexp: compiling one costs a short-lived CLI process a
// millisecond.)
func CheckName(what, name string) error {
	ok := len(name) >= 1 && len(name) <= 63 && isAlnum(name[0])
	for i := 1; ok && i < len(name); i++ {
		c := name[i]
		ok = isAlnum(c) || c == '_' || c == '.' || c == '-'
	}
	if !ok {
		return errs.Invalid(what+" name", name,
			"want 1-63 characters matching %s (letters, digits, '_', '.', '-'; starting with a letter or digit)", NamePattern)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// CheckIfName reports whether s is a valid Linux interface name.
func CheckIfName(what, s string) error {
	switch {
	case s == "":
		return errs.Invalid(what, s, "want 1-%d bytes", MaxIfName)
	case len(s) > MaxIfName:
		return errs.Invalid(what, s, "want at most %d bytes (IFNAMSIZ), got %d", MaxIfName, len(s))
	case s == "." || s == "..":
		return errs.Invalid(what, s, "want an interface name, not %q", s)
	case strings.ContainsAny(s, "/: \t\n") || strings.ContainsRune(s, 0):
		return errs.Invalid(what, s, "want no '/', ':' or whitespace")
	}
	return nil
}

// DefaultNetwork is the network `cnet create` uses without --network.
const DefaultNetwork = "cnet"

// Bridge returns the bridge name for a network: the default network gets
// cnet0, others cnet-NAME when that fits in IFNAMSIZ, else cnet- and a hash.
func Bridge(network string) string {
	if network == DefaultNetwork {
		return "cnet0"
	}
	if n := "cnet-" + network; len(n) <= MaxIfName {
		return n
	}
	return "cnet-" + hash(network)[:10]
}

// HostVeth returns the host end name of an endpoint: veth and 7 hex digits
// of a hash of the instance, container, network and a generation number
// that grows with every endpoint the instance creates, so a new endpoint
// never collides with one the kernel is still tearing down.
func HostVeth(instance, container, network string, gen uint64) string {
	return "veth" + hash(instance, container, network, strconv.FormatUint(gen, 10))[:7]
}

// ContainerIf returns the name of the i-th interface inside a container.
func ContainerIf(i int) string { return "eth" + strconv.Itoa(i) }

// MAC derives a stable, locally administered unicast MAC address from an
// IPv4 address: 02:63:a.b.c.d (0x63 is 'c'). Neighbour caches stay valid
// when a container is re-created with the same address.
func MAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x63, b[0], b[1], b[2], b[3]}
}

// Hash returns 16 hex digits of FNV-1a over the parts.
func Hash(parts ...string) string { return hash(parts...) }

// hash returns 16 hex digits of FNV-1a over the parts. Names need to be
// spread, not secret; a cryptographic hash would pull the crypto packages'
// start-up cost into every cnet process.
func hash(parts ...string) string {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// Instance derives a short instance ID from a state directory, so marks of
// two cnet roots on one host never match each other.
func Instance(stateDir string) string { return hash(stateDir)[:6] }

// Marks are written into the alias of every link cnet creates (and of lo in
// every namespace it creates): "cnet/INSTANCE/KIND/NAME". Garbage
// collection only ever removes objects whose mark carries its own instance.
type Mark struct {
	Instance string
	Kind     string // "net", "ep", "ns"
	Name     string // network, "container/network", or container
}

const markPrefix = "cnet/"

func (m Mark) String() string { return markPrefix + m.Instance + "/" + m.Kind + "/" + m.Name }

// ParseMark parses a link alias; ok is false when it is not a cnet mark.
func ParseMark(alias string) (m Mark, ok bool) {
	rest, found := strings.CutPrefix(alias, markPrefix)
	if !found {
		return Mark{}, false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Mark{}, false
	}
	return Mark{Instance: parts[0], Kind: parts[1], Name: parts[2]}, true
}

// NetworkMark marks a network's bridge.
func NetworkMark(instance, network string) Mark {
	return Mark{Instance: instance, Kind: "net", Name: network}
}

// EndpointMark marks an endpoint's host veth.
func EndpointMark(instance, container, network string) Mark {
	return Mark{Instance: instance, Kind: "ep", Name: container + "/" + network}
}

// NetnsMark marks the lo of a namespace cnet created.
func NetnsMark(instance, container string) Mark {
	return Mark{Instance: instance, Kind: "ns", Name: container}
}

// FileMarker is the first line of every file cnet writes under /etc/netns.
func FileMarker(instance string) string {
	return fmt.Sprintf("# generated by cnet (%s); edits are overwritten", instance)
}

// Group is the interface group of a link cnet creates, derived from its
// mark. The kernel ignores an alias (IFLA_IFALIAS) in the request that
// creates a link, so the mark is a second request; a group (IFLA_GROUP)
// it takes in the first. A process killed between the two leaves a link
// without its mark, still recognisable as cnet's by its name and group.
// The high bit is clear: the groups above 2^31 are for link.RemoveLinks.
func Group(mark string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(mark)) // a hash.Hash never returns an error
	if g := h.Sum32() &^ (1 << 31); g != 0 {
		return g
	}
	return 1
}

// Owns reports whether a link with this alias and group is the one mark
// names: it carries the mark, or it carries no alias at all and the group
// derived from the mark (created, then interrupted before it was marked).
func Owns(alias string, group uint32, mark string) bool {
	return alias == mark || alias == "" && mark != "" && group == Group(mark)
}
