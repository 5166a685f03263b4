package exec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultBackoff is the delay before the first retry when Scheduler.Backoff is zero.
const DefaultBackoff = time.Second

// maxBackoff caps the doubling retry delay: a flaky grid job should be
// resubmitted within a minute, not after an hour of doubling.
const maxBackoff = time.Minute

// Scheduler runs the actions of one build in dependency order, at most Jobs
// at a time and within the machine's Capacity, most critical first.
//
// Concurrency: Run is driven by one dispatcher goroutine (the caller's) that
// owns all scheduling state; each attempt of an action runs Work on its own
// goroutine, which reports back over a channel. Events are sent only from the
// dispatcher, so a sink sees them in order. Run returns only after every
// goroutine it started has ended. A Scheduler is not modified by Run: once
// configured, it is safe for concurrent use.
type Scheduler struct {
	// Jobs bounds how many actions run at once (-j); zero means runtime.NumCPU().
	// Capacity bounds them too: an action takes 1 cpu unless it declares
	// otherwise, so -j above the cpu capacity needs a larger Capacity.CPU.
	Jobs int
	// Capacity is the cpu and memory of the machine (--local-resources); a
	// zero CPU means runtime.NumCPU(), a zero Memory the physical memory
	// (unbounded if unknown). Walltime is ignored.
	Capacity Resources
	// Retries is added to every action's own Retries (--retries).
	Retries int
	// Backoff is the delay before the first retry; it doubles with every
	// further attempt, up to a minute. Zero means DefaultBackoff.
	Backoff time.Duration
	// KeepGoing (-k) runs every action that does not depend on a failed one;
	// without it the first failure stops new actions from starting.
	KeepGoing bool
	// Events receives every state change; nil means none.
	Events EventSink
	// Lookahead lets up to this many actions beyond Jobs start without a
	// job slot, to look their results up in the cache: a remote cache's
	// round trips then overlap instead of each holding one of the few
	// slots. Such an action takes a slot (and its cpu and memory) only when
	// it must run its command, through AcquireSlot; waiting ones get slots
	// before new actions start, most critical first. Zero means none.
	Lookahead int
	// Offloaded says which actions run away from this machine (a batch
	// system, a remote executor: Runner.Offloaded): they start without a
	// job slot, beyond -j and Lookahead, hold no local cpu or memory, and
	// their walltime is the far side's to enforce. Should one run here
	// after all, it waits for a slot through AcquireSlot. Nil means none.
	Offloaded func(*Action) bool
	// Estimate guesses an action's duration (e.g. from the last build) to
	// order the ready queue by critical path. Nil, or zero for an action,
	// means unknown: every action weighs the same, or the mean of the known.
	Estimate func(*Action) time.Duration
}

// Step is one action on the critical path and how long it took, from its
// first start to its last end (retries and their delays included).
type Step struct {
	Action   *Action
	Duration time.Duration
}

// Summary is what a build did. It is a plain value: not safe for concurrent
// writes, free to read from any goroutine after Run returns.
type Summary struct {
	Total    int
	Executed int
	Cached   int
	UpToDate int
	Failed   int
	// Skipped were not attempted, or interrupted: a dependency failed, an
	// earlier failure stopped the build (no -k), or the build was cancelled.
	Skipped int
	Elapsed time.Duration
	// CommandCPU is the CPU time the commands that ran here used (see
	// Runner.CommandCPU); the caller fills it in.
	CommandCPU time.Duration
	// Failures are the actions that ran and failed, in the order they failed.
	Failures []*ActionError
	// CriticalPath is the chain of actions, each depending on the one before,
	// whose durations sum highest; CriticalTime is that sum.
	CriticalPath []Step
	CriticalTime time.Duration
	// Outcomes[i] is the outcome of the i-th action passed to Run.
	Outcomes []Outcome
}

// BuildFailedError says that actions ran and failed; Run returns it after
// the build ended. It unwraps to every *ActionError.
type BuildFailedError struct {
	Failures []*ActionError
}

func (e *BuildFailedError) Error() string {
	if len(e.Failures) == 1 {
		return e.Failures[0].Error()
	}
	return fmt.Sprintf("%d actions failed, the first: %v", len(e.Failures), e.Failures[0])
}

