package exec

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Profile records every attempt of every action as a span and writes them,
// on Close, as Chrome trace JSON (--profile FILE) that Perfetto
// (ui.perfetto.dev) and chrome://tracing open. Actions running at the same
// time get separate lanes (threads in the trace); the build itself is lane 0.
// It is safe for concurrent use.
type Profile struct {
	mu     sync.Mutex
	w      io.Writer
	origin time.Time // the first event's time: the trace starts at 0
	last   time.Time
	open   map[spanKey]span
	spans  []span
	marks  []traceEvent // warnings, as instant events
	build  span
	closed bool
}

type spanKey struct {
	action           *Action
	target, mnemonic string // when events come without their Action
}

type span struct {
	name, target, mnemonic, outcome string
	attempt                         int
	start, end                      time.Time
}

// traceEvent is one entry of the Trace Event Format's traceEvents array.
type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   int64          `json:"ts"` // microseconds
	Dur  int64          `json:"dur"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	S    string         `json:"s,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

// NewProfile returns a profile that Close writes to w.
func NewProfile(w io.Writer) *Profile {
	return &Profile{w: w, open: map[spanKey]span{}}
}

// Event records e.
func (p *Profile) Event(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	if p.origin.IsZero() || t.Before(p.origin) {
		p.origin = t
	}
	if t.After(p.last) {
		p.last = t
	}
	key := spanKey{action: e.Action}
	if e.Action == nil {
		key = spanKey{target: e.Target, mnemonic: e.Mnemonic}
	}
	switch e.Type {
	case EventBuildStarted:
		p.build = span{name: "build", start: t}
	case EventBuildFinished:
		p.build.end = t
	case EventActionStarted:
		name := e.Message
		if e.Action != nil {
			name = e.Action.Describe()
		}
		if name == "" {
			name = e.Mnemonic + " " + e.Target
		}
		p.open[key] = span{name: name, target: e.Target, mnemonic: e.Mnemonic, attempt: e.Attempt, start: t}
	case EventActionCached, EventActionUpToDate, EventActionFinished, EventActionFailed, EventActionRetry, EventActionInterrupted:
		s, ok := p.open[key]
		if !ok {
			return
		}
		delete(p.open, key)
		s.end = t
		// Duration is the work's own measure, without the scheduler's latency;
		// a retry's Duration is its delay, not the attempt.
		if e.Type != EventActionRetry && e.Duration > 0 && s.start.Add(e.Duration).Before(t) {
			s.end = s.start.Add(e.Duration)
		}
		s.outcome = outcomeName(e.Type)
		p.spans = append(p.spans, s)
	case EventWarning:
		p.marks = append(p.marks, traceEvent{Name: "warning", Ph: "i", S: "g", Ts: t.UnixMicro(),
			Args: map[string]any{"target": e.Target, "message": e.Message}})
	}
}

func outcomeName(t EventType) string {
	switch t {
	case EventActionCached:
		return "cached"
	case EventActionUpToDate:
		return "up to date"
	case EventActionFinished:
		return "executed"
	case EventActionFailed:
		return "failed"
	case EventActionRetry:
		return "failed, retried"
	case EventActionInterrupted:
		return "interrupted"
	}
	return string(t)
}

// Close ends the spans still open at the last event's time and writes the
// trace. Later events are ignored; a second Close does nothing.
func (p *Profile) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	for _, s := range p.open {
		s.end, s.outcome = p.last, "unfinished"
		p.spans = append(p.spans, s)
	}
	p.open = nil
	data, err := json.Marshal(map[string]any{"traceEvents": p.trace(), "displayTimeUnit": "ms"})
	if err != nil {
		return err
	}
	if _, err := p.w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("writing profile: %w", err)
	}
	return nil
}

// trace lays the spans out on lanes: each span takes the lowest lane free
// at its start, so concurrent spans never share one. Lanes are assigned here,
// not as events arrive, so that the layout holds for any event order.
func (p *Profile) trace() []traceEvent {
	us := func(t time.Time) int64 { return t.Sub(p.origin).Microseconds() }
	slices.SortStableFunc(p.spans, func(a, b span) int { return a.start.Compare(b.start) })
	var laneEnd []int64 // per lane, when its last span ends
	events := []traceEvent{{Name: "process_name", Ph: "M", Pid: 1, Args: map[string]any{"name": "hepbuild"}}}
	if !p.build.start.IsZero() {
		end := p.build.end
		if end.IsZero() {
			end = p.last
		}
		events = append(events, traceEvent{Name: "build", Cat: "build", Ph: "X", Pid: 1, Tid: 0,
			Ts: us(p.build.start), Dur: us(end) - us(p.build.start)})
	}
	for _, s := range p.spans {
		start, end := us(s.start), max(us(s.end), us(s.start))
		lane := slices.IndexFunc(laneEnd, func(e int64) bool { return e <= start })
		if lane < 0 {
			lane = len(laneEnd)
			laneEnd = append(laneEnd, 0)
		}
		laneEnd[lane] = end
		events = append(events, traceEvent{Name: s.name, Cat: "action", Ph: "X", Pid: 1, Tid: lane + 1,
			Ts: start, Dur: end - start,
			Args: map[string]any{"target": s.target, "mnemonic": s.mnemonic, "outcome": s.outcome, "attempt": s.attempt}})
	}
	events = append(events, traceEvent{Name: "thread_name", Ph: "M", Pid: 1, Tid: 0, Args: map[string]any{"name": "build"}})
	for lane := range laneEnd {
		events = append(events, traceEvent{Name: "thread_name", Ph: "M", Pid: 1, Tid: lane + 1,
			Args: map[string]any{"name": "lane " + strconv.Itoa(lane+1)}})
	}
	for _, m := range p.marks {
		m.Pid, m.Ts = 1, m.Ts-p.origin.UnixMicro()
		events = append(events, m)
	}
	return events
}
