package web

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// fixtureStore is a test fixture: an in-memory api.Store standing in for
// the server's SQLite store (which another package implements), so that
// these tests can render every page and change a build between two polls
// of the browser. Its graph aggregation is a simple version of the
// server's (packages, then groups of targets by name prefix at '_').
type fixtureStore struct {
	mu     sync.Mutex
	builds map[string]*fixtureBuild
	err    error // when set, every call fails with it
}

type fixtureBuild struct {
	view    api.BuildView
	targets []fixtureTarget
	byLabel map[string]int
	actions map[int32]*api.ActionView // details beyond what targets say
}

// fixtureTarget is one target with one action (its index).
type fixtureTarget struct {
	pkg, name string
	mnemonic  string
	state     string // a graph state: failed, running, waiting, done, pending, skipped
	deps      []int
}

func (t fixtureTarget) label() string { return "//" + t.pkg + ":" + t.name }

func newFixtureStore() *fixtureStore {
	return &fixtureStore{builds: map[string]*fixtureBuild{}}
}

// fixtureID makes a build id of the right form from a small number.
func fixtureID(n int) string {
	return fmt.Sprintf("%08x%024x", 0xbeef0000+n, n)
}

// t0 is the fixture's "now": builds started before it. It is the real
// time so that a browser's clock agrees with the fixture's.
var t0 = time.Now().UTC().Truncate(time.Second)

func (s *fixtureStore) add(b *fixtureBuild) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b.byLabel = map[string]int{}
	for i, t := range b.targets {
		b.byLabel[t.label()] = i
	}
	if b.actions == nil {
		b.actions = map[int32]*api.ActionView{}
	}
	s.builds[b.view.ID] = b
}

// update changes a build under the lock, as the server's intake would.
func (s *fixtureStore) update(id string, f func(b *fixtureBuild)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.builds[id])
}

func (s *fixtureStore) ListBuilds(ctx context.Context, q api.ListQuery) ([]api.BuildRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var rows []api.BuildRow
	for _, b := range s.builds {
		r := b.view.BuildRow
		if q.User != "" && r.User != q.User {
			continue
		}
		if q.Target != "" && !slices.ContainsFunc(r.Targets, func(t string) bool { return strings.Contains(t, q.Target) }) {
			continue
		}
		if !q.Before.IsZero() && !r.Started.Before(q.Before) {
			continue
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b api.BuildRow) int { return b.Started.Compare(a.Started) })
	if q.Limit > 0 && len(rows) > q.Limit {
		rows = rows[:q.Limit]
	}
	return rows, nil
}

func (s *fixtureStore) Build(ctx context.Context, id string) (*api.BuildView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	b, ok := s.builds[id]
	if !ok {
		return nil, fmt.Errorf("build %s: %w", id, api.ErrNotFound)
	}
	v := b.view // updates replace slices, never change them in place
	return &v, nil
}

func (s *fixtureStore) Action(ctx context.Context, id string, n int32) (*api.ActionView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	b, ok := s.builds[id]
	if !ok || n < 0 || int(n) >= len(b.targets) {
		return nil, fmt.Errorf("action %d of %s: %w", n, id, api.ErrNotFound)
	}
	t := b.targets[n]
	v := api.ActionView{Build: id, Target: t.label(), Mnemonic: t.mnemonic, State: eventState(t.state)}
	if a, ok := b.actions[n]; ok {
		v = *a
	}
	v.ID = n
	for _, d := range t.deps {
		v.Deps = append(v.Deps, api.ActionRef{ID: int32(d), Target: b.targets[d].label(), Mnemonic: b.targets[d].mnemonic, State: eventState(b.targets[d].state)})
	}
	for i, u := range b.targets {
		if slices.Contains(u.deps, int(n)) && len(v.Rdeps) < api.MaxListed {
			v.Rdeps = append(v.Rdeps, api.ActionRef{ID: int32(i), Target: u.label(), Mnemonic: u.mnemonic, State: eventState(u.state)})
		}
	}
	return &v, nil
}

// eventState names a graph state as the event type an action's state is.
func eventState(s string) string {
	switch s {
	case "failed":
		return "action_failed"
	case "running":
		return "action_started"
	case "waiting":
		return "action_waiting"
	case "done":
		return "action_finished"
	}
	return s
}

