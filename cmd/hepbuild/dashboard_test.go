package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/internal/browser"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

// The dashboard end to end: a real `hepbuild serve`, real builds reporting
// to it with --server, and its pages in headless Chromium.

// dashboard is a `hepbuild serve` run in this process for one test.
type dashboard struct {
	url   string
	token string
}

// startDashboard runs `hepbuild serve` on a free loopback port until the
// test ends; extra are more flags.
func startDashboard(t *testing.T, extra ...string) *dashboard {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testserver.FreePort(t))
	args := append([]string{"serve", "--addr", addr, "--db", filepath.Join(t.TempDir(), "history.db")}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, args, &env{stdout: &out, stderr: &errb, ctx: ctx, cwd: t.TempDir()})
		done <- result{code, out.String(), errb.String()}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case r := <-done:
			if r.code != 0 {
				t.Errorf("hepbuild serve ended with %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		case <-time.After(30 * time.Second):
			t.Error("hepbuild serve did not stop within 30 s of its interrupt")
		}
	})
	d := &dashboard{url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case r := <-done:
			t.Fatalf("hepbuild serve ended at once with %d:\n%s%s", r.code, r.stdout, r.stderr)
		default:
		}
		resp, err := http.Get(d.url + api.PathPing)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hepbuild serve did not answer on %s within 30 s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get decodes the JSON at path into v.
