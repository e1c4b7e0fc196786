package dns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/miekg/dns"
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
	table *Table
	// holder names the process holding a host socket, for bind errors.
	holder func(proto string, ip netip.Addr, port uint16) string

	mu        sync.Mutex
	listeners map[netip.Addr][]*dns.Server
	bindErrs  map[netip.Addr]string
	// changing serializes the control requests that change the records.
	changing sync.Mutex
	stop     chan struct{}
	stopOnce sync.Once
}

// NewServer loads dir's snapshot.
func NewServer(dir string, log *slog.Logger, holder func(string, netip.Addr, uint16) string) (*Server, error) {
	var snap Snapshot
	data, err := os.ReadFile(filepath.Join(dir, SnapshotFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("read %s: %w", SnapshotFile, err)
	}
	return &Server{dir: dir, log: log, table: NewTable(snap), holder: holder,
		listeners: map[netip.Addr][]*dns.Server{}, bindErrs: map[netip.Addr]string{}, stop: make(chan struct{})}, nil
}

// Run listens on every network and on the control socket until stopped.
// If another server listens on the control socket, it returns
// ErrAlreadyRunning at once and leaves that one alone: taking over its
// socket would leave it holding port 53 with nobody able to reach it.
func (s *Server) Run() error {
	sock := filepath.Join(s.dir, SocketFile)
	if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil || listening(err) {
		if conn != nil {
			_ = conn.Close() // a probe that sent nothing: nothing to lose
		}
		return fmt.Errorf("%s: %w", sock, ErrAlreadyRunning)
	}
	s.reconcile()
	// A previous server's, which is gone: nothing accepts on it.
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	// Only root may change what the server answers.
	if err := os.Chmod(sock, 0o600); err != nil {
		return errors.Join(fmt.Errorf("chmod 600 %s: %w", sock, err), ln.Close())
	}
	go func() {
		<-s.stop
		if err := ln.Close(); err != nil {
			s.log.Warn("closing the control socket", "err", err)
		}
	}()
	s.log.Info("dns server is running", "networks", len(s.table.Networks()), "pid", os.Getpid())
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
			s.log.Debug("closing a control connection", "err", err)
		}
	}()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		s.log.Warn("control connection", "err", err)
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
			s.reconcile()
			s.changing.Unlock()
		}
	case "sync":
		if req.Snapshot != nil {
			t := NewTable(*req.Snapshot)
			s.changing.Lock()
			s.mu.Lock()
			s.table = t
			s.mu.Unlock()
			s.reconcile()
			s.changing.Unlock()
		}
	case "stop":
		defer s.stopOnce.Do(func() { close(s.stop) })
	}
	s.mu.Lock()
	rep := Reply{PID: os.Getpid(), Errors: map[string]string{}}
	if req.Op == "dump" {
		rep.Records = s.table.Dump()
	}
	for a, e := range s.bindErrs {
		rep.Errors[a.String()] = e
	}
	s.mu.Unlock()
	if err := json.NewEncoder(conn).Encode(rep); err != nil {
		s.log.Warn("answering a control request", "op", req.Op, "err", err)
	}
}

// reconcile listens on the gateways of the networks in the table and
// stops listening on the others.
func (s *Server) reconcile() {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, n := range s.tableLocked().Networks() {
		want[n.Gateway] = true
	}
	for a, servers := range s.listeners {
		if !want[a] {
			s.stopListening(a, servers)
			delete(s.listeners, a)
		}
	}
	for a := range s.bindErrs {
		if !want[a] {
			delete(s.bindErrs, a)
		}
	}
	for a := range want {
		if _, ok := s.listeners[a]; ok {
			continue
		}
		servers, err := s.listen(a)
		if err != nil {
			s.bindErrs[a] = err.Error()
			s.log.Error("cannot listen", "addr", a, "err", err)
			continue
		}
		delete(s.bindErrs, a)
		s.listeners[a] = servers
	}
}

func (s *Server) tableLocked() *Table { return s.table }

func (s *Server) current() *Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table
}

func (s *Server) listen(a netip.Addr) ([]*dns.Server, error) {
	addr := netip.AddrPortFrom(a, 53).String()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, s.heldBy("udp", a, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.Join(s.heldBy("tcp", a, err), pc.Close())
	}
	h := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h, UDPSize: 65535}
	tcp := &dns.Server{Listener: ln, Handler: h}
	for _, srv := range []*dns.Server{udp, tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Warn("serving names stopped", "addr", a, "err", err)
			}
		}()
	}
	return []*dns.Server{udp, tcp}, nil
}

// stopListening shuts the servers on gateway a down.
func (s *Server) stopListening(a netip.Addr, servers []*dns.Server) {
	for _, srv := range servers {
		if err := srv.Shutdown(); err != nil {
			s.log.Warn("stop listening", "addr", a, "err", err)
		}
	}
}

func (s *Server) heldBy(proto string, a netip.Addr, err error) error {
	if s.holder != nil {
		if h := s.holder(proto, a, 53); h != "" {
			return fmt.Errorf("port 53/%s on %s is held by %s", proto, a, h)
		}
	}
	return fmt.Errorf("listen on %s port 53/%s: %w", a, proto, err)
}

func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, servers := range s.listeners {
		s.stopListening(a, servers)
		delete(s.listeners, a)
	}
	if err := os.Remove(filepath.Join(s.dir, SocketFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing the control socket", "err", err)
	}
	s.log.Info("dns server stopped")
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	t := s.current()
	resp := t.Answer(req, addrOf(w.RemoteAddr()), addrOf(w.LocalAddr()))
	if resp == nil {
		resp = Forward(req, t.Upstreams())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		resp.Truncate(udpSize(req))
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("answer not sent", "to", w.RemoteAddr().String(), "err", err)
	}
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
