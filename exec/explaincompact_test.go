package exec

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/cache"
)

// explainLinesForScan are explain log lines as appendJSON writes them,
// with and without every optional field, escapes and non-ASCII text.
func explainLinesForScan(t testing.TB) []string {
	d := func(s string) cache.Digest { return cache.FromBytes([]byte(s)) }
	tm := time.Date(2026, 12, 6, 22, 52, 12, 73847601, time.UTC)
	recs := []*ActionRecord{
		{Key: d("k"), Owner: "//:sel", Mnemonic: "Task", Outputs: []string{"hepbuild-out/out/sel/a.txt"},
			Argv: []string{"/bin/bash", "-c", "sed 's/$/ s0/' raw/a.txt > out\n"}, Env: map[string]string{"PATH": "/bin", "A": "<&>"},
			Inputs: map[string]cache.Digest{"raw/a.txt": d("a"), "raw/b.txt": d("b")}, Environment: d("env"), Time: tm},
		{Key: d("k2"), Outputs: []string{"hepbuild-out/x", "hepbuild-out/y"}, Time: tm},
		{Key: d("k3"), Outputs: []string{"hepbuild-out/w"}, Content: d("content"), Remote: "root://eos//f.root#adler32:1", Time: tm.In(time.FixedZone("", 3600))},
		{Key: d("k4"), Outputs: []string{"hepbuild-out/é"}, Time: tm},
		{Key: d("k5"), Outputs: []string{"hepbuild-out/a\"b"}, Time: tm},
		{Key: d("k6"), Outputs: []string{""}, Time: tm},
		{Key: d("k7"), Outputs: []string{"hepbuild-out/z"}, Env: map[string]string{}, Inputs: map[string]cache.Digest{"": {}}, Time: tm},
	}
	var lines []string
	for _, r := range recs {
		b := r.appendJSON(nil)
		if b == nil {
			t.Fatalf("appendJSON refused %+v", r)
		}
		lines = append(lines, string(b))
	}
	return append(lines,
		`{"key":"","outputs":["o"],"time":"2026-12-06T22:52:12Z"}`,
		`{"key":"`+d("k").String()+`","outputs":["o"],"time":"2026-12-06T22:52:12Z"} `,
		`{"key":"`+d("k").String()+`","outputs":["o"],"inputs":{"a":"\u0030"},"time":"2026-12-06T22:52:12Z"}`,
		`{"key":"`+d("k").String()+`","outputs":["o"],"owner":"x","time":"2026-12-06T22:52:12Z"}`,
		`{"key":"`+d("k").String()+`","outputs":[],"time":"2026-12-06T22:52:12Z"}`,
		`{"key":"`+d("k").String()+`","outputs":null,"time":"2026-12-06T22:52:12Z"}`,
	)
}

// slowExplainLine is what readExplain makes of a line: its first output
// and whether it takes the line at all.
func slowExplainLine(line []byte) (string, bool) {
	var w actionRecordJSON
	if json.Unmarshal(line, &w) != nil {
		return "", false
	}
	if _, err := w.record(); err != nil {
		return "", false
	}
	return w.Outputs[0], true
}

// checkScanAgrees fails when the one-pass scan takes a line that the full
// decoding does not, or names another first output.
func checkScanAgrees(t *testing.T, line []byte) {
	t.Helper()
	out, ok := scanExplainLine(line)
	if !ok {
		return
	}
	want, wantOK := slowExplainLine(line)
	if !wantOK || out != want {
		t.Errorf("scan of %q = %q; decoding: %q, taken %v", line, out, want, wantOK)
	}
}

// TestScanExplainLineAgreesWithDecoding: every line the scan takes, and
// every damage to one (a byte left out, replaced, the line cut), is taken
// by json.Unmarshal and record with the same first output; and the lines
// hepbuild writes are taken by the scan itself, without decoding.
func TestScanExplainLineAgreesWithDecoding(t *testing.T) {
	lines := explainLinesForScan(t)
	for i, l := range lines[:4] {
		if _, ok := scanExplainLine([]byte(l)); !ok {
			t.Errorf("line %d as appendJSON writes it is not taken by the scan: %s", i, l)
		}
	}
	replacements := []byte{'"', '\\', '{', '}', '[', ']', ',', ':', '/', 'g', 'A', '0', ' ', '\n', 0x01, 0xff, 'u'}
	for _, l := range lines {
		checkScanAgrees(t, []byte(l))
		for i := 0; i < len(l); i++ {
			checkScanAgrees(t, []byte(l[:i]))
			checkScanAgrees(t, []byte(l[:i]+l[i+1:]))
			for _, c := range replacements {
				checkScanAgrees(t, []byte(l[:i]+string([]byte{c})+l[i+1:]))
			}
		}
	}
}

func FuzzScanExplainLine(f *testing.F) {
	for _, l := range explainLinesForScan(f) {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkScanAgrees(t, line)
	})
}
