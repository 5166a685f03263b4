package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// rawPost sends a POST with the headers a browser would add, and returns
// the status.
func rawPost(t *testing.T, target, contentType string, body []byte, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest("POST", target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A page on another site must not write to the server through the
// visitor's browser: without a token, anything that reaches loopback is
// trusted, and a form post (text/plain, no preflight) reaches it; with a
// token, the browser's login cookie must not stand in for it.
func TestCrossSiteWritesAreRefused(t *testing.T) {
	ts := startServer(t, Options{})
	start := func() []byte {
		return fmt.Appendf(nil, `{"id":%q,"user":"mallory","host":"evil","targets":["//:x"],"total":4194304}`, newID(t))
	}
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9999"},
		{"Origin": "https://evil.example"}, // an older browser
	} {
		if code := rawPost(t, ts.url+api.PathBuilds, "text/plain", start(), h); code != http.StatusForbidden {
			t.Errorf("a cross-site form posting a build with %v: %d, want 403", h, code)
		}
		claim := fmt.Appendf(nil, `{"build":%q,"key":%q}`, newID(t), strings.Repeat("0", 64)+"/1")
		if code := rawPost(t, ts.url+api.PathClaim, "text/plain", claim, h); code != http.StatusForbidden {
			t.Errorf("a cross-site form posting a claim with %v: %d, want 403", h, code)
		}
	}
	if rows, err := ts.ListBuilds(context.Background(), api.ListQuery{}); err != nil || len(rows) != 0 {
		t.Errorf("builds after cross-site posts: %v %v", rows, err)
	}
	// Builds (no browser headers) and the server's own pages still may.
	if code := rawPost(t, ts.url+api.PathBuilds, "application/json", start(), nil); code != http.StatusCreated {
		t.Errorf("a build's start: %d, want 201", code)
	}
	if code := rawPost(t, ts.url+api.PathBuilds, "application/json", start(), map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": ts.url}); code != http.StatusCreated {
		t.Errorf("a same-origin post: %d, want 201", code)
	}

	const token = "t0ken-of-the-group"
	tt := startServer(t, Options{Token: token})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(tt.url+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login cookies %v", cookies)
	}
	req, _ := http.NewRequest("POST", tt.url+api.PathBuilds, bytes.NewReader(start()))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(cookies[0])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("posting a build with the login cookie only: %d, want 401 (the API's writes need the token)", resp.StatusCode)
	}
	// A cross-site login would log the visitor in as someone else.
	if code := rawPost(t, tt.url+"/login", "application/x-www-form-urlencoded", []byte("token="+token), map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("a cross-site login: %d, want 403", code)
	}
}

