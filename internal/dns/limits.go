package dns

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits bound what the server spends on its clients, so that one client
// that floods it is throttled while every other client, on its network
// and on others, is still answered. A client is a source address.
type Limits struct {
	// Forwards bounds the queries forwarded upstream at once, all clients
	// together; each holds a goroutine and a socket until the upstream
	// answers or Budget is spent. ClientForwards bounds one client's.
	// A query over either gets REFUSED at once, as CoreDNS's forward
	// plugin answers past its max_concurrent.
	Forwards, ClientForwards int
	// TCPConns bounds the open TCP connections, all clients together;
	// ClientTCPConns one client's. A connection over either is closed as
	// soon as it is accepted.
	TCPConns, ClientTCPConns int
	// TCPFirstRead is how long a new TCP connection may take to send its
	// first query; TCPIdle how long it may stay silent between queries.
	TCPFirstRead, TCPIdle time.Duration
	// MaxQuery is the largest query read, in bytes (UDP and TCP). Larger
	// TCP messages close the connection; larger datagrams are dropped.
	MaxQuery int
}

// DefaultLimits are the server's limits. With every limit reached, the
// server holds about Forwards+TCPConns sockets besides its listeners (four
// per network) and its control socket.
var DefaultLimits = Limits{
	Forwards:       256,
	ClientForwards: 32,
	TCPConns:       256,
	ClientTCPConns: 16,
	TCPFirstRead:   2 * time.Second,
	TCPIdle:        8 * time.Second, // miekg/dns's default
	MaxQuery:       4096,
}

// usage counts what clients hold, against the limits.
type usage struct {
	lim Limits

	mu              sync.Mutex
	forwards, conns int
	clients         map[netip.Addr]*held
}

type held struct{ forwards, conns int }

func newUsage(lim Limits) *usage {
	return &usage{lim: lim, clients: map[netip.Addr]*held{}}
}

// take claims one forward (conn false) or one TCP connection (conn true)
// for client, or reports false when a limit is reached. Only admitted
// clients (containers and the host) get here, so the map holds at most
// one entry per endpoint, and entries go when they hold nothing.
func (u *usage) take(client netip.Addr, conn bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	h := u.clients[client]
	if h == nil {
		h = &held{}
	}
	if conn {
		if u.conns >= u.lim.TCPConns || h.conns >= u.lim.ClientTCPConns {
			return false
		}
		u.conns++
		h.conns++
	} else {
		if u.forwards >= u.lim.Forwards || h.forwards >= u.lim.ClientForwards {
			return false
		}
		u.forwards++
		h.forwards++
	}
	u.clients[client] = h
	return true
}

// give returns what take claimed.
func (u *usage) give(client netip.Addr, conn bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	h := u.clients[client]
	if h == nil {
		return
	}
	if conn {
		u.conns--
		h.conns--
	} else {
		u.forwards--
		h.forwards--
	}
	if h.conns == 0 && h.forwards == 0 {
		delete(u.clients, client)
	}
}

// hostAddrs tells the host's own addresses, read from the kernel at
// most once a second: only sources that are no container's are looked
// up, and only packets that arrived on a cnet bridge get that far.
type hostAddrs struct {
	mu   sync.Mutex
	set  map[netip.Addr]bool
	read time.Time
}

// has reports whether a is one of the host's addresses. Equivalent to:
// `ip -o addr show` listing a.
func (h *hostAddrs) has(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.set[a] || time.Since(h.read) < time.Second {
		return h.set[a]
	}
	h.read = time.Now()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false // not known to be the host's: refused, the safe side
	}
	h.set = map[netip.Addr]bool{}
	for _, ad := range addrs {
		if p, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok {
				h.set[ip.Unmap()] = true
			}
		}
	}
	return h.set[a]
}
