package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// runBuild reports a small peer-shaped build over HTTP: every selection
// ran, one histogram failed, the rest was skipped; it returns the build id.
func runBuild(t *testing.T, ts *testServer, end bool) (string, []api.PlannedAction) {
	t.Helper()
	plan := peerPlan(3, 2, 2) // 12 sel, 6 hist, 2 cards, all: 21 actions
	id := ts.startBuild(t, len(plan))
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	ts.batch(t, id, api.Batch{Seq: 1, Plan: plan})
	var events []api.Event
	var infos []api.ActionInfo
	for i := range 12 {
		a := int32(i)
		events = append(events, ev("action_queued", a, t0), api.Event{Type: "action_started", Action: a, Time: t0, Slot: 1 + i%2})
		events = append(events, api.Event{Type: "action_finished", Action: a, Time: t0.Add(time.Second), Duration: int64(time.Second)})
		infos = append(infos, api.ActionInfo{ID: a, Command: "select.py", Where: "local slot 1", Log: "selected\n"})
	}
	ts.batch(t, id, api.Batch{Seq: 2, Events: events, Actions: infos})
	// The first histogram fails; the second runs on a batch job.
	ts.batch(t, id, api.Batch{Seq: 3, Events: []api.Event{
		ev("action_started", 12, t0.Add(2*time.Second)),
		{Type: "action_failed", Action: 12, Time: t0.Add(3 * time.Second), ExitCode: 2, Message: "exit status 2"},
		{Type: "job_submitted", Action: 13, Time: t0.Add(3 * time.Second), Executor: "slurm", JobID: "5599680_3", JobState: "queued"},
		ev("action_started", 13, t0.Add(4*time.Second)),
		{Type: "warning", Action: -1, Time: t0, Message: "disk almost full"},
	}, Actions: []api.ActionInfo{{ID: 12, Command: "hist.py", Log: "Traceback: no such branch\n", Reasons: []string{"hist.py changed"}}}})
	// A retried batch changes nothing.
	ts.batch(t, id, api.Batch{Seq: 3, Events: []api.Event{ev("action_failed", 14, t0)}})
	if end {
		ts.must(t, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Finished: t0.Add(10 * time.Second), Outcome: api.OutcomeFailed, ExitCode: 1,
			Counts:       api.Counts{Total: 21, Executed: 12, Failed: 1, Skipped: 8},
			CriticalPath: []api.Step{{Action: 0, Target: "//:sel_d0_f0_s0", Mnemonic: "Select", Duration: int64(time.Second)}},
			Elapsed:      int64(10 * time.Second)})
	}
	return id, plan
}

func TestIntakeOverHTTPAndRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "history.db")
	ts := startServer(t, Options{DB: db})
	ctx := context.Background()
	running, _ := runBuild(t, ts, false)
	ended, _ := runBuild(t, ts, true)

	check := func(when string) {
		v, err := ts.Build(ctx, running)
		if err != nil {
			t.Fatalf("%s: Build: %v", when, err)
		}
		want := api.Counts{Total: 21, Executed: 12, Failed: 1, Running: 1}
		if diff := cmp.Diff(want, v.Counts); diff != "" {
			t.Errorf("%s: running build's counts mismatch (-want +got):\n%s", when, diff)
		}
		if v.Outcome != api.OutcomeRunning || len(v.Running) != 1 || v.Running[0].ID != 13 || v.Running[0].Target != "//:hist_d0_s1" {
			t.Errorf("%s: running build: outcome %q, running %+v", when, v.Outcome, v.Running)
		}
		if len(v.Failures) != 1 || v.Failures[0].Log != "Traceback: no such branch\n" || v.Failures[0].Target != "//:hist_d0_s0" {
			t.Errorf("%s: failures %+v", when, v.Failures)
		}
		if len(v.Jobs) != 1 || v.Jobs[0].ID != "5599680_3" || v.Jobs[0].State != "queued" || v.Jobs[0].Actions != 1 ||
			len(v.JobCounts) != 1 || v.JobCounts[0].Count != 1 {
			t.Errorf("%s: jobs %+v %+v", when, v.Jobs, v.JobCounts)
		}
		if len(v.Warnings) != 1 {
			t.Errorf("%s: warnings %v", when, v.Warnings)
		}

		e, err := ts.Build(ctx, ended)
		if err != nil {
			t.Fatalf("%s: Build: %v", when, err)
		}
		if e.Outcome != api.OutcomeFailed || e.Counts.Skipped != 8 || len(e.CriticalPath) != 1 || len(e.Running) != 0 || e.Finished.IsZero() {
			t.Errorf("%s: ended build: %+v", when, e.BuildRow)
		}
		rows, err := ts.ListBuilds(ctx, api.ListQuery{})
		if err != nil || len(rows) != 2 {
			t.Fatalf("%s: ListBuilds: %v %v", when, rows, err)
		}
		a, err := ts.Action(ctx, ended, 12)
		if err != nil {
			t.Fatalf("%s: Action: %v", when, err)
		}
		if a.State != "action_failed" || a.ExitCode != 2 || a.Log != "Traceback: no such branch\n" || a.Command != "hist.py" ||
			len(a.Deps) != 2 || a.Deps[0].Target != "//:sel_d0_f0_s0" || len(a.Rdeps) != 1 || a.Rdeps[0].Target != "//:card_s0" ||
			len(a.Reasons) != 1 || a.Target != "//:hist_d0_s0" || a.Mnemonic != "Histogram" {
			t.Errorf("%s: action 12: %+v", when, a)
		}
		a, err = ts.Action(ctx, ended, 20)
		if err != nil || a.State != "skipped" {
			t.Errorf("%s: action 20 of an ended build: %+v %v", when, a, err)
		}
		g, err := ts.Graph(ctx, ended, "//:hist_*")
		if err != nil {
			t.Fatalf("%s: Graph: %v", when, err)
		}
		if len(g.Nodes) != 3 || g.Nodes[0].Path != "//:hist_d0_*" || g.Nodes[0].State != "failed" {
			t.Errorf("%s: graph of //:hist_*: %+v", when, g.Nodes)
		}
	}
	check("before the restart")
	// The server was down for an hour: the build last reported then.
	if _, err := ts.Server.db.Exec("UPDATE builds SET updated = ? WHERE id = ?", time.Now().Add(-time.Hour).UnixNano(), running); err != nil {
		t.Fatal(err)
	}
	ts.stop()
	ts = startServer(t, Options{DB: db})
	check("after the restart")

	// A build restored at the restart has a whole LostAfter to report.
	ts.markLost(time.Now().Add(time.Minute))
	if v, _ := ts.Build(ctx, running); v.Outcome != api.OutcomeRunning {
		t.Fatalf("a build restored a minute ago is %s", v.Outcome)
	}
	// The running build goes on after the restart.
	ts.batch(t, running, api.Batch{Seq: 4, Events: []api.Event{ev("action_finished", 13, time.Now())}})
	v, err := ts.Build(ctx, running)
	if err != nil || v.Counts.Executed != 13 || v.Counts.Running != 0 {
		t.Errorf("after a batch following the restart: %+v %v", v, err)
	}
}

