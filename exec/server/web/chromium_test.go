package web

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/internal/browser"
)

// TestChromium looks at the pages as a browser renders them, scripts and
// the Content-Security-Policy included (internal/browser fails the test on
// any console error, a policy violation among them). Screenshots go to the
// test's temporary folder and to $HEPBUILD_SCREENSHOTS when it is set.
func TestChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	store := standardFixture()
	srv := httptest.NewServer(New(store, Options{}))
	t.Cleanup(srv.Close) // after the browser's cleanup, which checks its console
	b := browser.ForTest(t)

	t.Run("list", func(t *testing.T) {
		must(t, b.Navigate(srv.URL+"/"))
		must(t, b.WaitVisible("table.builds"))
		rows, err := b.Count("table.builds tbody tr")
		must(t, err)
		if rows != 3 {
			t.Errorf("the list shows %d builds, want 3", rows)
		}
		first, err := b.Text("table.builds tbody tr")
		must(t, err)
		if !strings.Contains(first, "carol") || !strings.Contains(first, "running") {
			t.Errorf("the first row is %q, want carol's running build", first)
		}
		browser.SaveScreenshot(t, b, "list")
	})

	t.Run("failed build", func(t *testing.T) {
		must(t, b.Navigate(srv.URL+"/builds/"+fixtureID(2)))
		must(t, b.WaitVisible("article.failure pre.log"))
		log, err := b.Text("article.failure pre.log")
		must(t, err)
		if !strings.Contains(log, `<script>alert(1)</script>`) || !strings.Contains(log, "KeyError: 'jet_pt'") {
			t.Errorf("the failure's log reads %q", log)
		}
		n, err := b.Count("pre.log script")
		must(t, err)
		if n != 0 {
			t.Error("a log's text became a script element")
		}
		browser.SaveScreenshot(t, b, "build-failed")
	})

	t.Run("failed action", func(t *testing.T) {
		must(t, b.Navigate(srv.URL+"/builds/"+fixtureID(2)+"/actions/11"))
		must(t, b.WaitVisible("#log"))
		log, err := b.Text("#log")
		must(t, err)
		if !strings.Contains(log, "Error: branch \"jet_pt\" not found") {
			t.Errorf("the action's log reads %q", log)
		}
		browser.SaveScreenshot(t, b, "action-failed")
	})

	t.Run("live build", func(t *testing.T) {
		id := fixtureID(3)
		must(t, b.Navigate(srv.URL+"/builds/"+id))
		must(t, b.WaitVisible("#progress-text"))
		// A mark on the window: a reload would wipe it.
		must(t, b.Eval(`window.notReloaded = true`, nil))
		tick0, err := b.Text("#running .tick")
		must(t, err)
		browser.SaveScreenshot(t, b, "build-running")

		// The build goes on: a failure, more done, other running actions.
		store.update(id, func(fb *fixtureBuild) {
			for i := range fb.targets {
				switch {
				case strings.HasPrefix(fb.targets[i].name, "sel_d2_f0_"):
					fb.targets[i].state = "done"
				case fb.targets[i].name == "sel_d2_f1_s0":
					fb.targets[i].state = "failed"
				case strings.HasPrefix(fb.targets[i].name, "sel_d3_"):
					fb.targets[i].state = "running"
				}
			}
			v := fb.view
			v.Counts = countStates(fb.targets)
			v.Elapsed += int64(5 * time.Second)
			v.Failures = []api.Failure{{ID: 404, Target: "//analysis:sel_d2_f1_s0", Mnemonic: "Select", ExitCode: 2,
				Message: "command exited with status 2", Log: "segmentation violation <in TTree::Fill>"}}
			v.Running = []api.RunningAction{{ID: 600, Target: "//analysis:sel_d3_f0_s0", Mnemonic: "Select", Started: time.Now().Add(-2 * time.Second), Where: "local slot 3"}}
			v.Dropped = 250
			fb.view = v
		})
		must(t, b.WaitText("#failures", "segmentation violation <in TTree::Fill>"))
		must(t, b.WaitText("#running", "sel_d3_f0_s0"))
		must(t, b.WaitText("#progress-text", "405 of 20,409 actions done"))
		must(t, b.WaitText("#dropped", "250"))
		visible := false
		must(t, b.Eval(`!document.getElementById("failures-section").hidden && !document.getElementById("dropped").hidden`, &visible))
		if !visible {
			t.Error("the failures or the dropped note stay hidden after the update")
		}
		// Elapsed times tick between polls.
		must(t, b.WaitText("#running .tick", "s"))
		tick1, err := b.Text("#running .tick")
		must(t, err)
		if tick1 == tick0 {
			t.Logf("elapsed %q then %q", tick0, tick1)
		}
		browser.SaveScreenshot(t, b, "build-running-updated")

		// The build ends: the page says so and stops polling.
		store.update(id, func(fb *fixtureBuild) {
			v := fb.view
			v.Outcome, v.ExitCode, v.Finished = api.OutcomeFailed, 1, time.Now()
			v.Running = nil
			v.CriticalPath = []api.Step{{Action: 404, Target: "//analysis:sel_d2_f1_s0", Mnemonic: "Select", Duration: int64(3 * time.Second)}}
			fb.view = v
		})
		must(t, b.WaitText("#outcome", "failed"))
		must(t, b.WaitText("#critical", "sel_d2_f1_s0"))
		must(t, b.WaitText("#exit", "1"))
		stayed := false
		must(t, b.Eval(`window.notReloaded === true`, &stayed))
		if !stayed {
			t.Error("the page reloaded instead of updating itself")
		}
		hidden := false
		must(t, b.Eval(`document.getElementById("live").hidden && document.getElementById("running-section").hidden`, &hidden))
		if !hidden {
			t.Error("an ended build still says it is live or running")
		}
		browser.SaveScreenshot(t, b, "build-ended")
	})

	t.Run("graph", func(t *testing.T) {
		// A running build of 20,409 targets, grouped.
		store.add(&fixtureBuild{view: api.BuildView{BuildRow: api.BuildRow{ID: fixtureID(4), User: "dave", Host: "lxplus903",
			Targets: []string{"//..."}, Started: time.Now().Add(-time.Minute), Outcome: api.OutcomeRunning}},
			targets: workload(100, 50, 4, func(i int, name string) string {
				if strings.HasPrefix(name, "sel_d1") {
					return "done"
				}
				if name == "sel_d7_f3_s2" {
					return "failed"
				}
				return "pending"
			})})
		id := fixtureID(4)
		must(t, b.Navigate(srv.URL+"/builds/"+id+"/graph"))
		must(t, b.WaitVisible(`g.node[data-path="//analysis"]`))
		browser.SaveScreenshot(t, b, "graph-top")
		must(t, b.Click(`g.node[data-path="//analysis"] a`))
		must(t, b.WaitVisible(`g.node[data-path="//analysis:sel_*"]`))
		browser.SaveScreenshot(t, b, "graph-analysis")
		must(t, b.Click(`g.node[data-path="//analysis:sel_*"] a`))
		must(t, b.WaitVisible(`g.node[data-path="//analysis:sel_d99_*"]`))
		n, err := b.Count("g.node")
		must(t, err)
		if n != 100 || n > api.MaxNodes {
			t.Errorf("sel_* draws %d boxes, want 100", n)
		}
		cls, err := b.HTML(`g.node[data-path="//analysis:sel_d7_*"]`)
		must(t, err)
		if !strings.Contains(cls, "s-failed") {
			t.Errorf("the group with a failure is drawn %s", cls[:min(len(cls), 120)])
		}
		must(t, b.WaitText(".crumbs", "//analysis"))
		browser.SaveScreenshot(t, b, "graph-sel")

		// Live colours: sel_d50 starts running.
		store.update(id, func(fb *fixtureBuild) {
			for i := range fb.targets {
				if strings.HasPrefix(fb.targets[i].name, "sel_d50_f1_") {
					fb.targets[i].state = "running"
				}
			}
		})
		must(t, b.Eval(`new Promise((ok, fail) => {
			const g = document.querySelector('g.node[data-path="//analysis:sel_d50_*"]');
			const t0 = Date.now();
			(function check() {
				if (g.classList.contains("s-running")) return ok(true);
				if (Date.now() - t0 > 20000) return fail(new Error("still " + g.getAttribute("class")));
				setTimeout(check, 100);
			})();
		})`, nil))
		must(t, b.WaitText(`g.node[data-path="//analysis:sel_d50_*"] text.summary`, "4 running"))
		// Back up by the breadcrumbs.
		must(t, b.Click(`.crumbs a[href$="graph"]`))
		must(t, b.WaitVisible(`g.node[data-path="//plots"]`))
	})

	t.Run("dense graph", func(t *testing.T) {
		// api.MaxNodes boxes and 1,000 edges: the most one level shows.
		dense := httptest.NewServer(New(benchViews(), Options{}))
		defer dense.Close()
		must(t, b.Navigate(dense.URL+"/builds/"+fixtureID(9)+"/graph?path=%2F%2Fanalysis"))
		must(t, b.WaitVisible(`g.node[data-path="//analysis:hist_d99_*"]`))
		n, err := b.Count("g.node")
		must(t, err)
		e, err := b.Count("path.edge")
		must(t, err)
		if n != api.MaxNodes || e != 1000 {
			t.Errorf("drawn %d boxes and %d edges, want %d and 1000", n, e, api.MaxNodes)
		}
		// Wide enough to see every layer in the screenshot.
		must(t, b.Resize(2400, 900))
		browser.SaveScreenshot(t, b, "graph-dense")
		must(t, b.Resize(1280, 900))
	})

	t.Run("search", func(t *testing.T) {
		must(t, b.Navigate(srv.URL+"/search?q=card_s1"))
		must(t, b.WaitVisible("table.hits"))
		must(t, b.WaitText("table.hits", "//analysis:card_s1"))
		browser.SaveScreenshot(t, b, "search")
	})

	t.Run("not found", func(t *testing.T) {
		must(t, b.Navigate(srv.URL+"/builds/"+fixtureID(77)))
		must(t, b.WaitText("h1", "Not found"))
		if errs := b.TakeConsoleErrors(); len(errs) != 1 || !strings.Contains(errs[0], "404") {
			t.Errorf("a 404 page logged %q, want its status alone", errs)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
