package batch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec"
)

// Config configures an Engine.
type Config struct {
	Backend Backend
	// Results is the cache the build reads results from (the runner's):
	// the ground truth of which actions a job made.
	Results cache.Cache
	// Upload receives what workers need: the cache the worker command
	// points at (the remote cache, or the shared disk cache).
	Upload cache.CAS
	// Worker is the command a job runs, without the token and the actions:
	// the hepbuild binary, "worker" and its cache flags.
	Worker []string
	// WorkerEnv is set for the worker on the node.
	WorkerEnv map[string]string
	// Dir holds submit files, job logs and the record of jobs in flight; it
	// must be visible from the nodes where the system writes logs there.
	Dir string
	// Name is the job name the batch system shows.
	Name string
	// MaxJobs bounds the jobs in flight (submitted, not ended); default 1000.
	MaxJobs int
	// ActionsPerJob is how many actions one job runs, one after another; default 1.
	ActionsPerJob int
	// Window is how long ready actions gather before they are submitted
	// together; default 2s.
	Window time.Duration
	// PollInterval is the time between two status queries; default 10s.
	PollInterval time.Duration
	// Retries is how often a failed or lost job is resubmitted, for its
	// actions whose results are not in the cache. A job killed over its
	// memory or walltime request is not: that is its actions' failure,
	// which the runner's scheduler retries.
	Retries int
	// MemoryBump multiplies the memory request of an action whose job
	// exceeded its memory, on retry; 0 or 1 means no change.
	MemoryBump float64
	// Options are passed to the backend with every array.
	Options []string
	// Ship are files sent with every job (the backend must be a Shipper).
	Ship []string
	// Warn receives warnings (polling trouble, resubmissions).
	Warn func(string)
}

// Engine is the batch executor: an exec.RemoteExecutor over a Backend.
type Engine struct {
	cfg Config

	mu       sync.Mutex
	pending  []*item
	inflight map[string]*job       // by job id
	adopted  map[cache.Digest]*job // jobs of an earlier hepbuild, by action
	// bumped is the memory request of actions whose job exceeded its
	// memory, raised by MemoryBump for their next run (a retry of the
	// scheduler's, which sees an over-limit kill as the action's failure).
	bumped  map[cache.Digest]int64
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	closed  bool
	seq     int
	stats   Stats
	warned  map[string]bool
}

// Stats counts the engine's calls to the batch system.
type Stats struct {
	Submits, Polls, Histories, Cancels int
	Jobs                               int // jobs submitted
	Actions                            int // actions submitted, resubmissions included
	Resubmitted                        int // actions resubmitted
}

type outcome struct {
	resp *exec.ExecResponse
	err  error
}

// item is one action waiting for, or in, a job.
type item struct {
	req      *exec.ExecRequest
	ref      string
	action   cache.Digest
	request  Request
	attempts int
	done     chan outcome
	ctx      context.Context
	queued   time.Time
	finished bool
	// gathered: the item waited for a window and was considered by a
	// submit; a poll may send it on without another window.
	gathered bool
}

// job is one submitted job.
type job struct {
	ID      string   `json:"id"`
	Token   string   `json:"token"`
	Actions []string `json:"actions"` // action digests
	Log     string   `json:"log"`
	Backend string   `json:"backend"`

	items   []*item
	spec    Job
	running bool
	reason  string // why it is pending, as last shown
}

// recordFile lists the jobs in flight, so that a hepbuild killed or run
// with --detach re-attaches to them instead of submitting them again.
const recordFile = "jobs.json"

