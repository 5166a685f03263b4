package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/graph"
)

type chromeTrace struct {
	TraceEvents []struct {
		Name string         `json:"name"`
		Ph   string         `json:"ph"`
		Ts   int64          `json:"ts"`
		Dur  int64          `json:"dur"`
		Pid  int            `json:"pid"`
		Tid  int            `json:"tid"`
		Args map[string]any `json:"args"`
	} `json:"traceEvents"`
}

func TestProfileLanes(t *testing.T) {
	g, actions := fanIn(t, 3, 6, 2)
	rng := rand.New(rand.NewPCG(3, 4))
	sleep := map[*Action]time.Duration{}
	for _, a := range actions {
		sleep[a] = time.Duration(rng.IntN(3000)) * time.Microsecond
	}
	actions[0].SetExtra().Retries = 1
	var mu sync.Mutex
	failedOnce := false
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		time.Sleep(sleep[a])
		mu.Lock()
		defer mu.Unlock()
		if a == actions[0] && !failedOnce {
			failedOnce = true
			return OutcomeFailed, actionErr(a, "exit status 1")
		}
		return OutcomeExecuted, nil
	}
	var buf bytes.Buffer
	prof := NewProfile(&buf)
	s := &Scheduler{Jobs: 4, Capacity: Resources{CPU: 4}, Backoff: time.Millisecond, Events: prof}
	if _, err := s.Run(context.Background(), g, actions, work); err != nil {
		t.Fatal(err)
	}
	if err := prof.Close(); err != nil {
		t.Fatal(err)
	}
	var tr chromeTrace
	if err := json.Unmarshal(buf.Bytes(), &tr); err != nil {
		t.Fatalf("profile is not JSON: %v\n%s", err, buf.String())
	}
	type iv struct {
		from, to int64
		name     string
	}
	lanes := map[int][]iv{}
	spans := map[string]int{}
	outcomes := map[string]int{}
	builds := 0
	for _, e := range tr.TraceEvents {
		if e.Ph != "X" {
			continue
		}
		if e.Tid == 0 {
			builds++
			continue
		}
		if e.Dur < 0 {
			t.Errorf("%s: negative duration %d", e.Name, e.Dur)
		}
		lanes[e.Tid] = append(lanes[e.Tid], iv{e.Ts, e.Ts + e.Dur, e.Name})
		spans[e.Name]++
		outcomes[e.Args["outcome"].(string)]++
		if e.Args["target"] == "" || e.Args["mnemonic"] != "Task" {
			t.Errorf("%s: args %v", e.Name, e.Args)
		}
	}
	if builds != 1 {
		t.Errorf("%d build spans, want 1", builds)
	}
	for _, a := range actions {
		want := 1
		if a == actions[0] {
			want = 2 // one span per attempt
		}
		if spans[a.Describe()] != want {
			t.Errorf("%s: %d spans, want %d", a.Describe(), spans[a.Describe()], want)
		}
	}
	if diff := cmp.Diff(map[string]int{"executed": len(actions), "failed, retried": 1}, outcomes); diff != "" {
		t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
	}
	if len(lanes) < 2 || len(lanes) > 4 {
		t.Errorf("%d lanes for -j 4", len(lanes))
	}
	for tid, ivs := range lanes {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].from < ivs[j].from })
		for k := 1; k < len(ivs); k++ {
			if ivs[k].from < ivs[k-1].to {
				t.Errorf("lane %d: %s [%d, %d] overlaps %s [%d, %d]", tid, ivs[k-1].name, ivs[k-1].from, ivs[k-1].to, ivs[k].name, ivs[k].from, ivs[k].to)
			}
		}
	}
}

// TestProfileOutOfOrder feeds events whose times do not arrive in order, as
// from several producers: lanes are still laid out without overlap.
func TestProfileOutOfOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	a := &Action{Owner: graph.MustParseLabel("//p:a"), Mnemonic: "Task"}
	b := &Action{Owner: graph.MustParseLabel("//p:b"), Mnemonic: "Task", Progress: "Making b"}
	c := &Action{Owner: graph.MustParseLabel("//p:c"), Mnemonic: "Task"}
	var buf bytes.Buffer
	p := NewProfile(&buf)
	for _, e := range []Event{
		{Type: EventActionStarted, Time: ms(10), Action: b},
		{Type: EventActionStarted, Time: ms(0), Action: a},
		{Type: EventActionFinished, Time: ms(30), Action: b},
		{Type: EventActionCached, Time: ms(20), Action: a},
		{Type: EventActionStarted, Time: ms(25), Action: c}, // still open at Close
		{Type: EventWarning, Time: ms(5), Target: "//p:a", Message: "slow disk"},
	} {
		p.Event(e)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Event(Event{Type: EventActionStarted, Time: ms(40), Action: a}) // after Close: ignored
	var tr chromeTrace
	if err := json.Unmarshal(buf.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name    string
		Ts, Dur int64
		Tid     int
		Outcome any
	}
	var got []row
	for _, e := range tr.TraceEvents {
		if e.Ph == "X" || e.Ph == "i" {
			got = append(got, row{e.Name, e.Ts, e.Dur, e.Tid, e.Args["outcome"]})
		}
	}
	want := []row{
		{"Task //p:a", 0, 20000, 1, "cached"},
		{"Making b", 10000, 20000, 2, "executed"},
		{"Task //p:c", 25000, 5000, 1, "unfinished"},
		{"warning", 5000, 0, 0, nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trace mismatch (-want +got):\n%s", diff)
	}
}
