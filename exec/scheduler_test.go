package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/graph"
)

// testBuild is an action graph made from lines "name: dep dep ...".
type testBuild struct {
	g       *Graph
	actions []*Action // g.Needed of every output: dependencies first
	byName  map[string]*Action
}

func newTestBuild(t testing.TB, lines ...string) *testBuild {
	t.Helper()
	b := &testBuild{byName: map[string]*Action{}}
	var all []*Action
	for _, line := range lines {
		name, deps, _ := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		a := &Action{
			Owner:    graph.Label{Pkg: "t", Name: name},
			Mnemonic: "Test",
			Inputs:   []Artifact{{Path: "t/src.txt", Source: true}},
			Outputs:  []Artifact{{Path: OutDir + "/t/" + name}},
		}
		for _, d := range strings.Fields(deps) {
			dep, ok := b.byName[d]
			if !ok {
				t.Fatalf("%s: unknown dependency %s (declare it first)", name, d)
			}
			a.Inputs = append(a.Inputs, dep.Outputs...)
		}
		b.byName[name] = a
		all = append(all, a)
	}
	g, err := NewGraph(all, nil)
	if err != nil {
		t.Fatal(err)
	}
	var roots []Artifact
	for _, a := range all {
		roots = append(roots, a.Outputs...)
	}
	b.g, b.actions = g, g.Needed(roots)
	return b
}

func (b *testBuild) deps(a *Action) []*Action {
	var out []*Action
	for _, in := range a.Inputs {
		if p, ok := b.g.Producer[in.Path]; ok {
			out = append(out, p)
		}
	}
	return out
}

// recorder is an EventSink that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) of(t EventType) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

type sinkFunc func(Event)

func (f sinkFunc) Event(e Event) { f(e) }

func ok(context.Context, *Action) (Outcome, error) { return OutcomeExecuted, nil }

func actionErr(a *Action, reason string) *ActionError {
	return &ActionError{Action: a, ExitCode: 1, Reason: reason}
}

func names(actions []*Action) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = a.Owner.Name
	}
	return out
}

// checkNoLeak fails when goroutines started during the test outlive it.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestDependenciesFirst(t *testing.T) {
	checkNoLeak(t)
	// A random layered DAG: each action depends on up to 3 earlier ones.
	rng := rand.New(rand.NewPCG(1, 2))
	var lines []string
	for i := range 300 {
		line := fmt.Sprintf("a%d:", i)
		for range rng.IntN(4) {
			if i > 0 {
				line += fmt.Sprintf(" a%d", rng.IntN(i))
			}
		}
		lines = append(lines, line)
	}
	b := newTestBuild(t, lines...)
	var mu sync.Mutex
	finished := map[*Action]bool{}
	var violations []string
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		mu.Lock()
		for _, d := range b.deps(a) {
			if !finished[d] {
				violations = append(violations, fmt.Sprintf("%s started before its dependency %s finished", a.Owner.Name, d.Owner.Name))
			}
		}
		mu.Unlock()
		runtime.Gosched()
		mu.Lock()
		finished[a] = true
		mu.Unlock()
		return OutcomeExecuted, nil
	}
	s := &Scheduler{Jobs: 8, Capacity: Resources{CPU: 8}}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Errorf("dependency order violated:\n%s", strings.Join(violations, "\n"))
	}
	if sum.Executed != len(b.actions) || len(finished) != len(b.actions) {
		t.Errorf("executed %d (work saw %d), want %d", sum.Executed, len(finished), len(b.actions))
	}
}

// concurrency counts how many calls are inside a Work at once.
type concurrency struct {
	now, peak atomic.Int64
}