// New starts an engine; it re-attaches to the jobs an earlier hepbuild
// recorded in cfg.Dir. Close it when the build ends.
func New(cfg Config) (*Engine, error) {
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 1000
	}
	if cfg.ActionsPerJob <= 0 {
		cfg.ActionsPerJob = 1
	}
	if cfg.Window <= 0 {
		cfg.Window = 2 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = "hepbuild"
	}
	if sh, ok := cfg.Backend.(Shipper); len(cfg.Ship) > 0 && (!ok || !sh.ShipsFiles()) {
		return nil, fmt.Errorf("%s does not send files with its jobs: the nodes must read the worker binary from a shared file system (--worker-binary)", cfg.Backend.Name())
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:      cfg,
		inflight: map[string]*job{},
		adopted:  map[cache.Digest]*job{},
		bumped:   map[cache.Digest]int64{},
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		warned:   map[string]bool{},
	}
	if err := e.load(); err != nil {
		return nil, err
	}
	go e.loop()
	return e, nil
}

// Name is the backend's name.
func (e *Engine) Name() string { return e.cfg.Backend.Name() }

// Stats returns the calls made so far.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Adopted returns how many jobs of an earlier hepbuild are still followed.
func (e *Engine) Adopted() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, j := range e.inflight {
		if len(j.items) == 0 {
			n++
		}
	}
	return n
}

// Execute uploads the action's inputs, waits for it to be grouped into a
// job, submitted and ended, and returns what its result in the cache says.
func (e *Engine) Execute(ctx context.Context, req *exec.ExecRequest) (*exec.ExecResponse, error) {
	a := req.Action
	spec, err := exec.UploadInputs(ctx, e.cfg.Upload, a, req.Key, req.ExecRoot, req.Inputs)
	if err != nil {
		return nil, err
	}
	it := &item{
		req:     req,
		ref:     req.Key.Digest.String() + ":" + spec.String(),
		action:  req.Key.Digest,
		request: requestOf(a),
		done:    make(chan outcome, 1),
		ctx:     ctx,
		queued:  time.Now(),
	}
	e.mu.Lock()
	if m, ok := e.bumped[it.action]; ok && m > it.request.Memory {
		it.request.Memory = m
	}
	if e.closed {
		e.mu.Unlock()
		return nil, errors.New("the batch executor was closed")
	}
	if j, ok := e.adopted[it.action]; ok {
		// A job of an earlier hepbuild runs this very action: wait for it.
		delete(e.adopted, it.action)
		j.items = append(j.items, it)
		e.mu.Unlock()
		e.progress(it, exec.JobSubmitted, j, "")
	} else {
		e.pending = append(e.pending, it)
		e.mu.Unlock()
		if testHookQueued != nil {
			testHookQueued()
		}
		e.progress(it, exec.JobQueued, nil, "")
		e.poke()
	}
	select {
	case o := <-it.done:
		return o.resp, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stagingTime is added to an action's walltime in its job's request: the
// worker fetches inputs and stores outputs around the command, whose own
// walltime the worker enforces exactly (a timed-out action fails with its
// log, as here); the batch system's limit is the safety net.
const stagingTime = 10 * time.Minute

func requestOf(a *exec.Action) Request {
	return Request{CPU: math.Max(1, math.Ceil(a.Extras().Resources.CPU)), Memory: a.Extras().Resources.Memory, Walltime: a.RunTimeout()}
}

// testHookQueued runs between an action's queueing and its poke.
var testHookQueued func()

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) warn(key, msg string) {
	e.mu.Lock()
	seen := e.warned[key]
	e.warned[key] = true
	e.mu.Unlock()
	if !seen && e.cfg.Warn != nil {
		e.cfg.Warn(msg)
	}
}

func (e *Engine) progress(it *item, st exec.JobState, j *job, msg string) {
	if it.req.Progress == nil {
		return
	}
	u := exec.JobUpdate{State: st, Executor: e.Name(), Message: msg}
	if j != nil {
		u.JobID, u.Log = j.ID, j.Log
	}
	it.req.Progress(u)
}

// loop submits gathered actions and polls the jobs in flight.
func (e *Engine) loop() {
	defer close(e.stopped)
	poll := time.NewTicker(e.cfg.PollInterval)
	defer poll.Stop()
	var window <-chan time.Time
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-e.stop; cancel() }()
	for {
		select {
		case <-e.stop:
			return
		case <-e.wake:
			if window == nil {
				window = time.After(e.cfg.Window)
			}
		case <-window:
			window = nil
			e.submit(ctx)
		case <-poll.C:
			e.poll(ctx)
			// Jobs that ended made room: what waited for it goes now,
			// unless new actions are still gathering. An action queued
			// since the last submit has not had its window yet (its poke
			// may not have arrived): it opens one instead of going alone.
			if window == nil {
				if e.fresh() {
					window = time.After(e.cfg.Window)
				} else {
					e.submit(ctx)
				}
			}
		}
	}
}

