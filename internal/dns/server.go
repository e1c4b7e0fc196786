package dns

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Files in the server's directory (RUNDIR/dns).
const (
	SnapshotFile = "snapshot.json"
	SocketFile   = "control.sock"
	LogFile      = "server.log"
)

// Budget is how long a forwarded query may take before the client gets
// SERVFAIL: well inside a resolver's usual 5 s timeout.
const Budget = 1500 * time.Millisecond

// Server answers on each network's gateway, port 53, UDP and TCP.
type Server struct {
	dir   string
	log   *slog.Logger
	table atomic.Pointer[Table]
	// holder names the process holding a host socket, for bind errors:
	// its program name and PID (0 when it cannot be found).
	holder func(proto string, ip netip.Addr, port uint16) (comm string, pid int)
	limits Limits
	usage  *usage
	host   hostAddrs

	mu        sync.Mutex
	listeners map[netip.Addr]*listener
	bindErrs  map[netip.Addr]string
	// changing serializes the control requests that change the records.
	changing sync.Mutex
	stop     chan struct{}
	stopOnce sync.Once
}

// NewServer loads dir's snapshot. holder, when not nil, names the
// process holding a port the server cannot bind.
func NewServer(dir string, log *slog.Logger, holder func(string, netip.Addr, uint16) (string, int)) (*Server, error) {
	var snap Snapshot
	data, err := os.ReadFile(filepath.Join(dir, SnapshotFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("read %s: %w", SnapshotFile, err)
	}
	s := &Server{dir: dir, log: log, holder: holder,
		limits: DefaultLimits, usage: newUsage(DefaultLimits),
		listeners: map[netip.Addr]*listener{}, bindErrs: map[netip.Addr]string{}, stop: make(chan struct{})}
	s.table.Store(NewTable(snap))
	return s, nil
}

// Run listens on every network and on the control socket until stopped.
// If another server listens on the control socket, it returns
// ErrAlreadyRunning at once and leaves that one alone: taking over its
// socket would leave it holding port 53 with nobody able to reach it.
func (s *Server) Run() error {
	sock := filepath.Join(s.dir, SocketFile)
	if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil || listening(err) {
		if conn != nil {
			_ = conn.Close() // a probe that sent nothing: there is nothing its close could lose
		}
		return fmt.Errorf("%s: %w", sock, ErrAlreadyRunning)
	}
	s.reconcile(nil)
	// A previous server's, which is gone: nothing accepts on it.
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale control socket %s: %w", sock, err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		return errors.Join(fmt.Errorf("chmod control socket %s: %w", sock, err), ln.Close())
	}
	go func() {
		<-s.stop
		if err := ln.Close(); err != nil {
			s.log.Warn("close the control socket", "path", sock, "err", err)
		}
	}()
	s.log.Info("dns server is running", "networks", len(s.current().Networks()), "pid", os.Getpid())
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.stop:
				s.shutdown()
				return nil
			default:
				return err
			}
		}
		// One client that is slow to send its request (a command the
		// scheduler put aside) must not hold up the others.
		go s.control(conn)
	}
}

// Request is one control message.
type Request struct {
	Op       string    `json:"op"` // "ping", "apply", "sync", "dump", "stop"
	Change   *Change   `json:"change,omitempty"`
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// Reply answers a Request. Errors lists gateways it could not listen on.
type Reply struct {
	PID    int               `json:"pid"`
	Errors map[string]string `json:"errors,omitempty"`
	// Records answers "dump": every record served, one line each.
	Records []string `json:"records,omitempty"`
}

func (s *Server) control(conn net.Conn) {
	defer func() {
		if err := conn.Close(); err != nil {
			s.log.Warn("close a control connection", "err", err)
		}
	}()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		s.log.Warn("set the deadline of a control connection", "err", err)
		return
	}
	var req Request
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		return
	}
	switch req.Op {
	case "apply":
		if req.Change != nil {
			s.changing.Lock()
			s.current().Apply(*req.Change)
			recheck := map[string]bool{}
			for _, n := range req.Change.SetNetworks {
				recheck[n.Name] = true
			}
			s.reconcile(recheck)
			s.changing.Unlock()
		}
	case "sync":
		if req.Snapshot != nil {
			t := NewTable(*req.Snapshot)
			s.changing.Lock()
			s.table.Store(t)
			s.reconcile(nil)
			s.changing.Unlock()
		}
	case "stop":
		defer s.stopOnce.Do(func() { close(s.stop) })
	}
	s.mu.Lock()
	rep := Reply{PID: os.Getpid(), Errors: map[string]string{}}
	if req.Op == "dump" {
		rep.Records = s.current().Dump()
	}
	for a, e := range s.bindErrs {
		rep.Errors[a.String()] = e
	}
	s.mu.Unlock()
	if err := json.NewEncoder(conn).Encode(rep); err != nil {
		s.log.Warn("send a control reply", "op", req.Op, "err", err)
	}
}

