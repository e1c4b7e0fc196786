package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
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
			table("ACTION\tOBJECT\tREASON\tRESULT", rows)
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

// crashHook returns the fault-injection hook for crash tests: with
// CNET_TEST_CRASH_AFTER=OP:K the process kills itself with SIGKILL right
// after step K of operation OP, running no deferred code. Unset, it is nil.
func crashHook() func(op string, step int) error {
	spec := os.Getenv("CNET_TEST_CRASH_AFTER")
	if spec == "" {
		return nil
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return nil
	}
	wantOp := spec[:i]
	wantStep, err := strconv.Atoi(spec[i+1:])
	if err != nil {
		return nil
	}
	return func(op string, step int) error {
		if op == wantOp && step == wantStep {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL is not deliverable late; never continue
		}
		return nil
	}
}