func (c *concurrency) enter() {
	n := c.now.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

func TestJobsBound(t *testing.T) {
	for _, jobs := range []int{1, 3, 7} {
		t.Run(fmt.Sprint(jobs), func(t *testing.T) {
			var lines []string
			for i := range 40 {
				lines = append(lines, fmt.Sprintf("a%d:", i))
			}
			b := newTestBuild(t, lines...)
			var c concurrency
			work := func(ctx context.Context, a *Action) (Outcome, error) {
				c.enter()
				defer c.leave()
				time.Sleep(2 * time.Millisecond)
				return OutcomeExecuted, nil
			}
			s := &Scheduler{Jobs: jobs, Capacity: Resources{CPU: 100}}
			if _, err := s.Run(context.Background(), b.g, b.actions, work); err != nil {
				t.Fatal(err)
			}
			if got := c.peak.Load(); got != int64(jobs) {
				t.Errorf("peak concurrency %d, want exactly -j %d", got, jobs)
			}
		})
	}
}

func TestResourcesBound(t *testing.T) {
	checkNoLeak(t)
	const gib = 1 << 30
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("a%d:", i))
	}
	lines = append(lines, "huge:")
	b := newTestBuild(t, lines...)
	for i, a := range b.actions {
		a.SetExtra().Resources.CPU = float64(1 + i%3)      // 1, 2 or 3 cpus
		a.SetExtra().Resources.Memory = int64(1+i%2) * gib // 1 or 2 GiB
	}
	huge := b.byName["huge"]
	huge.SetExtra().Resources = Resources{CPU: 64, Memory: 100 * gib}

	var mu sync.Mutex
	var cpu float64
	var mem int64
	var peakCPU float64
	var peakMem int64
	var hugeShared bool
	running := 0
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		mu.Lock()
		cpu += a.Extras().Resources.CPU
		mem += a.Extras().Resources.Memory
		running++
		if a != huge {
			peakCPU, peakMem = max(peakCPU, cpu), max(peakMem, mem)
		}
		hugeRunning := cpu >= 64
		if hugeRunning && running > 1 {
			hugeShared = true
		}
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		cpu -= a.Extras().Resources.CPU
		mem -= a.Extras().Resources.Memory
		running--
		mu.Unlock()
		return OutcomeExecuted, nil
	}
	rec := &recorder{}
	s := &Scheduler{Jobs: 10, Capacity: Resources{CPU: 4, Memory: 4 * gib}, Events: rec}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Executed != len(b.actions) {
		t.Errorf("executed %d of %d", sum.Executed, len(b.actions))
	}
	if peakCPU > 4 || peakMem > 4*gib {
		t.Errorf("peak use %g cpus and %d GiB, capacity 4 cpus and 4 GiB", peakCPU, peakMem/gib)
	}
	if peakCPU < 3 {
		t.Errorf("peak use %g cpus: the scheduler did not fill the machine", peakCPU)
	}
	if hugeShared {
		t.Error("an action asking more than the capacity ran next to another")
	}
	warnings := rec.of(EventWarning)
	if len(warnings) != 1 || warnings[0].Action != huge || !strings.Contains(warnings[0].Message, "run alone") {
		t.Errorf("want one warning about //t:huge running alone, got %+v", warnings)
	}
}