// reconcile listens on the gateways of the networks in the table and
// stops listening on the others. A listener is bound to its bridge by
// interface index; for the networks in recheck (all of them when
// recheck is nil) it checks that the bridge still has that index, and
// listens anew when it was re-created (by `cnet gc`, say): a socket bound
// to a deleted interface never receives again.
func (s *Server) reconcile(recheck map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[netip.Addr]Net{}
	for _, n := range s.current().Networks() {
		want[n.Gateway] = n
	}
	for a, l := range s.listeners {
		n, ok := want[a]
		stale := !ok || n.Bridge != l.bridge
		if !stale && (recheck == nil || recheck[n.Name]) {
			idx, err := ifIndex(n.Bridge)
			stale = err != nil || idx != l.ifindex
		}
		if stale {
			if err := l.close(); err != nil {
				s.log.Warn("stop listening", "addr", a, "bridge", l.bridge, "err", err)
			}
			delete(s.listeners, a)
		}
	}
	for a := range s.bindErrs {
		if _, ok := want[a]; !ok {
			delete(s.bindErrs, a)
		}
	}
	for a, n := range want {
		if _, ok := s.listeners[a]; ok {
			continue
		}
		l, err := s.listen(n)
		if err != nil {
			s.bindErrs[a] = err.Error()
			s.log.Error("cannot listen", "addr", a, "bridge", n.Bridge, "err", err)
			continue
		}
		delete(s.bindErrs, a)
		s.listeners[a] = l
	}
}

func (s *Server) current() *Table { return s.table.Load() }

// listener serves one network: UDP and TCP on its gateway, port 53,
// bound to its bridge.
type listener struct {
	gateway netip.Addr
	bridge  string
	ifindex int
	udp     *net.UDPConn
	tcp     *net.TCPListener

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	// loops counts the reading and accepting goroutines. Connections
	// and forwards are not waited for: closing their sockets ends them,
	// and the limits count them until they do.
	loops sync.WaitGroup
}

// listen opens n's sockets: gateway:53, UDP and TCP, each bound to the
// bridge, so that they only ever get packets that arrived on it (the
// host's own packets to the gateway arrive on it too). Equivalent to:
// `socat UDP-LISTEN:53,bind=GATEWAY,so-bindtodevice=BRIDGE` (and TCP).
func (s *Server) listen(n Net) (*listener, error) {
	if n.Bridge == "" {
		// Unbound, the sockets would take queries from anywhere.
		return nil, fmt.Errorf("network %s: no bridge to bind its name server to", n.Name)
	}
	idx, err := ifIndex(n.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s of network %s: %w", n.Bridge, n.Name, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, n.Bridge)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", n.Bridge, serr)
		}
		return nil
	}}
	addr := netip.AddrPortFrom(n.Gateway, 53).String()
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, s.heldBy("udp", n.Gateway, err)
	}
	ln, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		if cerr := pc.Close(); cerr != nil {
			s.log.Warn("close the udp socket", "addr", addr, "err", cerr)
		}
		return nil, s.heldBy("tcp", n.Gateway, err)
	}
	l := &listener{gateway: n.Gateway, bridge: n.Bridge, ifindex: idx,
		udp: pc.(*net.UDPConn), tcp: ln.(*net.TCPListener), conns: map[net.Conn]bool{}}
	l.loops.Add(2)
	go s.serveUDP(l)
	go s.serveTCP(l)
	return l, nil
}