func TestLostBuild(t *testing.T) {
	ts := startServer(t, Options{LostAfter: time.Hour})
	id, _ := runBuild(t, ts, false)
	ts.markLost(time.Now().Add(30 * time.Minute))
	if v, _ := ts.Build(context.Background(), id); v.Outcome != api.OutcomeRunning {
		t.Fatalf("a build silent for 30 minutes of an hour is %s", v.Outcome)
	}
	ts.markLost(time.Now().Add(2 * time.Hour))
	v, err := ts.Build(context.Background(), id)
	if err != nil || v.Outcome != api.OutcomeLost || v.Finished.IsZero() || len(v.Running) != 0 {
		t.Fatalf("a build silent for 2 hours: %+v %v", v, err)
	}
	if code, body := ts.do(t, "POST", fmt.Sprintf(api.PathBatch, id), api.Batch{Seq: 9}); code != http.StatusConflict {
		t.Errorf("a batch of a lost build: %d %s, want 409", code, body)
	}
	a, err := ts.Action(context.Background(), id, 13)
	if err != nil || a.State != "action_interrupted" {
		t.Errorf("an action running when its build was lost: %+v %v", a, err)
	}
	// Its client comes back and says how it ended; the end wins over lost.
	ts.mu.Lock()
	ts.loaded = nil
	ts.mu.Unlock()
	ts.must(t, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: api.OutcomeFailed, ExitCode: 1, Counts: api.Counts{Total: 21, Executed: 12, Failed: 1, Skipped: 8}})
	if v, err := ts.Build(context.Background(), id); err != nil || v.Outcome != api.OutcomeFailed || v.ExitCode != 1 {
		t.Errorf("a lost build that ended after all: %+v %v", v, err)
	}
	if code, body := ts.do(t, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: api.OutcomeSuccess}); code != http.StatusNoContent {
		t.Errorf("a repeated end: %d %s", code, body)
	}
	if v, _ := ts.Build(context.Background(), id); v.Outcome != api.OutcomeFailed {
		t.Errorf("a second end changed the outcome to %s", v.Outcome)
	}
}

func TestAuth(t *testing.T) {
	const token = "s3cret-t0ken-for-the-group"
	ts := startServer(t, Options{Token: token})
	id := ts.startBuild(t, 1)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, set func(*http.Request)) (*http.Response, string) {
		req, _ := http.NewRequest("GET", ts.url+path, nil)
		if set != nil {
			set(req)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(body), token) {
			t.Errorf("GET %s: the response holds the token", path)
		}
		return resp, string(body)
	}
	for _, path := range []string{api.PathPing, api.PathBuilds, "/", "/builds/" + id} {
		if resp, _ := get(path, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, resp.StatusCode)
		}
		if resp, _ := get(path, func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong") }); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, resp.StatusCode)
		}
	}
	if resp, _ := get(api.PathPing, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }); resp.StatusCode != http.StatusNoContent {
		t.Errorf("ping with the token: %d, want 204", resp.StatusCode)
	}
	if resp, body := get("/", nil); !strings.Contains(body, `action="/login"`) || resp.Header.Get("Content-Security-Policy") == "" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("a page without a token shows no login form or lacks security headers: %v %s", resp.Header, body)
	}

	login := func(tok string) *http.Response {
		resp, err := noRedirect.PostForm(ts.url+"/login", url.Values{"token": {tok}, "next": {"/builds/" + id}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), token) {
			t.Errorf("the login response holds the token")
		}
		return resp
	}
	if resp := login("wrong"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("login with a wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp := login(token)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/builds/"+id {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || strings.Contains(cookies[0].Value, token) || cookies[0].Secure {
		t.Fatalf("login cookie %+v", cookies)
	}
	if resp, _ := get(api.PathPing, func(r *http.Request) { r.AddCookie(cookies[0]) }); resp.StatusCode != http.StatusNoContent {
		t.Errorf("ping with the login cookie: %d, want 204", resp.StatusCode)
	}
	if resp, _ := get(api.PathPing, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: cookieName, Value: token}) }); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ping with the token as cookie: %d, want 401", resp.StatusCode)
	}
	if resp := login(token); resp.StatusCode != http.StatusSeeOther {
		t.Fatal(resp.Status)
	}
	r2, err := noRedirect.PostForm(ts.url+"/login", url.Values{"token": {token}, "next": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.Header.Get("Location") != "/" {
		t.Errorf("login redirects to %q, off the server", r2.Header.Get("Location"))
	}
}

func TestNoTokenMeansLoopbackOnly(t *testing.T) {
	for _, addr := range []string{":8080", "0.0.0.0:8080", "192.168.1.5:80", "[::]:8080"} {
		_, err := New(Options{Addr: addr, DB: filepath.Join(t.TempDir(), "h.db"), Log: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("New without a token on %s: %v, want a loopback error", addr, err)
		}
	}
	s, err := New(Options{Addr: "0.0.0.0:8080", Token: "t", DB: filepath.Join(t.TempDir(), "h.db"), Log: io.Discard})
	if err != nil {
		t.Errorf("New with a token on 0.0.0.0: %v", err)
	} else {
		s.Close()
	}
	// Requests addressed to another host name are refused (DNS rebinding).
	ts := startServer(t, Options{})
	req, _ := http.NewRequest("GET", ts.url+api.PathPing, nil)
	req.Host = "evil.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a request for host evil.example: %d, want 421", resp.StatusCode)
	}
}