func TestCriticalPathFirst(t *testing.T) {
	tests := []struct {
		name     string
		lines    []string
		estimate map[string]time.Duration
		want     []string
	}{
		{
			name: "longest chain first",
			// Declared (and so listed) before the chain: input order alone would run them first.
			lines: []string{"x:", "y:", "c1:", "c2: c1", "c3: c2", "z: x"},
			want:  []string{"c1", "c2", "x", "c3", "y", "z"},
		},
		{
			name:     "estimates outweigh length",
			lines:    []string{"short1:", "short2: short1", "long:"},
			estimate: map[string]time.Duration{"short1": time.Second, "short2": time.Second, "long": time.Minute},
			want:     []string{"long", "short1", "short2"},
		},
		{
			name:     "unknown estimates weigh the mean",
			lines:    []string{"a:", "b:", "c:"},
			estimate: map[string]time.Duration{"a": time.Second, "c": 3 * time.Second},
			// b counts 2 s, the mean of the known.
			want: []string{"c", "b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBuild(t, tt.lines...)
			var mu sync.Mutex
			var got []string
			work := func(ctx context.Context, a *Action) (Outcome, error) {
				mu.Lock()
				got = append(got, a.Owner.Name)
				mu.Unlock()
				return OutcomeExecuted, nil
			}
			s := &Scheduler{Jobs: 1}
			if tt.estimate != nil {
				s.Estimate = func(a *Action) time.Duration { return tt.estimate[a.Owner.Name] }
			}
			if _, err := s.Run(context.Background(), b.g, b.actions, work); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("order mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name          string
		actionRetries int
		schedRetries  int
		failures      int // attempts that fail before one succeeds
		wantAttempts  int
		wantOutcome   Outcome
	}{
		{"no retries", 0, 0, 1, 1, OutcomeFailed},
		{"action retries", 2, 0, 2, 3, OutcomeExecuted},
		{"scheduler retries", 0, 2, 2, 3, OutcomeExecuted},
		{"both add up", 1, 1, 5, 3, OutcomeFailed},
		{"success needs none", 3, 0, 0, 1, OutcomeExecuted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			b := newTestBuild(t, "a:", "b: a")
			a := b.byName["a"]
			a.SetExtra().Retries = tt.actionRetries
			var attempts atomic.Int32
			work := func(ctx context.Context, x *Action) (Outcome, error) {
				if x != a {
					return OutcomeExecuted, nil
				}
				if n := attempts.Add(1); int(n) <= tt.failures {
					return OutcomeFailed, actionErr(x, fmt.Sprintf("exit status %d", n))
				}
				return OutcomeExecuted, nil
			}
			rec := &recorder{}
			s := &Scheduler{Jobs: 2, Retries: tt.schedRetries, Backoff: time.Millisecond, Events: rec}
			sum, err := s.Run(context.Background(), b.g, b.actions, work)
			if got := int(attempts.Load()); got != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", got, tt.wantAttempts)
			}
			if got := sum.Outcomes[slices.Index(b.actions, a)]; got != tt.wantOutcome {
				t.Errorf("outcome %d, want %d", got, tt.wantOutcome)
			}
			var retries []int
			for _, e := range rec.of(EventActionRetry) {
				retries = append(retries, e.Attempt)
				if e.Err == nil || e.Duration <= 0 {
					t.Errorf("retry event without error or delay: %+v", e)
				}
			}
			var wantRetries []int
			for k := 2; k <= tt.wantAttempts; k++ {
				wantRetries = append(wantRetries, k)
			}
			if diff := cmp.Diff(wantRetries, retries); diff != "" {
				t.Errorf("retry attempts mismatch (-want +got):\n%s", diff)
			}
			var bf *BuildFailedError
			if failed := tt.wantOutcome == OutcomeFailed; failed != errors.As(err, &bf) {
				t.Errorf("error %v; want a *BuildFailedError: %v", err, failed)
			} else if failed && (len(sum.Failures) != 1 || sum.Failures[0].Reason != fmt.Sprintf("exit status %d", tt.wantAttempts)) {
				t.Errorf("failures %v, want the last attempt's", sum.Failures)
			}
		})
	}
}

func TestBackoffDoubles(t *testing.T) {
	r := &run{backoff: 10 * time.Second}
	var got []time.Duration
	for k := 1; k <= 5; k++ {
		got = append(got, r.delay(k))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays mismatch (-want +got):\n%s", diff)
	}
}

func TestInfrastructureErrorNotRetried(t *testing.T) {
	b := newTestBuild(t, "a:", "b: a", "c:")
	errCache := errors.New("cache unreachable")
	var attempts atomic.Int32
	work := func(ctx context.Context, x *Action) (Outcome, error) {
		if x.Owner.Name == "a" {
			attempts.Add(1)
			return OutcomeFailed, errCache
		}
		return OutcomeExecuted, nil
	}
	s := &Scheduler{Jobs: 1, Retries: 3, KeepGoing: true, Backoff: time.Millisecond}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if !errors.Is(err, errCache) {
		t.Errorf("error %v, want it to wrap %v", err, errCache)
	}
	if attempts.Load() != 1 {
		t.Errorf("%d attempts of an infrastructure failure, want 1", attempts.Load())
	}
	// Even with -k: a broken cache would fail every other action too.
	if sum.Failed != 1 || sum.Skipped != 2 || len(sum.Failures) != 0 {
		t.Errorf("failed %d, skipped %d, failures %v; want 1, 2 and none", sum.Failed, sum.Skipped, sum.Failures)
	}
}

func TestKeepGoing(t *testing.T) {
	// bad fails; dep1 and dep2 depend on it; the others do not.
	lines := []string{"bad:", "dep1: bad", "dep2: dep1", "ok1:", "ok2: ok1", "ok3:"}
	tests := []struct {
		keepGoing bool
		want      map[string]Outcome
	}{
		{
			keepGoing: false,
			// With -j 1, bad (longest chain) runs first and stops the build.
			want: map[string]Outcome{"bad": OutcomeFailed, "dep1": OutcomeSkipped, "dep2": OutcomeSkipped,
				"ok1": OutcomeSkipped, "ok2": OutcomeSkipped, "ok3": OutcomeSkipped},
		},
		{
			keepGoing: true,
			want: map[string]Outcome{"bad": OutcomeFailed, "dep1": OutcomeSkipped, "dep2": OutcomeSkipped,
				"ok1": OutcomeExecuted, "ok2": OutcomeExecuted, "ok3": OutcomeExecuted},
		},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("k=%v", tt.keepGoing), func(t *testing.T) {
			b := newTestBuild(t, lines...)
			var ran []string
			work := func(ctx context.Context, a *Action) (Outcome, error) {
				ran = append(ran, a.Owner.Name) // -j 1: no concurrent calls
				if a.Owner.Name == "bad" {
					return OutcomeFailed, actionErr(a, "exit status 2")
				}
				return OutcomeExecuted, nil
			}
			s := &Scheduler{Jobs: 1, KeepGoing: tt.keepGoing}
			sum, err := s.Run(context.Background(), b.g, b.actions, work)
			var bf *BuildFailedError
			if !errors.As(err, &bf) || len(bf.Failures) != 1 || bf.Failures[0].Action != b.byName["bad"] {
				t.Errorf("error %v, want a *BuildFailedError for //t:bad", err)
			}
			got := map[string]Outcome{}
			for i, a := range b.actions {
				got[a.Owner.Name] = sum.Outcomes[i]
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcomes mismatch (-want +got):\n%s\nran %v", diff, ran)
			}
			for _, name := range ran {
				if got[name] == OutcomeSkipped {
					t.Errorf("%s ran but counts as skipped", name)
				}
			}
		})
	}
}

