package exec_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/exec/server/coord"
)

// The tests of this file run builds that share one disk cache and one
// coordinator (a real coord.Server over loopback HTTP), as two users of a
// group, or two terminals, do.

// hang bounds how long a test waits for something that must happen; it
// catches a hang, it measures nothing.
const hang = 60 * time.Second

// eventLog records a build's events and lets a test wait for one.
type eventLog struct {
	mu     sync.Mutex
	events []exec.Event
	notify chan struct{}
}

func newEventLog() *eventLog { return &eventLog{notify: make(chan struct{}, 1)} }

func (l *eventLog) Event(e exec.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// of returns the events of type typ about the target named name ("" for any).
func (l *eventLog) of(typ exec.EventType, name string) []exec.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []exec.Event
	for _, e := range l.events {
		if e.Type == typ && (name == "" || e.Action != nil && e.Action.Owner.Name == name) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until an event of type typ about name came, or until
// done is closed (the build ended), and reports whether it came.
func (l *eventLog) waitFor(typ exec.EventType, name string, done <-chan struct{}) bool {
	return l.waitForN(typ, name, 1, done)
}

// waitForN is waitFor for n such events.
func (l *eventLog) waitForN(typ exec.EventType, name string, n int, done <-chan struct{}) bool {
	timeout := time.After(hang)
	for {
		if len(l.of(typ, name)) >= n {
			return true
		}
		select {
		case <-l.notify:
		case <-done:
			return len(l.of(typ, name)) >= n
		case <-timeout:
			return false
		}
	}
}

func newBuildID(t *testing.T) string {
	t.Helper()
	b := make([]byte, api.IDLen/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startCoordinator serves a coordinator on loopback.
func startCoordinator(t *testing.T, opts coord.ServerOptions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(coord.NewServer(opts))
	t.Cleanup(srv.Close)
	return srv
}

// coordBuild is one build of actions in w with the scheduler at -j jobs.
type coordBuild struct {
	w      *workspace
	events *eventLog
	sum    *exec.Summary
	err    error
	done   chan struct{}
}

// startBuild starts a build of actions in w on its own goroutine, with c
// as its coordinator.
func startBuild(ctx context.Context, w *workspace, c exec.Coordinator, jobs int, actions ...*exec.Action) *coordBuild {
	b := &coordBuild{w: w, events: newEventLog(), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.sum, b.err = b.run(ctx, c, jobs, actions)
	}()
	return b
}

func (b *coordBuild) run(ctx context.Context, c exec.Coordinator, jobs int, actions []*exec.Action) (*exec.Summary, error) {
	w := b.w
	unlock, err := exec.LockOutputBase(w.base)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := exec.PrepareOutputBase(w.root, w.base); err != nil {
		return nil, err
	}
	j, err := exec.OpenJournal(w.base)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	g, err := exec.NewGraph(actions, nil)
	if err != nil {
		return nil, err
	}
	r := w.runner(j, nil)
	r.Events = b.events
	r.Coordinator = c
	s := &exec.Scheduler{Jobs: jobs, Events: b.events}
	if r.Route != nil {
		s.Offloaded = r.Offloaded // as a build with a batch system does
	}
	return s.Run(ctx, g, actions, r.Work)
}

// wait waits for the build to end.
func (b *coordBuild) wait(t *testing.T) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(hang):
		t.Fatal("the build did not end")
	}
}

// outcome is the outcome of the build's only (or first) action.
func (b *coordBuild) outcome() exec.Outcome {
	if b.sum == nil || len(b.sum.Outcomes) == 0 {
		return exec.OutcomeSkipped
	}
	return b.sum.Outcomes[0]
}

// gate is a file outside the workspaces that commands wait for, and a
// counter file they append to, shared by the builds of a test.
type gate struct {
	dir string
}

func newGate(t *testing.T) *gate { return &gate{dir: t.TempDir()} }

func (g *gate) counter() string { return filepath.Join(g.dir, "runs") }
func (g *gate) open() string    { return filepath.Join(g.dir, "open") }

// wait is shell that waits for the gate to open.
func (g *gate) wait() string {
	return fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done\n", g.open())
}

func (g *gate) let(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(g.open(), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runs is how often the commands ran.
func (g *gate) runs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(g.counter())
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// slowAction counts its run, waits for the gate and copies its input.
func slowAction(g *gate, name string) *exec.Action {
	return shell(name, fmt.Sprintf("echo run >> %s\n%scp pkg/in.txt %s\n", g.counter(), g.wait(), out("pkg/"+name+".txt")),
		[]string{"pkg/in.txt"}, out("pkg/"+name+".txt"))
}

func twoWorkspaces(t *testing.T) (*workspace, *workspace) {
	c := openDisk(t)
	w1, w2 := newWorkspace(t, "none", c), newWorkspace(t, "none", c)
	for _, w := range []*workspace{w1, w2} {
		w.write("pkg/in.txt", "data\n")
	}
	return w1, w2
}

// Two builds need the same action at once: one runs it, the other waits
// for it, showing that it does, and restores the result from the cache.
func TestCoordinatedBuildsRunAnActionOnce(t *testing.T) {
	srv := startCoordinator(t, coord.ServerOptions{Holder: func(string) (string, string) { return "alice", "lxplus7" }})
	g := newGate(t)
	w1, w2 := twoWorkspaces(t)
	c1 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w1.warn)
	c2 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w2.warn)
	defer c1.Close()
	defer c2.Close()
	ctx := context.Background()
	b1 := startBuild(ctx, w1, c1, 2, slowAction(g, "sel"))
	b2 := startBuild(ctx, w2, c2, 2, slowAction(g, "sel"))
	// Whichever build runs the command, the other must wait for it before
	// the gate opens.
	both := make(chan struct{})
	go func() { <-b1.done; <-b2.done; close(both) }()
	waiting := make(chan *coordBuild, 2)
	for _, b := range []*coordBuild{b1, b2} {
		go func() {
			if b.events.waitFor(exec.EventActionWaiting, "sel", both) {
				waiting <- b
			}
		}()
	}
	var waiter *coordBuild
	select {
	case waiter = <-waiting:
	case <-both:
	case <-time.After(hang):
	}
	g.let(t)
	b1.wait(t)
	b2.wait(t)
	for _, b := range []*coordBuild{b1, b2} {
		if b.err != nil {
			t.Fatalf("build failed: %v", b.err)
		}
	}
	if n := g.runs(t); n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}
	if waiter == nil {
		t.Fatal("neither build waited for the other")
	}
	runner := b1
	if waiter == b1 {
		runner = b2
	}
	if got := outcomeNames([]exec.Outcome{runner.outcome(), waiter.outcome()}); got[0] != "executed" || got[1] != "cached" {
		t.Errorf("outcomes of the runner and the waiter: %v, want executed, cached", got)
	}
	if ev := waiter.events.of(exec.EventActionWaiting, "sel"); len(ev) != 1 || ev[0].Message != "waiting for alice@lxplus7" || ev[0].Key == "" {
		t.Errorf("waiting events %+v, want one saying whom it waits for", ev)
	}
	if got := waiter.w.read(out("pkg/sel.txt")); got != "data\n" {
		t.Errorf("the waiter restored %q", got)
	}
	for _, w := range []*workspace{w1, w2} {
		if len(w.warnings) > 0 {
			t.Errorf("warnings: %q", w.warnings)
		}
	}
}

// crashing is a build that claims keys and crashes: it never renews nor
// releases its claims (unless the test says so).
type crashing struct {
	t       *testing.T
	url     string
	build   string
	claimed chan string
}

func newCrashing(t *testing.T, url string) *crashing {
	return &crashing{t: t, url: url, build: newBuildID(t), claimed: make(chan string, 10)}
}

func (c *crashing) post(path string, v, out any) error {
	body, _ := json.Marshal(v)
	resp, err := http.Post(c.url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (c *crashing) Claim(ctx context.Context, a *exec.Action, key string, waiting func(string)) (bool, func(bool), error) {
	var resp api.ClaimResponse
	if err := c.post(api.PathClaim, api.ClaimRequest{Build: c.build, Key: key, Target: a.Owner.String()}, &resp); err != nil || resp.State != api.ClaimGranted {
		c.t.Errorf("the crashing build's claim: %v %+v", err, resp)
	}
	c.claimed <- key
	return true, func(bool) {}, nil
}

// release lets go of a claim, as its build would if it had not crashed.
func (c *crashing) release(key string, ok bool) error {
	return c.post(api.PathRelease, api.ReleaseRequest{Build: c.build, Key: key, OK: ok}, nil)
}

// claimedKey waits for the crashing build to claim a key.
func (c *crashing) claimedKey(t *testing.T) string {
	t.Helper()
	select {
	case k := <-c.claimed:
		return k
	case <-time.After(hang):
		t.Fatal("the first build claimed nothing")
		return ""
	}
}

// A build that holds a claim and dies stops renewing it: the waiting build
// gets the claim when the lease ends, and runs the action.
func TestExpiredClaimGoesToTheWaiter(t *testing.T) {
	srv := startCoordinator(t, coord.ServerOptions{Lease: 300 * time.Millisecond})
	g := newGate(t)
	w1, w2 := twoWorkspaces(t)
	dead := newCrashing(t, srv.URL)
	ctx1, kill := context.WithCancel(context.Background())
	defer kill()
	b1 := startBuild(ctx1, w1, dead, 1, slowAction(g, "sel"))
	dead.claimedKey(t)

	c2 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w2.warn)
	defer c2.Close()
	b2 := startBuild(context.Background(), w2, c2, 1, slowAction(g, "sel"))
	// The first build's command is stuck, as a crashed build's would be,
	// until the second build runs its own.
	if !b2.events.waitForN(exec.EventActionStarted, "sel", 2, b2.done) {
		t.Error("the second build's run did not start after its wait")
	}
	kill()
	b1.wait(t)
	g.let(t)
	b2.wait(t)
	if b2.err != nil {
		t.Fatalf("second build: %v", b2.err)
	}
	if b2.outcome() != exec.OutcomeExecuted {
		t.Errorf("second build: %v, want executed", outcomeNames([]exec.Outcome{b2.outcome()}))
	}
	if len(b2.events.of(exec.EventActionWaiting, "sel")) != 1 {
		t.Error("the second build did not wait for the first")
	}
	if n := g.runs(t); n != 2 {
		t.Errorf("the command ran %d times, want 2 (the crashed build's, the waiter's)", n)
	}
}

// A holder whose action fails hands the claim to the waiter, which runs it.
func TestFailedHolderHandsOver(t *testing.T) {
	srv := startCoordinator(t, coord.ServerOptions{})
	g := newGate(t)
	w1, w2 := twoWorkspaces(t)
	c1 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w1.warn)
	c2 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w2.warn)
	defer c1.Close()
	defer c2.Close()
	// The first run fails, any later one succeeds: both builds have the
	// same action, key and all.
	failOnce := filepath.Join(g.dir, "failed")
	a := func() *exec.Action {
		return shell("sel", fmt.Sprintf("echo run >> %s\n%sif mkdir %s 2>/dev/null; then exit 3; fi\ncp pkg/in.txt %s\n",
			g.counter(), g.wait(), failOnce, out("pkg/sel.txt")), []string{"pkg/in.txt"}, out("pkg/sel.txt"))
	}
	b1 := startBuild(context.Background(), w1, c1, 1, a())
	// The second build starts once the first runs the command.
	for g.runs(t) == 0 {
		select {
		case <-b1.done:
			t.Fatalf("the first build ended: %v", b1.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	b2 := startBuild(context.Background(), w2, c2, 1, a())
	if !b2.events.waitFor(exec.EventActionWaiting, "sel", b2.done) {
		t.Error("the second build did not wait for the first")
	}
	g.let(t)
	b1.wait(t)
	b2.wait(t)
	if b1.outcome() != exec.OutcomeFailed {
		t.Errorf("first build: %v, want failed", outcomeNames([]exec.Outcome{b1.outcome()}))
	}
	if b2.err != nil || b2.outcome() != exec.OutcomeExecuted {
		t.Errorf("second build: %v %v, want executed", outcomeNames([]exec.Outcome{b2.outcome()}), b2.err)
	}
	if n := g.runs(t); n != 2 {
		t.Errorf("the command ran %d times, want 2", n)
	}
}

// A coordinator that cannot be reached, or answers nonsense, costs one
// warning: the build runs everything itself.
func TestUnreachableCoordinator(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"state":"maybe"}`)
	}))
	defer liar.Close()
	for name, url := range map[string]string{"down": gone.URL, "garbage": liar.URL} {
		t.Run(name, func(t *testing.T) {
			g := newGate(t)
			g.let(t)
			w := newWorkspace(t, "none", openDisk(t))
			w.write("pkg/in.txt", "data\n")
			c := coord.NewClient(url, nil, "", newBuildID(t), w.warn)
			defer c.Close()
			b := startBuild(context.Background(), w, c, 2, slowAction(g, "a"), slowAction(g, "b"), slowAction(g, "c"))
			b.wait(t)
			if b.err != nil {
				t.Fatal(b.err)
			}
			if b.sum.Executed != 3 {
				t.Errorf("executed %d, want 3", b.sum.Executed)
			}
			if len(w.warnings) != 1 || !strings.Contains(w.warnings[0], "coordinator") {
				t.Errorf("warnings %q, want one about the coordinator", w.warnings)
			}
		})
	}
}

func (w *workspace) warn(s string) {
	w.mu.Lock()
	w.warnings = append(w.warnings, s)
	w.mu.Unlock()
}

// A build cancelled while it waits for another ends at once; the action
// is interrupted, not failed.
func TestCancelDuringWait(t *testing.T) {
	srv := startCoordinator(t, coord.ServerOptions{})
	g := newGate(t)
	w1, w2 := twoWorkspaces(t)
	holder := newCrashing(t, srv.URL)
	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	b1 := startBuild(ctx1, w1, holder, 1, slowAction(g, "sel"))
	key := holder.claimedKey(t)
	defer holder.release(key, false)

	c2 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w2.warn)
	defer c2.Close()
	ctx2, cancel := context.WithCancel(context.Background())
	defer cancel()
	b2 := startBuild(ctx2, w2, c2, 1, slowAction(g, "sel"))
	if !b2.events.waitFor(exec.EventActionWaiting, "sel", b2.done) {
		t.Fatal("the second build did not wait")
	}
	cancel()
	b2.wait(t) // the claim's wait would last as long as the holder's lease is renewed... here, forever
	if !errors.Is(b2.err, context.Canceled) {
		t.Errorf("error %v, want the cancellation", b2.err)
	}
	if len(b2.events.of(exec.EventActionInterrupted, "sel")) != 1 {
		t.Error("the waiting action was not interrupted")
	}
	if b2.sum == nil || b2.sum.Executed != 0 || b2.sum.Skipped != 1 {
		t.Errorf("the cancelled build's summary: %+v, want the action skipped", b2.sum)
	}
	stop1()
	b1.wait(t)
}

// An action that waits for another build gives its job slot back: with -j
// 1, an independent action runs meanwhile. Its walltime starts when it
// runs, not when it started waiting.
func TestWaitHoldsNoSlot(t *testing.T) {
	srv := startCoordinator(t, coord.ServerOptions{})
	g := newGate(t)
	w1, w2 := twoWorkspaces(t)
	holder := newCrashing(t, srv.URL)
	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	const walltime = 2 * time.Second
	contended := func() *exec.Action {
		a := slowAction(g, "sel")
		a.SetExtra().Timeout = walltime
		return a
	}
	b1 := startBuild(ctx1, w1, holder, 1, contended())
	key := holder.claimedKey(t)

	c2 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w2.warn)
	defer c2.Close()
	other := shell("other", "cp pkg/in.txt "+out("pkg/other.txt")+"\n", []string{"pkg/in.txt"}, out("pkg/other.txt"))
	b2 := startBuild(context.Background(), w2, c2, 1, contended(), other)
	if !b2.events.waitFor(exec.EventActionWaiting, "sel", b2.done) {
		t.Fatal("the second build did not wait")
	}
	if !b2.events.waitFor(exec.EventActionFinished, "other", b2.done) {
		t.Fatal("the independent action did not run while the other waited: the wait holds the only slot")
	}
	// The wait outlasts the walltime before the holder gives up.
	time.Sleep(walltime + 200*time.Millisecond)
	stop1()
	b1.wait(t)
	g.let(t)
	if err := holder.release(key, false); err != nil {
		t.Fatal(err)
	}
	b2.wait(t)
	if b2.err != nil {
		t.Fatalf("second build: %v", b2.err)
	}
	if b2.sum.Executed != 2 {
		t.Errorf("executed %d, want 2", b2.sum.Executed)
	}
}

// fakeRemote is a remote executor whose runs all fail, counting them.
type fakeRemote struct{ runs atomic.Int32 }

func (f *fakeRemote) Name() string { return "fake" }

func (f *fakeRemote) Execute(ctx context.Context, req *exec.ExecRequest) (*exec.ExecResponse, error) {
	f.runs.Add(1)
	return &exec.ExecResponse{Result: exec.ExecResult{ExitCode: 1}, Where: "fake job 1"}, nil
}

// An action routed to a remote executor is claimed before it is sent
// there: while another build holds its key, nothing is submitted.
func TestRemoteActionClaimedBeforeRouting(t *testing.T) {
	srv := startCoordinator(t, coord.ServerOptions{})
	g := newGate(t)
	w1, w2 := twoWorkspaces(t)
	holder := newCrashing(t, srv.URL)
	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	b1 := startBuild(ctx1, w1, holder, 1, slowAction(g, "sel"))
	key := holder.claimedKey(t)

	remote := &fakeRemote{}
	w2.configure = func(r *exec.Runner) { r.Route = func(*exec.Action) exec.RemoteExecutor { return remote } }
	c2 := coord.NewClient(srv.URL, nil, "", newBuildID(t), w2.warn)
	defer c2.Close()
	b2 := startBuild(context.Background(), w2, c2, 1, slowAction(g, "sel"))
	if !b2.events.waitFor(exec.EventActionWaiting, "sel", b2.done) {
		t.Fatal("the second build did not wait")
	}
	if n := remote.runs.Load(); n != 0 {
		t.Errorf("sent to the remote executor %d times while another build held the key", n)
	}
	stop1()
	b1.wait(t)
	if err := holder.release(key, false); err != nil {
		t.Fatal(err)
	}
	b2.wait(t)
	if n := remote.runs.Load(); n != 1 {
		t.Errorf("sent to the remote executor %d times, want once", n)
	}
	if b2.outcome() != exec.OutcomeFailed {
		t.Errorf("outcome %v, want the remote run's failure", outcomeNames([]exec.Outcome{b2.outcome()}))
	}
}
