package plotting

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go-hep.org/x/hep/hbook"
)

func hist(vals ...float64) *hbook.H1D {
	h := hbook.NewH1D(len(vals), 0, 10*float64(len(vals)))
	for i, v := range vals {
		h.Fill(10*float64(i)+5, v)
	}
	return h
}

func TestBand(t *testing.T) {
	a := Process{Name: "a", Hist: hist(100, 50),
		Up: map[string]*hbook.H1D{"jes": hist(110, 50)}, Down: map[string]*hbook.H1D{"jes": hist(95, 50)}}
	b := Process{Name: "b", Hist: hist(0, 50),
		Up:   map[string]*hbook.H1D{"jes": hist(0, 53), "btag": hist(0, 46)},
		Down: map[string]*hbook.H1D{"jes": hist(0, 48), "btag": hist(0, 52)}}
	total, down, up := Band([]Process{a, b})
	// Bin 0: stat 100 (one entry of weight 100 -> sumw2 1e4), jes +10/-5.
	// Bin 1: stat sqrt(2500+2500), jes +3/-2 (only b moves), btag +2/-4 (down is the larger).
	want := [][]float64{
		{100, 100},
		{math.Sqrt(1e4 + 25), math.Sqrt(5000 + 4 + 16)},
		{math.Sqrt(1e4 + 100), math.Sqrt(5000 + 9 + 4)},
	}
	approx := cmp.Comparer(func(x, y float64) bool { return math.Abs(x-y) < 1e-9 })
	if diff := cmp.Diff(want, [][]float64{total, down, up}, approx); diff != "" {
		t.Errorf("band mismatch (-want +got):\n%s", diff)
	}
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		v    string
		h    *hbook.H1D
		x, y string
	}{
		{"mbb", hbook.NewH1D(20, 50, 250), "m(bb) [GeV]", "Events / 10 GeV"},
		{"dnn", hbook.NewH1D(20, 0, 1), "DNN score", "Events / 0.05"},
		{"njet", hbook.NewH1D(7, 3.5, 10.5), "number of jets", "Events / bin"},
		{"ht", hbook.NewH1DFromEdges([]float64{0, 100, 300}), "H_T [GeV]", "Events / bin"},
	} {
		x, y := Labels(tc.v, tc.h)
		if x != tc.x || y != tc.y {
			t.Errorf("Labels(%s) = %q, %q; want %q, %q", tc.v, x, y, tc.x, tc.y)
		}
	}
	for in, want := range map[string]string{"6j4b": "≥6 jets, ≥4 b tags", "5j4b_excl": "5j4b_excl", "sr": "sr"} {
		if got := CategoryLabel(in); got != want {
			t.Errorf("CategoryLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
