// Command echo-server is the workload of the tutorial cnet grew from: an
// HTTP server that answers GET /echo with the request's headers and body.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
)

type echo struct {
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := echo{Header: r.Header, Body: string(body)}
		if resp.Body == "" {
			resp.Body = "Echo response"
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(resp); err != nil {
			slog.Warn("echo response not sent", "remote", r.RemoteAddr, "err", err)
		}
	})
	return mux
}

// serveUDP answers every datagram with "PAYLOAD via ADDR", ADDR being
// the address it listens on, so a client can tell which server answered.
func serveUDP(conn net.PacketConn, listen string) error {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		reply := append(append([]byte{}, buf[:n]...), " via "+listen...)
		if _, err := conn.WriteTo(reply, from); err != nil {
			slog.Warn("udp echo not sent", "to", from.String(), "err", err)
		}
	}
}

func main() {
	listen := flag.String("listen", ":8000", "address to listen on")
	udp := flag.String("udp", "", "also answer UDP datagrams on this address (\"PAYLOAD via ADDR\")")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *udp != "" {
		pc, err := net.ListenPacket("udp", *udp)
		if err != nil {
			log.Error("cannot listen", "udpAddr", *udp, "err", err)
			os.Exit(1)
		}
		log.Info("udp echo is running", "udpAddr", *udp)
		go func() {
			err := serveUDP(pc, *udp)
			log.Error("udp echo stopped", "udpAddr", *udp, "err", err)
			os.Exit(1)
		}()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("cannot listen", "listenAddr", *listen, "err", err)
		os.Exit(1)
	}
	log.Info("web server is running", "listenAddr", *listen)
	if err := http.Serve(ln, handler()); err != nil {
		log.Error("web server stopped", "err", err)
		os.Exit(1)
	}
}
