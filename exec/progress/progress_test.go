package progress

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// clock is a fake time source that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func action(label, mnemonic, progress string) *exec.Action {
	return &exec.Action{Owner: graph.MustParseLabel(label), Mnemonic: mnemonic, Progress: progress,
		Pos: graph.Pos{File: "ana/BUILD", Line: 12, Col: 5}}
}

func ev(t exec.EventType, a *exec.Action) exec.Event {
	return exec.Event{Type: t, Target: a.Owner.String(), Mnemonic: a.Mnemonic, Action: a}
}

// step is an event at a time offset, or a clock move.
type step struct {
	after time.Duration
	event exec.Event
}

// scenario is a small build with every kind of event.
func scenario() ([]step, *exec.Summary) {
	sel := action("//ana:sel_tth", "Task", "")
	hist := action("//ana:hist_tth", "Histogram", "Histogramming tth")
	cached := action("//ana:sel_ttbar", "Task", "")
	card := action("//ana:card", "Datacard", "")
	flaky := action("//ana:fetch", "Fetch", "")
	failed := ev(exec.EventActionFailed, card)
	failed.Err = &exec.ActionError{Action: card, ExitCode: 3, Reason: "exit status 3",
		Command: "python3 make_card.py --out card.txt",
		Tail:    "Traceback (most recent call last):\n  File \"make_card.py\", line 3\nKeyError: 'tth'\n",
		Log:     "/home/u/.cache/hepbuild/logs/ab/card.log"}
	failed.Duration = 800 * time.Millisecond
	retry := ev(exec.EventActionRetry, flaky)
	retry.Message, retry.Attempt, retry.Duration = "exit status 1", 2, time.Second
	again := ev(exec.EventActionStarted, flaky)
	again.Attempt = 2
	warn := ev(exec.EventWarning, hist)
	warn.Message = "asks for 64 cpus, more than the 2 available; it will run alone"
	withDur := func(e exec.Event, d time.Duration) exec.Event { e.Duration = d; return e }
	steps := []step{
		{0, exec.Event{Type: exec.EventBuildStarted, Total: 5}},
		{0, warn},
		{0, ev(exec.EventActionStarted, sel)},
		{0, ev(exec.EventActionStarted, cached)},
		{10 * time.Millisecond, withDur(ev(exec.EventActionCached, cached), 10*time.Millisecond)},
		{0, ev(exec.EventActionStarted, flaky)},
		{time.Second, retry},
		{1200 * time.Millisecond, withDur(ev(exec.EventActionFinished, sel), 2200*time.Millisecond)},
		{0, ev(exec.EventActionStarted, hist)},
		{0, ev(exec.EventActionStarted, card)},
		{0, again},
		{800 * time.Millisecond, failed},
		{2 * time.Second, withDur(ev(exec.EventActionFinished, flaky), 2800*time.Millisecond)},
		{61 * time.Second, withDur(ev(exec.EventActionFinished, hist), 64*time.Second)},
	}
	sum := &exec.Summary{Total: 5, Executed: 3, Cached: 1, Failed: 1, Elapsed: 66*time.Second + 10*time.Millisecond,
		CriticalPath: []exec.Step{{Action: sel, Duration: 2200 * time.Millisecond}, {Action: hist, Duration: 64 * time.Second}},
		CriticalTime: 66200 * time.Millisecond, Failures: []*exec.ActionError{failed.Err}}
	return steps, sum
}