// The login's next parameter is a path on this server, however a browser
// reads the Location it becomes (it drops tabs and newlines and takes a
// backslash for a slash).
func TestLoginNextStaysOnServer(t *testing.T) {
	const token = "t0ken-of-the-group"
	ts := startServer(t, Options{Token: token})
	base, _ := url.Parse(ts.url + "/login")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/")
	for _, next := range []string{"//evil.example/", "/\t/evil.example/", "/x/../\\evil.example/", "/\\/evil.example/", "/./\\evil.example",
		"/%09/evil.example", "/x/..//evil.example", "/\x00/evil.example", "https://evil.example/", "/builds/\t/\\evil.example"} {
		resp, err := noRedirect.PostForm(ts.url+"/login", url.Values{"token": {token}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		u, err := base.Parse(browser.Replace(loc))
		if resp.StatusCode != http.StatusSeeOther || err != nil || u.Host != base.Host {
			t.Errorf("login with next %q: %d to %q, off the server", next, resp.StatusCode, loc)
		}
	}
}

// Times out of any build's range (a clock gone wrong, or a client that
// lies) are refused: they made pages that could not be encoded and a
// build that could never end.
func TestTimesOutOfRangeAreRefused(t *testing.T) {
	ts := startServer(t, Options{})
	for _, started := range []string{"9999-12-31T23:59:59-23:00", "0001-01-02T00:00:00Z", "1600-01-01T00:00:00Z"} {
		id := newID(t)
		code, body := ts.do(t, "POST", api.PathBuilds, fmt.Appendf(nil, `{"id":%q,"user":"u","host":"h","started":%q,"total":1}`, id, started))
		if code != http.StatusBadRequest {
			t.Errorf("a build started at %s: %d %s, want 400", started, code, body)
		}
	}
	id := ts.startBuild(t, 1)
	for _, at := range []string{"9999-12-31T23:59:59-23:00", "0001-01-02T00:00:00Z"} {
		code, body := ts.do(t, "POST", fmt.Sprintf(api.PathBatch, id),
			fmt.Appendf(nil, `{"seq":1,"events":[{"type":"job_submitted","action":0,"time":%q,"executor":"slurm","job_id":"1"}]}`, at))
		if code != http.StatusBadRequest {
			t.Errorf("an event at %s: %d %s, want 400", at, code, body)
		}
		code, body = ts.do(t, "POST", fmt.Sprintf(api.PathEnd, id), fmt.Appendf(nil, `{"outcome":"success","finished":%q}`, at))
		if code != http.StatusBadRequest {
			t.Errorf("an end at %s: %d %s, want 400", at, code, body)
		}
	}
	if code, body := ts.do(t, "GET", "/builds/"+id+".json", nil); code != http.StatusOK {
		t.Errorf("the build's JSON: %d %s", code, body)
	}
	ts.must(t, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: api.OutcomeSuccess})
}

// Target names that share a long run of tokens: the graph's grouping
// must cost about the size of the names, not their square times their
// number (it took minutes, holding the build's lock).
func TestGraphLongCommonPrefix(t *testing.T) {
	ts := startServer(t, Options{})
	const n = 2000
	common := strings.Repeat("a_", 1500)
	plan := make([]api.PlannedAction, n)
	for i := range plan {
		plan[i] = api.PlannedAction{ID: int32(i), Target: "//p:" + common + strconv.Itoa(i), Mnemonic: "M"}
		if i > 0 {
			plan[i].Deps = []int32{int32(i - 1)}
		}
	}
	id := ts.startBuild(t, n)
	ts.batch(t, id, api.Batch{Seq: 1, Plan: plan})
	done := make(chan error, 1)
	go func() {
		path := ""
		for range 4 {
			v, err := ts.Graph(context.Background(), id, path)
			if err != nil {
				done <- fmt.Errorf("graph at %.20q: %w", path, err)
				return
			}
			path = ""
			for _, nd := range v.Nodes {
				if nd.Children > 0 {
					path = nd.Path
					break
				}
			}
			if path == "" {
				break
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the graph of targets with a long common prefix takes more than 10 s")
	}
}

// The history holds what builds ran, their environment variables and
// logs: only its owner may read it.
func TestHistoryIsPrivate(t *testing.T) {
	ts := startServer(t, Options{})
	runBuild(t, ts, false)
	for _, f := range []string{ts.db, ts.db + "-wal", ts.db + "-shm"} {
		fi, err := os.Stat(f)
		if os.IsNotExist(err) && f != ts.db {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for others", f, fi.Mode().Perm())
		}
	}
}

// Every level of the graph that someone asks for is remembered until the
// plan grows; asking for many distinct levels (ranges of a chunked level
// can be named in as many ways as there are pairs) must not grow the
// server's memory without bound.
func TestGraphMemoIsBounded(t *testing.T) {
	ts := startServer(t, Options{})
	const n = 1000
	plan := make([]api.PlannedAction, n)
	for i := range plan {
		plan[i] = api.PlannedAction{ID: int32(i), Target: fmt.Sprintf("//p%d:t", i), Mnemonic: "M"}
	}
	id := ts.startBuild(t, n)
	ts.batch(t, id, api.Batch{Seq: 1, Plan: plan})
	for i := range 3 * maxGraphMemo / 2 {
		a := i / 10
		path := fmt.Sprintf("*~%d-%d", a, a+2+i%10)
		if _, err := ts.Graph(context.Background(), id, path); err != nil {
			t.Fatalf("graph at %s: %v", path, err)
		}
	}
	b := ts.inMemory(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, e := len(b.graph.children), len(b.graph.edges); c > maxGraphMemo || e > maxGraphMemo {
		t.Errorf("the graph remembers %d levels' children and %d levels' edges, more than %d", c, e, maxGraphMemo)
	}
}

// A build's batch jobs are kept in memory, and every poll of its page
// sorts them: job ids that never end (distinct in every event) must not
// grow them without bound. A build has at most about a job per action.
func TestJobsPerBuildAreBounded(t *testing.T) {
	ts := startServer(t, Options{})
	id := ts.startBuild(t, 10)
	for seq := range 5 {
		events := make([]api.Event, api.MaxBatchEvents)
		for i := range events {
			events[i] = api.Event{Type: "job_submitted", Action: -1, Executor: "slurm", JobID: fmt.Sprintf("%d_%d", seq, i), JobState: "queued"}
		}
		ts.batch(t, id, api.Batch{Seq: int64(seq + 1), Events: events})
	}
	b := ts.inMemory(id)
	b.mu.Lock()
	n := len(b.jobs)
	b.mu.Unlock()
	if n > 10+maxExtraJobs {
		t.Errorf("the build keeps %d jobs for 10 actions", n)
	}
	if v, err := ts.Build(context.Background(), id); err != nil || len(v.Jobs) == 0 {
		t.Errorf("the build's page: %v, jobs %d", err, len(v.Jobs))
	}
}

// The history is the file named, whatever its name: SQLite reads the
// DSN as a URI, where '#' and '?' end the path and %41 is "A".
func TestHistoryPathIsTakenLiterally(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"hist#1.db", "h%41x.db", "q?mode=ro.db"} {
		s, err := New(Options{DB: filepath.Join(dir, name), Log: io.Discard})
		if err != nil {
			t.Errorf("history %s: %v", name, err)
			continue
		}
		s.Close()
	}
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); !strings.HasSuffix(n, "-wal") && !strings.HasSuffix(n, "-shm") {
			got = append(got, n)
		}
	}
	if want := []string{"h%41x.db", "hist#1.db", "q?mode=ro.db"}; !slices.Equal(got, want) {
		t.Errorf("files in the history's folder: %q, want %q", got, want)
	}
}

// Claims belong to running builds: a claim or renewal for a build the
// server does not have, or one that ended (its claims were released
// then), is refused; otherwise any id made up on the spot held keys,
// renewed for ever, that no build's end or loss would release.
func TestClaimsNeedARunningBuild(t *testing.T) {
	ts := startServer(t, Options{})
	key := strings.Repeat("ab", 32) + "/12"
	claim := func(build string) int {
		code, _ := ts.do(t, "POST", api.PathClaim, api.ClaimRequest{Build: build, Key: key})
		return code
	}
	renew := func(build string) int {
		code, _ := ts.do(t, "POST", api.PathRenew, api.RenewRequest{Build: build, Keys: []string{key}})
		return code
	}
	if code := claim(newID(t)); code != http.StatusNotFound {
		t.Errorf("a claim of an unknown build: %d, want 404", code)
	}
	if code := renew(newID(t)); code != http.StatusNotFound {
		t.Errorf("a renewal of an unknown build: %d, want 404", code)
	}
	id := ts.startBuild(t, 1)
	if code := claim(id); code != http.StatusOK {
		t.Errorf("a claim of a running build: %d, want 200", code)
	}
	if code := renew(id); code != http.StatusNoContent {
		t.Errorf("a renewal of a running build: %d, want 204", code)
	}
	ts.must(t, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: api.OutcomeSuccess})
	if code := claim(id); code != http.StatusNotFound {
		t.Errorf("a claim of an ended build: %d, want 404", code)
	}
	if n := ts.coord.Claims(); n != 0 {
		t.Errorf("%d claims held after the only build ended", n)
	}
}

