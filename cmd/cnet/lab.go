package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/cnetdev/cnet"
	"github.com/cnetdev/cnet/internal/names"
	"github.com/cnetdev/cnet/internal/script"
	"github.com/cnetdev/cnet/lab"
)

const labFormat = `A lab file declares networks, containers and direct links in YAML:

  lab: demo                        # default: the file name without .yaml
  networks:
    front: {subnet: 172.31.1.0/24}
    back:  {subnet: 172.31.2.0/24, internal: true}
  containers:
    web:
      networks: [front, {network: back, ip: 172.31.2.10, aliases: [www], egress: 10mbit}]
      ports: ["8080:80"]
      command: [echo-server, -listen, ":80"]
  links:
    - a: {container: web, interface: p0, ip: 10.0.0.1/30}
      b: {container: db, ip: 10.0.0.2/30}

docs/labs.md describes every field; docs/lab.schema.json is its JSON Schema.`

func (a *app) readLab(path string) (*lab.File, error) {
	if path == "" {
		return nil, usageError{errors.New("missing -f FILE: the lab file to use")}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &cnet.NotFoundError{What: "lab file", Name: path, Hint: err.Error()}
	}
	return lab.Parse(path, data)
}

// labPlan reads and checks a lab file and plans what apply would do.
func (a *app) labPlan(file string) (*lab.Plan, error) {
	f, err := a.readLab(file)
	if err != nil {
		return nil, err
	}
	p, err := lab.Diff(a.eng, f, a.starter())
	if err != nil {
		return nil, err
	}
	if a.dryRun {
		// The script is for later or elsewhere; its own exec line fails
		// there if the command is missing.
		return p, nil
	}
	if err := checkCommands(f, p); err != nil {
		return nil, err
	}
	return p, nil
}

// checkCommands refuses, before anything changes, a plan that would start
// a command that is not there or cannot run. The command runs with
// cnet's PATH, in the host's file system with the container's /etc, so
// looking it up here finds what the container would.
func checkCommands(f *lab.File, p *lab.Plan) error {
	for _, act := range p.Actions {
		if act.Op != "start" || act.Kind != "command" {
			continue
		}
		c := f.Container(act.Object)
		if c == nil || len(c.Command) == 0 {
			continue
		}
		if _, err := exec.LookPath(c.Command[0]); err != nil {
			_, why := lookPathFailure(c.Command[0], err)
			line, ok := c.Lines["command"]
			if !ok {
				line = c.Line
			}
			return &lab.Error{File: f.Path, Line: line, Field: "containers." + c.Name + ".command",
				Msg: fmt.Sprintf("cannot start %q: %s", c.Command[0], why)}
		}
	}
	return nil
}

func (a *app) starter() lab.Starter {
	return func(container string, argv, env []string) error {
		if a.dryRun {
			a.preview.Steps = append(a.preview.Steps, startPreview(container, argv, env, a.eng.LogPath(container)))
			return nil
		}
		_, err := background(a.eng.NetnsPath(container), container, argv, a.eng.LogPath(container), env...)
		return err
	}
}

// startPreview is what starting a lab's command does, as a command line.
func startPreview(container string, argv, env []string, log string) cnet.PreviewStep {
	q := make([]string, len(argv))
	for i, s := range argv {
		q[i] = script.Quote(s)
	}
	return cnet.PreviewStep{Kind: "processes", Action: "add",
		Comment: fmt.Sprintf("the lab's command in %s, detached, its output in %s", container, log),
		Commands: []string{
			"mkdir -p " + script.Quote(filepath.Dir(log)),
			fmt.Sprintf("ip netns exec %s env %s setsid %s >> %s 2>&1 < /dev/null &",
				script.Quote(container), strings.Join(env, " "), strings.Join(q, " "), script.Quote(log)),
		}}
}

// rehearse runs p as a dry run: each action previewed against the state
// the ones before it would leave, all printed as one script.
func (a *app) rehearse(p *lab.Plan) error {
	a.preview = &cnet.Preview{Op: "lab " + p.Lab, Notes: []string{}, Steps: []cnet.PreviewStep{}}
	if err := a.eng.Rehearse(func(r *cnet.Engine) error { return p.Apply(r, nil) }); err != nil {
		return err
	}
	return a.printPreview()
}

func (a *app) printPlan(p *lab.Plan, file string) {
	if len(p.Actions) == 0 {
		fmt.Printf("lab %s: nothing to change; the machine matches %s\n", p.Lab, file)
		return
	}
	fmt.Printf("lab %s: %d change(s)\n", p.Lab, len(p.Actions))
	for _, act := range p.Actions {
		fmt.Println("  " + act.String())
	}
}

// labResult is what apply, destroy and diff print with --json.
type labResult struct {
	Lab     string        `json:"lab"`
	File    string        `json:"file"`
	Actions []lab.Action  `json:"actions"`
	Applied int           `json:"applied"`
	Failed  *failedAction `json:"failed,omitempty"`
}

