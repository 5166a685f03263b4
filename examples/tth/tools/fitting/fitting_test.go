package fitting

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/card"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

func TestInterp(t *testing.T) {
	for _, tc := range []struct {
		theta, up, down, want float64
	}{
		{0, 3, -2, 0},
		{1, 3, -2, 3},
		{-1, 3, -2, -2},
		{0.5, 2, -2, 1},     // symmetric: linear
		{3, 2, -2, 6},       // and continued linearly
		{0.5, 1, 1, 0.25},   // same-sign: quadratic inside
		{2, 1, 1, 1 + 1*2},  // slope 2 at +1 continues
		{-2, 1, 1, 1 + 1*2}, // and mirrored
	} {
		if got := interp(tc.theta, tc.up, tc.down); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("interp(%g, %g, %g) = %g, want %g", tc.theta, tc.up, tc.down, got, tc.want)
		}
	}
	// Smooth at the joins: left and right slopes agree at ±1.
	const h = 1e-6
	for _, x := range []float64{-1, 1} {
		left := (interp(x, 3, -1) - interp(x-h, 3, -1)) / h
		right := (interp(x+h, 3, -1) - interp(x, 3, -1)) / h
		if math.Abs(left-right) > 1e-4 {
			t.Errorf("slope at %g jumps from %g to %g", x, left, right)
		}
	}
}

// One bin, no nuisances: the profile likelihood is the Poisson one, whose best fit and interval
// are known in closed form.
func TestCountingExperiment(t *testing.T) {
	const s, b, n = 20.0, 100.0, 130.0
	m := &Model{Channels: []Channel{{Name: "c", Data: []float64{n}, Processes: []Process{
		{Name: "sig", Signal: true, Nominal: []float64{s}},
		{Name: "bkg", Nominal: []float64{b}},
	}}}}
	best, err := m.Fit()
	if err != nil {
		t.Fatal(err)
	}
	if want := (n - b) / s; math.Abs(best.Params[0]-want) > 1e-4 {
		t.Errorf("mu = %g, want %g", best.Params[0], want)
	}
	lo, hi, err := m.Interval(best)
	if err != nil {
		t.Fatal(err)
	}
	q := func(mu float64) float64 { // 2 (NLL(mu) - NLL(muhat)) for a Poisson count
		l := mu*s + b
		return 2 * (l - n*math.Log(l) - (n - n*math.Log(n)))
	}
	for _, x := range []float64{lo, hi} {
		if math.Abs(q(x)-1) > 1e-3 {
			t.Errorf("interval end %g: 2 dNLL = %g, want 1", x, q(x))
		}
	}
	if !(lo < best.Params[0] && best.Params[0] < hi) {
		t.Errorf("interval [%g, %g] does not contain the best fit %g", lo, hi, best.Params[0])
	}
}

func h1(name string, counts ...float64) *hbook.H1D {
	h := hbook.NewH1D(len(counts), 0, 1)
	h.Ann["name"] = name
	for i, c := range counts {
		h.Fill((float64(i)+0.5)/float64(len(counts)), c)
	}
	return h
}

// writeCard writes a datacard and its shapes file through the card package, as the datacard
// program does, and returns the card's path.
func writeCard(t *testing.T, dir string, data []float64) string {
	t.Helper()
	hists := map[string]*hbook.H1D{
		"data_obs":      h1("data_obs", data...),
		"sig":           h1("sig", 2, 8, 20),
		"sig_jesUp":     h1("sig_jesUp", 2.2, 8.8, 22),
		"sig_jesDown":   h1("sig_jesDown", 1.8, 7.2, 18),
		"bkg":           h1("bkg", 200, 80, 20),
		"bkg_jesUp":     h1("bkg_jesUp", 190, 84, 24),
		"bkg_jesDown":   h1("bkg_jesDown", 210, 76, 16),
		"other":         h1("other", 10, 10, 10),
		"other_jesUp":   h1("other_jesUp", 10, 10, 10),
		"other_jesDown": h1("other_jesDown", 10, 10, 10),
	}
	cfg, err := card.ParseConfig(strings.NewReader(`{
	  "category": "test",
	  "observation": {"file": "in.root"},
	  "processes": [
	    {"name": "sig", "signal": true, "file": "in.root"},
	    {"name": "bkg", "file": "in.root"},
	    {"name": "other", "file": "in.root"}
	  ],
	  "systematics": [
	    {"name": "lumi", "type": "lnN", "value": 1.02},
	    {"name": "bkg_norm", "type": "lnN", "value": "0.8/1.3", "processes": ["bkg"]},
	    {"name": "jes", "type": "shape"}
	  ]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	c, hs, err := card.Build(cfg, "shapes.root", nil, func(_, name string) (*hbook.H1D, error) { return hists[name], nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := rootio.WriteHists(filepath.Join(dir, "shapes.root"), hs); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.Format(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "datacard.txt")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadAndFitAsimov(t *testing.T) {
	path := writeCard(t, t.TempDir(), []float64{215, 100, 55})
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Nuisances, " "); got != "lumi bkg_norm jes" {
		t.Errorf("nuisances %q, want lumi bkg_norm jes", got)
	}
	// At mu = 1 and no pulls the model reproduces the nominal templates.
	params := []float64{1, 0, 0, 0}
	if got, want := m.Expected(0, params), []float64{212, 98, 50}; !close(got, want) {
		t.Errorf("expected %v, want %v", got, want)
	}
	// bkg_norm at -1 scales the background by its down kappa, 0.8.
	params[2] = -1
	if got, want := m.Expected(0, params), []float64{2 + 160 + 10, 8 + 64 + 10, 20 + 16 + 10}; !close(got, want) {
		t.Errorf("expected at bkg_norm = -1: %v, want %v", got, want)
	}
	// jes at +1 gives the Up templates.
	params = []float64{1, 0, 0, 1}
	if got, want := m.Expected(0, params), []float64{2.2 + 190 + 10, 8.8 + 84 + 10, 22 + 24 + 10}; !close(got, want) {
		t.Errorf("expected at jes = +1: %v, want %v", got, want)
	}

	a := m.Asimov(1)
	best, err := a.Fit()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(best.Params[0]-1) > 1e-3 {
		t.Errorf("Asimov fit: mu = %g, want 1", best.Params[0])
	}
	for i, th := range best.Params[1:] {
		if math.Abs(th) > 1e-3 {
			t.Errorf("Asimov fit: %s = %g, want 0", a.Nuisances[i], th)
		}
	}
	lo, hi, err := a.Interval(best)
	if err != nil {
		t.Fatal(err)
	}
	// Nuisances can only widen the interval of the counting-only fit.
	stat := &Model{}
	for _, ch := range a.Channels {
		var procs []Process
		for _, p := range ch.Processes {
			p.Effects = nil
			procs = append(procs, p)
		}
		ch.Processes = procs
		stat.Channels = append(stat.Channels, ch)
	}
	slo, shi, err := stat.Interval(Result{Params: []float64{1}, NLL: stat.NLL([]float64{1})})
	if err != nil {
		t.Fatal(err)
	}
	if !(lo < slo && shi < hi) {
		t.Errorf("interval with nuisances [%g, %g] is not wider than the statistical one [%g, %g]", lo, hi, slo, shi)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	path := writeCard(t, dir, []float64{1, 2, 3})
	if err := os.Remove(filepath.Join(dir, "shapes.root")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "shapes.root") {
		t.Errorf("Load without the shapes file: error %v, want one naming shapes.root", err)
	}
	if _, err := Load(); err == nil {
		t.Error("Load of no card: no error")
	}
}

func close(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9*math.Max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}
