package server

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
)

// An action's state is the type of its last action event, as an index into
// stateNames; pending is 0.
const (
	stPending uint8 = iota
	stQueued
	stRunning
	stWaiting
	stCached
	stUpToDate
	stExecuted
	stFailed
	stSkipped
	stRetry
	numStates
)

var stateNames = [numStates]string{
	stPending:  "pending",
	stQueued:   string(exec.EventActionQueued),
	stRunning:  string(exec.EventActionStarted),
	stWaiting:  string(exec.EventActionWaiting),
	stCached:   string(exec.EventActionCached),
	stUpToDate: string(exec.EventActionUpToDate),
	stExecuted: string(exec.EventActionFinished),
	stFailed:   string(exec.EventActionFailed),
	stSkipped:  string(exec.EventActionInterrupted),
	stRetry:    string(exec.EventActionRetry),
}

var stateOf = map[string]uint8{}

func init() {
	for i, n := range stateNames {
		if i != int(stPending) {
			stateOf[n] = uint8(i)
		}
	}
}

// Per-target counters, indices into tcounts: what api.Counts holds, in
// int32 so that a million targets stay small.
const (
	cTotal = iota
	cExecuted
	cCached
	cUpToDate
	cFailed
	cSkipped
	cRunning
	cWaiting
	numCounters
)

type tcounts [numCounters]int32

// counter says which counter an action in state st adds to, or -1.
func counter(st uint8) int {
	switch st {
	case stRunning:
		return cRunning
	case stWaiting:
		return cWaiting
	case stCached:
		return cCached
	case stUpToDate:
		return cUpToDate
	case stExecuted:
		return cExecuted
	case stFailed:
		return cFailed
	case stSkipped:
		return cSkipped
	}
	return -1
}

func (c *tcounts) add(o *tcounts) {
	for i := range c {
		c[i] += o[i]
	}
}

// apiCounts converts; once a build has ended, what never ran is skipped.
func (c *tcounts) apiCounts(ended bool) api.Counts {
	a := api.Counts{Total: int(c[cTotal]), Executed: int(c[cExecuted]), Cached: int(c[cCached]), UpToDate: int(c[cUpToDate]),
		Failed: int(c[cFailed]), Skipped: int(c[cSkipped]), Running: int(c[cRunning]), Waiting: int(c[cWaiting])}
	if ended {
		pending := a.Total - a.Executed - a.Cached - a.UpToDate - a.Failed - a.Skipped - a.Running - a.Waiting
		a.Skipped += max(pending, 0)
		a.Running, a.Waiting = 0, 0
	}
	return a
}

// nodeState is the colour of a graph node with counts c.
func nodeState(c api.Counts) string {
	done := c.Executed + c.Cached + c.UpToDate
	switch {
	case c.Failed > 0:
		return "failed"
	case c.Running > 0:
		return "running"
	case c.Waiting > 0:
		return "waiting"
	case c.Total > 0 && done == c.Total:
		return "done"
	case c.Skipped > 0 && done+c.Skipped == c.Total:
		return "skipped"
	}
	return "pending"
}

// Bounds of what a build keeps in memory for its page.
const (
	maxFailures = 100
	maxWarnings = 100
	maxRunning  = 500
	maxJobs     = 200
	// maxExtraJobs is how many more jobs than actions a build may have
	// in memory (a job runs one action or more; resubmissions add some).
	maxExtraJobs = 4096
)

// build is one build in memory: a running build (kept until it ends), or an
// ended one loaded for its graph or action pages (kept in an LRU). Every
// aggregate the pages need is updated as events arrive, so that reading a
// running build never touches the database. mu guards everything below it.
type build struct {
	mu sync.Mutex

	start    api.BuildStart
	end      *api.BuildEnd
	lastSeq  int64
	dropped  int64
	lastSeen time.Time // when the client last reported

	plan *plan
	// Per action, indexed by id.
	state    []uint8
	attempts []uint8
	exit     []int32
	queued   []int64
	started  []int64
	finished []int64
	duration []int64
	message  map[int32]string
	jobOf    map[int32]string // job key (executor + " " + id)
	slot     map[int32]int32

	counts  tcounts   // the whole build
	tcounts []tcounts // per target
	running map[int32]struct{}

	failures []api.Failure // the most recent maxFailures
	warnings []string
	jobs     map[string]*api.Job

	graph *graphIndex // built on demand, rebuilt when the plan grows
}

func newBuild(start api.BuildStart) *build {
	b := &build{
		start:   start,
		plan:    newPlan(),
		message: map[int32]string{},
		jobOf:   map[int32]string{},
		slot:    map[int32]int32{},
		running: map[int32]struct{}{},
		jobs:    map[string]*api.Job{},
	}
	// The per-action arrays grow with the ids that arrive, not with the
	// announced total: a BuildStart alone reserves no memory.
	if start.Total > 0 {
		b.plan.targetIdx = make(map[string]int32, min(start.Total, 1<<16))
	}
	return b
}

