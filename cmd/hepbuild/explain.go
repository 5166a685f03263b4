package main

import (
	"fmt"
	"os"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// ExplainCmd says why the actions of targets will run, or ran last time.
type ExplainCmd struct {
	AnalysisFlags
	Deps    bool     `help:"Explain the actions of the targets' dependencies too."`
	Targets []string `arg:"" name:"target" help:"Targets or patterns."`
}

// Run compares each action with the record of its last run.
func (c *ExplainCmd) Run(g *Globals, e *env) error {
	s, err := analyse(g, &c.AnalysisFlags, e, c.Targets, false)
	if err != nil {
		return err
	}
	defer s.close()
	s.download = exec.DownloadTopLevel // as status does
	runner, err := s.runner(nil, nil)
	if err != nil {
		return err
	}
	want := map[graph.Label]bool{}
	for _, t := range s.targets {
		want[t.Label] = true
	}
	state, err := planStates(e, s, runner)
	if err != nil {
		return err
	}
	n := 0
	for _, a := range s.actions {
		if !c.Deps && !want[a.Owner] {
			continue
		}
		n++
		fmt.Fprintf(e.stdout, "%s %s (%s):\n", a.Owner, a.Mnemonic, a.Outputs[0].Path)
		if state[a] == statePending {
			for _, in := range a.Inputs {
				if p, ok := s.g.Producer[in.Path]; ok && state[p] != stateUpToDate {
					fmt.Fprintf(e.stdout, "  waits for %s, which %s first; this action reruns if that changes its input %s\n", p.Owner, verbFor(state[p]), in.Path)
					break
				}
			}
			continue
		}
		ex, err := runner.Explain(e.ctx, a)
		if err != nil {
			return err
		}
		switch {
		case len(ex.Pending) > 0:
			fmt.Fprintf(e.stdout, "  will run after its dependencies make %d input(s), e.g. %s\n", len(ex.Pending), ex.Pending[0])
		case ex.Outcome == exec.OutcomeUpToDate:
			fmt.Fprintln(e.stdout, "  up to date: nothing changed since it last ran")
			if p := runner.LogPath(a); fileExists(p) {
				// Restored outputs come with the log of the run that made
				// them, wherever it ran.
				fmt.Fprintf(e.stdout, "  log of the run that made its outputs: %s\n", p)
			}
		case ex.NoPrevious && ex.Outcome == exec.OutcomeCached:
			fmt.Fprintln(e.stdout, "  no previous run here; the cache has its result (another build or user made it)")
		case ex.NoPrevious:
			fmt.Fprintln(e.stdout, "  no previous run: it will run")
		case len(ex.Changes) == 0 && ex.Outcome == exec.OutcomeCached:
			fmt.Fprintln(e.stdout, "  unchanged, but its outputs are missing or were modified: they will be restored from the cache")
		case len(ex.Changes) == 0:
			fmt.Fprintln(e.stdout, "  unchanged, but its outputs are missing or were modified and the cache does not have them: it will run")
		default:
			verb := "will run"
			if ex.Outcome == exec.OutcomeCached {
				verb = "will be restored from the cache"
			}
			fmt.Fprintf(e.stdout, "  %s because, since it last ran:\n", verb)
			for _, ch := range ex.Changes {
				fmt.Fprintf(e.stdout, "    %s\n", ch)
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(e.stdout, "no actions: the targets are source files or make nothing")
	}
	return nil
}

func verbFor(state string) string {
	switch state {
	case stateCached:
		return "is restored from the cache"
	case statePending:
		return "waits for its own dependencies and may run"
	}
	return "runs"
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