func (e *BuildFailedError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// Action states during a run.
const (
	stateWaiting uint8 = iota // some dependency has not succeeded yet
	stateReady                // in the ready queue
	stateRunning              // an attempt is running
	stateBackoff              // waiting to retry
	stateDone                 // outcome known
)

type result struct {
	i       int32
	outcome Outcome
	err     error
	took    time.Duration
}

// run is the state of one Scheduler.Run. Every field is owned by the
// dispatcher goroutine except those marked otherwise.
type run struct {
	s       *Scheduler
	ctx     context.Context // the caller's: running work sees it cancelled
	stop    context.Context // cancelled when no new work may start: ends backoff waits
	halt    context.CancelFunc
	work    Work
	events  EventSink
	actions []*Action
	t0      time.Time

	// The dependency graph in compressed rows: the dependencies of action i
	// are deps[depOff[i]:depOff[i+1]], its dependents likewise in rdeps.
	depOff, deps   []int32
	rdepOff, rdeps []int32
	order          []int32 // topological, dependencies first

	prio     []int64 // critical path estimate below and including the action
	pending  []int32 // dependencies not yet succeeded
	state    []uint8
	attempts []int32
	started  []time.Duration // first start, since t0
	took     []time.Duration // first start to last end
	outcome  []Outcome
	lastErr  map[int32]*ActionError // actions in backoff
	names    []eventNames           // made on first use, with an event sink only

	ready               readyQueue
	offReady            readyQueue // ready actions that run away from here (Offloaded)
	offload             []bool     // Scheduler.Offloaded, per action; nil without
	jobs                int
	capCPU, capMem      int64  // millicpus, bytes (0: unbounded)
	running, backoffs   int    // holding a job slot; waiting to retry
	inflight            int    // started and not finished
	slotFreed           []bool // the current attempt gave its job slot back
	usedCPU, usedMem    int64
	stopping, cancelled bool
	failures            []*ActionError
	infraErr            error
	results             chan result // written by attempt goroutines
	freed               chan int32  // written by attempt goroutines (CommandDone)
	want                chan int32  // written by attempt goroutines (AcquireSlot)
	unslot              chan int32  // written by attempt goroutines (Unslotted)
	lookups             int         // started without a slot and not granted one yet
	lookup              []bool      // the current attempt started without a slot
	grant               []chan bool // answers AcquireSlot: true with a slot, false when none will come
	waiting             readyQueue  // lookups that asked for a slot
	retry               chan int32  // written by backoff goroutines
	backoff             time.Duration
}

// Run builds actions, the needed set of g (g.Needed gives it). An action is
// ready when every action in the set producing one of its inputs has
// succeeded; inputs made by actions outside the set are taken as present.
//
// The returned Summary is never nil unless the graph itself is invalid (a
// cycle, an action listed twice). The error is nil when every action
// succeeded; otherwise, by precedence: an error wrapping ctx.Err() (wraps
// context.Canceled on interrupt), an infrastructure error of Work, or a
// *BuildFailedError.
func (s *Scheduler) Run(ctx context.Context, g *Graph, actions []*Action, work Work) (*Summary, error) {
	r := &run{s: s, ctx: ctx, work: work, events: s.Events, actions: actions, t0: time.Now()}
	if err := r.index(g); err != nil {
		return nil, err
	}
	r.configure()
	r.stop, r.halt = context.WithCancel(ctx)
	defer r.halt()
	r.emit(Event{Type: EventBuildStarted, Total: len(actions)})
	r.warnOversized()
	r.prioritise()
	for _, i := range r.order {
		if r.pending[i] == 0 {
			r.enqueue(i)
		}
	}
	r.loop()
	return r.summarise()
}

// index builds the compressed dependency graph and a topological order.
func (r *run) index(g *Graph) error {
	n := len(r.actions)
	if n > math.MaxInt32 {
		return fmt.Errorf("too many actions: %d", n)
	}
	pos := make(map[*Action]int32, n)
	for i, a := range r.actions {
		if _, dup := pos[a]; dup {
			return fmt.Errorf("action %s %s listed twice", a.Mnemonic, a.Owner)
		}
		pos[a] = int32(i)
	}
	r.depOff = make([]int32, n+1)
	stamp := make([]int32, n) // stamp[d] == i+1: d already counted as a dependency of i
	ndependents := make([]int32, n+1)
	for i, a := range r.actions {
		if g != nil {
			for _, in := range a.Inputs {
				if in.Source {
					continue
				}
				p, ok := g.Producer[in.Path]
				if !ok {
					continue
				}
				d, ok := pos[p]
				if !ok || d == int32(i) || stamp[d] == int32(i)+1 {
					continue
				}
				stamp[d] = int32(i) + 1
				r.deps = append(r.deps, d)
				ndependents[d+1]++
			}
		}
		r.depOff[i+1] = int32(len(r.deps))
	}
	// Dependents: count per dependency (ndependents, shifted by one), prefix-sum, fill.
	r.rdepOff = ndependents
	for i := 1; i <= n; i++ {
		r.rdepOff[i] += r.rdepOff[i-1]
	}
	r.rdeps = make([]int32, len(r.deps))
	fill := make([]int32, n)
	copy(fill, r.rdepOff[:n])
	for i := 0; i < n; i++ {
		for _, d := range r.deps[r.depOff[i]:r.depOff[i+1]] {
			r.rdeps[fill[d]] = int32(i)
			fill[d]++
		}
	}
	// Kahn's algorithm; the input order is kept among independent actions.
	r.pending = make([]int32, n)
	left := make([]int32, n)
	r.order = make([]int32, 0, n)
	for i := 0; i < n; i++ {
		r.pending[i] = r.depOff[i+1] - r.depOff[i]
		left[i] = r.pending[i]
		if left[i] == 0 {
			r.order = append(r.order, int32(i))
		}
	}
	for k := 0; k < len(r.order); k++ {
		i := r.order[k]
		for _, d := range r.rdeps[r.rdepOff[i]:r.rdepOff[i+1]] {
			if left[d]--; left[d] == 0 {
				r.order = append(r.order, d)
			}
		}
	}
	if len(r.order) < n {
		for i := range left {
			if left[i] > 0 {
				a := r.actions[i]
				return fmt.Errorf("%s: %s: action %s is part of a dependency cycle", a.Pos, a.Owner, a.Mnemonic)
			}
		}
	}
	return nil
}

func (r *run) configure() {
	n := len(r.actions)
	r.jobs = r.s.Jobs
	if r.jobs <= 0 {
		r.jobs = runtime.NumCPU()
	}
	cpu := r.s.Capacity.CPU
	if cpu <= 0 {
		cpu = float64(runtime.NumCPU())
	}
	r.capCPU = milliCPU(cpu)
	r.capMem = r.s.Capacity.Memory
	if r.capMem <= 0 {
		r.capMem = physicalMemory()
	}
	r.backoff = r.s.Backoff
	if r.backoff <= 0 {
		r.backoff = DefaultBackoff
	}
	r.state = make([]uint8, n)
	r.attempts = make([]int32, n)
	r.started = make([]time.Duration, n)
	r.took = make([]time.Duration, n)
	r.outcome = make([]Outcome, n)
	r.lastErr = map[int32]*ActionError{}
	r.results = make(chan result, r.jobs)
	r.freed = make(chan int32)
	r.want = make(chan int32)
	r.unslot = make(chan int32)
	r.lookup = make([]bool, n)
	r.waiting.prio = nil // set by prioritise
	if r.s.Offloaded != nil {
		r.offload = make([]bool, n)
		for i, a := range r.actions {
			r.offload[i] = r.s.Offloaded(a)
		}
	}
	r.slotFreed = make([]bool, n)
	r.retry = make(chan int32)
}

// prioritise computes, for every action, the estimated length of the longest
// chain of dependents starting with it: running that chain's head first keeps
// the end of the build from waiting on one long tail.
func (r *run) prioritise() {
	n := len(r.actions)
	weight := make([]int64, n)
	for i := range weight {
		weight[i] = 1
	}
	if r.s.Estimate != nil {
		var sum, known int64
		for i, a := range r.actions {
			if d := r.s.Estimate(a); d > 0 {
				weight[i] = int64(d)
				sum += int64(d)
				known++
			} else {
				weight[i] = 0
			}
		}
		mean := int64(1)
		if known > 0 {
			mean = max(sum/known, 1)
		}
		for i := range weight {
			if weight[i] == 0 {
				weight[i] = mean
			}
		}
	}
	r.prio = make([]int64, n)
	for k := n - 1; k >= 0; k-- {
		i := r.order[k]
		var below int64
		for _, d := range r.rdeps[r.rdepOff[i]:r.rdepOff[i+1]] {
			below = max(below, r.prio[d])
		}
		r.prio[i] = weight[i] + below
	}
	r.ready.prio = r.prio
	r.waiting.prio = r.prio
	r.offReady.prio = r.prio
}

// request is what action i takes from the machine while it runs, clamped to
// the capacity so that an oversized action runs alone instead of never.
func (r *run) request(i int32) (cpu, mem int64) {
	res := r.actions[i].Extras().Resources
	cpu = milliCPU(res.CPU)
	if res.CPU <= 0 {
		cpu = 1000
	}
	cpu = min(cpu, r.capCPU)
	if r.capMem > 0 {
		mem = min(max(res.Memory, 0), r.capMem)
	}
	return cpu, mem
}

func (r *run) warnOversized() {
	if r.events == nil {
		return
	}
	for i, a := range r.actions {
		if r.offload != nil && r.offload[i] {
			continue // the batch system's machines, not this one, run it
		}
		var over []string
		if a.Extras().Resources.CPU > float64(r.capCPU)/1000 {
			over = append(over, fmt.Sprintf("%g cpus, more than the %g available", a.Extras().Resources.CPU, float64(r.capCPU)/1000))
		}
		if r.capMem > 0 && a.Extras().Resources.Memory > r.capMem {
			over = append(over, fmt.Sprintf("%s of memory, more than the %s available", formatBytes(a.Extras().Resources.Memory), formatBytes(r.capMem)))
		}
		if over != nil {
			e := r.actionEvent(EventWarning, int32(i))
			e.Message = "asks for " + strings.Join(over, " and ") + "; it will run alone"
			r.emit(e)
		}
	}
}

func (r *run) enqueue(i int32) {
	r.state[i] = stateReady
	if r.offload != nil && r.offload[i] {
		r.offReady.push(i)
	} else {
		r.ready.push(i)
	}
	if r.events != nil {
		r.emit(r.actionEvent(EventActionQueued, i))
	}
}

// loop dispatches until nothing runs and nothing more may start.
func (r *run) loop() {
	ctxDone := r.ctx.Done()
	for {
		// Lookups that must run their command come first: they started
		// before anything still in the ready queue.
		for r.waiting.len() > 0 {
			i := r.waiting.peek()
			if r.stopping || r.cancelled {
				r.waiting.pop()
				r.unlookup(i)
				r.grant[i] <- false
				continue
			}
			cpu, mem := r.request(i)
			if r.running >= r.jobs || r.usedCPU+cpu > r.capCPU || (r.capMem > 0 && r.usedMem+mem > r.capMem) {
				break
			}
			r.waiting.pop()
			r.unlookup(i)
			r.take(i, cpu, mem)
			r.grant[i] <- true
		}
		for !r.stopping && !r.cancelled && r.waiting.len() == 0 && r.ready.len() > 0 && r.running < r.jobs {
			i := r.ready.peek()
			cpu, mem := r.request(i)
			// Strict priority: when the most critical action does not fit, wait
			// for resources rather than let smaller ones starve it.
			if r.usedCPU+cpu > r.capCPU || (r.capMem > 0 && r.usedMem+mem > r.capMem) {
				break
			}
			if r.ctx.Err() != nil {
				r.cancel()
				break
			}
			r.ready.pop()
			r.start(i, cpu, mem)
		}
		for !r.stopping && !r.cancelled && r.ready.len() > 0 && r.lookups < r.s.Lookahead && r.ctx.Err() == nil {
			r.startLookup(r.ready.pop())
		}
		for !r.stopping && !r.cancelled && r.offReady.len() > 0 && r.ctx.Err() == nil {
			r.startWithoutSlot(r.offReady.pop()) // not a lookup: Lookahead does not bound it
		}
		if r.inflight == 0 && r.backoffs == 0 && (r.ready.len()+r.offReady.len() == 0 || r.stopping || r.cancelled) {
			return
		}
		select {
		case res := <-r.results:
			r.finish(res)
		case i := <-r.freed:
			r.freeSlot(i)
		case i := <-r.want:
			r.waiting.push(i)
		case i := <-r.unslot:
			// The action waits for another build: its slot goes to the
			// next, and it asks for one again (AcquireSlot) should it run
			// its command after all. The attempt reads grant[i] only after
			// its request went through want, which this loop receives
			// after the write below.
			r.freeSlot(i)
			r.grantChan(i)
		case i := <-r.retry:
			r.resume(i)
		case <-ctxDone:
			ctxDone = nil
			r.cancel()
		}
	}
}

func (r *run) cancel() {
	r.cancelled = true
	r.halt()
}

func (r *run) start(i int32, cpu, mem int64) {
	r.take(i, cpu, mem)
	r.begin(i)
}

// unlook ends a lookup's count against Lookahead; offloaded actions,
// which also start without a slot, never counted.
func (r *run) unlook(i int32) {
	if r.offload == nil || !r.offload[i] {
		r.lookups--
	}
}

// startLookup starts the action without a job slot (see Lookahead).
func (r *run) startLookup(i int32) {
	r.lookups++
	r.startWithoutSlot(i)
}

// startWithoutSlot starts the action holding no job slot: it asks for one
// through AcquireSlot should it run its command here.
func (r *run) startWithoutSlot(i int32) {
	r.lookup[i] = true
	r.slotFreed[i] = true // none held
	r.grantChan(i)
	r.begin(i)
}

// grantChan makes the channel that answers the action's AcquireSlot.
func (r *run) grantChan(i int32) {
	if r.grant == nil {
		r.grant = make([]chan bool, len(r.actions))
	}
	if r.grant[i] == nil {
		r.grant[i] = make(chan bool, 1)
	}
}

// unlookup ends the lookup state of an action that asked for a slot; one
// that gave its slot back to wait (Unslotted) never was a lookup.
func (r *run) unlookup(i int32) {
	if r.lookup[i] {
		r.unlook(i)
		r.lookup[i] = false
	}
}

// take gives the action a job slot and its cpu and memory.
func (r *run) take(i int32, cpu, mem int64) {
	r.running++
	r.slotFreed[i] = false
	r.usedCPU += cpu
	r.usedMem += mem
}

func (r *run) begin(i int32) {
	r.inflight++
	r.state[i] = stateRunning
	r.attempts[i]++
	if r.attempts[i] == 1 {
		r.started[i] = time.Since(r.t0)
	}
	if r.events != nil {
		e := r.actionEvent(EventActionStarted, i)
		e.Attempt = int(r.attempts[i])
		r.emit(e)
	}
	go r.attempt(i)
}

// freeSlot gives the action's job slot and resources back, once per attempt.
func (r *run) freeSlot(i int32) {
	if r.slotFreed[i] {
		return
	}
	r.slotFreed[i] = true
	cpu, mem := r.request(i)
	r.running--
	r.usedCPU -= cpu
	r.usedMem -= mem
}

// attemptKey is the context key of an attempt's job slot (slot): what
// CommandDone, AcquireSlot and Unslotted work on.
type attemptKey struct{}

// slot is the job slot of one attempt of action i, and its walltime.
// The attempt's Work uses it; the mutex guards against a Work that calls
// CommandDone from another goroutine.
type slot struct {
	r     *run
	i     int32
	limit time.Duration // the action's walltime; 0 for none
	mu    sync.Mutex
	held  bool // holds a job slot (and its cpu and memory)
	// acquire says that the command must wait for a slot (AcquireSlot):
	// the attempt started without one, or gave its slot back to wait for
	// another build (Unslotted).
	acquire bool
	// timed is the context whose deadline is the walltime now running;
	// nil while none runs (before a slot, or during a wait).
	timed context.Context
	stops []func() // cancels of the contexts made for the attempt
}

func (s *slot) onEnd(f func()) {
	s.mu.Lock()
	s.stops = append(s.stops, f)
	s.mu.Unlock()
}

// CommandDone tells the scheduler that the action's command has ended, so
// that its job slot and its cpu and memory go to the next action while
// this one's outputs are checked and stored: -j bounds the commands that
// run at once, not hepbuild's own work around them. It does nothing
// outside a Scheduler's Work, and when the action holds no slot (a second
// call, say).
func CommandDone(ctx context.Context) {
	s, ok := ctx.Value(attemptKey{}).(*slot)
	if !ok {
		return
	}
	s.mu.Lock()
	held := s.held
	s.held = false
	s.mu.Unlock()
	if held {
		s.r.freed <- s.i
	}
}

// errNoSlot ends a lookup whose command may no longer start (the build
// is stopping): the action is skipped, not failed.
var errNoSlot = errors.New("the build stopped before the action could run")

// AcquireSlot waits, in an action started without a job slot (see
// Scheduler.Lookahead) or that gave its slot back (Unslotted), for the
// slot its command needs, and returns the context the command must run
// under: the action's walltime counts from here. Anywhere else it returns
// ctx at once.
func AcquireSlot(ctx context.Context) (context.Context, error) {
	s, ok := ctx.Value(attemptKey{}).(*slot)
	if !ok {
		return ctx, nil
	}
	s.mu.Lock()
	acquire := s.acquire
	s.mu.Unlock()
	if !acquire {
		return ctx, nil
	}
	r := s.r
	select {
	case r.want <- s.i:
	case <-r.stop.Done():
		return ctx, errNoSlot
	case <-ctx.Done():
		return ctx, ctx.Err()
	}
	if !<-r.grant[s.i] {
		return ctx, errNoSlot
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held, s.acquire = true, false
	if s.limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.limit)
		s.timed = ctx
		s.stops = append(s.stops, cancel)
	}
	return ctx, nil
}

