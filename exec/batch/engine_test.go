package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// These tests drive the engine with a backend in this process (a
// stand-in: it runs no jobs; the test decides what each job's state is
// and what it left in the cache). The real thing, Slurm with real
// workers, is tested in cmd/hepbuild (batch_test.go).

type fakeBackend struct {
	mu      sync.Mutex
	next    int
	arrays  []*Array
	state   map[string]Status // what Poll answers; absent = vanished
	polls   [][]string
	cancels [][]string
	history map[string]Status
	submit  func(*Array) error
}

func newFake() *fakeBackend {
	return &fakeBackend{state: map[string]Status{}}
}

func (f *fakeBackend) Name() string { return "fake" }

func (f *fakeBackend) Submit(ctx context.Context, a *Array) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.submit != nil {
		if err := f.submit(a); err != nil {
			return nil, err
		}
	}
	f.next++
	f.arrays = append(f.arrays, a)
	ids := make([]string, len(a.Jobs))
	for i := range a.Jobs {
		ids[i] = fmt.Sprintf("%d_%d", f.next, i)
		f.state[ids[i]] = Status{State: StatePending}
	}
	return ids, nil
}

func (f *fakeBackend) Poll(ctx context.Context, ids []string) (map[string]Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls = append(f.polls, append([]string(nil), ids...))
	out := map[string]Status{}
	for _, id := range ids {
		if s, ok := f.state[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

func (f *fakeBackend) Cancel(ctx context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, append([]string(nil), ids...))
	for _, id := range ids {
		delete(f.state, id)
	}
	return nil
}

func (f *fakeBackend) set(id string, s Status) {
	f.mu.Lock()
	f.state[id] = s
	f.mu.Unlock()
}

func (f *fakeBackend) vanish(id string) {
	f.mu.Lock()
	delete(f.state, id)
	f.mu.Unlock()
}

// jobs returns the ids submitted so far and each job's worker command.
func (f *fakeBackend) jobs() map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for n, a := range f.arrays {
		for i, j := range a.Jobs {
			out[fmt.Sprintf("%d_%d", n+1, i)] = j.Command
		}
	}
	return out
}

type rig struct {
	t     *testing.T
	cache *disk.Cache
	be    *fakeBackend
	e     *Engine
	dir   string
	root  string
	warns []string
	mu    sync.Mutex
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, cache: c, be: newFake(), dir: t.TempDir(), root: t.TempDir()}
	r.start(cfg)
	return r
}

func (r *rig) start(cfg Config) {
	cfg.Backend, cfg.Results, cfg.Upload, cfg.Dir = r.be, r.cache, r.cache, r.dir
	cfg.Worker = []string{"hepbuild", "worker"}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.Window == 0 {
		cfg.Window = 20 * time.Millisecond
	}
	cfg.Warn = func(s string) { r.mu.Lock(); r.warns = append(r.warns, s); r.mu.Unlock() }
	e, err := New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
	r.t.Cleanup(func() { e.Close(context.Background(), true) })
}

// action returns a run action and its key, numbered to differ.
func (r *rig) action(n int, mem int64) (*exec.Action, *exec.Key) {
	a := &exec.Action{Mnemonic: "Hist", Kind: exec.KindRun, Argv: []string{"/bin/true", fmt.Sprint(n)},
		Outputs: []exec.Artifact{{Path: fmt.Sprintf("hepbuild-out/h%d", n)}}, Extra: &exec.Extra{Resources: exec.Resources{Memory: mem}}}
	k, err := exec.ComputeKey(a, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return a, k
}

type answer struct {
	resp *exec.ExecResponse
	err  error
}

// run starts Execute for the actions and returns their answers' channels.
func (r *rig) run(ctx context.Context, as []*exec.Action, ks []*exec.Key) []chan answer {
	out := make([]chan answer, len(as))
	for i := range as {
		out[i] = make(chan answer, 1)
		go func(i int) {
			resp, err := r.e.Execute(ctx, &exec.ExecRequest{Action: as[i], Key: ks[i], ExecRoot: r.root,
				LogPath: filepath.Join(r.root, fmt.Sprintf("log%d", i))})
			out[i] <- answer{resp, err}
		}(i)
	}
	return out
}

// succeed stores a result for the action, as its worker would.
func (r *rig) succeed(k *exec.Key) {
	d := cache.FromBytes([]byte("out"))
	if err := r.cache.Put(context.Background(), d, strings.NewReader("out")); err != nil {
		r.t.Fatal(err)
	}
	res := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "x", Digest: d.ToProto()}}}
	if err := r.cache.PutActionResult(context.Background(), k.Digest, res); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) waitJobs(n int) map[string][]string {
	r.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if j := r.be.jobs(); len(j) >= n {
			return j
		}
	}
	r.t.Fatalf("fewer than %d jobs submitted: %v", n, r.be.jobs())
	return nil
}

