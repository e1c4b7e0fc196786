package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time by `make build`:
// go build -ldflags "-X main.version=$(git describe --tags --always --dirty)".
// Without it, the module version Go stamps into the binary is used.
var version string

// versionInfo is what `cnet version --json` prints.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"` // the commit built (vcs.revision)
	Time     string `json:"time,omitempty"`     // its commit time (vcs.time)
	Modified bool   `json:"modified"`           // built from a work tree with changes (vcs.modified)
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" || v.Version == "(devel)" {
		v.Version = "devel"
	}
	return v
}

// String is the one line `cnet --version` prints, after "cnet ".
func (v versionInfo) String() string {
	var extra []string
	if v.Revision != "" {
		rev := v.Revision[:min(12, len(v.Revision))]
		if v.Modified {
			rev += ", modified"
		}
		extra = append(extra, "commit "+rev)
	}
	extra = append(extra, v.Go, v.Platform)
	return v.Version + " (" + strings.Join(extra, ", ") + ")"
}

func (a *app) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print cnet's version, the commit it was built from, and the Go that built it",
		Long: `Print cnet's version: the one 'make build' stamps (git describe), else the
module version Go records, with the commit it was built from (and whether the
work tree had changes), the Go release and the platform. 'cnet --version'
prints the same line. Needs no root.`,
		Example:           "  cnet version\n  cnet version --json | jq -r .revision",
		GroupID:           "maintenance",
		Args:              args(cobra.NoArgs),
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil }, // no state to open
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			if a.json {
				return printJSON(v)
			}
			fmt.Println("cnet " + v.String())
			return nil
		},
	}
	a.addJSON(cmd)
	return cmd
}