func TestFailureWaitsForRunning(t *testing.T) {
	checkNoLeak(t)
	// Needed lists actions by output path: a_slow and b_bad start first.
	b := newTestBuild(t, "a_slow:", "b_bad:", "c_later:", "d_later:")
	release := make(chan struct{})
	slowStarted := make(chan struct{})
	var slowCancelled, laterRan atomic.Bool
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		switch a.Owner.Name {
		case "a_slow":
			close(slowStarted)
			<-release
			slowCancelled.Store(ctx.Err() != nil)
			return OutcomeExecuted, nil
		case "b_bad":
			<-slowStarted
			return OutcomeFailed, actionErr(a, "exit status 1")
		}
		laterRan.Store(true)
		return OutcomeExecuted, nil
	}
	// Release slow only once the scheduler has taken in the failure.
	sink := sinkFunc(func(e Event) {
		if e.Type == EventActionFailed {
			close(release)
		}
	})
	s := &Scheduler{Jobs: 2, Capacity: Resources{CPU: 2}, Events: sink}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err == nil {
		t.Fatal("no error")
	}
	if slowCancelled.Load() {
		t.Error("the running action was cancelled by another's failure")
	}
	if laterRan.Load() {
		t.Error("an action started after the failure")
	}
	if sum.Executed != 1 || sum.Failed != 1 || sum.Skipped != 2 {
		t.Errorf("executed %d, failed %d, skipped %d; want 1, 1, 2", sum.Executed, sum.Failed, sum.Skipped)
	}
}

