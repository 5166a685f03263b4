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

// Times json.Marshal refuses are refused, other zones written alike.
func TestExplainRecordJSONTimes(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 25*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 5, time.FixedZone("odd", -(5*3600+30*60+7))),
		{},
	} {
		r := &ActionRecord{Key: cache.FromBytes(nil), Outputs: []string{"o"}, Time: tm}
		want, err := json.Marshal(r.toJSON())
		got := r.appendJSON(nil)
		if err != nil {
			if got != nil {
				t.Errorf("%v: json.Marshal refuses it (%v), appendJSON wrote %s", tm, err, got)
			}
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%v: mismatch:\n got %s\nwant %s", tm, got, want)
		}
	}
}

func FuzzExplainRecordJSON(f *testing.F) {
	f.Add("a<b>&c", "\xff\u2028\u2029", "\x00\"\\\b\f", int64(1796579572), int64(123), 0)
	f.Add("", "é漢🙂", "\xc3", int64(0), int64(0), 3600)
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, sec, nsec int64, off int) {
		r := &ActionRecord{
			// Digests of any hash: the quoting of "hash/size" is written
			// without the string.
			Key: cache.Digest{Hash: s1, Size: sec}, Owner: s1, Mnemonic: s2,
			Outputs: []string{s1, s2, s3}, Argv: []string{s3, s1},
			Env:         map[string]string{s1: s2, s2: s3, s3: s1},
			Inputs:      map[string]cache.Digest{s1: cache.FromBytes([]byte(s2)), s3: {Hash: s2, Size: nsec}},
			Environment: cache.Digest{Hash: s3, Size: -nsec},
			Content:     cache.Digest{Hash: s2 + s3},
			Remote:      s3, Time: time.Unix(sec, nsec).In(time.FixedZone("z", off)),
		}
		want, err := json.Marshal(r.toJSON())
		got := r.appendJSON(nil)
		if err != nil {
			if got != nil {
				t.Fatalf("json.Marshal refuses the record (%v), appendJSON wrote %s", err, got)
			}
			return
		}
		if string(got) != string(want) {
			t.Fatalf("mismatch:\n got %s\nwant %s", got, want)
		}
	})
}
