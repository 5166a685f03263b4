package exec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/graph"
)

func TestJSONLinesConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	sink := NewJSONLines(f)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				sink.Event(Event{Type: EventActionFinished, Time: time.Unix(int64(i), 0).UTC(),
					Target: fmt.Sprintf("//w%d:a%d", w, i), Duration: time.Duration(i) * time.Millisecond,
					Outputs: []string{"hepbuild-out/x"}, Action: &Action{}})
			}
		})
	}
	wg.Wait()
	if err := sink.Err(); err != nil {
		t.Fatal(err)
	}
	// No Close, no Sync: what was written must already be in the file.
	data, err := os.ReadFile(path)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seen[e.Target] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct events in the file, want %d", len(seen), writers*each)
	}
}

func TestJSONLinesFormat(t *testing.T) {
	var buf bytes.Buffer
	sink := NewJSONLines(&buf)
	a := &Action{Owner: graph.MustParseLabel("//ana:hist"), Mnemonic: "Histogram"}
	sink.Event(Event{Type: EventActionFailed, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Target: "//ana:hist",
		Mnemonic: "Histogram", Message: "exit status 3", ExitCode: 3, Duration: 1500 * time.Millisecond, Attempt: 2,
		Log: "/logs/hist.log", Action: a, Err: &ActionError{Action: a}})
	want := `{"type":"action_failed","time":"2026-01-02T03:04:05Z","target":"//ana:hist","mnemonic":"Histogram",` +
		`"message":"exit status 3","duration_ns":1500000000,"exit_code":3,"attempt":2,"log":"/logs/hist.log"}` + "\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("line mismatch (-want +got):\n%s", diff)
	}
}

type flushWriter struct {
	bytes.Buffer
	flushes int
}

func (f *flushWriter) Flush() error { f.flushes++; return nil }

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONLinesFlushAndErrors(t *testing.T) {
	fw := &flushWriter{}
	sink := NewJSONLines(fw)
	sink.Event(Event{Type: EventBuildStarted})
	sink.Event(Event{Type: EventBuildFinished})
	if fw.flushes != 2 {
		t.Errorf("%d flushes for 2 events", fw.flushes)
	}
	bad := NewJSONLines(failWriter{})
	bad.Event(Event{Type: EventBuildStarted})
	if err := bad.Err(); err == nil || err.Error() != "disk full" {
		t.Errorf("Err() = %v, want disk full", err)
	}
}

func TestMulti(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	m := Multi(a, nil, b)
	m.Event(Event{Type: EventBuildStarted})
	m.Event(Event{Type: EventBuildFinished})
	if len(a.events) != 2 || len(b.events) != 2 {
		t.Errorf("sinks got %d and %d events, want 2 each", len(a.events), len(b.events))
	}
	if Multi(a) != EventSink(a) {
		t.Error("Multi of one sink should be that sink")
	}
	Multi().Event(Event{}) // no sinks: nothing happens, nothing panics
}

// TestJSONLinesFromScheduler checks the stream of a real run: every line
// parses, and every started action ends with one outcome.
func TestJSONLinesFromScheduler(t *testing.T) {
	g, actions := fanIn(t, 2, 3, 2)
	var buf bytes.Buffer
	s := &Scheduler{Jobs: 3, Events: NewJSONLines(&buf)}
	if _, err := s.Run(context.Background(), g, actions, ok); err != nil {
		t.Fatal(err)
	}
	counts := map[EventType]int{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		counts[e.Type]++
	}
	n := len(actions)
	want := map[EventType]int{EventBuildStarted: 1, EventActionQueued: n, EventActionStarted: n, EventActionFinished: n, EventBuildFinished: 1}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("event counts mismatch (-want +got):\n%s", diff)
	}
}
