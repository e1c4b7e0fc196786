package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/ports"
)

func parsePorts(specs []string) ([]cnet.PortMapping, error) {
	var out []cnet.PortMapping
	for _, s := range specs {
		m, err := cnet.ParsePorts(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

const publishHelp = `Published ports are DNAT entries in cnet's nftables table: connections to
HOSTIP:HOSTPORT on the host reach CPORT on the container's address on its
default-route network, from other machines, from the host itself (127.0.0.1
included) and from containers, including the container itself (hairpin).
There is no proxy process. A mapping on 127.0.0.1 is reachable only from the
host; one on a host address only through that address; 0.0.0.0 (the default)
through every address.

Spec: ` + ports.Syntax + ` (HOSTIP defaults to 0.0.0.0, tcp is the default)
  8080:80                  tcp port 8080 on every host address to port 80
  127.0.0.1:5353:53/udp    udp, from the host only
  9000-9009:9000-9009      a range (both sides the same length)`

func (a *app) publishCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "publish NAME SPEC...",
		Short: "Publish container ports on the host",
		Long: publishHelp + `

It prints each mapping it made, one a line, as HOSTIP:HOSTPORT->PORT/PROTO
(the form of 'cnet port' and of the PORTS column of 'cnet ls'); --json gives
them with the container's address.

Equivalent to:
  nft add element inet cnet dnat_tcp_any { 8080 : ADDR . 80 }
  bridge link set dev VETH hairpin on`,
		Example: "  cnet publish web 8080:80\n  cnet publish dns 127.0.0.1:5353:53/udp",
		GroupID: "containers",
		Args:    args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ms, err := parsePorts(argv[1:])
			if err != nil {
				return err
			}
			ps, err := a.eng.Publish(argv[0], ms)
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.printPreview()
			}
			return a.printPorts(ps)
		},
	}
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) unpublishCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unpublish NAME SPEC...",
		Short: "Remove published ports (and the connections they carry)",
		Long: `Remove published ports, given as they were published. The connection
tracking entries they made are deleted too, so no flow (UDP above all)
keeps reaching the container. It prints the mappings it removed, as
'cnet publish' prints them.

Equivalent to:
  nft delete element inet cnet dnat_tcp_any { 8080 : ADDR . 80 }
  conntrack -D -p tcp --orig-port-dst 8080 --reply-src ADDR`,
		GroupID: "containers",
		Args:    args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ms, err := parsePorts(argv[1:])
			if err != nil {
				return err
			}
			ps, err := a.eng.Unpublish(argv[0], ms)
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.printPreview()
			}
			return a.printPorts(ps)
		},
	}
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) portCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "port NAME",
		Short: "List a container's published ports",
		Long: `List a container's published ports, one a line, as HOSTIP:HOSTPORT->PORT/PROTO
(connections to HOSTIP:HOSTPORT on the host reach PORT in the container); a
range is listed port by port. --json adds the container's address.`,
		GroupID: "containers",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.eng.Container(argv[0])
			if err != nil {
				return err
			}
			return a.printPorts(c.Ports)
		},
	}
	a.addJSON(cmd)
	return cmd
}

// printPorts prints port mappings one a line as HOSTIP:HOSTPORT->PORT/PROTO,
// the form of the PORTS column of `cnet ls` and of what create prints.
func (a *app) printPorts(ps []cnet.Port) error {
	if a.json {
		if ps == nil {
			ps = []cnet.Port{}
		}
		return printJSON(ps)
	}
	for _, p := range ps {
		fmt.Println(p.String())
	}
	return nil
}

func portsColumn(ps []cnet.Port) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return orDash(strings.Join(s, ","))
}
