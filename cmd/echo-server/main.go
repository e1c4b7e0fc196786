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
		json.NewEncoder(w).Encode(resp)
	})
	return mux
}

func main() {
	listen := flag.String("listen", ":8000", "address to listen on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
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
