package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/ipam"
)

// createFlags are shared by create and run.
type createFlags struct {
	network string
	ip      string
	dns     []string
	aliases []string
	publish []string
	egress  string
}

func (f *createFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.network, "network", "", "attach to network `NET` (default \"cnet\", created on first use; \"none\": only lo)")
	cmd.Flags().StringVar(&f.ip, "ip", "", "IPv4 address `IP` on the network (default: the lowest free one)")
	cmd.Flags().StringArrayVar(&f.dns, "dns", nil, "nameserver `IP` for the container's resolv.conf, in place of cnet's name server on the gateway "+
		"(the host's nameservers on a --no-dns network); repeatable, kept in order")
	cmd.Flags().StringArrayVar(&f.aliases, "alias", nil, "another `NAME` the container answers to on the network (repeatable)")
	cmd.Flags().StringArrayVarP(&f.publish, "publish", "p", nil, "publish `[HOSTIP:]HOSTPORT:CPORT[/PROTO]`: the container's CPORT at HOSTPORT on the host, "+
		"e.g. 8080:80, 127.0.0.1:5353:53/udp, 9000-9009:9000-9009 (repeatable; more in 'cnet publish --help')")
	cmd.Flags().StringVar(&f.egress, "egress", "", "limit what the container sends on the network to `RATE`, e.g. 10mbit (a tc tbf on its interface)")
}

// parseEgress reads --egress: "" is no limit.
func parseEgress(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return cnet.ParseRate(s)
}

func (f *createFlags) spec(name string) (cnet.ContainerSpec, error) {
	spec := cnet.ContainerSpec{Name: name, Network: f.network, Aliases: f.aliases}
	var err error
	if f.ip != "" {
		if spec.IP, err = ipam.ParseAddr("ip", f.ip); err != nil {
			return spec, err
		}
	}
	if spec.DNS, err = parseDNS(f.dns); err != nil {
		return spec, err
	}
	if spec.Egress, err = parseEgress(f.egress); err != nil {
		return spec, err
	}
	spec.Ports, err = parsePorts(f.publish)
	return spec, err
}

func (a *app) createCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create NAME [--network NET] [--ip IP] [--dns IP]... [--alias NAME]... [-p SPEC]...",
		Short: "Create a container: a network namespace attached to a network",
		Long: `Create a container: a named network namespace, with lo up, attached to a
network through a veth pair. Inside, the interface is eth0 with the address
and a default route via the network's gateway; /etc/netns/NAME holds its
resolv.conf (pointing at cnet's name server on the gateway, unless --dns or a
network with --no-dns) and hosts, which 'cnet exec' and 'ip netns exec' mount
over /etc. Other containers on the network resolve NAME, its --alias names,
and NAME.NETWORK.cnet.

Equivalent to:
  ip netns add NAME
  ip -n NAME link set lo up
  ip link add vethXXXXXXX type veth peer name eth0 netns NAME
  ip link set vethXXXXXXX master BRIDGE up
  ip -n NAME addr add IP/LEN dev eth0
  ip -n NAME link set eth0 up
  ip -n NAME route add default via GATEWAY
  echo "nameserver ..." > /etc/netns/NAME/resolv.conf`,
		Example: "  cnet create web -p 8080:80\n  cnet create container-1 --network seed --ip 172.18.0.2 --dns 1.1.1.1",
		GroupID: "containers",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			spec, err := f.spec(argv[0])
			if err != nil {
				return err
			}
			c, err := a.eng.CreateContainer(spec)
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.printPreview()
			}
			return a.printCreated(c)
		},
	}
	f.add(cmd)
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) printCreated(c *cnet.Container) error {
	if a.json {
		return printJSON(c)
	}
	for _, ep := range c.Endpoints {
		fmt.Printf("%s\t%s\t%s on %s\n", c.Name, ep.Address, ep.Interface, ep.Network)
	}
	if len(c.Endpoints) == 0 {
		fmt.Println(c.Name)
	}
	for _, p := range c.Ports {
		fmt.Printf("%s\tpublished %s\n", c.Name, p)
	}
	return nil
}

