package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/ipam"
)

func (a *app) networkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Short:   "Create, list, inspect and remove networks (bridges with a subnet)",
		GroupID: "networks",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("missing subcommand: create, ls, inspect or rm")}
		},
	}
	cmd.AddCommand(a.networkCreateCmd(), a.networkLsCmd(), a.networkInspectCmd(), a.networkRmCmd())
	return cmd
}

func (a *app) networkCreateCmd() *cobra.Command {
	var subnet, gateway, bridge string
	var spec cnet.NetworkSpec
	cmd := &cobra.Command{
		Use:   "create NAME [--subnet CIDR] [--gateway IP] [--bridge IFNAME] [--internal] [--no-dns] [--mtu N]",
		Short: "Create a network: a bridge holding the gateway address, with NAT",
		Long: `Create a network: a Linux bridge that holds the gateway address of a subnet.

Containers on the network reach each other through the bridge, the host
through the gateway, and (unless --internal) everything beyond the host
through masquerade. Traffic between two cnet networks is dropped.

Containers on the network find each other by name: cnet's name server
answers on the gateway address, port 53, for NAME and NAME.NETWORK.cnet,
and forwards other names to the host's nameservers (--no-dns turns it off).

Without --subnet, cnet takes the first /24 of 10.89.0.0/16 that overlaps no
other network and no address or route on the host. The gateway defaults to
the first host address, the bridge name to cnet-NAME (at most 15 bytes).

Equivalent to:
  ip link add BRIDGE type bridge
  ip addr add GATEWAY/LEN dev BRIDGE
  ip link set BRIDGE up
  iptables -t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE
  sysctl -w net.ipv4.ip_forward=1`,
		Example: "  cnet network create seed --subnet 172.18.0.0/24 --bridge cont-br0\n  cnet network create backend --internal",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			spec.Name = argv[0]
			var err error
			if subnet != "" {
				if spec.Subnet, err = ipam.ParseSubnet(subnet); err != nil {
					return err
				}
			}
			if gateway != "" {
				if spec.Gateway, err = ipam.ParseAddr("gateway", gateway); err != nil {
					return err
				}
				if !spec.Subnet.IsValid() {
					return usageError{fmt.Errorf("--gateway %s needs --subnet", gateway)}
				}
			}
			spec.Bridge = bridge
			n, err := a.eng.CreateNetwork(spec)
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.printPreview()
			}
			if a.json {
				return printJSON(n)
			}
			fmt.Printf("%s\t%s\tgateway %s on %s\n", n.Name, n.Subnet, n.Gateway, n.Bridge)
			return nil
		},
	}
	cmd.Flags().StringVar(&subnet, "subnet", "", "IPv4 subnet `CIDR`, /8 to /30, e.g. 172.18.0.0/24 (default: the first free /24 of 10.89.0.0/16)")
	cmd.Flags().StringVar(&gateway, "gateway", "", "gateway address `IP` on the bridge, inside --subnet (default: its first host address)")
	cmd.Flags().StringVar(&bridge, "bridge", "", "bridge interface name `IFNAME`, at most 15 bytes (default: cnet-NAME)")
	cmd.Flags().BoolVar(&spec.Internal, "internal", false, "no NAT and no path beyond the bridge")
	cmd.Flags().BoolVar(&spec.NoDNS, "no-dns", false, "no name server on the gateway: containers use the host's nameservers")
	cmd.Flags().IntVar(&spec.MTU, "mtu", 0, "MTU `N` of the bridge and every veth on it, 68-65535 (default 1500)")
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) networkLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			nets, err := a.eng.Networks()
			if err != nil {
				return err
			}
			if a.json {
				if nets == nil {
					nets = []*cnet.Network{}
				}
				return printJSON(nets)
			}
			var rows [][]string
			for _, n := range nets {
				rows = append(rows, []string{n.Name, n.Bridge, n.Subnet.String(), n.Gateway.String(),
					strconv.FormatBool(n.Internal), strconv.FormatBool(n.DNS), strconv.Itoa(n.MTU), orDash(strings.Join(n.Containers, ","))})
			}
			return table("NAME\tBRIDGE\tSUBNET\tGATEWAY\tINTERNAL\tDNS\tMTU\tCONTAINERS", rows)
		},
	}
	a.addJSON(cmd)
	return cmd
}

func (a *app) networkInspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show one network as JSON",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			n, err := a.eng.Network(argv[0])
			if err != nil {
				return err
			}
			return printJSON(n)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", true, "print JSON (the only format)")
	return cmd
}

func (a *app) networkRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME [--force]",
		Aliases: []string{"remove"},
		Short:   "Remove a network",
		Long: `Remove a network: its bridge, its firewall entries, and its NAT.

It refuses while containers are attached; --force disconnects them first
(the containers stay, without that network).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := a.eng.RemoveNetwork(argv[0], force); err != nil || !a.dryRun {
				return err
			}
			return a.printPreview()
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "disconnect attached containers first")
	a.addDryRunJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func parseDNS(vals []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, v := range vals {
		a, err := ipam.ParseAddr("dns", v)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