// fresh reports whether a pending action has not yet waited for a window.
func (e *Engine) fresh() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, it := range e.pending {
		if !it.gathered {
			return true
		}
	}
	return false
}

// classKey groups actions that can share a job: the same request.
func classKey(r Request) string {
	return fmt.Sprintf("%g/%d/%d", r.CPU, r.Memory, r.Walltime)
}

// submit groups the pending actions into jobs and the jobs of one
// resource class into one array, up to MaxJobs in flight.
func (e *Engine) submit(ctx context.Context) {
	e.mu.Lock()
	free := e.cfg.MaxJobs - len(e.inflight)
	var keep []*item
	classes := map[string][]*item{}
	var order []string
	for _, it := range e.pending {
		if it.ctx.Err() != nil {
			continue // the build no longer waits for it
		}
		it.gathered = true
		k := classKey(it.request)
		if _, ok := classes[k]; !ok {
			order = append(order, k)
		}
		classes[k] = append(classes[k], it)
	}
	type plan struct {
		req  Request
		jobs [][]*item
	}
	var plans []plan
	for _, k := range order {
		its := classes[k]
		p := plan{req: its[0].request}
		for len(its) > 0 {
			if free <= 0 {
				keep = append(keep, its...)
				break
			}
			n := min(e.cfg.ActionsPerJob, len(its))
			p.jobs = append(p.jobs, its[:n])
			its = its[n:]
			free--
		}
		if len(p.jobs) > 0 {
			plans = append(plans, p)
		}
	}
	e.pending = keep
	e.mu.Unlock()
	for _, p := range plans {
		e.submitArray(ctx, p.req, p.jobs)
	}
}

