package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/script"
)

type app struct {
	root string
	json bool
	eng  *cnet.Engine
	// dryRun is set by --dry-run; the engine then hands its plan over as
	// a preview instead of carrying it out.
	dryRun  bool
	preview *cnet.Preview
}

func newRoot() *cobra.Command {
	a := &app{}
	cmd := &cobra.Command{
		Use:   "cnet",
		Short: "Docker-style container networking for plain Linux processes",
		Long: `cnet gives plain Linux processes container networking, one command per step:

  container  a named network namespace at /run/netns/NAME (ip netns add NAME)
  network    a Linux bridge holding the gateway address of a subnet, with NAT
             to the outside and isolation from other networks
  endpoint   a veth pair from a container (eth0, eth1, ...) to a bridge

A first session:

  cnet network create seed --subnet 172.18.0.0/24 --bridge cont-br0
  cnet create container-1 --network seed
  cnet run -d --name container-2 --network seed -- echo-server
  cnet exec container-1 -- curl -s 172.18.0.3:8000/echo
  cnet rm -f container-1 container-2 && cnet network rm seed

Add --dry-run to any command that changes something to see the ip and nft
commands it would run, as a script, without changing anything; 'cnet graph'
draws what is built.

State lives in /var/lib/cnet (bbolt) and /run/cnet (lock, logs); --root DIR
moves both (state in DIR, run dir in DIR/run). cnet needs root.`,
		Version:       buildVersion().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			opts := cnet.Options{}
			if cmd.Flags().Changed("root") && a.root == "" {
				// Most likely `--root "$DIR"` with DIR unset: acting on
				// the machine's own state instead would surprise.
				return usageError{fmt.Errorf(`invalid --root "": want a directory (leave --root out for %s)`, cnet.DefaultStateDir)}
			}
			if a.root != "" {
				opts = cnet.Root(a.root)
			}
			opts.Notify = func(msg string) { fmt.Fprintf(os.Stderr, "cnet: %s\n", msg) }
			if exe, err := os.Executable(); err == nil {
				opts.DNSCommand = []string{exe, dnsArg}
			}
			opts.Hook = crashHook()
			if a.dryRun {
				opts.DryRun = func(p *cnet.Preview) {
					if a.preview == nil {
						a.preview = p
						return
					}
					// A sequence (apply -f): one script of all the steps.
					a.preview.Notes = append(a.preview.Notes, p.Notes...)
					a.preview.Steps = append(a.preview.Steps, p.Steps...)
				}
			}
			e, err := cnet.Open(opts)
			a.eng = e
			return err
		},
	}
	root := os.Getenv("CNET_ROOT")
	cmd.PersistentFlags().StringVar(&a.root, "root", root, "`DIR` for state, with run files in DIR/run (default: /var/lib/cnet and /run/cnet); env CNET_ROOT")
	cmd.SetVersionTemplate("cnet {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	cmd.AddGroup(&cobra.Group{ID: "containers", Title: "Containers:"}, &cobra.Group{ID: "networks", Title: "Networks:"},
		&cobra.Group{ID: "processes", Title: "Processes:"}, &cobra.Group{ID: "labs", Title: "Labs:"},
		&cobra.Group{ID: "maintenance", Title: "Maintenance:"})
	cmd.AddCommand(
		a.networkCmd(), a.graphCmd(),
		a.createCmd(), a.connectCmd(), a.disconnectCmd(), a.lsCmd(), a.inspectCmd(), a.rmCmd(),
		a.publishCmd(), a.unpublishCmd(), a.portCmd(), a.resolveCmd(),
		a.execCmd(), a.runCmd(), a.logsCmd(),
		a.applyCmd(), a.diffCmd(), a.destroyCmd(),
		a.gcCmd(), a.explainCmd(), a.versionCmd(),
	)
	return cmd
}

// args wraps a cobra positional-argument check so its error is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func (a *app) addJSON(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON instead of a table")
}

// addDryRun gives a mutating command its --dry-run flag.
func (a *app) addDryRun(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&a.dryRun, "dry-run", false,
		"print the ip and nft commands that would do it, as a script for sh -e, and change nothing (--json: the steps)")
}

// addDryRunJSON gives --json to a command that prints data only as a dry run.
func (a *app) addDryRunJSON(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&a.json, "json", false, "with --dry-run, print the planned steps as JSON")
}

// printPreview prints what a dry run planned: a shell script, or with
// --json the steps and their commands. extra steps go after the plan's.
func (a *app) printPreview(extra ...cnet.PreviewStep) error {
	if a.preview == nil {
		return errors.New("the dry run produced no plan")
	}
	a.preview.Steps = append(a.preview.Steps, extra...)
	if a.json {
		return printJSON(a.preview)
	}
	fmt.Print(a.preview.Script("cnet " + script.Join(os.Args[1:])))
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned with tabs.
func table(header string, rows [][]string) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	p := &printer{w: w}
	p.ln(header)
	for _, r := range rows {
		p.ln(strings.Join(r, "\t"))
	}
	return p.flush(w)
}

// printer writes to w until a write fails, and keeps that error: output
// that could not be written (a closed pipe, a full disk) fails the
// command instead of vanishing.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) ln(args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintln(p.w, args...)
	}
}

// flush flushes tw (which buffers what p wrote) and returns the first
// error of either.
func (p *printer) flush(tw *tabwriter.Writer) error {
	if err := tw.Flush(); p.err == nil && err != nil {
		p.err = err
	}
	if p.err != nil {
		return fmt.Errorf("write output: %w", p.err)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
