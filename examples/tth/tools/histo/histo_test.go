package histo

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
)

func TestFill(t *testing.T) {
	evts := []events.Event{
		{MBB: 60, Weight: 2}, {MBB: 60, Weight: 1}, {MBB: 160, Weight: 1}, {MBB: 300, Weight: 5},
	}
	b := Binning{Var: "mbb", Bins: 2, Min: 50, Max: 250}
	for _, tc := range []struct {
		name string
		norm Norm
		want []float64
	}{
		{"data counts events", Norm{}, []float64{2, 1}},
		{"scaled by xsec x lumi / n", Norm{XSec: 0.5, Lumi: 2, NEvents: 1000}, []float64{3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Fill("h", b, tc.norm, evts)
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, bin := range h.Binning.Bins {
				got = append(got, bin.SumW())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("bins mismatch (-want +got):\n%s", diff)
			}
			if h.Name() != "h" {
				t.Errorf("name %q", h.Name())
			}
		})
	}
}

func TestFillErrors(t *testing.T) {
	for _, tc := range []struct {
		b    Binning
		norm Norm
		err  string
	}{
		{Binning{Var: "pt", Bins: 1, Min: 0, Max: 1}, Norm{}, "unknown variable"},
		{Binning{Var: "mbb", Bins: 0, Min: 0, Max: 1}, Norm{}, "bins"},
		{Binning{Var: "mbb", Bins: 1, Min: 1, Max: 1}, Norm{}, "min must be below max"},
		{Binning{Var: "mbb", Bins: 1, Min: 0, Max: 1}, Norm{XSec: 1, Lumi: 1}, "positive"},
	} {
		_, err := Fill("h", tc.b, tc.norm)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Fill(%+v, %+v) error = %v, want %q", tc.b, tc.norm, err, tc.err)
		}
	}
}

func hist(name string, n int, vals ...float64) *hbook.H1D {
	h := hbook.NewH1D(n, 0, float64(n))
	h.Ann["name"] = name
	for i, v := range vals {
		h.Fill(float64(i)+0.5, v)
	}
	return h
}

func TestMerge(t *testing.T) {
	got, err := Merge([]Source{
		{"a.root", hist("tth", 2, 1, 2)},
		{"b.root", hist("tth", 2, 3, 4)},
		{"b.root", hist("tth_jesUp", 2, 5, 5)},
	})
	if err != nil {
		t.Fatal(err)
	}
	summary := make(map[string][]float64)
	for _, h := range got {
		for _, b := range h.Binning.Bins {
			summary[h.Name()] = append(summary[h.Name()], b.SumW())
		}
	}
	want := map[string][]float64{"tth": {4, 6}, "tth_jesUp": {5, 5}}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("merge mismatch (-want +got):\n%s", diff)
	}
	if e := got[0].Binning.Bins[0].SumW2(); math.Abs(e-10) > 1e-12 {
		t.Errorf("merged sumw2 %g, want 1+9", e)
	}

	_, err = Merge([]Source{{"a.root", hist("x", 2, 1)}, {"b.root", hist("x", 3, 1)}})
	if err == nil || !strings.Contains(err.Error(), "b.root") || !strings.Contains(err.Error(), "a.root") {
		t.Errorf("merging different binnings: error %v, want one naming both files", err)
	}
}