func (e *Engine) submitArray(ctx context.Context, req Request, groups [][]*item) {
	e.mu.Lock()
	e.seq++
	seq := e.seq
	e.mu.Unlock()
	dir := filepath.Join(e.cfg.Dir, fmt.Sprintf("%s-%d-%d", time.Now().Format("20060102-150405"), os.Getpid(), seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.failAll(groups, fmt.Errorf("batch folder: %w", err))
		return
	}
	// A job runs its actions one after another: its walltime is theirs
	// added up, and the staging around them.
	if req.Walltime > 0 {
		most := 0
		for _, g := range groups {
			most = max(most, len(g))
		}
		req.Walltime = req.Walltime*time.Duration(most) + stagingTime
	}
	arr := &Array{Name: e.cfg.Name, Dir: dir, Resources: req, Options: e.cfg.Options, Ship: e.cfg.Ship}
	jobs := make([]*job, len(groups))
	for i, g := range groups {
		token := newToken()
		cmd := append(append([]string(nil), e.cfg.Worker...), "--token", token)
		actions := make([]string, len(g))
		for k, it := range g {
			cmd = append(cmd, it.ref)
			actions[k] = it.action.String()
		}
		spec := Job{Command: cmd, Env: e.cfg.WorkerEnv, Log: filepath.Join(dir, "job-"+strconv.Itoa(i)+".log")}
		arr.Jobs = append(arr.Jobs, spec)
		jobs[i] = &job{Token: token, Actions: actions, Log: spec.Log, Backend: e.Name(), items: g, spec: spec}
	}
	// Not cancelled with the engine: the system may have taken the jobs
	// before the submit command printed their ids, and a command killed
	// then leaves them running unknown. Close waits for it (its tools'
	// own timeouts bound it) and cancels the jobs.
	ids, err := e.cfg.Backend.Submit(context.WithoutCancel(ctx), arr)
	e.mu.Lock()
	e.stats.Submits++
	e.mu.Unlock()
	var failed [][]*item
	for i, j := range jobs {
		if i < len(ids) && ids[i] != "" {
			j.ID = ids[i]
			continue
		}
		failed = append(failed, groups[i])
	}
	if len(failed) > 0 {
		if err == nil {
			err = errors.New("the batch system returned no id for the job")
		}
		e.failAll(failed, fmt.Errorf("submitting to %s: %w", e.Name(), err))
	}
	e.mu.Lock()
	for _, j := range jobs {
		if j.ID != "" {
			e.inflight[j.ID] = j
			e.stats.Jobs++
			e.stats.Actions += len(j.items)
		}
	}
	e.mu.Unlock()
	e.save()
	for _, j := range jobs {
		if j.ID == "" {
			continue
		}
		for _, it := range j.items {
			e.progress(it, exec.JobSubmitted, j, "")
		}
	}
}

func (e *Engine) failAll(groups [][]*item, err error) {
	for _, g := range groups {
		for _, it := range g {
			e.deliver(it, outcome{err: err})
		}
	}
}

func (e *Engine) deliver(it *item, o outcome) {
	if it.finished {
		return
	}
	it.finished = true
	it.done <- o
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// poll asks for every job in flight with one query, then accounting for
// those the queue no longer lists, and settles the jobs that ended.
func (e *Engine) poll(ctx context.Context) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.inflight))
	for id := range e.inflight {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	sort.Strings(ids)
	st, err := e.cfg.Backend.Poll(ctx, ids)
	e.mu.Lock()
	e.stats.Polls++
	e.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			e.warn("poll", fmt.Sprintf("asking %s for the state of %d jobs failed (trying again every %s): %v", e.Name(), len(ids), e.cfg.PollInterval, err))
		}
		return
	}
	var gone []string
	for _, id := range ids {
		if _, ok := st[id]; !ok {
			gone = append(gone, id)
		}
	}
	if h, ok := e.cfg.Backend.(Historian); ok && len(gone) > 0 {
		hist, err := h.History(ctx, gone)
		e.mu.Lock()
		e.stats.Histories++
		e.mu.Unlock()
		if err == nil {
			for id, s := range hist {
				st[id] = s
			}
		}
		// Accounting off or down: the cache decides, below.
	}
	var held []string
	var ended []*job
	var started [][]*item
	var startedJob []*job
	var endedStatus []Status
	var waiting [][]*item
	var waitingJob []*job
	e.mu.Lock()
	for _, id := range ids {
		j := e.inflight[id]
		s, listed := st[id]
		switch {
		case listed && s.State == StatePending:
			// A job that does not start says why (a hold, a limit): the
			// build shows it rather than "submitted" for ever.
			if s.Reason != j.reason {
				j.reason = s.Reason
				waiting = append(waiting, append([]*item(nil), j.items...))
				waitingJob = append(waitingJob, j)
			}
		case listed && s.State == StateRunning:
			if !j.running {
				j.running = true
				started = append(started, append([]*item(nil), j.items...))
				startedJob = append(startedJob, j)
			}
		case listed && s.State == StateHeld:
			held = append(held, id)
			ended, endedStatus = append(ended, j), append(endedStatus, s)
		default:
			if !listed {
				s = Status{State: StateDone, Reason: "no longer listed by " + e.Name()}
			}
			ended, endedStatus = append(ended, j), append(endedStatus, s)
		}
	}
	e.mu.Unlock()
	for i, its := range waiting {
		for _, it := range its {
			e.progress(it, exec.JobSubmitted, waitingJob[i], waitingJob[i].reason)
		}
	}
	for i, its := range started {
		for _, it := range its {
			e.progress(it, exec.JobRunning, startedJob[i], "")
		}
	}
	if len(held) > 0 {
		// A held job will not run until someone releases it: it is
		// removed and its actions resubmitted, with the reason shown.
		_ = e.cfg.Backend.Cancel(ctx, held)
		e.mu.Lock()
		e.stats.Cancels++
		e.mu.Unlock()
	}
	// Logs first, then the system forgets the jobs, then the actions are
	// settled: once the last one is, the build may end and stop the engine.
	var clean []string
	for _, j := range ended {
		if r, ok := e.cfg.Backend.(Retriever); ok {
			_ = r.Retrieve(ctx, j.ID, j.spec)
		}
		clean = append(clean, j.ID)
	}
	if c, ok := e.cfg.Backend.(Cleaner); ok && len(clean) > 0 {
		_ = c.Clean(ctx, clean)
	}
	for i, j := range ended {
		e.settle(ctx, j, endedStatus[i])
	}
	if len(ended) > 0 {
		e.save()
	}
}