func TestCancel(t *testing.T) {
	checkNoLeak(t)
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("a%d:", i))
	}
	b := newTestBuild(t, lines...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started, sawDone atomic.Int32
	var startedAfterCancel atomic.Bool
	var cancelled atomic.Bool
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		if cancelled.Load() {
			startedAfterCancel.Store(true)
		}
		if started.Add(1) == 3 {
			cancelled.Store(true)
			cancel()
		}
		<-ctx.Done() // a runner kills the process group here
		sawDone.Add(1)
		return OutcomeFailed, &ActionError{Action: a, ExitCode: -1, Reason: "killed by signal terminated"}
	}
	rec := &recorder{}
	s := &Scheduler{Jobs: 3, Capacity: Resources{CPU: 3}, Events: rec}
	sum, err := s.Run(ctx, b.g, b.actions, work)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want it to wrap context.Canceled", err)
	}
	if startedAfterCancel.Load() {
		t.Error("an action started after the cancel")
	}
	if started.Load() != 3 || sawDone.Load() != 3 {
		t.Errorf("%d started, %d saw ctx.Done; want 3 and 3", started.Load(), sawDone.Load())
	}
	if sum.Skipped != 20 || sum.Failed != 0 || len(sum.Failures) != 0 {
		t.Errorf("skipped %d, failed %d; want all 20 skipped, none failed", sum.Skipped, sum.Failed)
	}
	if n := len(rec.of(EventActionInterrupted)); n != 3 {
		t.Errorf("%d action_interrupted events, want 3", n)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	checkNoLeak(t)
	b := newTestBuild(t, "a:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.byName["a"].SetExtra().Retries = 5
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		cancel() // the retry waits a minute unless the cancel cuts it short
		return OutcomeFailed, actionErr(a, "exit status 1")
	}
	s := &Scheduler{Jobs: 1, Backoff: time.Minute}
	start := time.Now()
	sum, err := s.Run(ctx, b.g, b.actions, work)
	if !errors.Is(err, context.Canceled) || sum.Skipped != 1 {
		t.Errorf("error %v, skipped %d; want context.Canceled and 1", err, sum.Skipped)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v: the backoff ignored the cancel", d)
	}
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name              string
		timeout, walltime time.Duration
		want              time.Duration
	}{
		{"timeout", 30 * time.Millisecond, 0, 30 * time.Millisecond},
		{"walltime", 0, 30 * time.Millisecond, 30 * time.Millisecond},
		{"smaller wins", time.Hour, 30 * time.Millisecond, 30 * time.Millisecond},
		{"smaller wins the other way", 30 * time.Millisecond, time.Hour, 30 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBuild(t, "a:")
			a := b.byName["a"]
			a.SetExtra().Timeout, a.Extra.Resources.Walltime = tt.timeout, tt.walltime
			var left time.Duration
			work := func(ctx context.Context, a *Action) (Outcome, error) {
				dl, ok := ctx.Deadline()
				if !ok {
					return OutcomeFailed, errors.New("no deadline")
				}
				left = time.Until(dl)
				<-ctx.Done()
				return OutcomeFailed, ctx.Err() // a careless runner: the scheduler names it
			}
			s := &Scheduler{Jobs: 1}
			sum, err := s.Run(context.Background(), b.g, b.actions, work)
			if left > tt.want || left < tt.want/2 {
				t.Errorf("deadline %v away, want %v", left, tt.want)
			}
			var ae *ActionError
			if !errors.As(err, &ae) || ae.Reason != "timed out after "+tt.want.String() {
				t.Errorf("error %v, want an *ActionError timed out after %v", err, tt.want)
			}
			if sum.Failed != 1 {
				t.Errorf("failed %d, want 1", sum.Failed)
			}
		})
	}
	if got := (&Action{}).RunTimeout(); got != 0 {
		t.Errorf("no timeout: got %v", got)
	}
}