// The running builds are held in memory, each up to maxActions actions,
// and any client may start as many as it likes, each announcing 4M
// actions and reporting the last one: the actions of the running builds
// together are bounded; a batch beyond is refused (503: the reporter
// sends it again later) until builds end.
func TestLiveActionsAreBounded(t *testing.T) {
	ts := startServer(t, Options{MaxLiveActions: 100})
	a, b := ts.startBuild(t, 80), ts.startBuild(t, 80)
	ts.batch(t, a, api.Batch{Seq: 1, Events: []api.Event{ev("action_queued", 79, time.Now())}})
	big := api.Batch{Seq: 1, Events: []api.Event{ev("action_queued", 50, time.Now())}}
	if code, body := ts.do(t, "POST", fmt.Sprintf(api.PathBatch, b), big); code != http.StatusServiceUnavailable {
		t.Errorf("a batch beyond the running builds' bound: %d %s, want 503", code, body)
	}
	ts.batch(t, b, api.Batch{Seq: 1, Events: []api.Event{ev("action_queued", 19, time.Now())}})
	ts.must(t, "POST", fmt.Sprintf(api.PathEnd, a), api.BuildEnd{Outcome: api.OutcomeSuccess})
	big.Seq = 2
	ts.batch(t, b, big)
	ts.mu.Lock()
	n := ts.liveActions
	ts.mu.Unlock()
	if n != 51 {
		t.Errorf("the running builds hold room for %d actions, want 51", n)
	}
}

// The pages carry the server's whole policy: the pages' handler set a
// laxer one over it (no base-uri, no form-action, a referrer).
func TestPagesKeepTheServersPolicy(t *testing.T) {
	ts := startServer(t, Options{})
	id, _ := runBuild(t, ts, true)
	for _, path := range []string{"/", "/builds/" + id, "/builds/" + id + "/graph", "/builds/" + id + "/actions/0", "/static/style.css"} {
		resp, err := http.Get(ts.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "base-uri 'none'") ||
			resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: policy %q, referrer %q", path, csp, resp.Header.Get("Referrer-Policy"))
		}
	}
}