func (d *dashboard) get(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", d.url+path, nil)
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// builds lists the server's builds, newest first.
func (d *dashboard) builds(t *testing.T) []api.BuildRow {
	t.Helper()
	var rows []api.BuildRow
	d.get(t, api.PathBuilds, &rows)
	return rows
}

// buildID reads the id of the build a command line reported, from its
// "INFO: build reported to URL/builds/ID" line.
func buildID(t *testing.T, stderr string) string {
	t.Helper()
	_, rest, ok := strings.Cut(stderr, "/builds/")
	if !ok || len(rest) < api.IDLen {
		t.Fatalf("the build printed no page address:\n%s", stderr)
	}
	return rest[:api.IDLen]
}

const dashboardBuild = `
task(name = "gen", outs = ["events.txt"], cmd = "seq 1 100 > $@")
task(name = "hist", srcs = [":gen"], outs = ["hist.txt"], cmd = "wc -l < $< > $@")
task(name = "fit", srcs = [":hist"], outs = ["fit.txt"], cmd = "echo 'fitting <signal & background>'; echo 'minimum not found: EDM=1e9' >&2; exit 3")
task(name = "plot", srcs = [":hist"], outs = ["plot.txt"], cmd = "cp $< $@")
`

func TestDashboardShowsBuildsActionsAndLogs(t *testing.T) {
	d := startDashboard(t)
	root := testWorkspace(t, map[string]string{"ana/BUILD": dashboardBuild})
	ok := hepbuild(t, root, "build", "--server", d.url, "//ana:plot")
	if ok.code != 0 {
		t.Fatalf("build: %d\n%s", ok.code, ok.stderr)
	}
	okID := buildID(t, ok.stderr)
	bad := hepbuild(t, root, "build", "-k", "--server", d.url, "//ana:all")
	if bad.code != 1 {
		t.Fatalf("the failing build ended with %d, want 1\n%s", bad.code, bad.stderr)
	}
	badID := buildID(t, bad.stderr)

	rows := d.builds(t)
	if len(rows) != 2 || rows[0].ID != badID || rows[1].ID != okID {
		t.Fatalf("builds listed: %+v", rows)
	}
	if rows[0].Outcome != api.OutcomeFailed || rows[0].Counts.Failed != 1 || rows[1].Outcome != api.OutcomeSuccess || rows[1].Counts.Executed != 3 {
		t.Errorf("outcomes and counts: %+v", rows)
	}
	var view api.BuildView
	d.get(t, "/builds/"+badID+".json", &view)
	if len(view.Failures) != 1 || view.Failures[0].Target != "//ana:fit" || !strings.Contains(view.Failures[0].Log, "minimum not found") {
		t.Fatalf("failures of the failed build: %+v", view.Failures)
	}
	fit := view.Failures[0].ID

	b := browser.ForTest(t)
	if err := b.Navigate(d.url + "/"); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Count("table.builds tbody tr"); err != nil || n != 2 {
		t.Errorf("the build list shows %d rows (%v), want 2", n, err)
	}
	browser.SaveScreenshot(t, b, "dashboard-list")
	if err := b.Navigate(d.url + "/builds/" + badID); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("#failures", "minimum not found: EDM=1e9"); err != nil {
		t.Error(err)
	}
	if err := b.WaitText("#failures", "fitting <signal & background>"); err != nil {
		t.Error("the log tail is not shown as text:", err)
	}
	browser.SaveScreenshot(t, b, "dashboard-build-failed")
	if err := b.Navigate(fmt.Sprintf("%s/builds/%s/actions/%d", d.url, badID, fit)); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{"#log": "minimum not found", "body": "exit 3", "#why": "never run"} {
		if err := b.WaitText(sel, want); err != nil {
			t.Errorf("the action page: %v", err)
		}
	}
	browser.SaveScreenshot(t, b, "dashboard-action-failed")
	if err := b.Navigate(d.url + "/search?q=" + url.QueryEscape("ana:hi")); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("body", "//ana:hist"); err != nil {
		t.Errorf("search: %v", err)
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("the pages logged errors: %q", errs)
	}
}

// A build in progress: its page follows it without being reloaded.
func TestDashboardFollowsALiveBuild(t *testing.T) {
	d := startDashboard(t)
	gate := filepath.Join(t.TempDir(), "open")
	root := testWorkspace(t, map[string]string{"ana/BUILD": fmt.Sprintf(`
task(name = "quick", outs = ["q.txt"], cmd = "echo quick > $@")
task(name = "slow", srcs = [":quick"], outs = ["s.txt"], cmd = "while [ ! -e %s ]; do sleep 0.05; done; cp $< $@")
`, gate)})
	var wg sync.WaitGroup
	var r result
	wg.Add(1)
	go func() {
		defer wg.Done()
		r = hepbuild(t, root, "build", "--sandbox=none", "--server", d.url, "//ana:slow")
	}()
	defer func() { _ = os.WriteFile(gate, nil, 0o644); wg.Wait() }()
	var id string
	for deadline := time.Now().Add(60 * time.Second); ; {
		if rows := d.builds(t); len(rows) == 1 {
			id = rows[0].ID
			var view api.BuildView
			d.get(t, "/builds/"+id+".json", &view)
			if len(view.Running) == 1 && view.Running[0].Target == "//ana:slow" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never showed //ana:slow running")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := browser.ForTest(t)
	if err := b.Navigate(d.url + "/builds/" + id); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("#running", "//ana:slow"); err != nil {
		t.Fatal(err)
	}
	browser.SaveScreenshot(t, b, "dashboard-build-running")
	if err := b.Eval(`window.notReloaded = true`, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if r.code != 0 {
		t.Fatalf("build: %d\n%s", r.code, r.stderr)
	}
	if err := b.WaitText("#outcome", "succe"); err != nil {
		t.Fatal("the page did not show the build's end:", err)
	}
	var same bool
	if err := b.Eval(`window.notReloaded === true`, &same); err != nil || !same {
		t.Errorf("the page was reloaded to show the end (%v)", err)
	}
	browser.SaveScreenshot(t, b, "dashboard-build-ended")
}

// peerWorkload writes the shared peer workload's hepbuild half (select per
// dataset, file and shift; histogram per dataset and shift; a card per
// shift; one merge) with d datasets, f files and s shifts, as gen.py
// writes it; broken names a select whose command fails.
func peerWorkload(t testing.TB, d, f, s int, broken string) string {
	t.Helper()
	files := map[string]string{}
	var ds, fs, ss []string
	for i := 0; i < d; i++ {
		ds = append(ds, fmt.Sprintf("'d%d'", i))
	}
	for j := 0; j < f; j++ {
		fs = append(fs, fmt.Sprintf("'f%d'", j))
	}
	for k := 0; k < s; k++ {
		ss = append(ss, fmt.Sprintf("'s%d'", k))
	}
	for i := 0; i < d; i++ {
		for j := 0; j < f; j++ {
			files[fmt.Sprintf("raw/d%d_f%d.txt", i, j)] = fmt.Sprintf("d%d f%d\n", i, j)
		}
	}
	files["BUILD"] = fmt.Sprintf(`DS = [%s]
FS = [%s]
SS = [%s]
BROKEN = %q

[task(name = 'sel_%%s_%%s_%%s' %% (d, f, s), srcs = ['raw/%%s_%%s.txt' %% (d, f)], outs = ['out/sel/%%s_%%s_%%s.txt' %% (d, f, s)], cmd = "echo 'cannot open file' >&2; exit 2" if 'sel_%%s_%%s_%%s' %% (d, f, s) == BROKEN else "sed 's/$$/ %%s/' $(SRCS) > $@" %% s) for d in DS for f in FS for s in SS]
[task(name = 'hist_%%s_%%s' %% (d, s), srcs = [':sel_%%s_%%s_%%s' %% (d, f, s) for f in FS], outs = ['out/hist/%%s_%%s.txt' %% (d, s)], cmd = 'cat $(SRCS) | wc -l > $@') for d in DS for s in SS]
[task(name = 'card_%%s' %% s, srcs = [':hist_%%s_%%s' %% (d, s) for d in DS], outs = ['out/card/%%s.txt' %% s], cmd = 'cat $(SRCS) > $@') for s in SS]
task(name = 'all', srcs = [':card_%%s' %% s for s in SS], outs = ['out/all.txt'], cmd = 'cat $(SRCS) > $@')
`, strings.Join(ds, ", "), strings.Join(fs, ", "), strings.Join(ss, ", "), broken)
	return testWorkspace(t, files)
}

// The graph of the 20,165-action peer workload, from a real build that
// stops at its first failure: aggregated, never a box per action.
func TestDashboardGraphOfThePeerWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("loads and analyses 20,165 actions")
	}
	d := startDashboard(t)
	root := peerWorkload(t, 40, 125, 4, "sel_d0_f0_s0")
	r := hepbuild(t, root, "build", "-j2", "--sandbox=none", "--server", d.url, "//:all")
	if r.code != 1 || !strings.Contains(r.stderr, "sel_d0_f0_s0") {
		t.Fatalf("build: %d, want 1 naming sel_d0_f0_s0\n%s", r.code, r.stderr)
	}
	id := buildID(t, r.stderr)
	var top api.GraphView
	d.get(t, "/builds/"+id+"/graph.json", &top)
	if len(top.Nodes) != 1 || top.Nodes[0].Counts.Total != 20165 || top.Nodes[0].Counts.Failed != 1 || top.Nodes[0].State != "failed" {
		t.Fatalf("top of the graph: %+v", top.Nodes)
	}
	var pkg api.GraphView
	d.get(t, "/builds/"+id+"/graph.json?path="+url.QueryEscape(top.Nodes[0].Path), &pkg)
	labels := map[string]api.GraphNode{}
	for _, n := range pkg.Nodes {
		labels[n.Label] = n
	}
	if len(pkg.Nodes) > api.MaxNodes || labels["sel_*"].Counts.Total != 20000 || labels["hist_*"].Counts.Total != 160 || labels["all"].Kind != "target" {
		t.Errorf("the package's level: %+v", pkg.Nodes)
	}

	b := browser.ForTest(t)
	if err := b.Navigate(d.url + "/builds/" + id + "/graph"); err != nil {
		t.Fatal(err)
	}
	browser.SaveScreenshot(t, b, "dashboard-graph-top")
	if err := b.Click(`g.node a`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("#graph", "sel_*"); err != nil {
		t.Fatal(err)
	}
	n, err := b.Count("g.node")
	if err != nil || n != len(pkg.Nodes) {
		t.Errorf("the package's graph draws %d boxes (%v), want %d", n, err, len(pkg.Nodes))
	}
	browser.SaveScreenshot(t, b, "dashboard-graph-package")
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("the pages logged errors: %q", errs)
	}
}

// Two builds of the same analysis at once, sharing a disk cache through
// the server: each action runs once, the second build waits for it.
func TestCoordinatedBuildsRunAnActionOnce(t *testing.T) {
	d := startDashboard(t)
	dir := t.TempDir()
	gate, ran := filepath.Join(dir, "open"), filepath.Join(dir, "ran")
	build := fmt.Sprintf(`
task(name = "slow", outs = ["s.txt"], cmd = "echo run >> %s; while [ ! -e %s ]; do sleep 0.05; done; echo done > $@")
task(name = "next", srcs = [":slow"], outs = ["n.txt"], cmd = "echo next >> %s; cp $< $@")
`, ran, gate, ran)
	cache := filepath.Join(dir, "shared-cache")
	roots := []string{testWorkspace(t, map[string]string{"ana/BUILD": build}), testWorkspace(t, map[string]string{"ana/BUILD": build})}
	evs := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")}
	var wg sync.WaitGroup
	res := make([]result, 2)
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = hepbuild(t, roots[i], "build", "--sandbox=none", "--disk-cache", cache, "--events", evs[i], "--server", d.url, "//ana:next")
		}()
	}
	defer func() { _ = os.WriteFile(gate, nil, 0o644); wg.Wait() }()
	start(0)
	waitFor(t, "the first build runs //ana:slow", func() bool { b, _ := os.ReadFile(ran); return string(b) == "run\n" })
	start(1)
	waitFor(t, "the second build waits for the first", func() bool {
		b, _ := os.ReadFile(evs[1])
		return bytes.Contains(b, []byte(`"action_waiting"`))
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 {
			t.Fatalf("build %d: %d\n%s", i, r.code, r.stderr)
		}
	}
	if b, _ := os.ReadFile(ran); string(b) != "run\nnext\n" {
		t.Errorf("commands run across both builds:\n%s\nwant each once", b)
	}
	// //ana:slow ran in the first build and was restored in the second;
	// //ana:next, which both then needed at once, ran in one of them.
	first, second := events(t, evs[0]), events(t, evs[1])
	if len(second["action_cached"]) == 0 || second["action_cached"][0] != "//ana:slow" || len(first["action_finished"])+len(second["action_finished"]) != 2 ||
		len(first["action_cached"])+len(second["action_cached"]) != 2 {
		t.Errorf("the builds' events:\nfirst %v\nsecond %v\nwant each action run in one build and restored in the other", first, second)
	}
	if !strings.Contains(res[1].stderr, "waiting") {
		t.Errorf("the second build's progress does not show the wait:\n%s", res[1].stderr)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
	}
}

// A server with a token: builds without it are refused (one warning, the
// build goes on), builds with it are shown, and a browser logs in once.
func TestDashboardToken(t *testing.T) {
	secret := "s3cret-" + strings.Repeat("x", 32)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDashboard(t, "--token-file", tokenFile)
	d.token = secret
	root := testWorkspace(t, map[string]string{"ana/BUILD": dashboardBuild})
	without := hepbuild(t, root, "build", "--server", d.url, "//ana:hist")
	if without.code != 0 || strings.Count(without.stderr, "WARNING") != 1 || !strings.Contains(without.stderr, "401") && !strings.Contains(without.stderr, "token") {
		t.Fatalf("a build without the token: exit %d, want 0 with one warning about the token:\n%s", without.code, without.stderr)
	}
	with := hepbuild(t, root, "build", "--server", d.url, "--server-token-file", tokenFile, "//ana:plot")
	if with.code != 0 || strings.Contains(with.stderr, "WARNING") {
		t.Fatalf("a build with the token: exit %d\n%s", with.code, with.stderr)
	}
	for _, out := range []string{without.stderr, with.stderr, without.stdout, with.stdout} {
		if strings.Contains(out, secret) {
			t.Fatal("the token was printed")
		}
	}
	if rows := d.builds(t); len(rows) != 1 || rows[0].ID != buildID(t, with.stderr) {
		t.Fatalf("builds shown: %+v, want only the one with the token", rows)
	}

	b := browser.ForTest(t)
	if err := b.Navigate(d.url + "/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitVisible(`form.login input[name=token]`); err != nil {
		t.Fatal("no login form:", err)
	}
	if n, _ := b.Count("table.builds"); n != 0 {
		t.Fatal("the build list is shown without the token")
	}
	browser.SaveScreenshot(t, b, "dashboard-login")
	b.TakeConsoleErrors() // the 401 of the page itself
	if err := b.Eval(`document.querySelector("form.login input[name=token]").value = `+strconvQuote(secret)+`; document.querySelector("form.login").submit(); true`, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("table.builds", "//ana:plot"); err != nil {
		t.Fatal("after logging in:", err)
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("the pages logged errors: %q", errs)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A build on a real Slurm cluster: its page shows the jobs by state and,
// for the failed action, the job that ran it and the end of its log.
func TestDashboardShowsSlurmJobs(t *testing.T) {
	testserver.StartSlurm(t)
	t.Setenv(asMainEnv, "1")
	d := startDashboard(t)
	root, diskCache := clone(t, map[string]string{"BUILD": `
task(name = "good", outs = ["good.txt"], cmd = "echo converged > $@")
task(name = "bad", outs = ["bad.txt"], cmd = "echo the fit did not converge; exit 3")
`})
	r := hepbuild(t, root, append([]string{"-k", "//:all", "--disk-cache", diskCache, "--server", d.url}, batchFlags...)...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	id := buildID(t, r.stderr)
	var view api.BuildView
	d.get(t, "/builds/"+id+".json", &view)
	jobs := 0
	for _, j := range view.JobCounts {
		if j.Executor == "slurm" {
			jobs += j.Count
		}
	}
	if jobs == 0 || len(view.Jobs) == 0 {
		t.Errorf("the build's page shows no slurm jobs: %+v %+v", view.JobCounts, view.Jobs)
	}
	if len(view.Failures) != 1 || !strings.Contains(view.Failures[0].Log, "the fit did not converge") {
		t.Fatalf("failures: %+v", view.Failures)
	}
	b := browser.ForTest(t)
	if err := b.Navigate(fmt.Sprintf("%s/builds/%s/actions/%d", d.url, id, view.Failures[0].ID)); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("body", "slurm job "); err != nil {
		t.Error("the action page does not say which job ran it:", err)
	}
	if err := b.Navigate(d.url + "/builds/" + id); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("#jobs-section", "slurm"); err != nil {
		t.Error("the build page does not show the jobs:", err)
	}
	browser.SaveScreenshot(t, b, "dashboard-slurm")
}