func (a *app) connectCmd() *cobra.Command {
	var ip, egress string
	var aliases []string
	cmd := &cobra.Command{
		Use:   "connect NETWORK CONTAINER [--ip IP] [--alias NAME]...",
		Short: "Attach a container to one more network",
		Long: `Attach a container to one more network. The new interface is the next free
ethN. A namespace made with 'ip netns add' is adopted: cnet adds its endpoint,
and 'cnet rm' later removes only what cnet added, never the namespace.`,
		Example: "  cnet connect backend web\n  ip netns add lab && cnet connect seed lab --ip 172.18.0.9",
		GroupID: "containers",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			var addr netip.Addr
			if ip != "" {
				var err error
				if addr, err = ipam.ParseAddr("ip", ip); err != nil {
					return err
				}
			}
			rate, err := parseEgress(egress)
			if err != nil {
				return err
			}
			c, err := a.eng.Connect(cnet.ConnectSpec{Network: argv[0], Container: argv[1], IP: addr, Aliases: aliases, Egress: rate})
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.printPreview()
			}
			if a.json {
				return printJSON(c)
			}
			for _, ep := range c.Endpoints {
				if ep.Network == argv[0] {
					fmt.Printf("%s\t%s\t%s on %s\n", c.Name, ep.Address, ep.Interface, ep.Network)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address `IP` on the network (default: the lowest free one)")
	cmd.Flags().StringArrayVar(&aliases, "alias", nil, "another `NAME` the container answers to on this network (repeatable)")
	cmd.Flags().StringVar(&egress, "egress", "", "limit what the container sends on this network to `RATE`, e.g. 10mbit (a tc tbf on its interface)")
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) disconnectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "disconnect NETWORK CONTAINER",
		Short:   "Detach a container from a network",
		GroupID: "containers",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := a.eng.Disconnect(argv[0], argv[1]); err != nil || !a.dryRun {
				return err
			}
			return a.printPreview()
		},
	}
	a.addDryRunJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) lsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"ps", "list"},
		Short:   "List containers with their networks, addresses and processes",
		GroupID: "containers",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := a.eng.Containers()
			if err != nil {
				return err
			}
			if a.json {
				if cs == nil {
					cs = []*cnet.Container{}
				}
				return printJSON(cs)
			}
			var rows [][]string
			for _, c := range cs {
				pids := make([]string, len(c.PIDs))
				for i, p := range c.PIDs {
					pids[i] = strconv.Itoa(p)
				}
				id := "-"
				if c.ContainerID != "" {
					id = c.ContainerID[:min(12, len(c.ContainerID))]
				}
				if len(c.Endpoints) == 0 {
					rows = append(rows, []string{c.Name, id, "-", "-", "-", "-", "-", portsColumn(c.Ports), orDash(strings.Join(pids, ","))})
				}
				for i, ep := range c.Endpoints {
					name, cid, pub, p := c.Name, id, portsColumn(c.Ports), orDash(strings.Join(pids, ","))
					if i > 0 {
						name, cid, pub, p = "", "", "", ""
					}
					rows = append(rows, []string{name, cid, ep.Network, ep.Address.String(), ep.Interface, ep.HostInterface, ep.MAC, pub, p})
				}
			}
			return table("NAME\tCNI ID\tNETWORK\tADDRESS\tIFACE\tHOST VETH\tMAC\tPORTS\tPIDS", rows)
		},
	}
	a.addJSON(cmd)
	return cmd
}

func (a *app) inspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "inspect NAME",
		Short:   "Show one container as JSON, with its live interfaces and processes",
		GroupID: "containers",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.eng.Container(argv[0])
			if err != nil {
				return err
			}
			return printJSON(c)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", true, "print JSON (the only format)")
	return cmd
}

func (a *app) rmCmd() *cobra.Command {
	var opts cnet.RemoveOptions
	cmd := &cobra.Command{
		Use:     "rm NAME... [-f]",
		Aliases: []string{"remove"},
		Short:   "Remove containers",
		Long: `Remove containers: their endpoints and addresses, /etc/netns/NAME, and the
namespace itself (unless it was adopted from 'ip netns add').

Every name is checked first; if one is unknown, nothing is removed. A
container with processes inside is refused unless -f, which sends SIGTERM,
waits --grace, then sends SIGKILL.

A namespace cnet adopted (made by 'ip netns add', or a runtime's through
CNI) is not cnet's to delete: rm takes cnet's endpoints and files out of
it, leaves it standing, and never signals its processes, with or without
-f; it says which processes stay.`,
		GroupID: "containers",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if opts.Grace < 0 {
				return usageError{fmt.Errorf("invalid --grace %q: want a duration of 0 or more, such as 5s", cmd.Flag("grace").Value)}
			}
			if err := a.eng.RemoveContainers(argv, opts); err != nil || !a.dryRun {
				return err
			}
			return a.printPreview()
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "stop processes inside first (never in an adopted namespace)")
	cmd.Flags().DurationVar(&opts.Grace, "grace", 5*time.Second, "with -f, wait `DURATION` (e.g. 500ms, 10s) after SIGTERM before SIGKILL")
	a.addDryRunJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) resolveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resolve NAME",
		Short: "Print the addresses a container name or alias stands for",
		Long: `Print the addresses a name stands for on each network: a container's name,
one of its aliases, or NAME.NETWORK.cnet. This reads cnet's state; to ask
the name server itself, use dig @GATEWAY NAME.`,
		GroupID: "containers",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			rs, err := a.eng.Resolve(argv[0])
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(rs)
			}
			for _, r := range rs {
				fmt.Printf("%s\t%s\t%s\n", r.Address, r.Container, r.Network)
			}
			return nil
		},
	}
	a.addJSON(cmd)
	return cmd
}