func (s *fixtureStore) Search(ctx context.Context, label string, limit int) ([]api.SearchHit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var bs []*fixtureBuild
	for _, b := range s.builds {
		bs = append(bs, b)
	}
	slices.SortFunc(bs, func(a, b *fixtureBuild) int { return b.view.Started.Compare(a.view.Started) })
	var hits []api.SearchHit
	for _, b := range bs {
		for i, t := range b.targets {
			if strings.Contains(t.label(), label) {
				hits = append(hits, api.SearchHit{Build: b.view.ID, User: b.view.User, Started: b.view.Started,
					Target: t.label(), Action: int32(i), State: t.state})
				if len(hits) == limit {
					return hits, nil
				}
			}
		}
	}
	return hits, nil
}

// Graph aggregates as the server does, simply: "" shows packages ("//pkg"),
// "//pkg" and "//pkg:prefix*" show the next '_'-separated part of the
// target names under them, as groups ("//pkg:prefix*") or targets
// ("//pkg:name"). A level with one group is skipped.
func (s *fixtureStore) Graph(ctx context.Context, id, path string) (*api.GraphView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	b, ok := s.builds[id]
	if !ok {
		return nil, fmt.Errorf("build %s: %w", id, api.ErrNotFound)
	}
	var key func(t fixtureTarget) (key, label, kind string, ok bool)
	if path == "" {
		key = func(t fixtureTarget) (string, string, string, bool) {
			return "//" + t.pkg, "//" + t.pkg, "package", true
		}
	} else {
		pkg, prefix, _ := strings.Cut(strings.TrimPrefix(path, "//"), ":")
		prefix = strings.TrimSuffix(prefix, "*")
		for {
			key = func(t fixtureTarget) (string, string, string, bool) {
				if t.pkg != pkg || !strings.HasPrefix(t.name, prefix) {
					return "", "", "", false
				}
				rest := t.name[len(prefix):]
				if i := strings.IndexByte(rest, '_'); i >= 0 {
					p := prefix + rest[:i+1]
					return "//" + pkg + ":" + p + "*", p + "*", "group", true
				}
				return "//" + pkg + ":" + t.name, t.name, "target", true
			}
			// Skip a level that would show one group alone.
			keys := map[string]bool{}
			only := ""
			for _, t := range b.targets {
				if k, _, kind, ok := key(t); ok {
					keys[k] = true
					if kind == "group" {
						only = k
					}
				}
			}
			if len(keys) != 1 || only == "" {
				break
			}
			prefix = strings.TrimSuffix(strings.SplitN(only, ":", 2)[1], "*")
		}
	}
	v := &api.GraphView{Build: id, Path: path}
	index := map[string]int{}
	of := make([]string, len(b.targets))
	children := map[string]map[string]bool{}
	for i, t := range b.targets {
		k, label, kind, ok := key(t)
		if !ok {
			continue
		}
		of[i] = k
		j, seen := index[k]
		if !seen {
			j = len(v.Nodes)
			index[k] = j
			v.Nodes = append(v.Nodes, api.GraphNode{Path: k, Label: label, Kind: kind, Action: -1})
			children[k] = map[string]bool{}
		}
		n := &v.Nodes[j]
		if kind == "target" {
			n.Action = int32(i)
		}
		n.Counts.Total++
		switch t.state {
		case "failed":
			n.Counts.Failed++
		case "running":
			n.Counts.Running++
		case "waiting":
			n.Counts.Waiting++
		case "done":
			n.Counts.Executed++
		case "skipped":
			n.Counts.Skipped++
		}
		// Children: the next level's keys, roughly (one part more).
		rest := strings.TrimPrefix(t.name, strings.TrimSuffix(strings.SplitN(k+":", ":", 3)[1], "*"))
		if kind == "package" {
			rest = t.name
		}
		if kind != "target" {
			next, _, _ := strings.Cut(rest, "_")
			children[k][next] = true
		}
	}
	for i := range v.Nodes {
		n := &v.Nodes[i]
		n.Children = len(children[n.Path])
		c := n.Counts
		switch {
		case c.Failed > 0:
			n.State = "failed"
		case c.Running > 0:
			n.State = "running"
		case c.Waiting > 0:
			n.State = "waiting"
		case c.Skipped == c.Total:
			n.State = "skipped"
		case c.Executed+c.Skipped == c.Total:
			n.State = "done"
		default:
			n.State = "pending"
		}
	}
	edges := map[[2]string]int{}
	for i, t := range b.targets {
		if of[i] == "" {
			continue
		}
		for _, d := range t.deps {
			if of[d] != "" && of[d] != of[i] {
				edges[[2]string{of[i], of[d]}]++
			}
		}
	}
	for k, c := range edges {
		v.Edges = append(v.Edges, api.GraphEdge{From: k[0], To: k[1], Count: c})
	}
	slices.SortFunc(v.Edges, func(a, b api.GraphEdge) int {
		return strings.Compare(a.From+" "+a.To, b.From+" "+b.To)
	})
	if len(v.Nodes) > api.MaxNodes {
		return nil, errors.New("fixture: more than MaxNodes nodes")
	}
	return v, nil
}

