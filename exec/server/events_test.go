package server

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// TestDecodeEventsAsEncodingJSON: the fast path decodes what encoding/json
// decodes, and inputs it does not take are still decoded (or refused)
// exactly as encoding/json does.
func TestDecodeEventsAsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "action_started", "exit status 2", "naïve ✓", `say "hi"`, "tab\there", "back\\slash", "<html>&"}
	var events []api.Event
	for range 500 {
		events = append(events, api.Event{Type: strs[r.IntN(len(strs))], Time: time.Unix(r.Int64N(2e9), r.Int64N(1e9)).UTC(),
			Action: int32(r.IntN(1000) - 1), Message: strs[r.IntN(len(strs))], Duration: r.Int64(), ExitCode: r.IntN(300) - 5,
			Attempt: r.IntN(3), Executor: "slurm", JobID: "5599680_3", Slot: r.IntN(9)})
	}
	plain, _ := json.Marshal(events[:3])
	all, _ := json.Marshal(events)
	indented, _ := json.MarshalIndent(events[:20], "", "  ")
	inputs := []string{
		string(plain), string(all), string(indented), `[]`, ` [ ] `, `null`, `[{}]`,
		`[{"type":"action_started","action":3,"time":"2026-12-06T08:00:00+01:00"}]`,
		`[{"Type":"action_started","ACTION":3}]`,  // keys in another case
		`[{"type":"a","action":3,"type":"b"}]`,    // a repeated key
		`[{"type":"a","extra":[1,2,{"x":null}]}]`, // an unknown key
		`[{"type":null,"action":null}]`,           // nulls
		`[{"type":"a\u00e9"}]`,                    // an escape
		`[{"action":1.5}]`, `[{"action":1e3}]`,    // not integers
		`[{"action":4294967296}]`, `[{"duration_ns":-1}]`, // out of range, negative
		`[{"type":"a"}] x`, `[{"type":"a"},]`, `[{"type":"a"`, // malformed
		`[{"time":"yesterday"}]`, "[{\"type\":\"\xff\"}]", `{"type":"a"}`,
	}
	for _, in := range inputs {
		var want []api.Event
		wantErr := json.Unmarshal([]byte(in), &want)
		got, gotErr := decodeEvents([]byte(in))
		if (wantErr != nil) != (gotErr != nil) {
			t.Errorf("%.60s: error %v, encoding/json's %v", in, gotErr, wantErr)
			continue
		}
		if wantErr != nil {
			continue
		}
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%.60s: mismatch (-encoding/json +decodeEvents):\n%s", in, diff)
		}
	}
	// The fast path takes what clients write.
	if _, ok := fastEvents(all); !ok && !strings.Contains(string(all), `\`) {
		t.Errorf("the fast path refused encoding/json's own output")
	}
	clean, _ := json.Marshal([]api.Event{{Type: "action_started", Time: time.Now(), Action: 7, Slot: 2}})
	if _, ok := fastEvents(clean); !ok {
		t.Errorf("the fast path refused %s", clean)
	}
}

func BenchmarkDecodeEvents(b *testing.B) {
	var events []api.Event
	now := time.Now().UTC()
	for i := range 5000 {
		events = append(events, api.Event{Type: "action_finished", Time: now, Action: int32(i), Duration: int64(time.Second), Slot: 3})
	}
	data, _ := json.Marshal(events)
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			if _, ok := fastEvents(data); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for range b.N {
			var e []api.Event
			if err := json.Unmarshal(data, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
