package server

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// decodeEvents decodes a batch's events. Events are most of what a build
// sends, and encoding/json spends about a microsecond on each; the fast
// path reads the shape clients write (known keys, strings without escapes,
// integers) in a fraction of that, and anything else (an escape, an unknown
// key, a null) is left to encoding/json, so that both accept and decode
// the same inputs.
func decodeEvents(data []byte) ([]api.Event, error) {
	if events, ok := fastEvents(data); ok {
		return events, nil
	}
	var events []api.Event
	err := json.Unmarshal(data, &events)
	return events, err
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c, after blanks.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string without escapes, in UTF-8.
func (s *scanner) str() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// int reads an integer that fits in bits.
func (s *scanner) int(bits int) (int64, bool) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(string(s.b[start:s.i]), 10, bits)
	return v, err == nil
}

func fastEvents(data []byte) ([]api.Event, bool) {
	s := &scanner{b: data}
	if !s.next('[') {
		return nil, false
	}
	events := make([]api.Event, 0, len(data)/100)
	if s.next(']') {
		s.ws()
		return events, s.i == len(s.b)
	}
	for {
		var e api.Event
		if !s.event(&e) {
			return nil, false
		}
		events = append(events, e)
		if s.next(',') {
			continue
		}
		if !s.next(']') {
			return nil, false
		}
		s.ws()
		return events, s.i == len(s.b)
	}
}

func (s *scanner) event(e *api.Event) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		switch string(key) {
		case "type", "message", "key", "executor", "job_id", "job_state", "job_reason", "time":
			v, ok := s.str()
			if !ok {
				return false
			}
			switch string(key) {
			case "type":
				e.Type = string(v)
			case "message":
				e.Message = string(v)
			case "key":
				e.Key = string(v)
			case "executor":
				e.Executor = string(v)
			case "job_id":
				e.JobID = string(v)
			case "job_state":
				e.JobState = string(v)
			case "job_reason":
				e.JobReason = string(v)
			case "time":
				t, err := time.Parse(time.RFC3339Nano, string(v))
				if err != nil {
					return false
				}
				e.Time = t
			}
		case "action":
			v, ok := s.int(32)
			if !ok {
				return false
			}
			e.Action = int32(v)
		case "duration_ns":
			v, ok := s.int(64)
			if !ok {
				return false
			}
			e.Duration = v
		case "exit_code", "attempt", "slot":
			v, ok := s.int(strconv.IntSize)
			if !ok {
				return false
			}
			switch string(key) {
			case "exit_code":
				e.ExitCode = int(v)
			case "attempt":
				e.Attempt = int(v)
			case "slot":
				e.Slot = int(v)
			}
		default:
			return false
		}
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}