// close stops the listener: it closes its sockets and connections and
// waits for its reading and accepting goroutines. It returns what closing
// them reported; a connection that already hung up is no error.
func (l *listener) close() error {
	errs := []error{l.udp.Close(), l.tcp.Close()}
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	l.mu.Unlock()
	l.loops.Wait()
	return errors.Join(errs...)
}

// ifIndex returns an interface's index. Equivalent to: `ip -o link show
// dev NAME` (the number before the name).
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket for SIOCGIFINDEX: %w", err)
	}
	defer func() { _ = unix.Close(fd) }() // a socket only asked for an index: nothing was written through it
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface name %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("find interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// heldBy explains a failed bind on a gateway: it names the holder and
// what frees the port. A cnet name server of this directory that still
// holds it has lost its control socket (nothing can update it any more):
// `cnet gc` stops it. One of another directory belongs to another cnet
// instance. Anything else is another program.
func (s *Server) heldBy(proto string, a netip.Addr, err error) error {
	if s.holder == nil {
		return fmt.Errorf("listen on %s port 53/%s: %w", a, proto, err)
	}
	comm, pid := s.holder(proto, a, 53)
	switch {
	case pid == 0 && comm == "":
		return fmt.Errorf("listen on %s port 53/%s: %w", a, proto, err)
	case pid == 0:
		return fmt.Errorf("port 53/%s on %s is held by %s: free the port", proto, a, comm)
	}
	if dir, ok := ServerDir(pid); ok {
		if filepath.Clean(dir) == filepath.Clean(s.dir) {
			return fmt.Errorf("port 53/%s on %s is held by an earlier cnet name server (pid %d) that lost its control socket, "+
				"so nothing can update it: run `cnet gc`, which stops it and starts a new one", proto, a, pid)
		}
		return fmt.Errorf("port 53/%s on %s is held by the name server of another cnet instance (pid %d, serving %s): "+
			"its network has the same gateway; give this network another subnet", proto, a, pid, dir)
	}
	return fmt.Errorf("port 53/%s on %s is held by %s (pid %d): free the port (stop it, or make it listen on its own addresses only)", proto, a, comm, pid)
}

// ServerDir reports whether pid is a cnet name server (`cnet __dns DIR`)
// and which directory it serves, from its command line.
func ServerDir(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", false
	}
	args := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
	for i := 1; i+1 < len(args); i++ {
		if args[i] == ServeArg {
			return args[i+1], true
		}
	}
	return "", false
}

// ServeArg is the argument that makes cnet run as the name server:
// `cnet __dns DIR`.
const ServeArg = "__dns"

func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, l := range s.listeners {
		if err := l.close(); err != nil {
			s.log.Warn("stop listening", "addr", a, "bridge", l.bridge, "err", err)
		}
		delete(s.listeners, a)
	}
	if err := os.Remove(filepath.Join(s.dir, SocketFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("remove the control socket", "err", err)
	}
	s.log.Info("dns server stopped")
}

// serveUDP reads l's datagrams in one goroutine. Cnet's own names are
// answered right there; a forward runs on its own goroutine, within the
// limits. So a flood costs this network's socket buffer and one
// goroutine's time, never unbounded goroutines or sockets.
func (s *Server) serveUDP(l *listener) {
	defer l.loops.Done()
	buf := make([]byte, s.limits.MaxQuery)
	for {
		n, src, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("read a query", "addr", l.gateway, "err", err)
			continue
		}
		req := new(dns.Msg)
		if req.Unpack(buf[:n]) != nil {
			// Not a DNS message: no answer, which could only be used to
			// reflect traffic at someone (as miekg/dns's server does).
			continue
		}
		reply := func(m *dns.Msg) {
			m.Truncate(udpSize(req))
			out, err := m.Pack()
			if err != nil {
				s.log.Warn("pack an answer", "err", err)
				return
			}
			_, _ = l.udp.WriteToUDPAddrPort(out, src) // a client that went away is no concern of the server's
		}
		s.handle(l, src.Addr().Unmap(), req, reply, true)
	}
}

