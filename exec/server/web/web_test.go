package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/server/api"
)

func newHandler(s api.Store) http.Handler {
	return New(s, Options{Now: func() time.Time { return t0 }, Logf: func(string, ...any) {}})
}

// get fetches path from h and returns the status, the body and the headers.
func get(t *testing.T, h http.Handler, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

// mustGet fetches a page that must exist.
func mustGet(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	code, body, hd := get(t, h, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d, body:\n%s", path, code, body)
	}
	checkPolicy(t, path, body, hd)
	return body
}

var (
	inlineScript  = regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`)
	styleAttr     = regexp.MustCompile(`\sstyle\s*=`)
	handlerAttr   = regexp.MustCompile(`\son[a-z]+\s*=`)
	externalURL   = regexp.MustCompile(`(?:src|href)="(?:https?:)?//`)
	scriptNoLocal = regexp.MustCompile(`<script[^>]*src="[^/]`)
)

// checkPolicy checks that a page needs nothing the Content-Security-Policy
// "default-src 'self'" blocks or the offline machine lacks: no inline
// script, style attribute or event handler, no external URL.
func checkPolicy(t *testing.T, path, body string, hd http.Header) {
	t.Helper()
	if !strings.HasPrefix(hd.Get("Content-Type"), "text/html") {
		return
	}
	if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("GET %s: Content-Security-Policy = %q", path, csp)
	}
	for _, re := range []*regexp.Regexp{inlineScript, styleAttr, handlerAttr, externalURL, scriptNoLocal} {
		if m := re.FindString(body); m != "" {
			t.Errorf("GET %s: the page has %q, which the policy blocks or needs the network", path, m)
		}
	}
}

// before reports whether a occurs in s, and before b.
func before(s, a, b string) bool {
	i, j := strings.Index(s, a), strings.Index(s, b)
	return i >= 0 && j >= 0 && i < j
}

func TestListPage(t *testing.T) {
	h := newHandler(standardFixture())
	body := mustGet(t, h, "/")
	for _, want := range []string{
		"carol", "bob", "alice", "//analysis:all", "1 running", "node17.cluster",
		"/data/bob/hh&lt;bb&gt;", // escaped
		`href="/builds/` + fixtureID(3) + `"`,
		"12m 00s", "1m 35s", // how long
		"20,409", // counts grouped by thousands
		"1 failed",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the build list lacks %q", want)
		}
	}
	// Running first, then newest first.
	if !before(body, "carol", "bob") || !before(body, "bob", "alice") {
		t.Error("the build list is not ordered running first, then newest first")
	}

	body = mustGet(t, h, "/?user=bob")
	if !strings.Contains(body, "node17.cluster") || strings.Contains(body, "lxplus901") {
		t.Error("?user=bob does not show bob's builds alone")
	}
	body = mustGet(t, h, "/?target=plots")
	if strings.Contains(body, "lxplus901") || !strings.Contains(body, "lxplus902") {
		t.Error("?target=plots does not filter by target")
	}
	body = mustGet(t, h, "/?user=nobody")
	if !strings.Contains(body, "No build matches") {
		t.Error("an empty filtered list does not say so")
	}
}

func TestBuildPage(t *testing.T) {
	h := newHandler(standardFixture())
	body := mustGet(t, h, "/builds/"+fixtureID(2))
	for _, want := range []string{
		"failed", "bob", "hepbuild build -k //analysis:all //plots:...",
		"//analysis:sel_d1_f2_s1", "exit 1", "KeyError: &#39;jet_pt&#39;",
		"&lt;script&gt;alert(1)&lt;/script&gt;", // a log is text, never markup
		"17</b> events",                         // the dropped note
		"slurm", "1 failed", "2 held", "5599680_3", "NonZeroExitCode",
		"remote cache unreachable",
		"Critical path", "11m 00s",
		`href="/builds/` + fixtureID(2) + `/graph"`,
		`/static/build.js?v=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the build page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Error("the build page did not escape a log")
	}
	if !before(body, `id="failures-section"`, `id="running-section"`) || !before(body, `id="failures-section"`, `id="critical-section"`) {
		t.Error("failures are not the first section of the build page")
	}
	if !strings.Contains(body, `data-outcome="failed"`) {
		t.Error("the page does not tell its script the build has ended")
	}

	body = mustGet(t, h, "/builds/"+fixtureID(3))
	for _, want := range []string{`data-outcome="running"`, "live: this page updates itself", "waiting for another build",
		"local slot 1", "1m 30s", `data-start="`} {
		if !strings.Contains(body, want) {
			t.Errorf("the running build's page lacks %q", want)
		}
	}
	if !regexp.MustCompile(`id="failures-section" hidden`).MatchString(body) {
		t.Error("a build without failures shows the failures section")
	}
}

