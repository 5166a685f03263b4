package exec

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// JSONLines writes every event as one JSON object per line (--events FILE).
// Each event reaches w in a single Write, followed by a Flush when w has one,
// so a reader tailing the file never sees half an event. It is safe for
// concurrent use.
type JSONLines struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder
	err error
}

// NewJSONLines returns a sink writing to w.
func NewJSONLines(w io.Writer) *JSONLines {
	j := &JSONLines{w: w}
	j.enc = json.NewEncoder(&j.buf)
	return j
}

// Event writes e. After the first write error, events are dropped: a full
// disk must not fail the build, but Err reports it.
func (j *JSONLines) Event(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	j.buf.Reset()
	if err := j.enc.Encode(e); err != nil { // Encode ends the line
		j.err = err
		return
	}
	if _, err := j.w.Write(j.buf.Bytes()); err != nil {
		j.err = err
		return
	}
	if f, ok := j.w.(interface{ Flush() error }); ok {
		j.err = f.Flush()
	}
}

// Err returns the first error writing an event, if any.
func (j *JSONLines) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Multi returns a sink that passes every event to each of sinks in turn;
// nil sinks are left out. It is safe for concurrent use when every sink is.
func Multi(sinks ...EventSink) EventSink {
	var m multi
	for _, s := range sinks {
		if s != nil {
			m = append(m, s)
		}
	}
	if len(m) == 1 {
		return m[0]
	}
	return m
}

type multi []EventSink

func (m multi) Event(e Event) {
	for _, s := range m {
		s.Event(e)
	}
}
