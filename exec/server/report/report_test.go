package report_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/exec/server/report"
	"github.com/hepbuild/hepbuild/exec/server/report/reporttest"
	"github.com/hepbuild/hepbuild/graph"
)

const token = "s3cret-token-value"

// warnings collects the reporter's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) add(m string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, m)
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// chain is three actions: gen writes a file, sel reads it, hist reads
// sel's output; with their logs in a folder.
func chain(t *testing.T) ([]*exec.Action, *exec.Graph, string) {
	t.Helper()
	mk := func(name, in, outp string, argv ...string) *exec.Action {
		a := &exec.Action{Owner: graph.Label{Pkg: "ana", Name: name}, Mnemonic: "Task", Kind: exec.KindRun, Argv: argv,
			Env: map[string]string{"PATH": "/usr/bin:/bin", "NAME": name}, Extra: &exec.Extra{Tags: []string{"no-remote"}}}
		if in != "" {
			a.Inputs = []exec.Artifact{{Path: in}, {Path: "ana/src.txt", Source: true}}
		}
		a.Outputs = []exec.Artifact{{Path: outp}}
		return a
	}
	gen := mk("gen", "", "hepbuild-out/ana/gen.txt", "/bin/bash", "-c", "echo gen > $1")
	sel := mk("sel", "hepbuild-out/ana/gen.txt", "hepbuild-out/ana/sel.txt", "tools/select", "--cut", "pt > 20")
	hist := mk("hist", "hepbuild-out/ana/sel.txt", "hepbuild-out/ana/hist.root", "tools/hist")
	actions := []*exec.Action{gen, sel, hist}
	g, err := exec.NewGraph(actions, nil)
	if err != nil {
		t.Fatal(err)
	}
	return actions, g, t.TempDir()
}

func logPath(dir string) func(*exec.Action) string {
	return func(a *exec.Action) string { return filepath.Join(dir, a.Owner.Name+".log") }
}

// emit sends the events of one action that started and ended.
func emit(r exec.EventSink, a *exec.Action, end exec.EventType) {
	r.Event(exec.Event{Type: exec.EventActionQueued, Time: time.Now(), Target: a.Owner.String(), Action: a})
	r.Event(exec.Event{Type: exec.EventActionStarted, Time: time.Now(), Target: a.Owner.String(), Action: a, Attempt: 1})
	e := exec.Event{Type: end, Time: time.Now(), Target: a.Owner.String(), Action: a, Duration: time.Second}
	if end == exec.EventActionFailed {
		e.ExitCode, e.Message = 3, "exit status 3"
	}
	r.Event(e)
}