func play(p *Printer, c *clock, steps []step) {
	for _, s := range steps {
		c.advance(s.after)
		s.event.Time = c.Now()
		p.Event(s.event)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestPlainGolden(t *testing.T) {
	for _, mode := range []Mode{Plain, None} {
		t.Run(mode.String(), func(t *testing.T) {
			var buf bytes.Buffer
			c := newClock()
			p := New(&buf, mode)
			p.Now = c.Now
			steps, sum := scenario()
			play(p, c, steps)
			p.Finish(sum)
			out := buf.String()
			if strings.Contains(out, "\x1b") {
				t.Errorf("%s output has escape sequences:\n%q", mode, out)
			}
			golden(t, mode.String()+".golden", out)
		})
	}
}

// redraw is one write of the TTY printer: a move up over the block drawn
// before (up lines), then text, each row cleared to its end, then a clear of
// the rest of the screen.
type redraw struct {
	up   int
	text string
}

func redraws(t *testing.T, out string) []redraw {
	t.Helper()
	if !strings.HasSuffix(out, "\x1b[J") {
		t.Fatalf("output does not end with a clear: %q", out)
	}
	var rs []redraw
	for _, part := range strings.Split(strings.TrimSuffix(out, "\x1b[J"), "\x1b[J") {
		var r redraw
		if strings.HasPrefix(part, "\r\x1b[") {
			n, err := fmt.Sscanf(part, "\r\x1b[%dA", &r.up)
			if n != 1 {
				t.Fatalf("bad move up in %q: %v", part, err)
			}
			part = part[strings.Index(part, "A")+1:]
		}
		for _, row := range strings.SplitAfter(part, "\n") {
			if row != "" && !strings.HasSuffix(row, "\x1b[K\n") {
				t.Errorf("row %q is not cleared to its end", row)
			}
		}
		r.text = strings.ReplaceAll(part, "\x1b[K", "")
		rs = append(rs, r)
	}
	return rs
}

func TestTTYBlock(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	p := New(&buf, TTY)
	p.Now, p.Interval, p.Width, p.Height, p.Color = c.Now, -1, 60, 24, false
	steps, _ := scenario()
	play(p, c, steps[:11]) // hist, card and the second attempt of fetch running; sel done
	c.advance(1500 * time.Millisecond)
	p.Render()
	rs := redraws(t, buf.String())
	last := rs[len(rs)-1]
	want := strings.Join([]string{
		"[2/5] 1 executed, 1 cached · 3.7s",
		"    1.5s  Datacard //ana:card",
		"    1.5s  Fetch //ana:fetch (attempt 2)",
		"    1.5s  Histogramming tth",
		"",
	}, "\n")
	if diff := cmp.Diff(want, last.text); diff != "" {
		t.Errorf("block mismatch (-want +got):\n%s", diff)
	}
	// The redraw starts by moving up over the block drawn last, with the
	// retry line: 2 lines, the status and sel_tth.
	if last.up != 2 {
		t.Errorf("redraw moves up %d lines, want 2", last.up)
	}

	// A failure goes above the block, which is drawn again below it.
	buf.Reset()
	play(p, c, steps[11:12])
	rs = redraws(t, buf.String())
	if len(rs) != 1 || rs[0].up != 4 {
		t.Fatalf("failure output %q: want one redraw over the 4-line block", buf.String())
	}
	want = strings.Join([]string{
		"ERROR: ana/BUILD:12:5: //ana:card: Datacard failed: exit status 3",
		"  command: python3 make_card.py --out card.txt",
		"  output (last lines):",
		"  | Traceback (most recent call last):",
		"  |   File \"make_card.py\", line 3",
		"  | KeyError: 'tth'",
		"  full log: /home/u/.cache/hepbuild/logs/ab/card.log",
		"[3/5] 1 executed, 1 cached, 1 failed · 4.5s",
		"    2.3s  Fetch //ana:fetch (attempt 2)",
		"    2.3s  Histogramming tth",
		"",
	}, "\n")
	if diff := cmp.Diff(want, rs[0].text); diff != "" {
		t.Errorf("failure mismatch (-want +got):\n%s", diff)
	}

	// Finish erases the block and leaves the summary.
	buf.Reset()
	p.Finish(&exec.Summary{Total: 5, UpToDate: 5, Elapsed: 300 * time.Millisecond})
	const finish = "\r\x1b[3Ahepbuild: nothing to do: all 5 actions up to date; elapsed 0.3s\x1b[K\n\x1b[J"
	if got := buf.String(); got != finish {
		t.Errorf("finish wrote %q, want %q", got, finish)
	}
	p.Render()
	p.Event(exec.Event{Type: exec.EventWarning, Message: "late"})
	if got := buf.String(); got != finish {
		t.Errorf("output after Finish: %q", got)
	}
}

func TestTTYTruncatesAndOverflows(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	p := New(&buf, TTY)
	p.Now, p.Interval, p.Width, p.Height, p.Color = c.Now, -1, 40, 8, false
	p.Event(exec.Event{Type: exec.EventBuildStarted, Total: 100})
	for i := range 10 {
		a := action(fmt.Sprintf("//very/long/package/path:target_number_%d", i), "Task", "")
		p.Event(ev(exec.EventActionStarted, a))
		c.advance(time.Second)
	}
	p.Render()
	rs := redraws(t, buf.String())
	got := rs[len(rs)-1].text
	want := strings.Join([]string{
		"[0/100] 0 executed, 0 cached · 10.0s",
		"   10.0s  Task //very/long/package/pat…",
		"    9.0s  Task //very/long/package/pat…",
		"    8.0s  Task //very/long/package/pat…",
		"    7.0s  Task //very/long/package/pat…",
		"  … and 6 more",
		"",
	}, "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("block mismatch (-want +got):\n%s", diff)
	}
	for _, l := range strings.Split(got, "\n") {
		if n := len([]rune(l)); n > 39 {
			t.Errorf("line of %d runes on a 40-column terminal: %q", n, l)
		}
	}
}

func TestTTYColor(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, TTY)
	p.Interval, p.Color = -1, true
	p.Event(exec.Event{Type: exec.EventWarning, Target: "//a:b", Message: "slow"})
	if !strings.Contains(buf.String(), "\x1b[33mWARNING:\x1b[0m //a:b: slow\x1b[K\n") {
		t.Errorf("no yellow warning in %q", buf.String())
	}
}

// TestTTYTicker runs the real redraw goroutine against a real scheduler and
// checks that it redraws, and that Finish stops it.
func TestTTYTicker(t *testing.T) {
	before := runtime.NumGoroutine()
	var buf syncBuffer
	p := New(&buf, TTY)
	p.Interval, p.Width, p.Height = time.Millisecond, 80, 24
	var actions []*exec.Action
	for i := range 4 {
		actions = append(actions, &exec.Action{Owner: graph.Label{Pkg: "t", Name: fmt.Sprint(i)}, Mnemonic: "Task",
			Outputs: []exec.Artifact{{Path: fmt.Sprintf("hepbuild-out/t/%d", i)}}})
	}
	g, err := exec.NewGraph(actions, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &exec.Scheduler{Jobs: 2, Events: p}
	sum, err := s.Run(context.Background(), g, actions, func(ctx context.Context, a *exec.Action) (exec.Outcome, error) {
		time.Sleep(10 * time.Millisecond)
		return exec.OutcomeExecuted, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Finish(sum)
	out := buf.String()
	if n := strings.Count(out, "\x1b[J"); n < 5 {
		t.Errorf("%d redraws in 20ms at 1ms intervals", n)
	}
	if !strings.HasSuffix(out, "A"+Summary(sum)+"\x1b[K\n\x1b[J") {
		t.Errorf("output does not end with the erased block and the summary: %q", out[max(0, len(out)-200):])
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if runtime.NumGoroutine() > before {
		t.Errorf("%d goroutines before, %d after Finish", before, runtime.NumGoroutine())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSummary(t *testing.T) {
	a := &exec.Action{}
	tests := []struct {
		name string
		s    exec.Summary
		want string
	}{
		{"empty", exec.Summary{}, "hepbuild: nothing to do: no actions"},
		{"null build", exec.Summary{Total: 20165, UpToDate: 20165, Elapsed: 312 * time.Millisecond},
			"hepbuild: nothing to do: all 20165 actions up to date; elapsed 0.3s"},
		{"one", exec.Summary{Total: 1, UpToDate: 1}, "hepbuild: nothing to do: all 1 action up to date; elapsed 0.0s"},
		{"full", exec.Summary{Total: 1234, Executed: 1000, Cached: 230, UpToDate: 4, Elapsed: 45600 * time.Millisecond,
			CriticalPath: make([]exec.Step, 7), CriticalTime: 12300 * time.Millisecond},
			"hepbuild: 1234 actions: 1000 executed, 230 cached, 4 up to date, 0 failed; critical path 12.3s (7 actions); elapsed 45.6s"},
		{"failed and skipped", exec.Summary{Total: 10, Executed: 2, Failed: 1, Skipped: 7, Elapsed: 2 * time.Hour,
			CriticalPath: []exec.Step{{Action: a}}, CriticalTime: 90 * time.Minute},
			"hepbuild: 10 actions: 2 executed, 0 cached, 0 up to date, 1 failed, 7 skipped; critical path 1h30m (1 action); elapsed 2h00m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summary(&tt.s)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.0s"},
		{-time.Second, "0.0s"},
		{449 * time.Millisecond, "0.4s"},
		{12340 * time.Millisecond, "12.3s"},
		{59940 * time.Millisecond, "59.9s"},
		{59960 * time.Millisecond, "1m00s"},
		{123 * time.Second, "2m03s"},
		{time.Hour - time.Second, "59m59s"},
		{time.Hour + 2*time.Minute + 20*time.Second, "1h02m"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestDetect(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m := Detect(f); m != Plain {
		t.Errorf("a regular file: %s, want plain", m)
	}
}

// BenchmarkScheduledTTY measures a mostly cached 20k-action build with the
// TTY printer as the sink, as every interactive build has it.
func BenchmarkScheduledTTY(b *testing.B) {
	var actions []*exec.Action
	for i := range 20000 {
		actions = append(actions, &exec.Action{Owner: graph.Label{Pkg: "bench", Name: fmt.Sprint(i)}, Mnemonic: "Task",
			Outputs: []exec.Artifact{{Path: fmt.Sprintf("hepbuild-out/bench/%d", i)}}})
	}
	g, err := exec.NewGraph(actions, nil)
	if err != nil {
		b.Fatal(err)
	}
	cached := func(context.Context, *exec.Action) (exec.Outcome, error) { return exec.OutcomeCached, nil }
	for b.Loop() {
		p := New(io.Discard, TTY)
		p.Width, p.Height = 80, 24
		s := &exec.Scheduler{Jobs: 8, Capacity: exec.Resources{CPU: 8}, Events: p}
		sum, err := s.Run(context.Background(), g, actions, cached)
		if err != nil {
			b.Fatal(err)
		}
		p.Finish(sum)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
}

// Actions on a batch system show their job and its state, and the status
// line counts them per executor; the plain line names the job that ran it.
func TestBatchJobs(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	p := New(&buf, TTY)
	p.Now, p.Interval, p.Width, p.Height, p.Color = c.Now, -1, 100, 24, false
	a1 := &exec.Action{Mnemonic: "Histogram", Progress: "Filling h1"}
	a2 := &exec.Action{Mnemonic: "Histogram", Progress: "Filling h2"}
	a3 := &exec.Action{Mnemonic: "Histogram", Progress: "Filling h3"}
	p.Event(exec.Event{Type: exec.EventBuildStarted, Total: 3})
	for _, a := range []*exec.Action{a1, a2, a3} {
		p.Event(exec.Event{Type: exec.EventActionStarted, Action: a})
	}
	p.Event(exec.Event{Type: exec.EventJobQueued, Action: a1, Executor: "slurm", JobState: "queued"})
	p.Event(exec.Event{Type: exec.EventJobSubmitted, Action: a2, Executor: "slurm", JobID: "77_0", JobState: "submitted"})
	p.Event(exec.Event{Type: exec.EventJobSubmitted, Action: a3, Executor: "slurm", JobID: "77_1", JobState: "submitted"})
	p.Event(exec.Event{Type: exec.EventJobSubmitted, Action: a2, Executor: "slurm", JobID: "77_0", JobState: "submitted", JobReason: "QOSMaxJobsPerUserLimit"})
	p.Event(exec.Event{Type: exec.EventJobRunning, Action: a3, Executor: "slurm", JobID: "77_1", JobState: "running"})
	c.advance(2 * time.Second)
	p.Render()
	rs := redraws(t, buf.String())
	want := strings.Join([]string{
		"[0/3] 0 executed, 0 cached · 2.0s · slurm: 1 queued, 1 pending, 1 running",
		"    2.0s  Filling h1  [slurm queued]",
		"    2.0s  Filling h2  [slurm 77_0 pending: QOSMaxJobsPerUserLimit]",
		"    2.0s  Filling h3  [slurm 77_1 running]",
		"",
	}, "\n")
	if diff := cmp.Diff(want, rs[len(rs)-1].text); diff != "" {
		t.Errorf("block mismatch (-want +got):\n%s", diff)
	}

	var plain bytes.Buffer
	q := New(&plain, Plain)
	q.Event(exec.Event{Type: exec.EventBuildStarted, Total: 1})
	q.Event(exec.Event{Type: exec.EventActionStarted, Action: a1})
	q.Event(exec.Event{Type: exec.EventJobRunning, Action: a1, Executor: "slurm", JobID: "78_0", JobState: "running"})
	q.Event(exec.Event{Type: exec.EventActionFinished, Action: a1, Duration: 3 * time.Second})
	if got := plain.String(); !strings.Contains(got, "[1/1] ran      Filling h1 on slurm job 78_0 (3.0s)") {
		t.Errorf("plain line %q", got)
	}
}

// An action that waits for another build of the group (the coordinator)
// says so, and whom it waits for, in the block and in a plain line; when
// this build gets the key after all, it shows as running again.
func TestWaitingForAnotherBuild(t *testing.T) {
	sel := action("//ana:sel", "Task", "")
	hist := action("//ana:hist", "Histogram", "")
	waiting := ev(exec.EventActionWaiting, sel)
	waiting.Message = "waiting for alice@lxplus7"
	steps := []step{
		{0, exec.Event{Type: exec.EventBuildStarted, Total: 2}},
		{0, ev(exec.EventActionStarted, sel)},
		{0, ev(exec.EventActionStarted, hist)},
		{time.Second, waiting},
	}

	var buf bytes.Buffer
	c := newClock()
	p := New(&buf, TTY)
	p.Now, p.Interval, p.Width, p.Height, p.Color = c.Now, -1, 80, 24, false
	play(p, c, steps)
	c.advance(2 * time.Second)
	p.Render()
	rs := redraws(t, buf.String())
	want := strings.Join([]string{
		"[0/2] 0 executed, 0 cached, 1 waiting for other builds · 3.0s",
		"    3.0s  Histogram //ana:hist",
		"    3.0s  Task //ana:sel  [waiting for alice@lxplus7]",
		"",
	}, "\n")
	if diff := cmp.Diff(want, rs[len(rs)-1].text); diff != "" {
		t.Errorf("block mismatch (-want +got):\n%s", diff)
	}
	// Granted after the wait: its run starts.
	buf.Reset()
	p.Event(ev(exec.EventActionStarted, sel))
	p.Render()
	rs = redraws(t, buf.String())
	if got := rs[len(rs)-1].text; strings.Contains(got, "waiting") || !strings.Contains(got, "0.0s  Task //ana:sel") {
		t.Errorf("after the wait, the block is\n%s", got)
	}

	buf.Reset()
	c = newClock()
	p = New(&buf, Plain)
	p.Now = c.Now
	play(p, c, steps)
	cached := ev(exec.EventActionCached, sel)
	p.Event(cached)
	if got, want := buf.String(), "[0/2] waiting  Task //ana:sel for alice@lxplus7\n"; got != want {
		t.Errorf("plain output %q, want %q", got, want)
	}
}