// settle decides, from the cache, what became of each action of a job
// that ended: done, failed (with its record), or to be resubmitted.
func (e *Engine) settle(ctx context.Context, j *job, s Status) {
	e.mu.Lock()
	delete(e.inflight, j.ID)
	for _, a := range j.Actions {
		if d, err := cache.ParseDigest(a); err == nil && e.adopted[d] == j {
			delete(e.adopted, d)
		}
	}
	items := j.items
	e.mu.Unlock()
	where := e.Name() + " job " + j.ID
	var again []*item
	for _, it := range items {
		if it.finished || it.ctx.Err() != nil {
			continue
		}
		if res, err := e.cfg.Results.GetActionResult(ctx, it.action); err == nil && res.GetExitCode() == 0 && e.complete(ctx, res) {
			e.progress(it, exec.JobFinished, j, "")
			e.deliver(it, outcome{resp: &exec.ExecResponse{ActionResult: res, Result: exec.ExecResult{Strategy: e.Name()}, Where: where, Queued: 0}})
			continue
		}
		rec, recErr := e.cfg.Results.GetActionResult(ctx, exec.FailureKey(it.action, j.Token))
		if recErr == nil && !s.OverMemory && !s.OverTime {
			e.progress(it, exec.JobFinished, j, "")
			e.deliver(it, outcome{resp: e.failed(ctx, it, rec, where)})
			continue
		}
		// No record (the job was lost, or killed with its worker), or the
		// batch system killed what the action ran for exceeding the job's
		// request: the job's failure, resubmitted while retries last.
		reason := describe(s, it.request)
		if s.OverMemory && e.cfg.MemoryBump > 1 && it.request.Memory > 0 {
			e.mu.Lock()
			e.bumped[it.action] = int64(float64(it.request.Memory) * e.cfg.MemoryBump)
			e.mu.Unlock()
		}
		// A job killed over its request is the action's failure, which the
		// scheduler retries (--retries) with the bumped request: resubmitted
		// here as well, every retry of the scheduler's would bring a new
		// round of the engine's.
		if it.attempts < e.cfg.Retries && !s.OverMemory && !s.OverTime {
			it.attempts++
			e.progress(it, exec.JobFailed, j, reason)
			if e.cfg.Warn != nil {
				e.cfg.Warn(fmt.Sprintf("%s: %s; resubmitting %s (attempt %d of %d)", where, reason, it.req.Action.Describe(), it.attempts+1, e.cfg.Retries+1))
			}
			again = append(again, it)
			continue
		}
		e.progress(it, exec.JobFailed, j, reason)
		if s.OverMemory || s.OverTime {
			// The action asked for too little: its failure, not the system's.
			if recErr == nil {
				e.failed(ctx, it, rec, where)
			} else {
				writeJobLog(it.req.LogPath, j.Log, where+": "+reason)
			}
			e.deliver(it, outcome{resp: &exec.ExecResponse{Result: exec.ExecResult{ExitCode: -1, Failure: reason, Strategy: e.Name()}, Where: where}})
			continue
		}
		writeJobLog(it.req.LogPath, j.Log, where+": "+reason)
		msg := fmt.Sprintf("%s: %s, and its actions' results are not in the cache", where, reason)
		if t := lastLines(j.Log, 5); t != "" {
			msg += "; the end of its log " + j.Log + ":\n" + t
		} else {
			msg += "; its log " + j.Log + " is empty or missing"
		}
		e.deliver(it, outcome{err: errors.New(msg)})
	}
	if len(again) > 0 {
		e.mu.Lock()
		e.pending = append(e.pending, again...)
		e.stats.Resubmitted += len(again)
		e.mu.Unlock()
		e.poke()
	}
}