// TestReportOrder: a build reports its start, its plan with the edges,
// its events with local slots, each action's details (command, env,
// inputs, reasons, where, log tail) and its end, in that order, with the
// token as a bearer token.
func TestReportOrder(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	actions, g, logs := chain(t)
	big := strings.Repeat("x", 100) + "\n"
	if err := os.WriteFile(filepath.Join(logs, "gen.log"), []byte(strings.Repeat(big, 200)+"the end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logs, "hist.log"), []byte(strings.Repeat(big, 200)+"Error: no such branch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logs, "sel.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var w warnings
	r := report.New(report.Options{URL: srv.URL + "/", Token: token, Actions: actions, Graph: g, LogPath: logPath(logs), Warn: w.add,
		Start: api.BuildStart{User: "ana", Host: "lxplus", Workspace: "/work/ana", Targets: []string{"//ana:hist"}, Command: []string{"build", "//ana:hist"}}})
	if len(r.ID()) != api.IDLen || !strings.HasSuffix(r.PageURL(), "/builds/"+r.ID()) || strings.Contains(r.PageURL(), "//builds") {
		t.Errorf("id %q, page %q", r.ID(), r.PageURL())
	}
	r.Event(exec.Event{Type: exec.EventBuildStarted, Total: 3})
	r.Reasons(actions[0], "abc/12", []string{"never run here before"})
	emit(r, actions[0], exec.EventActionFinished)
	emit(r, actions[1], exec.EventActionCached)
	emit(r, actions[2], exec.EventActionFailed)
	r.Event(exec.Event{Type: exec.EventBuildFinished, Total: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeFailed, ExitCode: 1, Counts: api.Counts{Total: 3, Executed: 1, Cached: 1, Failed: 1}}); err != nil {
		t.Fatal(err)
	}
	if ws := w.list(); len(ws) > 0 {
		t.Errorf("warnings %q, want none", ws)
	}

	reqs := rec.Requests()
	var kinds []string
	for _, q := range reqs {
		if q.Auth != "Bearer "+token {
			t.Errorf("%s sent Authorization %q", q.Kind, q.Auth)
		}
		if len(kinds) == 0 || kinds[len(kinds)-1] != q.Kind {
			kinds = append(kinds, q.Kind)
		}
	}
	if strings.Join(kinds, " ") != "start batch end" {
		t.Errorf("requests %v, want start, batches, end", kinds)
	}
	b := rec.Build(r.ID())
	if b.Start == nil || b.Start.Total != 3 || b.Start.User != "ana" || b.Start.Started.IsZero() {
		t.Fatalf("start %+v", b.Start)
	}
	if !slices.IsSorted(b.Seqs) || b.Seqs[0] != 1 {
		t.Errorf("batch seqs %v, want increasing from 1", b.Seqs)
	}
	if len(b.Plan) != 3 || b.Plan[2].Target != "//ana:hist" || !slices.Equal(b.Plan[2].Deps, []int32{1}) || !slices.Equal(b.Plan[1].Deps, []int32{0}) || len(b.Plan[0].Deps) != 0 {
		t.Errorf("plan %+v", b.Plan)
	}
	// The plan precedes every event.
	if q := reqs[1]; q.Batch == nil || len(q.Batch.Plan) != 3 || len(q.Batch.Events) != 0 {
		t.Errorf("the first batch is not the plan: %+v", q.Batch)
	}
	if len(b.Events) != 11 || b.Events[0].Type != "build_started" || b.Events[0].Action != -1 {
		t.Fatalf("events %+v", b.Events)
	}
	for _, e := range b.Events {
		if e.Type == "action_started" && e.Slot != 1 {
			t.Errorf("action %d started in slot %d, want 1 (one at a time)", e.Action, e.Slot)
		}
	}
	if len(b.Actions) != 3 {
		t.Fatalf("action details %+v", b.Actions)
	}
	gen, sel, hist := b.Actions[0], b.Actions[1], b.Actions[2]
	if gen.Command != "echo gen > $1" || sel.Command != "tools/select --cut 'pt > 20'" {
		t.Errorf("commands %q, %q", gen.Command, sel.Command)
	}
	if !slices.Equal(gen.Reasons, []string{"never run here before"}) || gen.Key != "abc/12" || sel.Reasons != nil {
		t.Errorf("reasons %q key %q; sel %q", gen.Reasons, gen.Key, sel.Reasons)
	}
	if gen.Where != "local slot 1" || gen.Env["NAME"] != "gen" || !slices.Equal(gen.Tags, []string{"no-remote"}) {
		t.Errorf("gen %+v", gen)
	}
	if sel.InputCount != 2 || !slices.Equal(sel.Inputs, []string{"hepbuild-out/ana/gen.txt", "ana/src.txt"}) || !slices.Equal(sel.Outputs, []string{"hepbuild-out/ana/sel.txt"}) {
		t.Errorf("sel inputs %q (%d), outputs %q", sel.Inputs, sel.InputCount, sel.Outputs)
	}
	if len(gen.Log) > report.LogTail || !gen.LogTruncated || !strings.HasSuffix(gen.Log, "the end\n") || !strings.HasPrefix(gen.Log, "xxx") {
		t.Errorf("gen's log: %d bytes, truncated %v", len(gen.Log), gen.LogTruncated)
	}
	if hist.LogTruncated || !strings.HasSuffix(hist.Log, "Error: no such branch\n") || len(hist.Log) != 201*101+len("Error: no such branch\n")-101 {
		t.Errorf("the failed action's log: %d bytes, truncated %v", len(hist.Log), hist.LogTruncated)
	}
	if sel.Log != "" {
		t.Errorf("an empty log sent as %q", sel.Log)
	}
	if b.End == nil || b.End.Outcome != api.OutcomeFailed || b.End.Finished.IsZero() || b.End.Counts.Failed != 1 {
		t.Errorf("end %+v", b.End)
	}
	if b.Dropped != 0 {
		t.Errorf("dropped %d", b.Dropped)
	}
}

// TestReportSlots: actions running at once take the lowest free slots;
// an offloaded action takes none and is described by its job.
func TestReportSlots(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	actions, g, _ := chain(t)
	r := report.New(report.Options{URL: srv.URL, Actions: actions, Graph: g,
		Offloaded: func(a *exec.Action) bool { return a.Owner.Name == "hist" }})
	start := func(a *exec.Action) {
		r.Event(exec.Event{Type: exec.EventActionStarted, Action: a})
	}
	end := func(a *exec.Action) {
		r.Event(exec.Event{Type: exec.EventActionFinished, Action: a})
	}
	start(actions[0]) // slot 1
	start(actions[1]) // slot 2
	end(actions[0])
	start(actions[2]) // offloaded: no slot
	r.Event(exec.Event{Type: exec.EventJobSubmitted, Action: actions[2], Executor: "slurm", JobID: "5599680_3"})
	end(actions[2])
	r.Event(exec.Event{Type: exec.EventActionRetry, Action: actions[1]})
	start(actions[1]) // slot 1 again: the lowest free
	end(actions[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	b := rec.Build("")
	var slots []int
	for _, e := range b.Events {
		if e.Type == "action_started" {
			slots = append(slots, e.Slot)
		}
	}
	if !slices.Equal(slots, []int{1, 2, 0, 1}) {
		t.Errorf("slots %v, want [1 2 0 1]", slots)
	}
	where := map[int32]string{}
	for _, a := range b.Actions {
		where[a.ID] = a.Where
	}
	if where[0] != "local slot 1" || where[1] != "local slot 1" || where[2] != "slurm job 5599680_3" {
		t.Errorf("where %q", where)
	}
}

// TestReportServerHangs: a server that never answers costs one warning;
// Event never waits for it, the events beyond the buffer are counted as
// dropped, and Close returns within its bound.
func TestReportServerHangs(t *testing.T) {
	rec := &reporttest.Recorder{Stall: make(chan struct{})}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	defer close(rec.Stall)
	actions, g, _ := chain(t)
	var w warnings
	u := strings.Replace(srv.URL, "http://", "http://ana:hunter2@", 1)
	r := report.New(report.Options{URL: u, Token: token, Actions: actions, Graph: g, Warn: w.add,
		Buffer: 1000, Timeout: 300 * time.Millisecond, Interval: 10 * time.Millisecond})
	const n = 50000
	for i := 0; i < n; i++ {
		r.Event(exec.Event{Type: exec.EventActionQueued, Action: actions[i%3]})
	}
	if d := r.Dropped(); d < n-2*1000 {
		t.Errorf("dropped %d of %d events with a buffer of 1000", d, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err == nil {
		t.Error("Close says a hanging server took the end")
	}
	ws := w.list()
	if len(ws) != 1 {
		t.Fatalf("warnings %q, want one", ws)
	}
	if !strings.Contains(ws[0], "127.0.0.1") || strings.Contains(ws[0], token) || strings.Contains(ws[0], "hunter2") {
		t.Errorf("warning %q: want the server named, without token or password", ws[0])
	}
	if strings.Contains(r.PageURL(), "hunter2") {
		t.Errorf("page %q shows the password", r.PageURL())
	}
}

// TestReportServerFails: a server that answers 500, refuses the token
// (401) or the build (400) costs one warning, whatever the number of
// batches.
func TestReportServerFails(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusUnauthorized, http.StatusBadRequest} {
		rec := &reporttest.Recorder{Status: func(string) int { return code }}
		srv := httptest.NewServer(rec)
		actions, g, _ := chain(t)
		var w warnings
		r := report.New(report.Options{URL: srv.URL, Token: token, Actions: actions, Graph: g, Warn: w.add, Interval: 5 * time.Millisecond})
		for i := 0; i < 20; i++ {
			r.Event(exec.Event{Type: exec.EventActionQueued, Action: actions[i%3]})
			time.Sleep(10 * time.Millisecond) // several ticks: several tries
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err == nil {
			t.Errorf("%d: Close says the end was taken", code)
		}
		cancel()
		srv.Close()
		ws := w.list()
		if len(ws) != 1 {
			t.Errorf("%d: warnings %q, want one", code, ws)
			continue
		}
		if strings.Contains(ws[0], token) || !strings.Contains(ws[0], srv.URL) {
			t.Errorf("%d: warning %q", code, ws[0])
		}
		if code == http.StatusUnauthorized && !strings.Contains(ws[0], "--server-token-file") {
			t.Errorf("401: warning %q does not say what to check", ws[0])
		}
		if len(rec.Requests()) != 0 {
			t.Errorf("%d: the server recorded requests", code)
		}
	}
}

// TestReportRecovers: batches that failed are sent again once the server
// is back; nothing is lost or sent twice.
func TestReportRecovers(t *testing.T) {
	var mu sync.Mutex
	fails := 3
	rec := &reporttest.Recorder{Status: func(kind string) int {
		mu.Lock()
		defer mu.Unlock()
		if kind == "batch" && fails > 0 {
			fails--
			return http.StatusServiceUnavailable
		}
		return 0
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	actions, g, _ := chain(t)
	var w warnings
	r := report.New(report.Options{URL: srv.URL, Actions: actions, Graph: g, Warn: w.add, Interval: 5 * time.Millisecond})
	for _, a := range actions {
		emit(r, a, exec.EventActionFinished)
	}
	for {
		mu.Lock()
		f := fails
		mu.Unlock()
		if f == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range actions {
		r.Event(exec.Event{Type: exec.EventWarning, Action: a, Message: "late"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	b := rec.Build("")
	if len(b.Plan) != 3 || len(b.Events) != 12 || len(b.Actions) != 3 || b.End == nil || b.Dropped != 0 {
		t.Errorf("plan %d, events %d, details %d, end %v, dropped %d; want 3, 12, 3, an end, 0", len(b.Plan), len(b.Events), len(b.Actions), b.End != nil, b.Dropped)
	}
	if len(w.list()) != 1 {
		t.Errorf("warnings %q, want one", w.list())
	}
}

// TestReportBounds: what exceeds the server's bounds is cut: long
// strings, long lists, and a build without actions still reports.
func TestReportBounds(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	a := &exec.Action{Owner: graph.Label{Pkg: "p", Name: "many"}, Mnemonic: "Task", Kind: exec.KindRun,
		Argv: []string{"/bin/sh", "-c", strings.Repeat("é", api.MaxCommand)}, Env: map[string]string{"LONG": strings.Repeat("v", 2*api.MaxString)}}
	for i := 0; i < api.MaxListed+10; i++ {
		a.Inputs = append(a.Inputs, exec.Artifact{Path: "p/in" + strings.Repeat("0", 5) + string(rune('a'+i%26)), Source: true})
	}
	r := report.New(report.Options{URL: srv.URL, Actions: []*exec.Action{a}, Start: api.BuildStart{Command: []string{strings.Repeat("c", 3*api.MaxString)}}})
	r.Event(exec.Event{Type: exec.EventActionFailed, Action: a, Message: strings.Repeat("m", 3*api.MaxString)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeFailed, Error: strings.Repeat("e", 3*api.MaxString)}); err != nil {
		t.Fatal(err)
	}
	b := rec.Build("")
	if len(b.Actions) != 1 || len(b.Events) != 1 || b.End == nil {
		t.Fatalf("details %d, events %d, end %v", len(b.Actions), len(b.Events), b.End)
	}
	info := b.Actions[0]
	if len(info.Command) > api.MaxCommand || !strings.HasPrefix(info.Command, "éé") || strings.ContainsRune(info.Command, '\uFFFD') {
		t.Errorf("command of %d bytes, or cut inside a character", len(info.Command))
	}
	if len(info.Inputs) != api.MaxListed || info.InputCount != api.MaxListed+10 || len(info.Env["LONG"]) != api.MaxString {
		t.Errorf("inputs %d of %d, env value %d bytes", len(info.Inputs), info.InputCount, len(info.Env["LONG"]))
	}
	if len(b.Events[0].Message) != api.MaxString || len(b.Start.Command[0]) != api.MaxString || len(b.End.Error) != api.MaxString {
		t.Errorf("message %d, command %d, error %d bytes; want %d", len(b.Events[0].Message), len(b.Start.Command[0]), len(b.End.Error), api.MaxString)
	}

	// No actions (nothing to do): a start, no plan, an end.
	r = report.New(report.Options{URL: srv.URL})
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	if b := rec.Build(r.ID()); b.Start == nil || b.Start.Total != 0 || b.End == nil || len(b.Seqs) != 0 {
		t.Errorf("an empty build reported %+v", b)
	}
}

// BenchmarkReporterEvent is the cost of one event on the build's side,
// with a server taking the batches meanwhile.
func BenchmarkReporterEvent(b *testing.B) {
	srv := httptest.NewServer(&reporttest.Recorder{})
	defer srv.Close()
	var actions []*exec.Action
	for i := 0; i < 20165; i++ {
		actions = append(actions, &exec.Action{Owner: graph.Label{Pkg: "p", Name: "t" + strings.Repeat("x", i%7)}, Mnemonic: "Task",
			Argv: []string{"/bin/true"}, Outputs: []exec.Artifact{{Path: "hepbuild-out/p/o" + strings.Repeat("y", i%11)}}})
	}
	r := report.New(report.Options{URL: srv.URL, Actions: actions})
	types := []exec.EventType{exec.EventActionQueued, exec.EventActionStarted, exec.EventActionFinished}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Event(exec.Event{Type: types[i%3], Action: actions[(i/3)%len(actions)], Time: time.Now()})
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess})
	b.ReportMetric(float64(r.Dropped()), "dropped")
}

// A build whose actions run for hours has nothing to say meanwhile: empty
// batches tell the server it is alive, so that it is not taken for lost.
func TestReportHeartbeat(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	actions, g, logs := chain(t)
	r := report.New(report.Options{URL: srv.URL, Actions: actions, Graph: g, LogPath: logPath(logs), Heartbeat: 30 * time.Millisecond,
		Start: api.BuildStart{User: "ana", Host: "lxplus", Workspace: "/work/ana", Targets: []string{"//ana:hist"}}})
	r.Event(exec.Event{Type: exec.EventBuildStarted, Total: 3})
	emit(r, actions[0], exec.EventActionStarted)
	empty := func() int {
		n := 0
		for _, q := range rec.Requests() {
			if q.Kind == "batch" && q.Batch != nil && len(q.Batch.Events) == 0 && len(q.Batch.Plan) == 0 && len(q.Batch.Actions) == 0 {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); empty() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat in 30 s; requests: %+v", rec.Requests())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
}

// A redirect is not followed: Go would send the report, and the token, to
// another port of the same host. It costs the usual one warning.
func TestReportDoesNotFollowRedirects(t *testing.T) {
	rec := &reporttest.Recorder{}
	other := httptest.NewServer(rec)
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	actions, g, _ := chain(t)
	var w warnings
	r := report.New(report.Options{URL: srv.URL, Token: token, Actions: actions, Graph: g, Warn: w.add, Interval: 5 * time.Millisecond})
	r.Event(exec.Event{Type: exec.EventActionQueued, Action: actions[0]})
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess}); err == nil {
		t.Errorf("Close says the end was taken")
	}
	if reqs := rec.Requests(); len(reqs) != 0 {
		t.Errorf("the redirect was followed: %d requests reached the other server, the first with %q", len(reqs), reqs[0].Auth)
	}
	if ws := w.list(); len(ws) != 1 || strings.Contains(ws[0], token) {
		t.Errorf("warnings %q, want one without the token", ws)
	}
}

// The BuildStart goes at once, and Started says when the server has it
// (or could not be reached): the coordinator's claims wait for it.
func TestReportStarted(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	actions, g, _ := chain(t)
	for _, url := range []string{srv.URL, "http://127.0.0.1:1"} {
		var w warnings
		r := report.New(report.Options{URL: url, Actions: actions, Graph: g, Warn: w.add, Interval: time.Hour})
		select {
		case <-r.Started():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Started is not closed 10 s after New", url)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.Close(ctx, api.BuildEnd{Outcome: api.OutcomeSuccess})
		cancel()
	}
	if reqs := rec.Requests(); len(reqs) == 0 || reqs[0].Kind != "start" {
		t.Errorf("the server's requests: %+v, want the start first", reqs)
	}
}