// grow makes room for action ids below n.
func (b *build) grow(n int) {
	if n <= len(b.state) {
		return
	}
	// append amortises: growing one id at a time costs O(1) each.
	extend := func(s []int64) []int64 { return append(s, make([]int64, n-len(s))...) }
	b.state = append(b.state, make([]uint8, n-len(b.state))...)
	b.attempts = append(b.attempts, make([]uint8, n-len(b.attempts))...)
	b.exit = append(b.exit, make([]int32, n-len(b.exit))...)
	b.queued = extend(b.queued)
	b.started = extend(b.started)
	b.finished = extend(b.finished)
	b.duration = extend(b.duration)
}

func (b *build) ended() bool { return b.end != nil }

// addPlan records planned actions and counts them under their targets.
func (b *build) addPlan(actions []api.PlannedAction) {
	for i := range actions {
		a := &actions[i]
		b.grow(int(a.ID) + 1)
		t, isNew := b.plan.add(a)
		if !isNew {
			continue
		}
		for int(t) >= len(b.tcounts) {
			b.tcounts = append(b.tcounts, tcounts{})
		}
		b.tcounts[t][cTotal]++
		if c := counter(b.state[a.ID]); c >= 0 {
			b.tcounts[t][c]++
		}
	}
	if b.plan.planned > int(b.counts[cTotal]) {
		b.counts[cTotal] = int32(b.plan.planned)
	}
}

// setState moves action id to state st, keeping the counters in step.
func (b *build) setState(id int32, st uint8) {
	old := b.state[id]
	if old == st {
		return
	}
	b.state[id] = st
	t := int32(-1)
	if int(id) < len(b.plan.target) {
		t = b.plan.target[id]
	}
	if c := counter(old); c >= 0 {
		b.counts[c]--
		if t >= 0 {
			b.tcounts[t][c]--
		}
	}
	if c := counter(st); c >= 0 {
		b.counts[c]++
		if t >= 0 {
			b.tcounts[t][c]++
		}
	}
	if st == stRunning || st == stWaiting {
		b.running[id] = struct{}{}
	} else {
		delete(b.running, id)
	}
}

// addEvent applies one event (validated: its action is -1 or a valid id).
func (b *build) addEvent(e *api.Event) {
	at := e.Time.UnixNano()
	if e.Time.IsZero() {
		at = 0
	}
	if e.Type == string(exec.EventWarning) {
		if len(b.warnings) < maxWarnings {
			b.warnings = append(b.warnings, e.Message)
		}
		return
	}
	if e.Action >= 0 {
		b.grow(int(e.Action) + 1)
	}
	if e.JobID != "" {
		b.addJob(e)
	}
	if e.Action < 0 {
		return
	}
	id := e.Action
	st, ok := stateOf[e.Type]
	if !ok {
		return
	}
	switch st {
	case stQueued:
		b.queued[id] = at
	case stRunning:
		b.started[id] = at
		if e.Attempt > int(b.attempts[id]) {
			b.attempts[id] = uint8(min(e.Attempt, 255))
		} else if b.attempts[id] < 255 {
			b.attempts[id]++
		}
		if e.Slot > 0 {
			b.slot[id] = int32(e.Slot)
		}
	case stRetry:
		st = stQueued
		if e.Message != "" {
			b.message[id] = e.Message
		}
	case stCached, stUpToDate, stExecuted, stFailed, stSkipped:
		b.finished[id] = at
		if e.Duration > 0 {
			b.duration[id] = e.Duration
		} else if b.started[id] != 0 && at != 0 {
			b.duration[id] = at - b.started[id]
		}
	}
	if st == stFailed {
		b.exit[id] = int32(e.ExitCode)
		if e.Message != "" {
			b.message[id] = e.Message
		}
		f := api.Failure{ID: id, Target: b.plan.targetOf(id), Mnemonic: b.plan.mnemonicOf(id), ExitCode: e.ExitCode, Message: e.Message}
		if len(b.failures) == maxFailures {
			copy(b.failures, b.failures[1:])
			b.failures = b.failures[:maxFailures-1]
		}
		b.failures = append(b.failures, f)
	}
	b.setState(id, st)
}

// addJob follows a batch job's state.
func (b *build) addJob(e *api.Event) {
	key := e.Executor + " " + e.JobID
	j := b.jobs[key]
	if j == nil {
		if len(b.jobs) >= len(b.state)+maxExtraJobs {
			return // more jobs than a build of this size submits
		}
		j = &api.Job{Executor: e.Executor, ID: e.JobID}
		b.jobs[key] = j
	}
	if e.JobState != "" {
		j.State = e.JobState
	}
	if e.JobReason != "" || e.JobState != "" {
		j.Reason = e.JobReason
	}
	if !e.Time.IsZero() {
		j.Updated = e.Time.UTC()
	}
	if e.Action >= 0 && int(e.Action) < len(b.state) && b.jobOf[e.Action] != key {
		if old := b.jobs[b.jobOf[e.Action]]; old != nil {
			old.Actions--
		}
		b.jobOf[e.Action] = key
		j.Actions++
	}
}