// complete reports whether every output blob of a result is in the cache:
// a cache that keeps results whose blobs it evicted (the HTTP protocol)
// may hold the very result that could not be restored, which sent the
// action here; that is no sign that the job ran it.
func (e *Engine) complete(ctx context.Context, res *repb.ActionResult) bool {
	var ds []cache.Digest
	for _, f := range res.GetOutputFiles() {
		ds = append(ds, cache.FromProto(f.GetDigest()))
	}
	for _, d := range res.GetOutputDirectories() {
		ds = append(ds, cache.FromProto(d.GetTreeDigest()))
	}
	for _, d := range ds {
		if ok, err := e.cfg.Results.Contains(ctx, d); err != nil || !ok {
			return false
		}
	}
	return true
}

// describe says why a job ended without results.
func describe(s Status, r Request) string {
	switch {
	case s.OverMemory && r.Memory > 0:
		return fmt.Sprintf("exceeded its memory request of %d MB", (r.Memory+(1<<20)-1)>>20) + reasonSuffix(s)
	case s.OverMemory:
		return "exceeded the default memory request of the batch system" + reasonSuffix(s)
	case s.OverTime && r.Walltime > 0:
		return "exceeded its walltime request of " + r.Walltime.String() + reasonSuffix(s)
	case s.OverTime:
		return "exceeded the default walltime of the batch system" + reasonSuffix(s)
	case s.State == StateHeld:
		return "was held" + reasonSuffix(s)
	case s.State == StateFailed:
		return "failed" + reasonSuffix(s)
	}
	if s.Reason != "" {
		return "ended (" + s.Reason + ")"
	}
	return "ended"
}