func TestLimits(t *testing.T) {
	ts := startServer(t, Options{})
	id := ts.startBuild(t, 10)
	batch := fmt.Sprintf(api.PathBatch, id)
	huge := []byte(`{"seq":1,"events":[{"type":"warning","message":"` + strings.Repeat("x", api.MaxBody) + `"}]}`)
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		code   int
	}{
		{"oversized body", "POST", batch, huge, http.StatusRequestEntityTooLarge},
		{"bad build id in path", "POST", fmt.Sprintf(api.PathBatch, "ABC"), api.Batch{Seq: 1}, http.StatusBadRequest},
		{"bad build id in start", "POST", api.PathBuilds, api.BuildStart{ID: strings.Repeat("G", api.IDLen)}, http.StatusBadRequest},
		{"unknown build", "POST", fmt.Sprintf(api.PathBatch, newID(t)), api.Batch{Seq: 1}, http.StatusNotFound},
		{"unknown build's end", "POST", fmt.Sprintf(api.PathEnd, newID(t)), api.BuildEnd{Outcome: "success"}, http.StatusNotFound},
		{"action out of range", "POST", batch, api.Batch{Seq: 1, Events: []api.Event{ev("action_started", 10, time.Now())}}, http.StatusBadRequest},
		{"plan out of range", "POST", batch, api.Batch{Seq: 1, Plan: []api.PlannedAction{{ID: 3, Target: "//:a", Deps: []int32{11}}}}, http.StatusBadRequest},
		{"negative action", "POST", batch, api.Batch{Seq: 1, Actions: []api.ActionInfo{{ID: -2}}}, http.StatusBadRequest},
		{"long string", "POST", batch, api.Batch{Seq: 1, Events: []api.Event{{Type: "warning", Action: -1, Message: strings.Repeat("x", api.MaxString+1)}}}, http.StatusBadRequest},
		{"too many events", "POST", batch, api.Batch{Seq: 1, Events: make([]api.Event, api.MaxBatchEvents+1)}, http.StatusBadRequest},
		{"no seq", "POST", batch, api.Batch{}, http.StatusBadRequest},
		{"bad JSON", "POST", batch, []byte(`{"seq":`), http.StatusBadRequest},
		{"bad outcome", "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: "great"}, http.StatusBadRequest},
		{"another build with the id", "POST", api.PathBuilds, api.BuildStart{ID: id, User: "eve"}, http.StatusConflict},
		{"unknown API path", "GET", "/api/v1/nothing", nil, http.StatusNotFound},
		{"wrong method", "GET", batch, nil, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		code, body := ts.do(t, c.method, c.path, c.body)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	// Nothing of the refused batches was kept.
	v, err := ts.Build(context.Background(), id)
	if err != nil || v.Counts.Running != 0 || len(v.Warnings) != 0 {
		t.Errorf("after refused batches: %+v %v", v, err)
	}
	if _, err := ts.Graph(context.Background(), id, "//:nothing*"); err != api.ErrNotFound {
		t.Errorf("Graph of a missing path: %v, want ErrNotFound", err)
	}
	if _, err := ts.Build(context.Background(), newID(t)); err != api.ErrNotFound {
		t.Errorf("Build of an unknown id: %v, want ErrNotFound", err)
	}
}

// graphPaths lists a level's node paths and labels.
func graphPaths(t *testing.T, s *Server, id, path string) []string {
	t.Helper()
	g, err := s.Graph(context.Background(), id, path)
	if err != nil {
		t.Fatalf("Graph(%q): %v", path, err)
	}
	if len(g.Nodes) > api.MaxNodes {
		t.Errorf("Graph(%q) has %d nodes, more than %d", path, len(g.Nodes), api.MaxNodes)
	}
	var out []string
	for _, n := range g.Nodes {
		out = append(out, fmt.Sprintf("%s %s %s %d", n.Kind, n.Path, n.State, n.Children))
	}
	return out
}

func TestGraphGrouping(t *testing.T) {
	ts := startServer(t, Options{})
	plan := peerPlan(12, 3, 2) // sel: 72, hist: 24, card: 2, all
	id := ts.startBuild(t, len(plan))
	ts.batch(t, id, api.Batch{Seq: 1, Plan: plan})
	now := time.Now()
	ts.batch(t, id, api.Batch{Seq: 2, Events: []api.Event{ev("action_cached", 0, now), ev("action_started", 1, now), ev("action_failed", 80, now)}})

	want := map[string][]string{
		"": {"package // failed 4"},
		"//": {"target //:all pending 0", "group //:card_* pending 2", "group //:hist_* failed 12",
			"group //:sel_* running 12"},
		"//:sel_*": {"group //:sel_d0_* running 3", "group //:sel_d1_* pending 3", "group //:sel_d2_* pending 3", "group //:sel_d3_* pending 3",
			"group //:sel_d4_* pending 3", "group //:sel_d5_* pending 3", "group //:sel_d6_* pending 3", "group //:sel_d7_* pending 3",
			"group //:sel_d8_* pending 3", "group //:sel_d9_* pending 3", "group //:sel_d10_* pending 3", "group //:sel_d11_* pending 3"},
		"//:sel_d0_*":    {"group //:sel_d0_f0_* running 2", "group //:sel_d0_f1_* pending 2", "group //:sel_d0_f2_* pending 2"},
		"//:sel_d0_f0_*": {"target //:sel_d0_f0_s0 done 0", "target //:sel_d0_f0_s1 running 0"},
	}
	for path, w := range want {
		if diff := cmp.Diff(w, graphPaths(t, ts.Server, id, path)); diff != "" {
			t.Errorf("Graph(%q) mismatch (-want +got):\n%s", path, diff)
		}
	}
	g, _ := ts.Graph(context.Background(), id, "//")
	edges := map[string]int{}
	for _, e := range g.Edges {
		edges[e.From+" -> "+e.To] = e.Count
	}
	wantEdges := map[string]int{"//:all -> //:card_*": 2, "//:card_* -> //:hist_*": 24, "//:hist_* -> //:sel_*": 72}
	if diff := cmp.Diff(wantEdges, edges); diff != "" {
		t.Errorf("edges of // mismatch (-want +got):\n%s", diff)
	}
	for _, n := range g.Nodes {
		if n.Path == "//:all" && n.Action != int32(len(plan)-1) {
			t.Errorf("//:all links to action %d, want %d", n.Action, len(plan)-1)
		}
	}
}

// TestGraphChunks: names that fall into more than MaxNodes groups at once
// are shown in chunks, each at most MaxNodes nodes, down to every target.
func TestGraphChunks(t *testing.T) {
	ts := startServer(t, Options{})
	var plan []api.PlannedAction
	for i := range 1000 {
		plan = append(plan, api.PlannedAction{ID: int32(i), Target: fmt.Sprintf("//p:%x", 4096+i*7), Mnemonic: "M"})
	}
	for i := range 300 {
		plan = append(plan, api.PlannedAction{ID: int32(1000 + i), Target: fmt.Sprintf("//pkg%d:x", i), Mnemonic: "M"})
	}
	id := ts.startBuild(t, len(plan))
	ts.batch(t, id, api.Batch{Seq: 1, Plan: plan})
	seen := map[string]bool{}
	var walk func(path string)
	walk = func(path string) {
		g, err := ts.Graph(context.Background(), id, path)
		if err != nil {
			t.Fatalf("Graph(%q): %v", path, err)
		}
		if len(g.Nodes) > api.MaxNodes || len(g.Nodes) == 0 {
			t.Fatalf("Graph(%q) has %d nodes", path, len(g.Nodes))
		}
		for _, n := range g.Nodes {
			if n.Kind == "target" {
				if seen[n.Path] {
					t.Errorf("target %s shown twice", n.Path)
				}
				seen[n.Path] = true
				continue
			}
			if n.Children == 0 {
				t.Errorf("%s: a group without children", n.Path)
			}
			walk(n.Path)
		}
	}
	walk("")
	if len(seen) != len(plan) {
		t.Errorf("walking the graph shows %d targets, want %d", len(seen), len(plan))
	}
}

func TestSearch(t *testing.T) {
	ts := startServer(t, Options{})
	ended, _ := runBuild(t, ts, true)
	running, _ := runBuild(t, ts, false)
	for _, id := range []string{ended, running} {
		ts.mu.Lock()
		ts.loaded = nil // the ended build is read from the database
		ts.mu.Unlock()
		_ = id
	}
	hits, err := ts.Search(context.Background(), "hist_d0_s", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hits {
		got = append(got, fmt.Sprintf("%s %s %d %s", h.Build, h.Target, h.Action, h.State))
	}
	want := []string{
		running + " //:hist_d0_s0 12 failed", running + " //:hist_d0_s1 13 running",
		ended + " //:hist_d0_s0 12 failed", ended + " //:hist_d0_s1 13 skipped",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("search mismatch (-want +got):\n%s", diff)
	}
	if hits, _ := ts.Search(context.Background(), "hist", 3); len(hits) != 3 {
		t.Errorf("search with limit 3: %d hits", len(hits))
	}
	// And over HTTP: the list.
	var rows []api.BuildRow
	if err := json.Unmarshal(ts.must(t, "GET", api.PathBuilds+"?user=ana", nil), &rows); err != nil || len(rows) != 2 {
		t.Errorf("GET %s: %v %v", api.PathBuilds, rows, err)
	}
	if err := json.Unmarshal(ts.must(t, "GET", api.PathBuilds+"?user=bob", nil), &rows); err != nil || len(rows) != 0 {
		t.Errorf("GET %s?user=bob: %v %v", api.PathBuilds, rows, err)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := New(Options{DB: path, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := New(Options{DB: path, Log: io.Discard}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("opening a newer database: %v, want an error saying it is newer", err)
	}
}

// TestConcurrentIntakeAndReads reports four builds at once while the pages
// read them; run with -race it checks the locking.
func TestConcurrentIntakeAndReads(t *testing.T) {
	ts := startServer(t, Options{})
	plan := peerPlan(4, 5, 3)
	ctx := context.Background()
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = ts.startBuild(t, len(plan))
	}
	errc := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			// No t.Fatal off the test's goroutine: errors go to errc.
			path := fmt.Sprintf(api.PathBatch, id)
			if code, body := ts.do(t, "POST", path, api.Batch{Seq: 1, Plan: plan}); code != http.StatusNoContent {
				errc <- fmt.Errorf("plan: %d %s", code, body)
				return
			}
			for i := range plan {
				b := api.Batch{Seq: int64(i + 2), Events: []api.Event{ev("action_started", int32(i), time.Now()), ev("action_finished", int32(i), time.Now())}}
				if code, body := ts.do(t, "POST", path, b); code != http.StatusNoContent {
					errc <- fmt.Errorf("batch: %d %s", code, body)
					return
				}
			}
			code, body := ts.do(t, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: api.OutcomeSuccess})
			if code != http.StatusNoContent {
				errc <- fmt.Errorf("end: %d %s", code, body)
				return
			}
			errc <- nil
		}()
	}
	done := 0
	for done < len(ids) {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			done++
		default:
			for _, id := range ids {
				if _, err := ts.Build(ctx, id); err != nil {
					t.Fatal(err)
				}
				if _, err := ts.Graph(ctx, id, "//"); err != nil && err != api.ErrNotFound {
					t.Fatal(err)
				}
				if _, err := ts.ListBuilds(ctx, api.ListQuery{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, id := range ids {
		v, err := ts.Build(ctx, id)
		if err != nil || v.Outcome != api.OutcomeSuccess || v.Counts.Executed != len(plan) {
			t.Errorf("build %s: %+v %v", id, v.BuildRow, err)
		}
	}
}