// workload builds the shape of the peer workload: per dataset d and file f
// a selection sel_dD_fF_sS in each systematic S, histograms per dataset,
// one datacard per systematic, "all", and a plots package. datasets=100,
// files=50, systs=4 gives 20,000 selections and 20,409 targets.
func workload(datasets, files, systs int, state func(i int, name string) string) []fixtureTarget {
	var ts []fixtureTarget
	add := func(pkg, name, mn string, deps []int) int {
		ts = append(ts, fixtureTarget{pkg: pkg, name: name, mnemonic: mn, deps: deps})
		i := len(ts) - 1
		ts[i].state = state(i, name)
		return i
	}
	sel := map[[3]int]int{}
	for d := range datasets {
		for f := range files {
			for s := range systs {
				sel[[3]int{d, f, s}] = add("analysis", fmt.Sprintf("sel_d%d_f%d_s%d", d, f, s), "Select", nil)
			}
		}
	}
	hist := map[[2]int]int{}
	for d := range datasets {
		for s := range systs {
			var deps []int
			for f := range files {
				deps = append(deps, sel[[3]int{d, f, s}])
			}
			hist[[2]int{d, s}] = add("analysis", fmt.Sprintf("hist_d%d_s%d", d, s), "Histogram", deps)
		}
	}
	var cards []int
	for s := range systs {
		var deps []int
		for d := range datasets {
			deps = append(deps, hist[[2]int{d, s}])
		}
		cards = append(cards, add("analysis", fmt.Sprintf("card_s%d", s), "Datacard", deps))
	}
	all := add("analysis", "all", "Fit", cards)
	for s := range systs {
		add("plots", fmt.Sprintf("plot_s%d", s), "Plot", []int{cards[s], all})
	}
	return ts
}

// countStates sums targets' states as a build's counts.
func countStates(ts []fixtureTarget) api.Counts {
	c := api.Counts{Total: len(ts)}
	for _, t := range ts {
		switch t.state {
		case "failed":
			c.Failed++
		case "running":
			c.Running++
		case "waiting":
			c.Waiting++
		case "done":
			c.Executed++
		case "skipped":
			c.Skipped++
		}
	}
	return c
}

const failLog = `Processing sel_d3_f7_s1: 12,345 events
Warning in <TFile::Init>: file truncated
Error: branch "jet_pt" not found in tree "Events" <script>alert(1)</script>
Traceback (most recent call last):
  File "select.py", line 41, in <module>
KeyError: 'jet_pt'`