func wait(t *testing.T, c chan answer) answer {
	t.Helper()
	select {
	case a := <-c:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	return answer{}
}

// Ready actions of one resource request go as one array of jobs of
// ActionsPerJob actions; another request is another array.
func TestGroupsIntoArrays(t *testing.T) {
	// The window must outlast the time the eleven actions take to become
	// ready. (Three submissions were seen twice, with 1 s and 3 s: a poll
	// sent an action on before its poke opened the window; see
	// TestQueuedActionWaitsForItsWindow.)
	r := newRig(t, Config{ActionsPerJob: 3, Window: 3 * time.Second})
	var as []*exec.Action
	var ks []*exec.Key
	for i := 0; i < 10; i++ {
		a, k := r.action(i, 0)
		as, ks = append(as, a), append(ks, k)
	}
	big, bigKey := r.action(99, 4<<30)
	as, ks = append(as, big), append(ks, bigKey)
	answers := r.run(context.Background(), as, ks)
	jobs := r.waitJobs(5)
	if n := len(r.be.arrays); n != 2 {
		t.Fatalf("%d submissions, want 2 (one per resource request)", n)
	}
	sizes := map[int64][]int{}
	for _, a := range r.be.arrays {
		for _, j := range a.Jobs {
			sizes[a.Resources.Memory] = append(sizes[a.Resources.Memory], len(j.Command)-4) // hepbuild worker --token T, then the actions
		}
	}
	if got := fmt.Sprint(sizes); got != fmt.Sprint(map[int64][]int{0: {3, 3, 3, 1}, 4 << 30: {1}}) {
		t.Errorf("actions per job by memory request %v", got)
	}
	for _, k := range ks {
		r.succeed(k)
	}
	for id := range jobs {
		r.be.set(id, Status{State: StateDone})
	}
	for i, c := range answers {
		if a := wait(t, c); a.err != nil || a.resp.ActionResult == nil {
			t.Errorf("action %d: %+v", i, a)
		}
	}
}

// An action queued just before a poll waits for its window all the same:
// a poll that came between its queueing and its poke sent it on alone
// (TestGroupsIntoArrays then saw three arrays instead of two).
func TestQueuedActionWaitsForItsWindow(t *testing.T) {
	const window = 500 * time.Millisecond
	testHookQueued = func() { time.Sleep(100 * time.Millisecond) } // five polls
	t.Cleanup(func() { testHookQueued = nil })
	r := newRig(t, Config{Window: window})
	var submitted time.Time
	r.be.submit = func(*Array) error { submitted = time.Now(); return nil }
	a, k := r.action(1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	r.run(ctx, []*exec.Action{a}, []*exec.Key{k})
	r.waitJobs(1)
	r.be.mu.Lock()
	waited := submitted.Sub(start)
	r.be.mu.Unlock()
	if waited < window {
		t.Errorf("submitted %v after it was queued, before its window of %v", waited, window)
	}
}

// Every poll asks for all jobs in flight at once, and polls come at the
// poll interval, not per job.
func TestOnePollForAllJobs(t *testing.T) {
	r := newRig(t, Config{PollInterval: 50 * time.Millisecond})
	var as []*exec.Action
	var ks []*exec.Key
	for i := 0; i < 20; i++ {
		a, k := r.action(i, 0)
		as, ks = append(as, a), append(ks, k)
	}
	answers := r.run(context.Background(), as, ks)
	jobs := r.waitJobs(20)
	r.be.mu.Lock()
	before := len(r.be.polls)
	r.be.mu.Unlock()
	start := time.Now()
	time.Sleep(500 * time.Millisecond)
	r.be.mu.Lock()
	polls := append([][]string(nil), r.be.polls[before:]...)
	r.be.mu.Unlock()
	ticks := int(time.Since(start)/(50*time.Millisecond)) + 2
	if len(polls) > ticks {
		t.Errorf("%d polls in %d ticks", len(polls), ticks)
	}
	for _, p := range polls[len(polls)-3:] {
		if len(p) != 20 {
			t.Errorf("a poll asked for %d jobs, want all 20", len(p))
		}
	}
	for _, k := range ks {
		r.succeed(k)
	}
	for id := range jobs {
		r.be.vanish(id) // ended and forgotten: the cache decides
	}
	for _, c := range answers {
		if a := wait(t, c); a.err != nil {
			t.Error(a.err)
		}
	}
}

// A job that vanished: its actions whose results are in the cache are
// done, the others are resubmitted, and after the retries an error names
// the job and shows its log.
func TestVanishedJobCacheDecides(t *testing.T) {
	r := newRig(t, Config{ActionsPerJob: 2, Retries: 1})
	a0, k0 := r.action(0, 0)
	a1, k1 := r.action(1, 0)
	answers := r.run(context.Background(), []*exec.Action{a0, a1}, []*exec.Key{k0, k1})
	jobs := r.waitJobs(1)
	r.succeed(k0)
	for id := range jobs {
		os.WriteFile(filepath.Join(r.be.arrays[0].Dir, "job-0.log"), []byte("node lost\n"), 0o644)
		r.be.vanish(id)
	}
	if a := wait(t, answers[0]); a.err != nil || a.resp.ActionResult == nil {
		t.Fatalf("cached action: %+v", a)
	}
	jobs = r.waitJobs(2) // the other one, resubmitted alone
	if n := len(r.be.arrays[1].Jobs[0].Command) - 4; n != 1 {
		t.Errorf("resubmitted %d actions, want only the one without a result", n)
	}
	r.be.vanish("2_0")
	a := wait(t, answers[1])
	if a.err == nil || !strings.Contains(a.err.Error(), "fake job 2_0") {
		t.Fatalf("want an error naming the job, got %+v", a)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.warns) != 1 || !strings.Contains(r.warns[0], "resubmitting") {
		t.Errorf("warnings %q", r.warns)
	}
}

// A held job is removed and resubmitted, with the hold reason shown.
func TestHeldJobIsResubmitted(t *testing.T) {
	r := newRig(t, Config{Retries: 2})
	a, k := r.action(0, 0)
	answers := r.run(context.Background(), []*exec.Action{a}, []*exec.Key{k})
	r.waitJobs(1)
	r.be.set("1_0", Status{State: StateHeld, Reason: "SYSTEM_PERIODIC_HOLD: disk quota"})
	r.waitJobs(2)
	r.be.mu.Lock()
	cancels := fmt.Sprint(r.be.cancels)
	r.be.mu.Unlock()
	if cancels != "[[1_0]]" {
		t.Errorf("cancels %s, want the held job removed", cancels)
	}
	r.succeed(k)
	r.be.set("2_0", Status{State: StateDone})
	if ans := wait(t, answers[0]); ans.err != nil {
		t.Fatal(ans.err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.warns) == 0 || !strings.Contains(r.warns[0], "disk quota") {
		t.Errorf("the hold reason is not shown: %q", r.warns)
	}
}

// At most MaxJobs jobs are in flight; the rest wait for room.
func TestMaxJobs(t *testing.T) {
	r := newRig(t, Config{MaxJobs: 2})
	var as []*exec.Action
	var ks []*exec.Key
	for i := 0; i < 5; i++ {
		a, k := r.action(i, 0)
		as, ks = append(as, a), append(ks, k)
	}
	answers := r.run(context.Background(), as, ks)
	r.waitJobs(2)
	time.Sleep(200 * time.Millisecond)
	if n := len(r.be.jobs()); n != 2 {
		t.Fatalf("%d jobs in flight, want 2", n)
	}
	for _, k := range ks {
		r.succeed(k)
	}
	for done := 0; done < 5; {
		for id := range r.be.jobs() {
			r.be.vanish(id)
		}
		done = 0
		for _, c := range answers {
			if len(c) > 0 {
				done++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(r.be.jobs()); n != 5 {
		t.Errorf("%d jobs in all, want 5", n)
	}
}

// A worker's failure record makes the action's failure, with its log.
func TestFailureRecord(t *testing.T) {
	r := newRig(t, Config{})
	a, k := r.action(0, 0)
	answers := r.run(context.Background(), []*exec.Action{a}, []*exec.Key{k})
	jobs := r.waitJobs(1)
	token := jobs["1_0"][3]
	log := "Traceback: KeyError 'tth'\n"
	d := cache.FromBytes([]byte(log))
	r.cache.Put(context.Background(), d, strings.NewReader(log))
	r.cache.PutActionResult(context.Background(), exec.FailureKey(k.Digest, token), &repb.ActionResult{ExitCode: 2, StdoutDigest: d.ToProto()})
	r.be.vanish("1_0")
	ans := wait(t, answers[0])
	if ans.err != nil || ans.resp.Result.ExitCode != 2 || ans.resp.Where != "fake job 1_0" {
		t.Fatalf("%+v", ans)
	}
	if b, _ := os.ReadFile(filepath.Join(r.root, "log0")); string(b) != log {
		t.Errorf("log %q", b)
	}
}

// A submission the batch system refuses fails its actions with its message.
func TestSubmitErrorIsShown(t *testing.T) {
	r := newRig(t, Config{})
	r.be.submit = func(*Array) error { return fmt.Errorf("sbatch: error: invalid partition specified: gpu") }
	a, k := r.action(0, 0)
	ans := wait(t, r.run(context.Background(), []*exec.Action{a}, []*exec.Key{k})[0])
	if ans.err == nil || !strings.Contains(ans.err.Error(), "invalid partition specified: gpu") {
		t.Fatalf("%+v", ans)
	}
}

// Jobs left running (--detach, or a killed hepbuild) are recorded; the
// next engine re-attaches to them and submits nothing again.
func TestReattach(t *testing.T) {
	r := newRig(t, Config{})
	a, k := r.action(0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	answers := r.run(ctx, []*exec.Action{a}, []*exec.Key{k})
	r.waitJobs(1)
	cancel()
	wait(t, answers[0])
	if err := r.e.Close(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	r.start(Config{})
	if n := r.e.Adopted(); n != 1 {
		t.Fatalf("adopted %d jobs, want 1", n)
	}
	answers = r.run(context.Background(), []*exec.Action{a}, []*exec.Key{k})
	time.Sleep(100 * time.Millisecond)
	r.succeed(k)
	r.be.set("1_0", Status{State: StateDone})
	if ans := wait(t, answers[0]); ans.err != nil || ans.resp.Where != "fake job 1_0" {
		t.Fatalf("%+v", ans)
	}
	if n := len(r.be.arrays); n != 1 {
		t.Errorf("%d submissions, want the first only", n)
	}
	// Without detach, Close cancels what is in flight and forgets it.
	b, _ := r.action(1, 0)
	_, kb := r.action(1, 0)
	ctx2, cancel2 := context.WithCancel(context.Background())
	answers = r.run(ctx2, []*exec.Action{b}, []*exec.Key{kb})
	r.waitJobs(2)
	cancel2()
	wait(t, answers[0])
	if err := r.e.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, recordFile)); !os.IsNotExist(err) {
		t.Errorf("the record of cancelled jobs is still there: %v", err)
	}
}

// A job asks for the walltime of all its actions, run one after another,
// and the staging around them.
func TestJobWalltime(t *testing.T) {
	r := newRig(t, Config{ActionsPerJob: 3, Window: 300 * time.Millisecond})
	var as []*exec.Action
	var ks []*exec.Key
	for i := 0; i < 4; i++ {
		a, _ := r.action(i, 0)
		a.SetExtra().Resources.Walltime = 20 * time.Minute
		k, err := exec.ComputeKey(a, nil)
		if err != nil {
			t.Fatal(err)
		}
		as, ks = append(as, a), append(ks, k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.run(ctx, as, ks)
	r.waitJobs(2)
	if got := r.be.arrays[0].Resources.Walltime; got != 3*20*time.Minute+stagingTime {
		t.Errorf("walltime %v, want 3 x 20m + %v", got, stagingTime)
	}
}