// Unslotted returns the context for a wait that is not the action's work
// (another build of the group runs the same key, see Coordinator): it has
// the values of ctx but no walltime, and it ends when the build is
// cancelled or stops starting actions (context.Cause is then the build's
// error or errNoSlot). yield gives the action's job slot back for the
// wait, so that a wait never holds one of the -j slots: after it,
// AcquireSlot on wctx waits for a slot again and starts the walltime
// afresh, so that the wait does not count in it either. Outside a
// Scheduler's Work, wctx is ctx and yield does nothing.
func Unslotted(ctx context.Context) (wctx context.Context, yield func()) {
	s, ok := ctx.Value(attemptKey{}).(*slot)
	if !ok {
		return ctx, func() {}
	}
	r := s.r
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(r.stop, func() {
		if err := r.ctx.Err(); err != nil {
			cancel(err)
			return
		}
		cancel(errNoSlot)
	})
	s.onEnd(func() { stop(); cancel(nil) })
	var once sync.Once
	return wctx, func() {
		once.Do(func() {
			s.mu.Lock()
			held := s.held
			if held {
				s.held, s.acquire, s.timed = false, true, nil
			}
			s.mu.Unlock()
			if held {
				r.unslot <- s.i
			}
		})
	}
}

// attempt runs on its own goroutine; it reads only immutable run fields
// (and lookup[i], written before it starts).
func (r *run) attempt(i int32) {
	a := r.actions[i]
	s := &slot{r: r, i: i, limit: a.RunTimeout(), held: !r.lookup[i], acquire: r.lookup[i]}
	ctx := context.WithValue(r.ctx, attemptKey{}, s)
	if s.held && s.limit > 0 {
		// The walltime of an action started without a slot starts with
		// the slot, not with the lookup (AcquireSlot).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.limit)
		s.timed = ctx
		s.stops = append(s.stops, cancel)
	}
	start := time.Now()
	out, err := r.call(ctx, a)
	took := time.Since(start)
	s.mu.Lock()
	timed, stops := s.timed, s.stops
	s.mu.Unlock()
	if err != nil && timed != nil && errors.Is(timed.Err(), context.DeadlineExceeded) && r.ctx.Err() == nil {
		// The work should have said so itself; make sure a timeout is an
		// action failure (retried, reported) and not an infrastructure one.
		var ae *ActionError
		if !errors.As(err, &ae) {
			err = &ActionError{Action: a, ExitCode: -1, Reason: "timed out after " + s.limit.String()}
		}
	}
	for _, f := range stops {
		f()
	}
	r.results <- result{i: i, outcome: out, err: err, took: took}
}

