package selection

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
)

func TestParseCategory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Category
		err  string
	}{
		{in: "6j4b", want: Category{Name: "6j4b", Cuts: []Cut{{"njet", ">=", 6}, {"nbtag", ">=", 4}}}},
		{in: "5j3b:njet==5,nbtag==3", want: Category{Name: "5j3b", Cuts: []Cut{{"njet", "==", 5}, {"nbtag", "==", 3}}}},
		{in: "sr:njet>=6, dnn > 0.5 ,mbb<140", want: Category{Name: "sr", Cuts: []Cut{{"njet", ">=", 6}, {"dnn", ">", 0.5}, {"mbb", "<", 140}}}},
		{in: "six", err: "want NjMb"},
		{in: "x:njet=>6", err: "want var op value"},
		{in: "x:nmuon>=1", err: "unknown variable"},
		{in: "a-b:njet>=1", err: "letters, digits"},
		{in: "x:njet>=", err: "want var op value"},
	} {
		got, err := ParseCategory(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCategory(%q) error = %v, want it to contain %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCategory(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseCategory(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func event(id int64, nbtag int32, jets ...float32) events.Event {
	ht := float32(0)
	for _, j := range jets {
		ht += j
	}
	return events.Event{ID: id, NJet: int32(len(jets)), NBTag: nbtag, JetPt: jets, HT: ht, MBB: 100, DNN: 0.5, Weight: 1}
}

func TestShiftApply(t *testing.T) {
	e := event(1, 3, 100, 50, 30.5, 29.5, 26)
	for _, tc := range []struct {
		shift     Shift
		wantJets  []float32
		wantNBTag int32
		wantMBB   float32
	}{
		{Nominal, []float32{100, 50, 30.5}, 3, 100},
		{JESUp, []float32{103, 51.5, 31.415, 30.385}, 3, 103},
		{JESDown, []float32{97, 48.5}, 2, 97},
	} {
		t.Run(string(tc.shift), func(t *testing.T) {
			got := tc.shift.Apply(e)
			if diff := cmp.Diff(tc.wantJets, got.JetPt, cmp.Comparer(func(a, b float32) bool { return a-b < 1e-3 && b-a < 1e-3 })); diff != "" {
				t.Errorf("jets mismatch (-want +got):\n%s", diff)
			}
			if got.NJet != int32(len(got.JetPt)) || got.NBTag != tc.wantNBTag {
				t.Errorf("njet %d nbtag %d, want %d and %d", got.NJet, got.NBTag, len(got.JetPt), tc.wantNBTag)
			}
			sum := float32(0)
			for _, j := range got.JetPt {
				sum += j
			}
			if d := got.HT - sum; d > 1e-3 || d < -1e-3 {
				t.Errorf("ht %g, jets sum to %g", got.HT, sum)
			}
			if d := got.MBB - tc.wantMBB; d > 1e-3 || d < -1e-3 {
				t.Errorf("mbb %g, want %g", got.MBB, tc.wantMBB)
			}
		})
	}
	if len(e.JetPt) != 5 || e.JetPt[0] != 100 {
		t.Errorf("Apply modified its input: %v", e.JetPt)
	}
}

func TestBTagShiftMigratesAFewEventsDeterministically(t *testing.T) {
	const n = 20000
	var up, down int
	for i := range int64(n) {
		e := event(i, 2, 100, 80, 60, 40)
		u := BTagUp.Apply(e)
		d := BTagDown.Apply(e)
		if u.NBTag != BTagUp.Apply(e).NBTag {
			t.Fatalf("event %d: btag_up is not deterministic", i)
		}
		switch u.NBTag {
		case 3:
			up++
		case 2:
		default:
			t.Fatalf("event %d: btag_up gives %d tags from 2", i, u.NBTag)
		}
		switch d.NBTag {
		case 1:
			down++
		case 2:
		default:
			t.Fatalf("event %d: btag_down gives %d tags from 2", i, d.NBTag)
		}
	}
	for name, k := range map[string]int{"up": up, "down": down} {
		if frac := float64(k) / n; frac < 0.015 || frac > 0.025 {
			t.Errorf("btag %s moved %.3f of the events, want about %g", name, frac, btagMigrate)
		}
	}
	full := event(1, 4, 100, 80, 60, 40)
	if got := BTagUp.Apply(full).NBTag; got != 4 {
		t.Errorf("btag_up on an event with every jet tagged gives %d tags", got)
	}
}

func TestSelect(t *testing.T) {
	evts := []events.Event{
		event(1, 4, 100, 90, 80, 70, 60, 50),
		event(2, 3, 100, 90, 80, 70, 60, 50),
		event(3, 4, 100, 90, 80, 70, 60, 29),
		event(4, 4, 100, 90, 80, 70),
	}
	cats := []Category{
		{Name: "6j4b", Cuts: []Cut{{"njet", ">=", 6}, {"nbtag", ">=", 4}}},
		{Name: "5j4b", Cuts: []Cut{{"njet", "==", 5}, {"nbtag", ">=", 4}}},
		{Name: "6j3b", Cuts: []Cut{{"njet", ">=", 6}, {"nbtag", "==", 3}}},
	}
	trees := Select(evts, Nominal, cats)
	got := make(map[string][]int64)
	for _, tr := range trees {
		got[tr.Name] = []int64{}
		for _, e := range tr.Events {
			got[tr.Name] = append(got[tr.Name], e.ID)
		}
	}
	want := map[string][]int64{"events_6j4b": {1}, "events_5j4b": {3}, "events_6j3b": {2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("selection mismatch (-want +got):\n%s", diff)
	}
}

func TestParseShift(t *testing.T) {
	for _, s := range Shifts {
		if got, err := ParseShift(string(s)); err != nil || got != s {
			t.Errorf("ParseShift(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseShift("jes"); err == nil {
		t.Errorf("ParseShift(jes): no error")
	}
}
