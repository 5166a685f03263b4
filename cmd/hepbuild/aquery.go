package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/graph/query"
)

// AqueryCmd prints the actions of the targets an expression matches.
type AqueryCmd struct {
	EnvFlags
	Output string   `short:"o" default:"text" enum:"text,json" help:"Output format: text or json (one object per line)."`
	Expr   []string `arg:"" name:"expression" help:"A query expression; the actions of the matching rules are printed (e.g. //analysis:hist_tth or 'deps(//analysis:datacards)')."`
}

// actionJSON is the JSON form of an action in aquery output.
type actionJSON struct {
	Target      string            `json:"target"`
	Mnemonic    string            `json:"mnemonic"`
	Kind        string            `json:"kind"`
	URL         string            `json:"url,omitempty"`
	Argv        []string          `json:"argv,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Inputs      []string          `json:"inputs"`
	Outputs     []string          `json:"outputs"`
	Environment string            `json:"environment,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Resources   *exec.Resources   `json:"resources,omitempty"`
	Content     string            `json:"content,omitempty"`
	Exposed     []string          `json:"sandbox_expose,omitempty"`
	Location    string            `json:"location"`
}

// Run analyses the matching targets and prints their actions.
func (c *AqueryCmd) Run(g *Globals, e *env) error {
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	expr := strings.Join(c.Expr, " ")
	r, err := query.Run(e.ctx, w.loader, expr, w.workingPkg)
	if err != nil {
		if isLoadError(err) {
			return err
		}
		return badInput("aquery %s: %v", expr, err)
	}
	var labels []graph.Label
	want := map[graph.Label]bool{}
	for _, t := range r.Targets {
		if t.IsRule() {
			labels = append(labels, t.Label)
			want[t.Label] = true
		}
	}
	rd, err := (&RemoteDataFlags{lenient: true}).openRemoteData(e.ctx, w.root)
	if err != nil {
		return err
	}
	defer rd.Close()
	w.loader.SetRemoteData(globFunc(rd.glob(true)))
	ag, err := w.loader.Analyze(labels)
	if err != nil {
		return err
	}
	if err := c.applyEnvironment(w, ag); err != nil {
		return err
	}
	var acts []*exec.Action
	for _, a := range ag.Actions {
		if want[a.Owner] {
			acts = append(acts, a)
		}
	}
	sort.SliceStable(acts, func(i, j int) bool {
		if acts[i].Owner != acts[j].Owner {
			return acts[i].Owner.String() < acts[j].Owner.String()
		}
		return acts[i].Outputs[0].Path < acts[j].Outputs[0].Path
	})
	for _, a := range acts {
		if c.Output == "json" {
			if err := writeActionJSON(e.stdout, a); err != nil {
				return err
			}
			continue
		}
		writeActionText(e.stdout, a)
	}
	return nil
}

func paths(arts []exec.Artifact) []string {
	out := make([]string, len(arts))
	for i, a := range arts {
		out[i] = a.Path
	}
	return out
}

func writeActionJSON(w io.Writer, a *exec.Action) error {
	j := actionJSON{Target: a.Owner.String(), Mnemonic: a.Mnemonic, Kind: a.Kind.String(), Argv: a.Argv, Env: a.Env,
		Inputs: paths(a.Inputs), Outputs: paths(a.Outputs), Tags: a.Extras().Tags, Location: a.Pos.String(), Exposed: a.Extras().SandboxExpose}
	if a.Environment != nil {
		j.Environment = a.Environment.Label.String()
	}
	if a.Extras().Resources != (exec.Resources{}) {
		r := a.Extras().Resources
		j.Resources = &r
	}
	if a.Kind == exec.KindWrite {
		j.Content = string(a.Extras().Content)
	}
	if a.Extras().Remote != nil {
		j.URL = a.Extras().Remote.URL
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // commands are full of < > &
	return enc.Encode(j)
}

func writeActionText(w io.Writer, a *exec.Action) {
	fmt.Fprintf(w, "action '%s'\n", a.Describe())
	fmt.Fprintf(w, "  Mnemonic: %s\n", a.Mnemonic)
	fmt.Fprintf(w, "  Target: %s\n", a.Owner)
	fmt.Fprintf(w, "  Location: %s\n", a.Pos)
	if a.Environment != nil {
		fmt.Fprintf(w, "  Software environment: %s (%s)\n", a.Environment.Label, a.Environment.Kind)
	}
	fmt.Fprintf(w, "  Inputs: [%s]\n", strings.Join(paths(a.Inputs), ", "))
	fmt.Fprintf(w, "  Outputs: [%s]\n", strings.Join(paths(a.Outputs), ", "))
	if len(a.Env) > 0 {
		keys := make([]string, 0, len(a.Env))
		for k := range a.Env {
			keys = append(keys, k+"="+a.Env[k])
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "  Environment: [%s]\n", strings.Join(keys, ", "))
	}
	if len(a.Extras().Tags) > 0 {
		fmt.Fprintf(w, "  Execution requirements: %s\n", strings.Join(a.Extras().Tags, ", "))
	}
	if a.Extras().Resources != (exec.Resources{}) {
		tmp := ""
		if a.Extras().Resources.Tmp > 0 {
			tmp = fmt.Sprintf(" tmp=%d", a.Extras().Resources.Tmp)
		}
		fmt.Fprintf(w, "  Resources: cpu=%g memory=%d walltime=%s%s\n", a.Extras().Resources.CPU, a.Extras().Resources.Memory, a.Extras().Resources.Walltime, tmp)
	}
	if len(a.Extras().SandboxExpose) > 0 {
		fmt.Fprintf(w, "  Sandbox exposes: [%s]\n", strings.Join(a.Extras().SandboxExpose, ", "))
	}
	switch a.Kind {
	case exec.KindRun:
		fmt.Fprintf(w, "  Command Line: (\n")
		for i, arg := range a.Argv {
			sep := " \\"
			if i == len(a.Argv)-1 {
				sep = ")"
			}
			fmt.Fprintf(w, "    %s%s\n", shellWord(arg), sep)
		}
	case exec.KindWrite:
		fmt.Fprintf(w, "  Content: %q\n", a.Extras().Content)
	case exec.KindFetch:
		fmt.Fprintf(w, "  Download: %s\n", a.Extras().Remote.URL)
	}
	fmt.Fprintln(w)
}

func shellWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"$\\;&|<>*?()[]{}#~`!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