func (r *run) call(ctx context.Context, a *Action) (out Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			out, err = OutcomeFailed, fmt.Errorf("panic: %v\n%s", p, buf)
		}
	}()
	return r.work(ctx, a)
}

func (r *run) finish(res result) {
	i := res.i
	a := r.actions[i]
	r.freeSlot(i)
	if r.lookup[i] {
		// A lookup that needed no slot (a cache hit), or gave up waiting
		// for one: if it asked, its request is still queued.
		r.lookup[i] = false
		r.unlook(i)
		r.waiting.remove(i)
	}
	r.inflight--
	if errors.Is(res.err, errNoSlot) {
		r.done(i, OutcomeSkipped)
		return
	}
	now := time.Since(r.t0)
	r.took[i] = now - r.started[i]

	err := res.err
	if err == nil && res.outcome != OutcomeExecuted && res.outcome != OutcomeCached && res.outcome != OutcomeUpToDate {
		err = fmt.Errorf("work returned outcome %d without an error", res.outcome)
	}
	if err == nil {
		r.done(i, res.outcome)
		if r.events != nil {
			e := r.actionEvent(outcomeEvent(res.outcome), i)
			e.Duration = res.took
			e.Attempt = int(r.attempts[i])
			e.Outputs = outputPaths(a)
			r.emit(e)
		}
		for _, d := range r.rdeps[r.rdepOff[i]:r.rdepOff[i+1]] {
			if r.pending[d]--; r.pending[d] == 0 {
				r.enqueue(d)
			}
		}
		return
	}
	if r.ctx.Err() != nil {
		// Killed by the interrupt, most likely: neither a result nor a failure.
		r.done(i, OutcomeSkipped)
		if r.events != nil {
			e := r.actionEvent(EventActionInterrupted, i)
			e.Duration = res.took
			e.Attempt = int(r.attempts[i])
			r.emit(e)
		}
		return
	}
	var ae *ActionError
	if errors.As(err, &ae) {
		if ae.Action == nil {
			ae.Action = a
		}
		if int(r.attempts[i]) <= a.Extras().Retries+r.s.Retries && !r.stopping {
			delay := r.delay(int(r.attempts[i]))
			r.state[i] = stateBackoff
			r.backoffs++
			r.lastErr[i] = ae
			if r.events != nil {
				e := r.failEvent(EventActionRetry, i, ae)
				e.Attempt = int(r.attempts[i]) + 1
				e.Duration = delay
				r.emit(e)
			}
			go r.wait(i, delay)
			return
		}
		r.fail(i, ae, res.took)
		return
	}
	r.done(i, OutcomeFailed)
	if r.infraErr == nil {
		r.infraErr = err
		if !strings.HasPrefix(err.Error(), a.Pos.String()+": ") {
			r.infraErr = fmt.Errorf("%s: %s %s: %w", a.Pos, a.Mnemonic, a.Owner, err)
		}
	}
	if r.events != nil {
		e := r.actionEvent(EventActionFailed, i)
		e.Message = err.Error()
		e.ExitCode = -1
		e.Duration = res.took
		e.Attempt = int(r.attempts[i])
		r.emit(e)
	}
	// Infrastructure is shared by every action: going on would fail them all.
	r.stopping = true
	r.halt()
}