// addInfo attaches an ended action's log to its failure.
func (b *build) addInfo(a *api.ActionInfo) {
	if int(a.ID) >= len(b.state) || b.state[a.ID] != stFailed {
		return
	}
	for i := len(b.failures) - 1; i >= 0; i-- {
		if b.failures[i].ID == a.ID {
			b.failures[i].Log = a.Log
			return
		}
	}
}

// row is the build's line in the list.
func (b *build) row(now time.Time) api.BuildRow {
	r := api.BuildRow{
		ID: b.start.ID, User: b.start.User, Host: b.start.Host, Workspace: b.start.Workspace,
		Targets: b.start.Targets, Started: b.start.Started, Outcome: api.OutcomeRunning,
		Counts: b.counts.apiCounts(false),
	}
	if b.start.Total > r.Counts.Total {
		r.Counts.Total = b.start.Total
	}
	if b.end != nil {
		r.Finished, r.Outcome, r.ExitCode, r.Elapsed = b.end.Finished, b.end.Outcome, b.end.ExitCode, b.end.Elapsed
		if b.end.Counts.Total > 0 {
			r.Counts = b.end.Counts
		} else {
			r.Counts = b.counts.apiCounts(true)
		}
	} else {
		r.Elapsed = int64(now.Sub(b.start.Started))
	}
	return r
}

// view is the build's page.
func (b *build) view(now time.Time) *api.BuildView {
	v := &api.BuildView{
		BuildRow: b.row(now),
		Command:  b.start.Command,
		Version:  b.start.Version,
		Running:  []api.RunningAction{},
		Failures: append([]api.Failure{}, b.failures...),
		Warnings: append([]string{}, b.warnings...),
		Dropped:  b.dropped,
	}
	if b.end != nil {
		v.Error = b.end.Error
		v.CriticalPath = b.end.CriticalPath
	}
	if v.CriticalPath == nil {
		v.CriticalPath = []api.Step{}
	}
	// Failures first, newest first.
	for i, j := 0, len(v.Failures)-1; i < j; i, j = i+1, j-1 {
		v.Failures[i], v.Failures[j] = v.Failures[j], v.Failures[i]
	}
	if b.end == nil {
		for id := range b.running {
			ra := api.RunningAction{ID: id, Target: b.plan.targetOf(id), Mnemonic: b.plan.mnemonicOf(id),
				Waiting: b.state[id] == stWaiting, Where: b.where(id)}
			if b.started[id] != 0 {
				ra.Started = time.Unix(0, b.started[id]).UTC()
			}
			v.Running = append(v.Running, ra)
		}
		sort.Slice(v.Running, func(i, j int) bool {
			a, c := v.Running[i], v.Running[j]
			if !a.Started.Equal(c.Started) {
				return a.Started.Before(c.Started)
			}
			return a.ID < c.ID
		})
		if len(v.Running) > maxRunning {
			v.Running = v.Running[:maxRunning]
		}
	}
	counts := map[[2]string]int{}
	jobs := make([]api.Job, 0, len(b.jobs))
	for _, j := range b.jobs {
		counts[[2]string{j.Executor, j.State}]++
		jobs = append(jobs, *j)
	}
	v.JobCounts = []api.JobCount{}
	for k, n := range counts {
		v.JobCounts = append(v.JobCounts, api.JobCount{Executor: k[0], State: k[1], Count: n})
	}
	sort.Slice(v.JobCounts, func(i, j int) bool {
		a, c := v.JobCounts[i], v.JobCounts[j]
		if a.Executor != c.Executor {
			return a.Executor < c.Executor
		}
		return a.State < c.State
	})
	sort.Slice(jobs, func(i, j int) bool {
		if !jobs[i].Updated.Equal(jobs[j].Updated) {
			return jobs[i].Updated.After(jobs[j].Updated)
		}
		return jobs[i].ID < jobs[j].ID
	})
	if len(jobs) > maxJobs {
		jobs = jobs[:maxJobs]
	}
	v.Jobs = jobs
	return v
}

// where says where a running action runs.
func (b *build) where(id int32) string {
	if s, ok := b.slot[id]; ok {
		return "local slot " + strconv.Itoa(int(s))
	}
	if k, ok := b.jobOf[id]; ok {
		return k[:len(k)-len(b.jobs[k].ID)-1] + " job " + b.jobs[k].ID
	}
	return ""
}

// stateName is what the pages show of an action's state; once the build
// has ended, an action that never ran was skipped.
func (b *build) stateName(id int32) string {
	if int(id) >= len(b.state) {
		return stateNames[stPending]
	}
	st := b.state[id]
	if b.end != nil && (st == stPending || st == stQueued || st == stRunning || st == stWaiting || st == stRetry) {
		return "skipped"
	}
	return stateNames[st]
}
