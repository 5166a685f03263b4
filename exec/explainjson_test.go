package exec

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/cache"
)

// appendJSON writes what encoding/json writes for the record, byte for
// byte, whatever the strings hold.
func TestExplainRecordJSON(t *testing.T) {
	tricky := []string{
		"", "plain", `quote " and \ backslash`, "<html> & more", "tab\tnew\nline\rcr",
		"\b\f\x00\x01\x1f\x7f", "é ü ß 漢字 🙂", "bad \xff\xfe utf8 \xc3", "\u2028 and \u2029",
		"$(SRCS) > $@; echo 'x' | wc -l",
	}
	d := func(s string) cache.Digest { return cache.FromBytes([]byte(s)) }
	recs := []*ActionRecord{
		{Key: d("k"), Outputs: []string{"hepbuild-out/a"}, Time: time.Date(2026, 12, 6, 17, 0, 0, 123456789, time.UTC)},
		{Key: d("k"), Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Key: d("k"), Outputs: []string{}, Argv: []string{}, Env: map[string]string{}, Inputs: map[string]cache.Digest{}, Time: time.Now().UTC()},
	}
	for i, s := range tricky {
		recs = append(recs, &ActionRecord{
			Key: d(s), Owner: "//pkg:" + s, Mnemonic: s,
			Outputs:     []string{"hepbuild-out/" + s, s},
			Argv:        []string{"/bin/bash", "-c", s},
			Env:         map[string]string{"B": s, "A": "x", s: "key"},
			Inputs:      map[string]cache.Digest{"src/" + s: d(s), "a": d("a")},
			Environment: d("env"), Content: d(s), Remote: s,
			Time: time.Date(2026, 12, 6, 17, i, 0, i*1000, time.UTC),
		})
	}
	for _, r := range recs {
		want, err := json.Marshal(r.toJSON())
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Errorf("mismatch:\n got %s\nwant %s", got, want)
		}
	}
}