func (r *run) fail(i int32, ae *ActionError, took time.Duration) {
	r.done(i, OutcomeFailed)
	r.failures = append(r.failures, ae)
	if r.events != nil {
		e := r.failEvent(EventActionFailed, i, ae)
		e.Duration = took
		e.Attempt = int(r.attempts[i])
		r.emit(e)
	}
	if !r.s.KeepGoing {
		r.stopping = true
		r.halt()
	}
}

// wait sleeps through a retry delay on its own goroutine, cut short when the
// build stops, and always reports back so the dispatcher can count it.
func (r *run) wait(i int32, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.stop.Done():
	}
	r.retry <- i
}

func (r *run) resume(i int32) {
	r.backoffs--
	ae := r.lastErr[i]
	delete(r.lastErr, i)
	switch {
	case r.cancelled:
		r.done(i, OutcomeSkipped)
	case r.stopping:
		// Its last attempt failed and no attempt is left to change that.
		r.fail(i, ae, 0)
	default:
		r.enqueue(i)
	}
}

func (r *run) delay(attempt int) time.Duration {
	d := r.backoff
	for k := 1; k < attempt && d < maxBackoff; k++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (r *run) done(i int32, o Outcome) {
	r.state[i] = stateDone
	r.outcome[i] = o
}

func (r *run) summarise() (*Summary, error) {
	n := len(r.actions)
	s := &Summary{Total: n, Elapsed: time.Since(r.t0), Failures: r.failures, Outcomes: r.outcome}
	for i := range r.outcome {
		if r.state[i] != stateDone {
			r.outcome[i] = OutcomeSkipped
		}
		switch r.outcome[i] {
		case OutcomeExecuted:
			s.Executed++
		case OutcomeCached:
			s.Cached++
		case OutcomeUpToDate:
			s.UpToDate++
		case OutcomeFailed:
			s.Failed++
		case OutcomeSkipped:
			s.Skipped++
		}
	}
	s.CriticalPath, s.CriticalTime = r.criticalPath()
	if r.events != nil {
		r.emit(Event{Type: EventBuildFinished, Total: n, Duration: s.Elapsed})
	}
	switch {
	case r.cancelled && s.Skipped > 0:
		return s, fmt.Errorf("build interrupted: %w", r.ctx.Err())
	case r.infraErr != nil:
		return s, r.infraErr
	case len(r.failures) > 0:
		return s, &BuildFailedError{Failures: r.failures}
	}
	return s, nil
}

// criticalPath finds the chain of attempted actions, each a dependency of the
// next, whose durations sum highest.
func (r *run) criticalPath() ([]Step, time.Duration) {
	n := len(r.actions)
	best := make([]time.Duration, n)
	pred := make([]int32, n)
	end := int32(-1)
	for _, i := range r.order {
		pred[i] = -1
		if r.attempts[i] == 0 {
			continue
		}
		var below time.Duration
		for _, d := range r.deps[r.depOff[i]:r.depOff[i+1]] {
			if r.attempts[d] > 0 && (pred[i] < 0 || best[d] > below) {
				below, pred[i] = best[d], d
			}
		}
		best[i] = below + r.took[i]
		if end < 0 || best[i] > best[end] {
			end = i
		}
	}
	if end < 0 {
		return nil, 0
	}
	var path []Step
	for i := end; i >= 0; i = pred[i] {
		path = append(path, Step{Action: r.actions[i], Duration: r.took[i]})
	}
	for l, h := 0, len(path)-1; l < h; l, h = l+1, h-1 {
		path[l], path[h] = path[h], path[l]
	}
	return path, best[end]
}

func (r *run) emit(e Event) {
	if r.events == nil {
		return
	}
	e.Time = time.Now()
	r.events.Event(e)
}

// actionEvent is an event about action i. Its label and description are
// made once per action, not per event: with a sink attached, building these
// strings was most of the scheduler's cost.
func (r *run) actionEvent(t EventType, i int32) Event {
	if r.names == nil {
		r.names = make([]eventNames, len(r.actions))
	}
	a, n := r.actions[i], &r.names[i]
	if n.target == "" {
		n.target, n.desc = a.Owner.String(), a.Describe()
	}
	return Event{Type: t, Target: n.target, Mnemonic: a.Mnemonic, Message: n.desc, Action: a}
}

type eventNames struct{ target, desc string }

func (r *run) failEvent(t EventType, i int32, ae *ActionError) Event {
	e := r.actionEvent(t, i)
	e.Message = ae.Reason
	e.ExitCode = ae.ExitCode
	e.Log = ae.Log
	e.Err = ae
	return e
}

func outcomeEvent(o Outcome) EventType {
	switch o {
	case OutcomeCached:
		return EventActionCached
	case OutcomeUpToDate:
		return EventActionUpToDate
	}
	return EventActionFinished
}

func outputPaths(a *Action) []string {
	if len(a.Outputs) == 0 {
		return nil
	}
	out := make([]string, len(a.Outputs))
	for i, o := range a.Outputs {
		out[i] = o.Path
	}
	return out
}

func milliCPU(cpu float64) int64 { return int64(math.Ceil(cpu * 1000)) }

func formatBytes(b int64) string {
	const gb = 1 << 30
	if b >= gb {
		return strconv.FormatFloat(float64(b)/gb, 'g', 3, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(b)/(1<<20), 'g', 3, 64) + " MiB"
}

// readyQueue is a binary max-heap of action indices by priority, ties going
// to the earlier action so that runs are reproducible.
type readyQueue struct {
	items []int32
	prio  []int64
}

func (q *readyQueue) len() int    { return len(q.items) }
func (q *readyQueue) peek() int32 { return q.items[0] }
func (q *readyQueue) less(a, b int32) bool {
	if pa, pb := q.prio[a], q.prio[b]; pa != pb {
		return pa > pb
	}
	return a < b
}

func (q *readyQueue) push(i int32) {
	q.items = append(q.items, i)
	k := len(q.items) - 1
	for k > 0 {
		p := (k - 1) / 2
		if !q.less(q.items[k], q.items[p]) {
			break
		}
		q.items[k], q.items[p] = q.items[p], q.items[k]
		k = p
	}
}

// remove takes i out of the queue, if it is there.
func (q *readyQueue) remove(i int32) {
	// Only the short queue of waiting lookups uses it: rebuilding is cheap.
	old := q.items
	q.items = nil
	for _, x := range old {
		if x != i {
			q.push(x)
		}
	}
}

func (q *readyQueue) pop() int32 {
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items = q.items[:last]
	k := 0
	for {
		l := 2*k + 1
		if l >= last {
			break
		}
		c := l
		if r := l + 1; r < last && q.less(q.items[r], q.items[l]) {
			c = r
		}
		if !q.less(q.items[c], q.items[k]) {
			break
		}
		q.items[k], q.items[c] = q.items[c], q.items[k]
		k = c
	}
	return top
}