func TestBuildJSON(t *testing.T) {
	s := standardFixture()
	h := newHandler(s)
	code, body, hd := get(t, h, "/builds/"+fixtureID(2)+".json")
	if code != http.StatusOK || hd.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", code, hd.Get("Content-Type"))
	}
	var got api.BuildView
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want, _ := s.Build(t.Context(), fixtureID(2))
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("/builds/ID.json mismatch (-want +got):\n%s", diff)
	}

	code, body, _ = get(t, h, "/builds/"+fixtureID(3)+"/graph.json?path=%2F%2Fanalysis")
	var g api.GraphView
	if err := json.Unmarshal([]byte(body), &g); code != http.StatusOK || err != nil {
		t.Fatalf("graph.json: status %d, %v", code, err)
	}
	if g.Path != "//analysis" || len(g.Nodes) != 4 {
		t.Errorf("graph.json of //analysis: path %q, %d nodes, want 4 groups", g.Path, len(g.Nodes))
	}
}

func TestErrors(t *testing.T) {
	s := standardFixture()
	h := newHandler(s)
	for _, path := range []string{
		"/builds/" + fixtureID(99),
		"/builds/" + fixtureID(99) + "/graph",
		"/builds/" + fixtureID(2) + "/actions/100000",
		"/builds/" + fixtureID(2) + "/actions/x",
		"/builds/" + fixtureID(2) + "/actions/-1",
		"/builds/NOT-AN-ID",
		"/builds/" + strings.ToUpper(fixtureID(2)),
		"/nowhere",
		"/?before=yesterday",
	} {
		code, body, hd := get(t, h, path)
		if code != http.StatusNotFound || !strings.Contains(body, "Not found") {
			t.Errorf("GET %s: status %d, want 404 with a page", path, code)
		}
		checkPolicy(t, path, body, hd)
	}
	code, body, hd := get(t, h, "/builds/"+fixtureID(99)+".json")
	if code != http.StatusNotFound || hd.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error"`) {
		t.Errorf("a missing build's JSON: status %d, %q", code, body)
	}

	s.err = errors.New("database is locked <now>")
	code, body, _ = get(t, h, "/")
	if code != http.StatusInternalServerError || !strings.Contains(body, "database is locked &lt;now&gt;") {
		t.Errorf("a store error: status %d, body %s", code, body)
	}
	code, _, _ = get(t, h, "/builds/"+fixtureID(2)+"/graph.json")
	if code != http.StatusInternalServerError {
		t.Errorf("a store error in JSON: status %d", code)
	}
}

