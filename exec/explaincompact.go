package exec

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// explainLineOutput returns the first output of an explain log line, and
// whether readExplain takes the line (decodes it and gets a record). It
// is what compaction needs of every line, and compaction runs at the end
// of a build: decoding each line with encoding/json into an ActionRecord
// cost a rebuild from the cache about a tenth of its CPU.
//
// A line as appendJSON writes it is checked by one pass over its bytes;
// any other (reordered, spaced, escaped or damaged) is decoded in full.
func explainLineOutput(line []byte) (string, bool) {
	if out, ok := scanExplainLine(line); ok {
		return out, true
	}
	var w actionRecordJSON
	if json.Unmarshal(line, &w) != nil {
		return "", false
	}
	if _, err := w.record(); err != nil {
		return "", false
	}
	return w.Outputs[0], true
}

// scanExplainLine reports true only for a line laid out as appendJSON
// writes it that json.Unmarshal and actionRecordJSON.record accept, with
// a plain first output (valid UTF-8 without escapes, so its bytes are
// its value); false means "decode it to know", not "bad".
func scanExplainLine(line []byte) (string, bool) {
	s := explainScanner{b: line}
	if !s.lit(`{"key":`) || !s.digest() {
		return "", false
	}
	if s.lit(`,"owner":`) && !s.str() {
		return "", false
	}
	if s.lit(`,"mnemonic":`) && !s.str() {
		return "", false
	}
	if !s.lit(`,"outputs":["`) {
		return "", false
	}
	s.i-- // back to the quote
	start := s.i + 1
	if !s.str() || s.escaped || s.i-1 <= start {
		return "", false
	}
	out := line[start : s.i-1]
	if !utf8.Valid(out) {
		return "", false // the decoder replaces what is not UTF-8
	}
	for s.lit(",") {
		if !s.str() {
			return "", false
		}
	}
	if !s.lit("]") {
		return "", false
	}
	if s.lit(`,"argv":[`) {
		if !s.str() {
			return "", false
		}
		for s.lit(",") {
			if !s.str() {
				return "", false
			}
		}
		if !s.lit("]") {
			return "", false
		}
	}
	if s.lit(`,"env":{`) && !s.object((*explainScanner).str) {
		return "", false
	}
	if s.lit(`,"inputs":{`) && !s.object((*explainScanner).digest) {
		return "", false
	}
	if s.lit(`,"environment":`) && !s.digest() {
		return "", false
	}
	if s.lit(`,"content":`) && !s.digest() {
		return "", false
	}
	if s.lit(`,"remote":`) && !s.str() {
		return "", false
	}
	if !s.lit(`,"time":`) {
		return "", false
	}
	start = s.i
	if !s.str() {
		return "", false
	}
	var t time.Time
	if t.UnmarshalJSON(line[start:s.i]) != nil || !s.lit("}") || s.i != len(line) {
		return "", false
	}
	return string(out), true
}

// explainScanner walks a line; each method consumes what it accepts.
type explainScanner struct {
	b       []byte
	i       int
	escaped bool // the last string had an escape
}

func (s *explainScanner) lit(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// str consumes a JSON string that json.Unmarshal accepts into a string.
func (s *explainScanner) str() bool {
	s.escaped = false
	b := s.b
	if s.i >= len(b) || b[s.i] != '"' {
		return false
	}
	for i := s.i + 1; i < len(b); i++ {
		for i < len(b) && jsonPlain[b[i]] {
			i++
		}
		if i == len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return true
		case c < 0x20:
			return false
		default: // a backslash
			s.escaped = true
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 >= len(b) || !hexDigit[b[i+2]] || !hexDigit[b[i+3]] || !hexDigit[b[i+4]] || !hexDigit[b[i+5]] {
					return false
				}
				i += 5
			default:
				return false
			}
		}
	}
	return false
}

// digest consumes a string that record parses as a digest: empty, or
// cache.ParseDigest's "hash/size". One with escapes is left to the decoder.
func (s *explainScanner) digest() bool {
	start := s.i
	if !s.str() || s.escaped {
		return false
	}
	v := s.b[start+1 : s.i-1]
	if len(v) == 0 {
		return true
	}
	// The hash is the part before the first "/": 64 hex digits, none of
	// which is a "/".
	const n = 64
	if len(v) <= n || v[n] != '/' {
		return false
	}
	for _, c := range v[:n] {
		if !hexDigit[c] {
			return false
		}
	}
	size := v[n+1:]
	if len(size) > 0 && len(size) <= 18 {
		digits := true
		for _, c := range size {
			digits = digits && '0' <= c && c <= '9'
		}
		if digits {
			return true
		}
	}
	sz, err := strconv.ParseInt(string(size), 10, 64) // signs, overflow
	return err == nil && sz >= 0
}

// object consumes the rest of an object (after its "{") of strings whose
// values value accepts.
func (s *explainScanner) object(value func(*explainScanner) bool) bool {
	if s.lit("}") {
		return true
	}
	for {
		if !s.str() || !s.lit(":") || !value(s) {
			return false
		}
		if s.lit("}") {
			return true
		}
		if !s.lit(",") {
			return false
		}
	}
}

// jsonPlain marks the bytes a JSON string holds as they are; hexDigit
// those encoding/hex and JSON's \u escapes take.
var jsonPlain, hexDigit [256]bool

func init() {
	for c := 0x20; c < 256; c++ {
		jsonPlain[c] = c != '"' && c != '\\'
	}
	for _, c := range "0123456789abcdefABCDEF" {
		hexDigit[c] = true
	}
}
