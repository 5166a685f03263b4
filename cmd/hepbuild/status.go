package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// StatusCmd says, for targets and their dependencies, what a build would do.
type StatusCmd struct {
	AnalysisFlags
	Output  string   `short:"o" default:"text" enum:"text,json" help:"Output format: text or json (one object per line)."`
	Targets []string `arg:"" name:"target" help:"Targets or patterns."`
}

// Target states of status, from best to worst.
const (
	stateUpToDate = "up to date"
	stateCached   = "restorable from cache"
	stateRun      = "will run"
	statePending  = "will run after its dependencies"
)

type targetStatus struct {
	Target  string   `json:"target"`
	State   string   `json:"state"`
	Actions int      `json:"actions"`
	Run     int      `json:"run,omitempty"`
	Cached  int      `json:"cached,omitempty"`
	Outputs []string `json:"outputs,omitempty"`
	// RemoteOnly lists the outputs that an earlier build kept only in the
	// cache (--remote-download-outputs): not in hepbuild-out.
	RemoteOnly []string `json:"remote_only,omitempty"`
}

// Run checks every needed action without running anything.
func (c *StatusCmd) Run(g *Globals, e *env) error {
	s, err := analyse(g, &c.AnalysisFlags, e, c.Targets, false)
	if err != nil {
		return err
	}
	defer s.close()
	// Outputs an earlier build kept only in the cache count as up to date,
	// as for a build with --remote-download-outputs=toplevel, the mode that
	// keeps them; the targets named must be in the output tree.
	s.download = exec.DownloadTopLevel
	runner, err := s.runner(nil, nil)
	if err != nil {
		return err
	}
	state, err := planStates(e, s, runner)
	if err != nil {
		return err
	}
	byTarget := map[graph.Label]*targetStatus{}
	for _, a := range s.actions {
		ts := byTarget[a.Owner]
		if ts == nil {
			ts = &targetStatus{Target: a.Owner.String(), State: stateUpToDate}
			byTarget[a.Owner] = ts
		}
		ts.Actions++
		st := state[a]
		switch st {
		case stateRun, statePending:
			ts.Run++
		case stateCached:
			ts.Cached++
		}
		if rank(st) > rank(ts.State) {
			ts.State = st
		}
		for _, o := range a.Outputs {
			ts.Outputs = append(ts.Outputs, o.Path)
			if s.journal.RemoteOnly(o.Path) {
				ts.RemoteOnly = append(ts.RemoteOnly, o.Path)
			}
		}
	}
	var list []*targetStatus
	for _, ts := range byTarget {
		list = append(list, ts)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Target < list[j].Target })
	counts := map[string]int{}
	remoteOnly := 0
	for _, ts := range list {
		counts[ts.State]++
		remoteOnly += len(ts.RemoteOnly)
		if c.Output == "json" {
			b, _ := json.Marshal(ts)
			fmt.Fprintf(e.stdout, "%s\n", b)
			continue
		}
		var parts []string
		if ts.Actions > 1 {
			parts = append(parts, fmt.Sprintf("%d actions", ts.Actions))
			if ts.Run > 0 {
				parts = append(parts, fmt.Sprintf("%d to run", ts.Run))
			}
			if ts.Cached > 0 {
				parts = append(parts, fmt.Sprintf("%d in cache", ts.Cached))
			}
		}
		if n := len(ts.RemoteOnly); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s only in the cache", n, plural(n, "output", "outputs")))
		}
		detail := ""
		if len(parts) > 0 {
			detail = " (" + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(e.stdout, "%-32s %s%s\n", ts.State, ts.Target, detail)
	}
	if c.Output != "json" {
		fmt.Fprintf(e.stderr, "%d targets: %d up to date, %d restorable from cache, %d will run, %d after their dependencies\n",
			len(list), counts[stateUpToDate], counts[stateCached], counts[stateRun], counts[statePending])
		if remoteOnly > 0 {
			fmt.Fprintf(e.stderr, "%d %s only in the cache, not in %s (kept there by --remote-download-outputs; a build with --remote-download-outputs=all writes them)\n",
				remoteOnly, plural(remoteOnly, "output", "outputs"), exec.OutDir)
		}
	}
	return nil
}

func rank(s string) int {
	switch s {
	case stateUpToDate:
		return 0
	case stateCached:
		return 1
	case stateRun:
		return 2
	}
	return 3
}

func isMissingInput(err error) bool {
	_, ok := err.(*exec.ActionError)
	return ok
}

// planStates says for every needed action what a build would do, without
// doing it. Actions come dependencies first: an action whose input is made by
// an action that must run or be restored cannot be keyed yet, so it is pending.
func planStates(e *env, s *session, runner *exec.Runner) (map[*exec.Action]string, error) {
	state := map[*exec.Action]string{}
	for _, a := range s.actions {
		pending := false
		for _, in := range a.Inputs {
			if p, ok := s.g.Producer[in.Path]; ok && state[p] != stateUpToDate {
				pending = true
				break
			}
		}
		if pending {
			state[a] = statePending
			continue
		}
		o, err := runner.Check(e.ctx, a)
		switch {
		case err != nil:
			state[a] = statePending
			if !isMissingInput(err) {
				return nil, err
			}
		case o == exec.OutcomeUpToDate:
			state[a] = stateUpToDate
		case o == exec.OutcomeCached:
			state[a] = stateCached
		default:
			state[a] = stateRun
		}
	}
	return state, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