func TestActionPage(t *testing.T) {
	h := newHandler(standardFixture())
	fi := 3*2 + 2*2 + 1 // sel_d1_f2_s1 in workload(2, 3, 2)
	body := mustGet(t, h, "/builds/"+fixtureID(2)+"/actions/"+itoa(fi))
	for _, want := range []string{
		"//analysis:sel_d1_f2_s1", "Select", "failed", "command exited with status 1",
		"python3 select.py --in data/d1/f2.root", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08/142",
		"ANALYSIS_TAG", "v3 &lt;beta&gt;", "ROOTSYS", "conda:env/analysis.yaml@4b1c",
		"analysis/select.py", "The first 2 of 3", "bazel-out/analysis/sel_d1_f2_s1.root", "requires-memory:4G",
		"input analysis/select.py changed", "slurm job 5599680_3", "11m 00s",
		"KeyError", "&lt;script&gt;", "(its end)",
		"Used by", "//analysis:hist_d1_s1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the action page lacks %q", want)
		}
	}
	if !before(body, `id="log"`, "Why it ran") {
		t.Error("a failed action's log is not near the top of its page")
	}
	if strings.Contains(body, "has not finished") {
		t.Error("a failed action is said to be unfinished")
	}
	body = mustGet(t, h, "/builds/"+fixtureID(3)+"/actions/400")
	if !strings.Contains(body, "has not finished") || !strings.Contains(body, "running") {
		t.Error("a running action's page does not say it has not finished")
	}
	body = mustGet(t, h, "/builds/"+fixtureID(2)+"/actions/"+itoa(12))
	if !strings.Contains(body, "Depends on") || !strings.Contains(body, "//analysis:sel_d0_f0_s0") {
		t.Error("a histogram's action page does not link its dependencies")
	}
}

func itoa(n int) string { return funcs["itoa"].(func(int32) string)(int32(n)) }

func TestSearchPage(t *testing.T) {
	h := newHandler(standardFixture())
	body := mustGet(t, h, "/search?q=hist_d1_s1")
	if !strings.Contains(body, "//analysis:hist_d1_s1") || !strings.Contains(body, "/actions/") {
		t.Error("search does not find //analysis:hist_d1_s1 with a link to its action")
	}
	if !before(body, fixtureID(3)[:8], fixtureID(2)[:8]) {
		t.Error("search does not list the newest builds first")
	}
	body = mustGet(t, h, "/search?q=%3Cnothing%3E")
	if !strings.Contains(body, "No target matches <code>&lt;nothing&gt;</code>") {
		t.Error("a search without hits does not say so")
	}
	mustGet(t, h, "/search")
}

func TestStatic(t *testing.T) {
	h := newHandler(standardFixture())
	for _, f := range []struct{ path, ctype string }{
		{"/static/style.css", "text/css"},
		{"/static/build.js", "text/javascript"},
		{"/static/graph.js", "text/javascript"},
		{"/static/common.js", "text/javascript"},
		{"/static/icon.svg", "image/svg+xml"},
	} {
		code, _, hd := get(t, h, f.path)
		if code != http.StatusOK || !strings.HasPrefix(hd.Get("Content-Type"), f.ctype) {
			t.Errorf("GET %s: status %d, Content-Type %q", f.path, code, hd.Get("Content-Type"))
		}
	}
	if code, _, _ := get(t, h, "/static/nothing.js"); code != http.StatusNotFound {
		t.Errorf("a missing static file: status %d", code)
	}
	body := mustGet(t, h, "/")
	v := regexp.MustCompile(`/static/style\.css\?v=([0-9a-f]+)`).FindStringSubmatch(body)
	if v == nil {
		t.Fatal("the page does not link its style sheet with a version")
	}
	_, _, hd := get(t, h, "/static/style.css?v="+v[1])
	if !strings.Contains(hd.Get("Cache-Control"), "immutable") {
		t.Errorf("a versioned static file is not cached: %q", hd.Get("Cache-Control"))
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		want string
	}{{0, "0s"}, {340e6, "340ms"}, {12.34e9, "12s"}, {9.87e9, "9.8s"}, {184e9, "3m 04s"}, {3720e9, "1h 02m"}} {
		if got := formatDuration(c.ns); got != c.want {
			t.Errorf("formatDuration(%d) = %q, want %q", c.ns, got, c.want)
		}
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1000000: "1,000,000", -20165: "-20,165"} {
		if got := formatNum(n); got != want {
			t.Errorf("formatNum(%d) = %q, want %q", n, got, want)
		}
	}
	names := []string{"sel_d10", "sel_d2", "all", "sel_d1"}
	slices.SortFunc(names, naturalCompare)
	if diff := cmp.Diff([]string{"all", "sel_d1", "sel_d2", "sel_d10"}, names); diff != "" {
		t.Errorf("natural order mismatch (-want +got):\n%s", diff)
	}
}
