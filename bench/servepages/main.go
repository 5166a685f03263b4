// Command servepages times how long the pages of `hepbuild serve` take to
// render in headless Chromium: the build list, a build's page, its graph at
// the top and one level down, and an action. With -synthetic N it first
// reports a build of N actions (shaped like the peer workload: select per
// dataset, file and shift; histogram per dataset and shift; a card per
// shift; one merge) straight through the API, all of them finished, so that
// a million-action build can be timed without running a million commands.
//
// Each page loads -runs times; it prints the minimum and the median of the
// time from the navigation's start to the end of its load event, as the
// browser measured it (PerformanceNavigationTiming).
//
// Usage: servepages -server URL [-token-file F] (-build ID | -synthetic N) [-runs 5]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/exec/server/report"
	"github.com/hepbuild/hepbuild/internal/browser"
)

func main() {
	server := flag.String("server", "", "base URL of hepbuild serve")
	tokenFile := flag.String("token-file", "", "the server's token")
	build := flag.String("build", "", "the build to time")
	synthetic := flag.Int("synthetic", 0, "report a finished build of this many actions first")
	runs := flag.Int("runs", 5, "loads of each page")
	flag.Parse()
	if *server == "" || (*build == "") == (*synthetic == 0) {
		flag.Usage()
		os.Exit(2)
	}
	base := strings.TrimRight(*server, "/")
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		check(err)
		token = strings.TrimSpace(string(b))
	}
	id := *build
	if *synthetic > 0 {
		t0 := time.Now()
		id = feed(base, token, *synthetic)
		fmt.Printf("reported a finished build of %d actions through the API in %.1fs\n", *synthetic, time.Since(t0).Seconds())
	}
	ctx := context.Background()
	b, err := browser.Start(ctx)
	check(err)
	defer b.Close()
	if token != "" {
		check(b.Navigate(base + "/login"))
		check(b.Eval(`(async () => { const f = new FormData(); f.set("token", `+jsonString(token)+`);
			await fetch("/login", {method: "POST", body: new URLSearchParams(f), redirect: "manual"}); return true })()`, nil))
	}
	view := getJSON[api.GraphView](base, token, "/builds/"+id+"/graph.json")
	pages := [][2]string{
		{"build list", "/"},
		{"build page", "/builds/" + id},
		{"graph, top", "/builds/" + id + "/graph"},
	}
	// One level down the largest node, then its largest child.
	for depth := 0; depth < 2 && len(view.Nodes) > 0; depth++ {
		big := slices.MaxFunc(view.Nodes, func(a, b api.GraphNode) int { return a.Counts.Total - b.Counts.Total })
		if big.Children == 0 {
			break
		}
		p := "/builds/" + id + "/graph?path=" + url.QueryEscape(big.Path)
		pages = append(pages, [2]string{fmt.Sprintf("graph, %s (%d actions)", big.Label, big.Counts.Total), p})
		view = getJSON[api.GraphView](base, token, "/builds/"+id+"/graph.json?path="+url.QueryEscape(big.Path))
	}
	pages = append(pages, [2]string{"action page", "/builds/" + id + "/actions/0"})
	fmt.Printf("%-44s %10s %10s\n", "page (build "+id[:8]+"…)", "min", "median")
	for _, p := range pages {
		var took []float64
		for i := 0; i < *runs; i++ {
			check(b.Navigate(base + p[1]))
			var ms float64
			check(b.Eval(`(() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime })()`, &ms))
			took = append(took, ms)
		}
		slices.Sort(took)
		fmt.Printf("%-44s %8.0fms %8.0fms\n", p[0], took[0], took[len(took)/2])
	}
}

// feed reports a finished build of about n actions through the API.
func feed(base, token string, n int) string {
	id := report.NewID()
	const shifts = 4
	files := 125
	datasets := max(1, n/(files*shifts))
	var plan []api.PlannedAction
	add := func(target, mnemonic string, deps []int32) int32 {
		i := int32(len(plan))
		plan = append(plan, api.PlannedAction{ID: i, Target: target, Mnemonic: mnemonic, Deps: deps})
		return i
	}
	var cards []int32
	for s := 0; s < shifts; s++ {
		var hists []int32
		for d := 0; d < datasets; d++ {
			var sels []int32
			for f := 0; f < files; f++ {
				sels = append(sels, add(fmt.Sprintf("//:sel_d%d_f%d_s%d", d, f, s), "Select", nil))
			}
			hists = append(hists, add(fmt.Sprintf("//:hist_d%d_s%d", d, s), "Histogram", sels))
		}
		cards = append(cards, add(fmt.Sprintf("//:card_s%d", s), "Card", hists))
	}
	add("//:all", "Merge", cards)
	start := time.Now().Add(-time.Hour)
	post(base, token, api.PathBuilds, api.BuildStart{ID: id, User: "bench", Host: "localhost", Workspace: "/bench",
		Targets: []string{"//:all"}, Command: []string{"build", "//:all"}, Started: start, Version: "bench", Total: len(plan)})
	seq := int64(0)
	for i := 0; i < len(plan); i += api.MaxBatchPlan {
		seq++
		post(base, token, fmt.Sprintf(api.PathBatch, id), api.Batch{Seq: seq, Plan: plan[i:min(i+api.MaxBatchPlan, len(plan))]})
	}
	for i := 0; i < len(plan); i += api.MaxBatchEvents / 2 {
		var evs []api.Event
		for j := i; j < min(i+api.MaxBatchEvents/2, len(plan)); j++ {
			t := start.Add(time.Duration(j) * time.Millisecond)
			evs = append(evs, api.Event{Type: "action_started", Time: t, Action: int32(j), Slot: 1 + j%2},
				api.Event{Type: "action_finished", Time: t.Add(time.Millisecond), Action: int32(j), Duration: int64(time.Millisecond)})
		}
		seq++
		post(base, token, fmt.Sprintf(api.PathBatch, id), api.Batch{Seq: seq, Events: evs})
	}
	seq++
	post(base, token, fmt.Sprintf(api.PathBatch, id), api.Batch{Seq: seq, Actions: []api.ActionInfo{{ID: 0, Command: "sed 's/$/ s0/' raw/d0_f0.txt > out/sel/d0_f0_s0.txt", Where: "local slot 1"}}})
	post(base, token, fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Finished: start.Add(time.Duration(len(plan)) * time.Millisecond),
		Outcome: api.OutcomeSuccess, Counts: api.Counts{Total: len(plan), Executed: len(plan)}, Elapsed: int64(time.Duration(len(plan)) * time.Millisecond)})
	return id
}

func post(base, token, path string, v any) {
	body, err := json.Marshal(v)
	check(err)
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(body))
	check(err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	check(err)
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		check(fmt.Errorf("POST %s: %s", path, resp.Status))
	}
}

func getJSON[T any](base, token, path string) T {
	req, err := http.NewRequest("GET", base+path, nil)
	check(err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	check(err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		check(fmt.Errorf("GET %s: %s", path, resp.Status))
	}
	var v T
	check(json.NewDecoder(resp.Body).Decode(&v))
	return v
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "servepages:", err)
		os.Exit(1)
	}
}