// serveTCP accepts l's connections. Only admitted clients keep theirs,
// within the limits; everyone else is hung up on at once.
func (s *Server) serveTCP(l *listener) {
	defer l.loops.Done()
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accept a connection", "addr", l.gateway, "err", err)
			continue
		}
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if _, ok := s.admit(l, src); !ok || !s.usage.take(src, true) {
			_ = c.SetLinger(0) // a reset if it can be had; Close hangs up either way
			_ = c.Close()      // refused before anything was read or sent: nothing to lose
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			s.usage.give(src, true)
			_ = c.Close() // never served: nothing was read or sent on it
			return
		}
		l.conns[c] = true
		l.mu.Unlock()
		go func() {
			defer s.usage.give(src, true)
			s.serveConn(l, c, src)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// serveConn answers one TCP connection's queries in turn, until it is
// idle too long, sends something too big, or hangs up.
func (s *Server) serveConn(l *listener, c *net.TCPConn, src netip.Addr) {
	defer func() {
		// The listener may have closed it already, when it stopped.
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("close a connection", "addr", l.gateway, "client", src, "err", err)
		}
	}()
	timeout := s.limits.TCPFirstRead
	var size [2]byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return // a connection that takes no deadline is broken
		}
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(size[:]))
		if n < 12 || n > s.limits.MaxQuery {
			return
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		req := new(dns.Msg)
		if req.Unpack(msg) != nil {
			return
		}
		failed := false
		s.handle(l, src, req, func(m *dns.Msg) {
			out, err := m.Pack()
			if err != nil || len(out) > 0xffff {
				failed = true
				return
			}
			if err := c.SetWriteDeadline(time.Now().Add(s.limits.TCPFirstRead)); err != nil {
				failed = true // a connection that takes no deadline is broken
				return
			}
			_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...))
			failed = err != nil
		}, false)
		if failed {
			return
		}
		timeout = s.limits.TCPIdle
	}
}

// admit decides whether the server answers src on l's network.
func (s *Server) admit(l *listener, src netip.Addr) (Querier, bool) {
	t := s.current()
	network, ok := t.NetworkAt(l.gateway)
	if !ok {
		return Querier{}, false
	}
	return t.Admit(network, src, s.host.has)
}

// handle answers one query: REFUSED to anyone not admitted, cnet's names
// from the table, other names forwarded upstream for those allowed
// within the limits, else REFUSED. Over UDP (async) a forward runs on a
// goroutine of its own; over TCP on the connection's.
func (s *Server) handle(l *listener, src netip.Addr, req *dns.Msg, reply func(*dns.Msg), async bool) {
	q, ok := s.admit(l, src)
	if !ok {
		reply(Refused(req))
		return
	}
	t := s.current()
	if resp := t.Answer(req, q); resp != nil {
		reply(resp)
		return
	}
	if !q.Forward || !s.usage.take(src, false) {
		reply(Refused(req))
		return
	}
	forward := func() {
		defer s.usage.give(src, false)
		reply(Forward(req, t.Upstreams()))
	}
	if !async {
		forward()
		return
	}
	go forward()
}

func udpSize(req *dns.Msg) int {
	if o := req.IsEdns0(); o != nil && o.UDPSize() >= dns.MinMsgSize {
		return int(o.UDPSize())
	}
	return dns.MinMsgSize
}

// Forward asks the upstream servers in turn, over UDP and, when the answer
// is truncated, over TCP. It answers SERVFAIL once Budget is spent.
func Forward(req *dns.Msg, upstreams []netip.Addr) *dns.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), Budget)
	defer cancel()
	per := Budget / time.Duration(max(len(upstreams), 1))
	for _, u := range upstreams {
		addr := netip.AddrPortFrom(u, 53).String()
		c := &dns.Client{Net: "udp", Timeout: per, UDPSize: 4096}
		in, _, err := c.ExchangeContext(ctx, req, addr)
		if err == nil && in.Truncated {
			c.Net = "tcp"
			in, _, err = c.ExchangeContext(ctx, req, addr)
		}
		if err == nil && in != nil {
			in.Id = req.Id
			return in
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			break
		}
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}
