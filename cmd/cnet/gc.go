package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnetdev/cnet/internal/faults"
)

func (a *app) gcCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc [--dry-run]",
		Short: "Make the machine match cnet's state: finish, repair, clean up",
		Long: `Make the machine match cnet's state:
  - finish or undo operations interrupted by a crash;
  - re-create what a network lacks: its bridge, gateway address, or the
    nftables table (after someone flushed the ruleset);
  - re-create missing endpoints and /etc/netns files;
  - release containers whose namespace is gone (after 'ip netns del');
  - remove orphan links, namespaces and files that carry this cnet's mark;
  - restart the name server if it died, after stopping this cnet's name
    servers that lost their control socket (they hold port 53).
It never touches objects cnet did not create. --dry-run only reports.`,
		GroupID: "maintenance",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.eng.GC(dryRun)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(r)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(os.Stderr, "cnet: warning: %s\n", w)
			}
			if len(r.Actions) == 0 {
				fmt.Println("nothing to do: the machine matches cnet's state")
				return nil
			}
			var rows [][]string
			failed := 0
			for _, act := range r.Actions {
				res := "done"
				if dryRun {
					res = "would do"
				}
				if act.Error != "" {
					res, failed = "failed: "+act.Error, failed+1
				}
				rows = append(rows, []string{act.Action, act.Object, act.Reason, res})
			}
			if err := table("ACTION\tOBJECT\tREASON\tRESULT", rows); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d repairs failed", failed, len(r.Actions))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be done, change nothing")
	a.addJSON(cmd)
	return cmd
}

// crashHook returns the fault-injection hook for crash tests. With
// CNET_TEST_CRASH_AFTER=OP:K the process kills itself with SIGKILL right
// after step K of operation OP; with CNET_TEST_CRASH_WITHIN=OP:N, right
// after the N-th kernel change (netlink request, nftables batch, mount,
// file) of OP's steps, wherever inside a step that falls (internal/faults).
// No deferred code runs. Unset, it is nil.
func crashHook() func(op string, step int) error {
	after, afterOK := crashSpec("CNET_TEST_CRASH_AFTER")
	within, withinOK := crashSpec("CNET_TEST_CRASH_WITHIN")
	if !afterOK && !withinOK {
		return nil
	}
	return func(op string, step int) error {
		if afterOK && op == after.op && step == after.n {
			faults.Kill()
		}
		if withinOK && op == within.op && step == 0 {
			faults.Arm(within.n) // counted from the first step on
		}
		return nil
	}
}

type crashPoint struct {
	op string
	n  int
}

// crashSpec reads OP:N from the environment variable env.
func crashSpec(env string) (crashPoint, bool) {
	spec := os.Getenv(env)
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return crashPoint{}, false
	}
	n, err := strconv.Atoi(spec[i+1:])
	if err != nil {
		return crashPoint{}, false
	}
	return crashPoint{op: spec[:i], n: n}, true
}