// standardFixture has three builds: a finished successful one, a failed
// one (with a failure, a critical path, jobs and warnings) and a running
// one of the 20,409-target workload.
func standardFixture() *fixtureStore {
	s := newFixtureStore()
	small := workload(2, 2, 1, func(i int, name string) string { return "done" })
	s.add(&fixtureBuild{view: api.BuildView{
		BuildRow: api.BuildRow{ID: fixtureID(1), User: "alice", Host: "lxplus901", Workspace: "/home/alice/tth",
			Targets: []string{"//analysis:all"}, Started: t0.Add(-3 * time.Hour), Finished: t0.Add(-3*time.Hour + 95*time.Second),
			Outcome: api.OutcomeSuccess, Counts: countStates(small), Elapsed: int64(95 * time.Second)},
		Command: []string{"build", "//analysis:all"}, Version: "v0.9.0",
		CriticalPath: []api.Step{{Action: 0, Target: "//analysis:sel_d0_f0_s0", Mnemonic: "Select", Duration: int64(40 * time.Second)},
			{Action: 4, Target: "//analysis:hist_d0_s0", Mnemonic: "Histogram", Duration: int64(12 * time.Second)}},
	}, targets: small})

	failed := workload(2, 3, 2, func(i int, name string) string {
		switch {
		case name == "sel_d1_f2_s1":
			return "failed"
		case strings.HasPrefix(name, "sel"):
			return "done"
		}
		return "skipped"
	})
	fi := slices.IndexFunc(failed, func(t fixtureTarget) bool { return t.name == "sel_d1_f2_s1" })
	fb := &fixtureBuild{view: api.BuildView{
		BuildRow: api.BuildRow{ID: fixtureID(2), User: "bob", Host: "node17.cluster", Workspace: "/data/bob/hh<bb>",
			Targets: []string{"//analysis:all", "//plots:..."}, Started: t0.Add(-50 * time.Minute), Finished: t0.Add(-38 * time.Minute),
			Outcome: api.OutcomeFailed, ExitCode: 1, Counts: countStates(failed), Elapsed: int64(12 * time.Minute)},
		Command: []string{"build", "-k", "//analysis:all", "//plots:..."}, Version: "v0.9.0",
		Failures: []api.Failure{{ID: int32(fi), Target: "//analysis:sel_d1_f2_s1", Mnemonic: "Select", ExitCode: 1,
			Message: "command exited with status 1", Log: failLog}},
		CriticalPath: []api.Step{{Action: int32(fi), Target: "//analysis:sel_d1_f2_s1", Mnemonic: "Select", Duration: int64(11 * time.Minute)}},
		JobCounts: []api.JobCount{{Executor: "slurm", State: "done", Count: 10}, {Executor: "slurm", State: "failed", Count: 1},
			{Executor: "htcondor", State: "held", Count: 2}},
		Jobs: []api.Job{{Executor: "slurm", ID: "5599680_3", State: "failed", Reason: "NonZeroExitCode", Updated: t0.Add(-39 * time.Minute), Actions: 1},
			{Executor: "htcondor", ID: "1234.0", State: "held", Reason: "memory limit", Updated: t0.Add(-40 * time.Minute), Actions: 3}},
		Warnings: []string{"remote cache unreachable: results were not uploaded"},
		Dropped:  17,
	}, targets: failed}
	fb.actions = map[int32]*api.ActionView{int32(fi): {
		ActionInfo: api.ActionInfo{Key: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08/142",
			Command:     "python3 select.py --in data/d1/f2.root --syst s1 --out sel_d1_f2_s1.root",
			Env:         map[string]string{"PATH": "/usr/bin:/bin", "ROOTSYS": "/opt/root", "ANALYSIS_TAG": "v3 <beta>"},
			Environment: "conda:env/analysis.yaml@4b1c",
			Inputs:      []string{"analysis/select.py", "data/d1/f2.root"}, InputCount: 3,
			Outputs: []string{"bazel-out/analysis/sel_d1_f2_s1.root"},
			Tags:    []string{"requires-memory:4G"},
			Reasons: []string{"input analysis/select.py changed", "variable ANALYSIS_TAG changed"},
			Where:   "slurm job 5599680_3",
			Log:     failLog, LogTruncated: true},
		Build: fixtureID(2), Target: "//analysis:sel_d1_f2_s1", Mnemonic: "Select", State: "action_failed",
		ExitCode: 1, Message: "command exited with status 1", Attempts: 2,
		Queued: t0.Add(-50 * time.Minute), Started: t0.Add(-49 * time.Minute), Finished: t0.Add(-38 * time.Minute),
		Duration: int64(11 * time.Minute), JobID: "5599680_3",
	}}
	s.add(fb)

	big := workload(100, 50, 4, func(i int, name string) string {
		switch {
		case strings.HasPrefix(name, "sel_d0_") || strings.HasPrefix(name, "sel_d1_"):
			return "done"
		case strings.HasPrefix(name, "sel_d2_f0_"):
			return "running"
		case name == "sel_d2_f1_s0":
			return "waiting"
		}
		return "pending"
	})
	s.add(&fixtureBuild{view: api.BuildView{
		BuildRow: api.BuildRow{ID: fixtureID(3), User: "carol", Host: "lxplus902", Workspace: "/home/carol/tth",
			Targets: []string{"//analysis:all", "//plots:all"}, Started: t0.Add(-4 * time.Minute),
			Outcome: api.OutcomeRunning, Counts: countStates(big), Elapsed: int64(4 * time.Minute)},
		Command: []string{"build", "//analysis:all", "//plots:all"}, Version: "v0.9.0",
		Running: []api.RunningAction{
			{ID: 400, Target: "//analysis:sel_d2_f0_s0", Mnemonic: "Select", Started: t0.Add(-90 * time.Second), Where: "local slot 1"},
			{ID: 401, Target: "//analysis:sel_d2_f0_s1", Mnemonic: "Select", Started: t0.Add(-20 * time.Second), Where: "local slot 2"},
			{ID: 404, Target: "//analysis:sel_d2_f1_s0", Mnemonic: "Select", Started: t0.Add(-5 * time.Second), Waiting: true},
		},
	}, targets: big})
	return s
}