type failedAction struct {
	lab.Action
	Error string `json:"error"`
}

// run applies p, printing progress, and reports the result.
func (a *app) runPlan(p *lab.Plan, file, verb string) error {
	if !a.json {
		a.printPlan(p, file)
	}
	res := labResult{Lab: p.Lab, File: file, Actions: p.Actions}
	err := p.Apply(a.eng, func(act lab.Action) {
		res.Applied++
		if !a.json {
			fmt.Printf("done: %s %s %s\n", act.Op, act.Kind, act.Object)
		}
	})
	var se *lab.StepError
	if errors.As(err, &se) {
		res.Failed = &failedAction{Action: se.Action, Error: se.Err.Error()}
		err = fmt.Errorf("%w (%d of %d changes applied; the failed one was undone; fix the cause and %s again)", err, se.Done, len(p.Actions), verb)
	}
	if a.json {
		if perr := printJSON(res); perr != nil {
			return perr
		}
	} else if err == nil && len(p.Actions) > 0 {
		fmt.Printf("lab %s: %d change(s) applied\n", p.Lab, res.Applied)
	}
	return err
}

func (a *app) applyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the machine match a lab file",
		Long: `Make the machine match a lab file: create what the file adds, remove what the
lab made that the file no longer has, and re-create only what changed (a
changed address re-creates that endpoint; a changed subnet, that network and
its endpoints). apply first rehearses the whole plan against the state:
anything the machine would refuse (a subnet that overlaps another network, an
address, port or bridge name held outside the lab) is refused at its line in
the file, and nothing changes. Then it prints the plan and runs it one object
at a time; a failure the rehearsal could not foresee stops it, that change is
undone, and the rest stay as applied: fix the cause and apply again.
Applying the same file twice changes nothing the second time. Every object
carries the lab's name, and names already taken outside the lab are refused.

` + labFormat,
		Example: "  cnet apply -f examples/seed.yaml\n  cnet diff -f examples/seed.yaml && cnet apply -f examples/seed.yaml",
		GroupID: "labs",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := a.labPlan(file)
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.rehearse(p)
			}
			return a.runPlan(p, file, "apply")
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the lab `FILE` (YAML)")
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

func (a *app) diffCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what apply would change, without changing anything",
		Long: `Show the plan 'cnet apply -f FILE' would run: each change on one line, in the
order apply makes them. Nothing is changed.

` + labFormat,
		Example: "  cnet diff -f examples/three-tier.yaml",
		GroupID: "labs",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := a.labPlan(file)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(labResult{Lab: p.Lab, File: file, Actions: p.Actions})
			}
			a.printPlan(p, file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the lab `FILE` (YAML)")
	a.addJSON(cmd)
	return cmd
}

func (a *app) destroyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "destroy -f FILE",
		Short: "Remove everything a lab file made",
		Long: `Remove every container (stopping its processes) and network that carries
the lab's name: exactly what applying the file made, and nothing else. Only
the lab's name is read from the file (its lab: field, or the file name), so
a file that no longer validates can still be destroyed.`,
		Example: "  cnet destroy -f examples/seed.yaml",
		GroupID: "labs",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, argv []string) error {
			name, err := labName(file)
			if err != nil {
				return err
			}
			p, err := lab.Destroy(a.eng, name)
			if err != nil {
				return err
			}
			if a.dryRun {
				return a.rehearse(p)
			}
			return a.runPlan(p, file, "destroy")
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the lab `FILE` (YAML)")
	a.addJSON(cmd)
	a.addDryRun(cmd)
	return cmd
}

// labName reads only the lab's name from a file: its lab: key if the
// file is YAML with one, else the file name. A lab: that is not a valid
// name is refused, rather than fall back to the file name, which could be
// another lab's.
func labName(path string) (string, error) {
	if path == "" {
		return "", usageError{errors.New("missing -f FILE: the lab file to use")}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", &cnet.NotFoundError{What: "lab file", Name: path, Hint: err.Error()}
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if k, v := root.Content[i], root.Content[i+1]; k.Value == "lab" {
				if v.Kind != yaml.ScalarNode || v.Tag == "!!null" { // as lab.Parse reads it
					return "", &lab.Error{File: path, Line: v.Line, Field: "lab", Msg: "got " + yamlKind(v) + "; want a name"}
				}
				if err := names.CheckName("lab", v.Value); err != nil {
					var inv *cnet.InvalidError
					errors.As(err, &inv)
					return "", &lab.Error{File: path, Line: v.Line, Field: "lab", Msg: fmt.Sprintf("%q: %s", inv.Value, inv.Want)}
				}
				return v.Value, nil
			}
		}
	}
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".yaml"), ".yml"), nil
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}
