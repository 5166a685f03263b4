package remote

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	cacheremote "github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/local"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/internal/testserver"
	"github.com/hepbuild/hepbuild/sandbox"
)

// fileInputs digests inputs as they are in the exec root.
type fileInputs struct{ root string }

func (in fileInputs) Digest(a exec.Artifact) (cache.Digest, bool, error) {
	p := filepath.Join(in.root, a.Path)
	f, err := os.Open(p)
	if err != nil {
		return cache.Digest{}, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return cache.Digest{}, false, err
	}
	d, err := cache.FromReader(f)
	return d, fi.Mode()&0o111 != 0, err
}

// workspace is an exec root holding the inputs of the test actions.
func workspace(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"pkg/in.txt":   "events 1 2 3\n",
		"pkg/count.sh": "#!/bin/bash\nwc -w < \"$1\"\n",
	}
	for p, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// bashAction runs script with bash on the workspace's inputs and declares
// hepbuild-out/pkg/out.txt.
func bashAction(script string) *exec.Action {
	return &exec.Action{
		Owner: graph.Label{Pkg: "pkg", Name: "out"}, Mnemonic: "Task", Kind: exec.KindRun,
		Argv:    []string{"/bin/bash", "-c", script},
		Env:     map[string]string{"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
		Inputs:  []exec.Artifact{{Path: "pkg/count.sh", Source: true}, {Path: "pkg/in.txt", Source: true}},
		Outputs: []exec.Artifact{{Path: "hepbuild-out/pkg/out.txt"}},
		Extra:   &exec.Extra{Tools: []exec.Artifact{{Path: "pkg/count.sh", Source: true}}},
	}
}

type cluster struct {
	bb *testserver.Buildbarn
	e  *Executor
}

func start(t *testing.T, more ...Option) *cluster {
	t.Helper()
	bb := testserver.StartBuildbarn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := New(ctx, bb.URL(), cacheremote.Options{Timeout: 10 * time.Second},
		append([]Option{WithReattachments(3, 200*time.Millisecond)}, more...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &cluster{bb, e}
}

// request keys the action on root's inputs as the runner would.
func request(t *testing.T, a *exec.Action, root string) *exec.ExecRequest {
	t.Helper()
	key, err := exec.ComputeKey(a, fileInputs{root})
	if err != nil {
		t.Fatal(err)
	}
	return &exec.ExecRequest{Action: a, Key: key, ExecRoot: root, LogPath: filepath.Join(t.TempDir(), "logs", "out.log")}
}

// progressLog records the job updates of one request.
type progressLog struct {
	mu      sync.Mutex
	updates []exec.JobUpdate
	running chan struct{}
	once    sync.Once
}

func newProgressLog() *progressLog { return &progressLog{running: make(chan struct{})} }

func (p *progressLog) add(u exec.JobUpdate) {
	p.mu.Lock()
	p.updates = append(p.updates, u)
	p.mu.Unlock()
	if u.State == exec.JobRunning {
		p.once.Do(func() { close(p.running) })
	}
}

func (p *progressLog) states() []exec.JobState {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []exec.JobState
	for _, u := range p.updates {
		s = append(s, u.State)
	}
	return s
}

func TestExecuteMatchesLocalRun(t *testing.T) {
	c := start(t)
	root := workspace(t)
	a := bashAction("mkdir -p hepbuild-out/pkg && pkg/count.sh pkg/in.txt > hepbuild-out/pkg/out.txt && echo done")
	req := request(t, a, root)
	pl := newProgressLog()
	req.Progress = pl.add
	ctx := context.Background()

	resp, err := c.e.Execute(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Result.Success() || resp.ActionResult == nil || resp.Result.Strategy != "reapi" {
		t.Fatalf("got %+v", resp)
	}
	if !strings.HasPrefix(resp.Where, "reapi ") || len(resp.Where) <= len("reapi ") {
		t.Errorf("Where = %q, want the operation's name", resp.Where)
	}
	states := pl.states()
	if len(states) == 0 || states[len(states)-1] != exec.JobFinished {
		t.Errorf("progress %v, want it to end with finished", states)
	}
	for _, u := range pl.updates {
		if u.Executor != "reapi" {
			t.Errorf("update %+v names executor %q", u, u.Executor)
		}
	}

	// The same command run here makes the same bytes.
	localRoot := workspace(t)
	lres, err := local.New(sandbox.None{}).Execute(ctx, a, localRoot, filepath.Join(t.TempDir(), "local.log"))
	if err != nil || !lres.Success() {
		t.Fatalf("local run: %+v, %v", lres, err)
	}
	want, _, err := fileInputs{localRoot}.Digest(exec.Artifact{Path: "hepbuild-out/pkg/out.txt"})
	if err != nil {
		t.Fatal(err)
	}
	files := resp.ActionResult.GetOutputFiles()
	if len(files) != 1 || files[0].GetPath() != "hepbuild-out/pkg/out.txt" {
		t.Fatalf("output files %v, want hepbuild-out/pkg/out.txt", files)
	}
	if got := cache.FromProto(files[0].GetDigest()); got != want {
		t.Errorf("remote output digest %v, local %v", got, want)
	}
	if ok, err := c.e.CAS().Contains(ctx, want); err != nil || !ok {
		t.Errorf("the output is not in the service's CAS (%v)", err)
	}
	b, err := exec.ReadBlob(ctx, c.e.CAS(), cache.FromProto(resp.ActionResult.GetStdoutDigest()), 1<<20)
	if err != nil || string(b) != "done\n" {
		t.Errorf("stdout %q (%v), want done", b, err)
	}

	// Again: the result comes from the service's action cache, at once.
	startAt := time.Now()
	again, err := c.e.Execute(ctx, request(t, a, root))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(startAt); took > 2*time.Second {
		t.Errorf("the second run took %v, want a cache hit", took)
	}
	if !strings.Contains(again.Where, "action cache") || cache.FromProto(again.ActionResult.GetOutputFiles()[0].GetDigest()) != want {
		t.Errorf("second run: %+v, want the cached result", again)
	}
}

func TestFailedActionWritesItsLog(t *testing.T) {
	c := start(t)
	root := workspace(t)
	req := request(t, bashAction("echo to-stdout; echo to-stderr >&2; exit 3"), root)
	resp, err := c.e.Execute(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result.Success() || resp.Result.ExitCode != 3 || resp.ActionResult != nil {
		t.Fatalf("got %+v, want exit status 3 and no result", resp.Result)
	}
	b, err := os.ReadFile(req.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"to-stdout", "to-stderr"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log %q lacks %q", b, want)
		}
	}
}

func TestHugeLogIsBounded(t *testing.T) {
	c := start(t)
	root := workspace(t)
	// 12 MiB on stdout, then a failure.
	req := request(t, bashAction("head -c 12582912 /dev/zero | tr '\\0' x; exit 1"), root)
	resp, err := c.e.Execute(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result.ExitCode != 1 {
		t.Fatalf("got %+v", resp.Result)
	}
	fi, err := os.Stat(req.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > MaxLogBytes+4096 || fi.Size() < MaxLogBytes {
		t.Errorf("log is %d bytes, want about %d", fi.Size(), MaxLogBytes)
	}
	b, _ := os.ReadFile(req.LogPath)
	if !strings.Contains(string(b), "more bytes of stdout not shown") {
		t.Errorf("the log does not say it was cut")
	}
}

func TestActionTimeout(t *testing.T) {
	c := start(t)
	root := workspace(t)
	a := bashAction("sleep 30")
	a.SetExtra().Timeout = 2 * time.Second
	startAt := time.Now()
	resp, err := c.e.Execute(context.Background(), request(t, a, root))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Result.TimedOut || resp.Result.Timeout != 2*time.Second {
		t.Errorf("got %+v, want timed out after 2s", resp.Result)
	}
	if took := time.Since(startAt); took > 20*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestCancelStopsWaiting(t *testing.T) {
	c := start(t)
	root := workspace(t)
	req := request(t, bashAction("sleep 30"), root)
	pl := newProgressLog()
	req.Progress = pl.add
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.e.Execute(ctx, req)
		done <- err
	}()
	select {
	case <-pl.running:
	case err := <-done:
		t.Fatalf("Execute returned before the action ran: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatalf("the action did not start running; progress %v", pl.states())
	}
	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		t.Logf("returned %v after the cancellation", time.Since(cancelled))
		c.e.cancels.Wait()
		c.e.mu.Lock()
		// Buildbarn has no Operations service: it drops the operation a
		// minute after its last waiter left.
		t.Logf("CancelOperation unimplemented: %v", c.e.noCancel)
		c.e.mu.Unlock()
	case <-time.After(8 * time.Second):
		t.Fatal("Execute kept waiting after its context was cancelled")
	}
}

func TestInputEditedAfterKeying(t *testing.T) {
	c := start(t)
	root := workspace(t)
	req := request(t, bashAction("cat pkg/in.txt"), root)
	if err := os.WriteFile(filepath.Join(root, "pkg/in.txt"), []byte("edited since\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.e.Execute(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "input pkg/in.txt changed while the action was keyed and run") {
		t.Fatalf("got %v, want the input-changed error", err)
	}
}

func TestServerDiesWhileWaiting(t *testing.T) {
	c := start(t)
	root := workspace(t)
	req := request(t, bashAction("sleep 30"), root)
	pl := newProgressLog()
	req.Progress = pl.add
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.e.Execute(ctx, req)
		done <- err
	}()
	select {
	case <-pl.running:
	case <-time.After(20 * time.Second):
		t.Fatal("the action did not start running")
	}
	c.bb.Storage.Cmd.Process.Kill() // the frontend the client talks to
	select {
	case err := <-done:
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "remote executor") {
			t.Errorf("got %v, want an error naming the remote executor", err)
		}
		t.Logf("error: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Execute hangs after the server died")
	}
}

func TestNotRemotable(t *testing.T) {
	write := bashAction("")
	write.Kind, write.Argv, write.SetExtra().Content = exec.KindWrite, nil, []byte("x")
	link := bashAction("")
	link.Kind = exec.KindSymlink
	conda := bashAction("true")
	conda.Environment = &exec.Environment{Label: graph.Label{Pkg: "envs", Name: "py"}, Kind: "conda"}
	tagged := bashAction("true")
	tagged.SetExtra().Tags = []string{"no-remote-exec"}
	host := bashAction("true")
	host.Environment = &exec.Environment{Kind: "host"}
	for _, a := range []*exec.Action{write, link, conda, tagged} {
		if err := Remotable(a); !errors.Is(err, ErrNotRemotable) {
			t.Errorf("%s (%+v, %v): got %v, want ErrNotRemotable", a.Kind, a.Environment, a.Extras().Tags, err)
		}
		e := &Executor{}
		if _, err := e.Execute(context.Background(), &exec.ExecRequest{Action: a}); !errors.Is(err, ErrNotRemotable) {
			t.Errorf("Execute: got %v, want ErrNotRemotable", err)
		}
	}
	if err := Remotable(host); err != nil {
		t.Errorf("a host action: %v", err)
	}
}

func TestForeignOutputPathsDoNotCrash(t *testing.T) {
	c := start(t)
	root := workspace(t)
	req := request(t, bashAction("true"), root)
	ctx := context.Background()
	blob := []byte("forged")
	d := cache.FromBytes(blob)
	if err := c.e.CAS().PutBatch(ctx, map[cache.Digest][]byte{d: blob}); err != nil {
		t.Fatal(err)
	}
	forged := &repb.ActionResult{OutputFiles: []*repb.OutputFile{
		{Path: "../escape", Digest: d.ToProto()}, {Path: "/abs", Digest: d.ToProto()}, {Path: "undeclared", Digest: d.ToProto()},
	}}
	if err := c.e.CAS().PutActionResult(ctx, req.Key.Digest, forged); err != nil {
		t.Fatal(err)
	}
	resp, err := c.e.Execute(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The runner checks outputs against the declared ones; the executor
	// hands the result on.
	if resp.ActionResult == nil || len(resp.ActionResult.GetOutputFiles()) != 3 {
		t.Errorf("got %+v", resp)
	}
}

func TestNewRefusesACacheOnly(t *testing.T) {
	s := testserver.StartBBStorage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := New(ctx, "grpc://"+s.Addr, cacheremote.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not offer remote execution") {
		t.Fatalf("got %v, want a refusal naming execution", err)
	}
}

// A server that lacks the action's blobs says so in a way the executor
// takes for "upload again", not for a failure of the service: Buildbarn
// is asked to run an action nobody uploaded.
func TestMissingBlobsAreRecognised(t *testing.T) {
	c := start(t)
	root := workspace(t)
	req := request(t, bashAction("echo never uploaded"), root)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op, err := c.e.run(ctx, req)
	if err == nil {
		_, err = c.e.finish(ctx, req, op)
	}
	if !missingInputs(err) {
		t.Fatalf("got %v, want an error missingInputs recognises", err)
	}
	t.Logf("error: %v", err)
	// Execute uploads, so the same request runs.
	resp, err := c.e.Execute(ctx, req)
	if err != nil || !resp.Result.Success() {
		t.Fatalf("got %+v, %v", resp, err)
	}
}

// The frontend restarts while the action runs. Once the worker has its
// inputs, the executor re-attaches to the operation, which the scheduler
// kept, instead of running it again; before, the worker cannot fetch them
// and the executor uploads them again and executes again.
func TestFrontendRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		delay    time.Duration
		sameOpID bool
	}{{"while fetching inputs", 0, false}, {"while running", time.Second, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := start(t, WithReattachments(6, 200*time.Millisecond))
			root := workspace(t)
			req := request(t, bashAction("sleep 3; mkdir -p hepbuild-out/pkg; echo survived > hepbuild-out/pkg/out.txt"), root)
			pl := newProgressLog()
			req.Progress = pl.add
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			type result struct {
				resp *exec.ExecResponse
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := c.e.Execute(ctx, req)
				done <- result{resp, err}
			}()
			select {
			case <-pl.running:
			case <-time.After(20 * time.Second):
				t.Fatal("the action did not start running")
			}
			time.Sleep(tc.delay)
			c.bb.RestartStorage(t, 500*time.Millisecond)
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !r.resp.Result.Success() {
				t.Fatalf("got %+v", r.resp.Result)
			}
			var ids []string
			pl.mu.Lock()
			for _, u := range pl.updates {
				if u.State == exec.JobRunning {
					ids = append(ids, u.JobID)
				}
			}
			pl.mu.Unlock()
			t.Logf("ran as %v, result from %s", ids, r.resp.Where)
			if tc.sameOpID && (len(ids) == 0 || r.resp.Where != "reapi "+ids[0]) {
				t.Errorf("result from %q, ran as %v: want one operation, re-attached", r.resp.Where, ids)
			}
		})
	}
}

// A command the worker cannot start is the action's failure, as it is in
// a local run, not the service's.
func TestMissingToolIsTheActionsFailure(t *testing.T) {
	c := start(t)
	root := workspace(t)
	a := bashAction("")
	a.Argv = []string{"no-such-tool-hepbuild"}
	req := request(t, a, root)
	resp, err := c.e.Execute(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result.Success() || !strings.Contains(resp.Result.StartError, "no-such-tool-hepbuild") {
		t.Fatalf("got %+v, want a start error naming the tool", resp.Result)
	}
	if b, _ := os.ReadFile(req.LogPath); !strings.Contains(string(b), "no-such-tool-hepbuild") {
		t.Errorf("log %q does not name the tool", b)
	}
}

// Actions beyond the job limit wait for a slot; all of them run.
func TestJobLimit(t *testing.T) {
	c := start(t, WithJobs(2))
	root := workspace(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		req := request(t, bashAction("mkdir -p hepbuild-out/pkg; echo "+strings.Repeat("x", i)+" > hepbuild-out/pkg/out.txt"), root)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.e.Execute(context.Background(), req)
			if err == nil && !resp.Result.Success() {
				err = errors.New("failed: " + resp.Result.StartError)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("action %d: %v", i, err)
		}
	}
	if n := len(c.e.jobs); n != 0 {
		t.Errorf("%d job slots still taken", n)
	}
}
