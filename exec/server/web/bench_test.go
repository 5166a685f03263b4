package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// viewStore serves fixed views, so that the benchmarks measure the pages
// alone and not a store (the server's benchmarks its own).
type viewStore struct {
	api.Store
	build *api.BuildView
	graph *api.GraphView
}

func (s viewStore) Build(context.Context, string) (*api.BuildView, error) { return s.build, nil }
func (s viewStore) Graph(context.Context, string, string) (*api.GraphView, error) {
	return s.graph, nil
}

// benchViews are a build of a million actions in full swing, as the build
// page shows it (200 running, 100 failures with long logs, 200 jobs), and
// one level of its graph with api.MaxNodes nodes and 1,000 edges.
func benchViews() viewStore {
	now := time.Now()
	b := &api.BuildView{BuildRow: api.BuildRow{ID: fixtureID(9), User: "alice", Host: "lxplus", Workspace: "/w",
		Targets: []string{"//..."}, Started: now.Add(-time.Hour), Outcome: api.OutcomeRunning,
		Counts: api.Counts{Total: 1000000, Executed: 400000, Cached: 200000, Failed: 100, Running: 200}, Elapsed: int64(time.Hour)},
		Command: []string{"build", "//..."}}
	for i := range 200 {
		b.Running = append(b.Running, api.RunningAction{ID: int32(i), Target: fmt.Sprintf("//analysis:sel_d%d_f0_s0", i), Mnemonic: "Select", Started: now.Add(-time.Minute), Where: "local slot 1"})
		b.Jobs = append(b.Jobs, api.Job{Executor: "slurm", ID: fmt.Sprint(5599680 + i), State: "running", Updated: now, Actions: 3})
	}
	logTail := strings.Repeat("Error in <TTree::Fill>: something <odd> & wrong in branch jet_pt\n", 60)
	for i := range 100 {
		b.Failures = append(b.Failures, api.Failure{ID: int32(i), Target: fmt.Sprintf("//analysis:hist_d%d_s0", i), Mnemonic: "Histogram", ExitCode: 1, Message: "exit 1", Log: logTail})
	}
	b.JobCounts = []api.JobCount{{Executor: "slurm", State: "running", Count: 200}, {Executor: "slurm", State: "done", Count: 5000}}
	g := &api.GraphView{Build: b.ID, Path: "//analysis"}
	for i := range api.MaxNodes {
		kind, name := "group", fmt.Sprintf("sel_d%d_*", i)
		if i >= 100 {
			name = fmt.Sprintf("hist_d%d_*", i-100)
		}
		g.Nodes = append(g.Nodes, api.GraphNode{Path: "//analysis:" + name, Label: name, Kind: kind, State: "running", Children: 50,
			Counts: api.Counts{Total: 5000, Executed: 2500, Running: 10}, Action: -1})
	}
	for i := range 1000 {
		g.Edges = append(g.Edges, api.GraphEdge{From: g.Nodes[100+i%100].Path, To: g.Nodes[(i*7)%100].Path, Count: 50})
	}
	return viewStore{build: b, graph: g}
}

func benchPage(b *testing.B, path string) {
	h := New(benchViews(), Options{})
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: status %d", path, rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
}

// BenchmarkGraphPage renders the graph page of a 200-node view (layout
// included).
func BenchmarkGraphPage(b *testing.B) {
	benchPage(b, "/builds/"+fixtureID(9)+"/graph?path=%2F%2Fanalysis")
}

// BenchmarkBuildPage renders a busy build's page.
func BenchmarkBuildPage(b *testing.B) { benchPage(b, "/builds/"+fixtureID(9)) }

// BenchmarkBuildJSON encodes what the build page polls each second.
func BenchmarkBuildJSON(b *testing.B) { benchPage(b, "/builds/"+fixtureID(9)+".json") }