func TestSummaryAndEvents(t *testing.T) {
	b := newTestBuild(t, "ex1:", "ex2: ex1", "c1:", "c2: c1", "u1:", "fail: u1", "after: fail", "ex3: c2 ex2")
	outcome := map[string]Outcome{"ex1": OutcomeExecuted, "ex2": OutcomeExecuted, "ex3": OutcomeExecuted,
		"c1": OutcomeCached, "c2": OutcomeCached, "u1": OutcomeUpToDate}
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		if a.Owner.Name == "fail" {
			return OutcomeFailed, &ActionError{Action: a, ExitCode: 3, Reason: "exit status 3", Log: "/logs/fail.log"}
		}
		return outcome[a.Owner.Name], nil
	}
	rec := &recorder{}
	s := &Scheduler{Jobs: 3, KeepGoing: true, Events: rec}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err == nil {
		t.Fatal("no error")
	}
	got := Summary{Total: sum.Total, Executed: sum.Executed, Cached: sum.Cached, UpToDate: sum.UpToDate, Failed: sum.Failed, Skipped: sum.Skipped}
	want := Summary{Total: 8, Executed: 3, Cached: 2, UpToDate: 1, Failed: 1, Skipped: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts mismatch (-want +got):\n%s", diff)
	}
	if len(sum.Failures) != 1 || sum.Failures[0].Action != b.byName["fail"] {
		t.Errorf("failures %v, want //t:fail", sum.Failures)
	}

	// Each attempted action: queued, started, then one outcome event.
	perAction := map[string][]EventType{}
	for _, e := range rec.events {
		if e.Action != nil {
			perAction[e.Action.Owner.Name] = append(perAction[e.Action.Owner.Name], e.Type)
		}
	}
	wantEvents := map[string][]EventType{
		"ex1":  {EventActionQueued, EventActionStarted, EventActionFinished},
		"ex2":  {EventActionQueued, EventActionStarted, EventActionFinished},
		"ex3":  {EventActionQueued, EventActionStarted, EventActionFinished},
		"c1":   {EventActionQueued, EventActionStarted, EventActionCached},
		"c2":   {EventActionQueued, EventActionStarted, EventActionCached},
		"u1":   {EventActionQueued, EventActionStarted, EventActionUpToDate},
		"fail": {EventActionQueued, EventActionStarted, EventActionFailed},
	}
	if diff := cmp.Diff(wantEvents, perAction); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	first, last := rec.events[0], rec.events[len(rec.events)-1]
	if first.Type != EventBuildStarted || first.Total != 8 || last.Type != EventBuildFinished {
		t.Errorf("first event %+v, last %+v; want build_started (Total 8) and build_finished", first, last)
	}
	failed := rec.of(EventActionFailed)[0]
	if failed.Err == nil || failed.ExitCode != 3 || failed.Log != "/logs/fail.log" || failed.Message != "exit status 3" {
		t.Errorf("action_failed event %+v lacks the failure", failed)
	}
	for _, e := range rec.events {
		if e.Time.IsZero() {
			t.Errorf("event %s without time", e.Type)
		}
	}
}

func TestCriticalPathTaken(t *testing.T) {
	// slow1 → slow2 → end takes longest although fast1 → fast2 → fast3 → end is longer.
	b := newTestBuild(t, "slow1:", "slow2: slow1", "fast1:", "fast2: fast1", "fast3: fast2", "end: slow2 fast3")
	sleep := map[string]time.Duration{"slow1": 40 * time.Millisecond, "slow2": 40 * time.Millisecond}
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		time.Sleep(sleep[a.Owner.Name])
		return OutcomeExecuted, nil
	}
	s := &Scheduler{Jobs: 2, Capacity: Resources{CPU: 2}}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err != nil {
		t.Fatal(err)
	}
	var path []*Action
	var total time.Duration
	for _, st := range sum.CriticalPath {
		path = append(path, st.Action)
		total += st.Duration
	}
	if diff := cmp.Diff([]string{"slow1", "slow2", "end"}, names(path)); diff != "" {
		t.Errorf("critical path mismatch (-want +got):\n%s", diff)
	}
	if total != sum.CriticalTime || total < 80*time.Millisecond || total > sum.Elapsed {
		t.Errorf("critical time %v (steps sum to %v), want at least 80ms and at most the elapsed %v", sum.CriticalTime, total, sum.Elapsed)
	}
}

func TestInvalidGraph(t *testing.T) {
	b := newTestBuild(t, "a:", "b: a")
	// A cycle cannot be declared through newTestBuild: close one by hand.
	b.byName["a"].Inputs = append(b.byName["a"].Inputs, b.byName["b"].Outputs...)
	s := &Scheduler{Jobs: 1}
	if _, err := s.Run(context.Background(), b.g, b.actions, ok); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: error %v", err)
	}
	if _, err := s.Run(context.Background(), b.g, []*Action{b.byName["a"], b.byName["a"]}, ok); err == nil {
		t.Error("an action listed twice: no error")
	}
}

func TestEmptyBuild(t *testing.T) {
	sum, err := (&Scheduler{}).Run(context.Background(), &Graph{}, nil, ok)
	if err != nil || sum.Total != 0 || sum.CriticalPath != nil {
		t.Errorf("empty build: %+v, %v", sum, err)
	}
}

