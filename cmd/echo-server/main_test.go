package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cnetdev/cnet/internal/testenv"
)

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(handler())
	defer srv.Close()
	tests := []struct {
		body, want string
	}{
		{"", "Echo response"},
		{"hello", "hello"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/echo", strings.NewReader(tt.body))
		req.Header.Set("X-Test", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Header http.Header `json:"header"`
			Body   string      `json:"body"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		testenv.Close(t, "response body", resp.Body)
		if got.Body != tt.want || got.Header.Get("X-Test") != "1" {
			t.Errorf("body %q: got %+v, want body %q and the X-Test header", tt.body, got, tt.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
	}
	resp, _ := http.Get(srv.URL + "/other")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", resp.StatusCode)
	}
}

func TestUDPEcho(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "pc", pc)
	go func() { _ = serveUDP(pc, "test-addr") }() // returns when pc closes at the end
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer testenv.Close(t, "c", c)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping via test-addr" {
		t.Errorf("got %q %v, want %q", buf[:n], err, "ping via test-addr")
	}
}
