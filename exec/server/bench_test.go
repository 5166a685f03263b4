package server

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkGraph1M feeds a 1,010,101-action peer-shaped plan (100 datasets
// x 100 files x 100 systematics) through HTTP intake, runs half of it, and
// times the pages: the graph's top level, the expansion of the package and
// of "sel_*", and the build page; cold (first request, which sorts the
// targets) and warm (b.N loop). Then it ends the build and times the graph
// of the ended build loaded back from the database.
//
//	go test ./exec/server -run '^$' -bench Graph1M -benchtime 20x
func BenchmarkGraph1M(b *testing.B) {
	ts := startServer(b, Options{})
	ctx := context.Background()
	plan := peerPlan(100, 100, 100)
	id := ts.startBuild(b, len(plan))
	t0 := time.Now()
	seq := int64(0)
	for i := 0; i < len(plan); i += api.MaxBatchPlan {
		seq++
		ts.batch(b, id, api.Batch{Seq: seq, Plan: plan[i:min(i+api.MaxBatchPlan, len(plan))]})
	}
	planTime := time.Since(t0)
	// Half of the selections ran, through intake as 5,000-event batches.
	// Stored and applied as the HTTP handler does once it has decoded a
	// batch (BenchmarkIntake times the whole request).
	now := time.Now().UTC()
	type prepared struct {
		batch api.Batch
		raw   []byte
	}
	var batches []prepared
	for i := 0; i < len(plan)/2; i += 2500 {
		seq++
		var events []api.Event
		for a := i; a < i+2500; a++ {
			events = append(events, ev("action_started", int32(a), now), ev("action_finished", int32(a), now))
		}
		raw, _ := json.Marshal(events)
		batches = append(batches, prepared{api.Batch{Seq: seq, Events: events}, raw})
	}
	lb := ts.live[id]
	t0 = time.Now()
	for _, p := range batches {
		if err := ts.intake(ctx, lb, &p.batch, p.raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	eventTime := time.Since(t0)
	timed := func(f func() error) time.Duration {
		t := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		return time.Since(t)
	}
	graph := func(path string) func() error {
		return func() error {
			g, err := ts.Graph(ctx, id, path)
			if err == nil && len(g.Nodes) == 0 {
				err = fmt.Errorf("graph %q has no nodes", path)
			}
			return err
		}
	}
	build := func() error { _, err := ts.Build(ctx, id); return err }
	coldTop := timed(graph(""))
	coldPkg := timed(graph("//"))
	coldSel := timed(graph("//:sel_*"))
	coldBuild := timed(build)

	b.ResetTimer()
	var top, pkg, sel, bld time.Duration
	for range b.N {
		top += timed(graph(""))
		pkg += timed(graph("//"))
		sel += timed(graph("//:sel_*"))
		bld += timed(build)
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric(ms(planTime), "plan-intake-ms")
	b.ReportMetric(ms(eventTime)/float64(len(batches)), "store+apply-5000-events-ms")
	b.ReportMetric(ms(coldTop), "cold-top-ms")
	b.ReportMetric(ms(coldPkg), "cold-pkg-ms")
	b.ReportMetric(ms(coldSel), "cold-sel-ms")
	b.ReportMetric(ms(coldBuild), "cold-build-ms")
	b.ReportMetric(ms(top/n), "top-ms")
	b.ReportMetric(ms(pkg/n), "pkg-ms")
	b.ReportMetric(ms(sel/n), "sel-ms")
	b.ReportMetric(ms(bld/n), "build-ms")

	// The ended build, read back from the database (a restart, or an old
	// build the LRU dropped).
	ts.must(b, "POST", fmt.Sprintf(api.PathEnd, id), api.BuildEnd{Outcome: api.OutcomeInterrupted, ExitCode: 8})
	ts.mu.Lock()
	ts.loaded = nil
	ts.mu.Unlock()
	b.ReportMetric(ms(timed(build)), "ended-build-ms")
	b.ReportMetric(ms(timed(graph("//"))), "ended-load+pkg-ms")
}

// BenchmarkIntake times one batch of 5,000 events (and 500 ended actions'
// details) over HTTP, stored and applied; ns/op is per batch.
func BenchmarkIntake(b *testing.B) {
	ts := startServer(b, Options{})
	plan := peerPlan(20, 50, 20) // 20,000 selections, 420 more
	id := ts.startBuild(b, len(plan))
	ts.batch(b, id, api.Batch{Seq: 1, Plan: plan})
	now := time.Now().UTC()
	var bodies [][]byte
	for i := range b.N {
		var batch api.Batch
		batch.Seq = int64(i + 2)
		for j := range 2500 {
			a := int32((i*2500 + j) % len(plan))
			batch.Events = append(batch.Events,
				api.Event{Type: "action_started", Action: a, Time: now, Slot: 1},
				api.Event{Type: "action_finished", Action: a, Time: now, Duration: int64(time.Second)})
			if j%5 == 0 {
				batch.Actions = append(batch.Actions, api.ActionInfo{ID: a, Command: "python3 select.py --dataset d1 --file f7", Where: "local slot 1",
					Inputs: []string{"select.py", "data/d1/f7.root"}, InputCount: 2, Outputs: []string{"sel.root"}, Log: "selected 1234 events\n"})
			}
		}
		data, _ := json.Marshal(batch)
		bodies = append(bodies, data)
	}
	path := fmt.Sprintf(api.PathBatch, id)
	b.ResetTimer()
	for i := range b.N {
		ts.must(b, "POST", path, bodies[i])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkGraphIndex1M times sorting the targets of a 1,010,101-action
// plan, which the first graph request of a build pays (or intake, in the
// background, once the plan is complete).
func BenchmarkGraphIndex1M(b *testing.B) {
	p := newPlan()
	for _, a := range peerPlan(100, 100, 100) {
		p.add(&a)
	}
	b.ResetTimer()
	for range b.N {
		newGraphIndex(p)
	}
}