// fanIn builds the shape of /work/shared/bench/gen.py: D*F*S selections,
// D*S histograms (fan-in F), S cards (fan-in D), one merge (fan-in S).
func fanIn(tb testing.TB, d, f, s int) (*Graph, []*Action) {
	var all []*Action
	out := func(p string) []Artifact { return []Artifact{{Path: OutDir + "/" + p}} }
	mk := func(name string, inputs []Artifact) *Action {
		a := &Action{Owner: graph.Label{Pkg: "bench", Name: name}, Mnemonic: "Task", Inputs: inputs, Outputs: out(name)}
		all = append(all, a)
		return a
	}
	cards := []Artifact{}
	for k := range s {
		var hists []Artifact
		for i := range d {
			var sels []Artifact
			for j := range f {
				raw := Artifact{Path: fmt.Sprintf("raw/d%d_f%d.txt", i, j), Source: true}
				sels = append(sels, mk(fmt.Sprintf("sel_d%d_f%d_s%d", i, j, k), []Artifact{raw}).Outputs...)
			}
			hists = append(hists, mk(fmt.Sprintf("hist_d%d_s%d", i, k), sels).Outputs...)
		}
		cards = append(cards, mk(fmt.Sprintf("card_s%d", k), hists).Outputs...)
	}
	root := mk("all", cards)
	g, err := NewGraph(all, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return g, g.Needed(root.Outputs)
}

func TestFanIn(t *testing.T) {
	g, actions := fanIn(t, 3, 4, 2)
	if len(actions) != 3*4*2+3*2+2+1 {
		t.Fatalf("%d actions", len(actions))
	}
	sum, err := (&Scheduler{Jobs: 4}).Run(context.Background(), g, actions, func(context.Context, *Action) (Outcome, error) {
		return OutcomeCached, nil
	})
	if err != nil || sum.Cached != len(actions) {
		t.Fatalf("cached %d of %d, error %v", sum.Cached, len(actions), err)
	}
	// The critical path runs selection → histogram → card → all.
	if diff := cmp.Diff(4, len(sum.CriticalPath)); diff != "" {
		t.Errorf("critical path length mismatch (-want +got):\n%s", diff)
	}
}

// BenchmarkRun pushes mostly cached fan-in builds through Run with a trivial
// Work; the time per op is the scheduler's own overhead for the whole build.
func BenchmarkRun(b *testing.B) {
	for _, size := range []struct {
		name    string
		d, f, s int
	}{
		{"1k", 5, 50, 4},
		{"20k", 40, 125, 4},
		{"200k", 100, 500, 4},
	} {
		b.Run(size.name, func(b *testing.B) {
			g, actions := fanIn(b, size.d, size.f, size.s)
			var n atomic.Int64
			work := func(ctx context.Context, a *Action) (Outcome, error) {
				if n.Add(1)%10 == 0 {
					return OutcomeExecuted, nil
				}
				return OutcomeCached, nil
			}
			s := &Scheduler{Jobs: 8, Capacity: Resources{CPU: 8}}
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Run(context.Background(), g, actions, work); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
			b.ReportMetric(float64(len(actions)), "actions")
		})
	}
	// The cost of --events on top: three JSON lines per action.
	b.Run("20k-events", func(b *testing.B) {
		g, actions := fanIn(b, 40, 125, 4)
		s := &Scheduler{Jobs: 8, Capacity: Resources{CPU: 8}, Events: NewJSONLines(io.Discard)}
		for b.Loop() {
			if _, err := s.Run(context.Background(), g, actions, ok); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
	})
}

// With -j 1, an action that says its command is done (CommandDone) lets the
// next one start while it still stores its outputs; the commands
// themselves never overlap.
func TestCommandDoneFreesTheSlot(t *testing.T) {
	b := newTestBuild(t, "a:", "b:", "c:")
	var mu sync.Mutex
	commands, maxCommands := 0, 0
	started := make(chan string, 3)
	release := make(chan struct{})
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		mu.Lock()
		commands++
		maxCommands = max(maxCommands, commands)
		mu.Unlock()
		started <- a.Owner.Name
		time.Sleep(10 * time.Millisecond) // the command
		mu.Lock()
		commands--
		mu.Unlock()
		CommandDone(ctx)
		CommandDone(ctx) // a second call changes nothing
		<-release        // storing outputs, until every action has started
		return OutcomeExecuted, nil
	}
	go func() {
		for range 3 {
			<-started
		}
		close(release)
	}()
	done := make(chan error, 1)
	go func() {
		_, err := (&Scheduler{Jobs: 1}).Run(context.Background(), b.g, b.actions, work)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the actions waited for each other's storing: CommandDone did not free the slot")
	}
	if maxCommands != 1 {
		t.Errorf("%d commands ran at once with -j 1", maxCommands)
	}
}
