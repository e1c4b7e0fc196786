package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/cnetdev/cnet/internal/dns"
	"github.com/cnetdev/cnet/internal/netns"
	"github.com/cnetdev/cnet/internal/sockdiag"
)

// dnsArg is the hidden command that runs cnet's name server:
// `cnet __dns DIR`. Commands start it when a network wants it.
const dnsArg = dns.ServeArg

func dnsMain(args []string) {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "cnet %s: want the server directory\n", dnsArg)
		os.Exit(exitInvalid)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	holder := func(proto string, ip netip.Addr, port uint16) (string, int) {
		s, err := netns.DiagSocket(nil)
		if err != nil {
			return "", 0 // only names the holder in a message; the bind error says the rest
		}
		defer s.Close()
		comm, pid, err := sockdiag.ListenerProcess(s, proto, ip, port)
		if err != nil {
			return "", 0 // as above
		}
		return comm, pid
	}
	s, err := dns.NewServer(args[0], log, holder)
	if err == nil {
		err = s.Run()
	}
	if err != nil {
		log.Error("dns server failed", "err", err)
		os.Exit(exitFailure)
	}
	os.Exit(exitOK)
}