func reasonSuffix(s Status) string {
	var parts []string
	if s.Reason != "" {
		parts = append(parts, s.Reason)
	}
	if s.ExitCode != 0 {
		parts = append(parts, "exit code "+strconv.Itoa(s.ExitCode))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// failed turns a worker's failure record into the action's failed run,
// with its log written where the runner shows it from.
func (e *Engine) failed(ctx context.Context, it *item, rec *repb.ActionResult, where string) *exec.ExecResponse {
	if d := cache.FromProto(rec.GetStdoutDigest()); !d.IsZero() && it.req.LogPath != "" {
		if b, err := exec.ReadBlob(ctx, e.cfg.Results, d, 8<<20); err == nil {
			_ = os.MkdirAll(filepath.Dir(it.req.LogPath), 0o755)
			_ = os.WriteFile(it.req.LogPath, b, 0o644)
		}
	}
	res := exec.ExecResult{ExitCode: int(rec.GetExitCode()), Strategy: e.Name() + " (" + where + ")"}
	if res.ExitCode < 0 {
		res.Failure = "failed on " + where
	}
	return &exec.ExecResponse{Result: res, Where: where}
}

// lastLines returns the last n lines of a file, indented, read from its
// last 64 KiB.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.TrimSpace(strings.Join(lines, "\n"))
	if s == "" {
		return ""
	}
	return "  | " + strings.ReplaceAll(s, "\n", "\n  | ")
}

// writeJobLog puts the end of the job's batch log, after a line saying
// what happened, where the runner shows a failed action's log from.
func writeJobLog(logPath, jobLog, what string) {
	if logPath == "" {
		return
	}
	msg := "hepbuild: " + what + "\n"
	if b, err := os.ReadFile(jobLog); err == nil {
		const max = 64 << 10
		if len(b) > max {
			b = b[len(b)-max:]
		}
		msg += "--- end of the job's log " + jobLog + " ---\n" + string(b)
	}
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	_ = os.WriteFile(logPath, []byte(msg), 0o644)
}

// Close stops the engine. Unless detach, every job of this build in
// flight (InFlight) is cancelled with one call and forgotten; with detach
// they go on and stay recorded for the next hepbuild to re-attach to, as
// do, always, the jobs of an earlier build that this one never needed.
func (e *Engine) Close(ctx context.Context, detach bool) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	<-e.stopped
	e.mu.Lock()
	ids := e.own()
	pending := e.pending
	e.pending = nil
	e.mu.Unlock()
	for _, it := range pending {
		e.deliver(it, outcome{err: context.Canceled})
	}
	if detach || len(ids) == 0 {
		e.save()
		return nil
	}
	sort.Strings(ids)
	err := e.cfg.Backend.Cancel(ctx, ids)
	if c, ok := e.cfg.Backend.(Cleaner); ok && err == nil {
		_ = c.Clean(ctx, ids) // a system that keeps killed jobs (ARC) forgets them
	}
	e.mu.Lock()
	e.stats.Cancels++
	if err == nil {
		for _, id := range ids {
			delete(e.inflight, id)
		}
	}
	e.mu.Unlock()
	e.save()
	if err != nil {
		return fmt.Errorf("cancelling %d %s jobs (%s): %w", len(ids), e.Name(), strings.Join(firstN(ids, 5), " "), err)
	}
	return nil
}

// InFlight lists the ids of this build's jobs not yet ended: those it
// submitted and those of an earlier build whose actions it asked for.
func (e *Engine) InFlight() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.own()
}

// own lists InFlight's jobs, sorted; e.mu is held. A job of an earlier
// build that this one never needed has no items: it is not this build's
// to cancel, and stays recorded for the build that wants it.
func (e *Engine) own() []string {
	ids := make([]string, 0, len(e.inflight))
	for id, j := range e.inflight {
		if len(j.items) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}

// save writes the jobs in flight to the record, atomically.
func (e *Engine) save() {
	e.mu.Lock()
	jobs := make([]*job, 0, len(e.inflight))
	for _, j := range e.inflight {
		jobs = append(jobs, j)
	}
	e.mu.Unlock()
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })
	p := filepath.Join(e.cfg.Dir, recordFile)
	if len(jobs) == 0 {
		_ = os.Remove(p)
		return
	}
	b, err := json.MarshalIndent(jobs, "", " ")
	if err != nil {
		return
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, p)
	}
}

// load re-attaches to the jobs an earlier hepbuild recorded: they are
// polled like any other, and an action asked for again waits for its job.
func (e *Engine) load() error {
	b, err := os.ReadFile(filepath.Join(e.cfg.Dir, recordFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var jobs []*job
	if err := json.Unmarshal(b, &jobs); err != nil {
		if e.cfg.Warn != nil {
			e.cfg.Warn(fmt.Sprintf("ignoring the damaged record of batch jobs %s: %v", filepath.Join(e.cfg.Dir, recordFile), err))
		}
		return nil
	}
	for _, j := range jobs {
		if j.ID == "" || j.Backend != e.Name() {
			continue
		}
		j.spec = Job{Log: j.Log}
		e.inflight[j.ID] = j
		for _, a := range j.Actions {
			if d, err := cache.ParseDigest(a); err == nil {
				e.adopted[d] = j
			}
		}
	}
	return nil
}
