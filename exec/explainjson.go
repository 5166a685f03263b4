package exec

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hepbuild/hepbuild/cache"
)

// appendJSON appends the record as json.Marshal(r.toJSON()) would write
// it, byte for byte (TestExplainRecordJSON compares the two), without
// reflection: every action that runs or is restored appends one, and
// encoding/json's walk of the struct and its maps cost about 3% of
// hepbuild's own CPU per action.
//
// Like json.Marshal, it refuses (returns nil for) a time RFC 3339 cannot
// write: a year outside 0–9999 or a zone offset of a day or more.
func (r *ActionRecord) appendJSON(b []byte) []byte {
	if y := r.Time.Year(); y < 0 || y > 9999 {
		return nil
	}
	if _, off := r.Time.Zone(); off <= -24*60*60 || off >= 24*60*60 {
		return nil
	}
	b = append(b, `{"key":`...)
	b = appendJSONDigest(b, r.Key)
	if r.Owner != "" {
		b = append(b, `,"owner":`...)
		b = appendJSONString(b, r.Owner)
	}
	if r.Mnemonic != "" {
		b = append(b, `,"mnemonic":`...)
		b = appendJSONString(b, r.Mnemonic)
	}
	b = append(b, `,"outputs":`...)
	if r.Outputs == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONStrings(b, r.Outputs)
	}
	if len(r.Argv) > 0 {
		b = append(b, `,"argv":`...)
		b = appendJSONStrings(b, r.Argv)
	}
	if len(r.Env) > 0 {
		b = appendJSONMap(append(b, `,"env":`...), r.Env, appendJSONString)
	}
	if len(r.Inputs) > 0 {
		b = appendJSONMap(append(b, `,"inputs":`...), r.Inputs, appendJSONDigest)
	}
	if !r.Environment.IsZero() {
		b = append(b, `,"environment":`...)
		b = appendJSONDigest(b, r.Environment)
	}
	if !r.Content.IsZero() {
		b = append(b, `,"content":`...)
		b = appendJSONDigest(b, r.Content)
	}
	if r.Remote != "" {
		b = append(b, `,"remote":`...)
		b = appendJSONString(b, r.Remote)
	}
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendJSONMap appends m as an object, its keys sorted, as encoding/json
// writes a map; value appends each value.
func appendJSONMap[V any](b []byte, m map[string]V, value func([]byte, V) []byte) []byte {
	b = append(b, '{')
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = value(b, m[k])
	}
	return append(b, '}')
}

// appendJSONDigest is appendJSONString(b, d.String()) without the string:
// quoting works character by character, and the "/" between the hash and
// the size ends whatever sequence the hash ends with.
func appendJSONDigest(b []byte, d cache.Digest) []byte {
	b = appendJSONString(b, d.Hash)
	b = append(b[:len(b)-1], '/')
	b = strconv.AppendInt(b, d.Size, 10)
	return append(b, '"')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString quotes s as encoding/json does by default: HTML's
// <, > and & escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
