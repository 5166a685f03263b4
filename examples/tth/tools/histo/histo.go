// Package histo fills, normalises and merges the one-dimensional histograms of the toy analysis.
package histo

import (
	"fmt"
	"math"
	"sort"

	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
)

// Binning is a regular binning of one event variable.
type Binning struct {
	Var      string // an events.VarNames entry
	Bins     int
	Min, Max float64
}

func (b Binning) validate() error {
	if _, ok := (&events.Event{}).Var(b.Var); !ok {
		return fmt.Errorf("unknown variable %q (known: %v)", b.Var, events.VarNames)
	}
	if b.Bins <= 0 {
		return fmt.Errorf("number of bins %d: must be positive", b.Bins)
	}
	if !(b.Min < b.Max) {
		return fmt.Errorf("range [%g, %g]: min must be below max", b.Min, b.Max)
	}
	return nil
}

// Norm scales simulated events to an expected yield: each event counts weight x Scale().
// The zero Norm leaves weights as they are, which is what data needs.
type Norm struct {
	XSec    float64 // cross section in pb
	Lumi    float64 // integrated luminosity in fb^-1
	NEvents float64 // number of generated events of the whole dataset, over all its files
}

// Scale returns the per-event factor xsec x lumi / nevents (with pb x fb^-1 = 1000).
func (n Norm) Scale() float64 {
	if n == (Norm{}) {
		return 1
	}
	return n.XSec * n.Lumi * 1000 / n.NEvents
}

func (n Norm) validate() error {
	if n == (Norm{}) {
		return nil
	}
	if n.XSec <= 0 || n.Lumi <= 0 || n.NEvents <= 0 {
		return fmt.Errorf("normalisation needs a positive cross section, luminosity and number of events, got xsec=%g lumi=%g nevents=%g", n.XSec, n.Lumi, n.NEvents)
	}
	return nil
}

// Fill returns a histogram called name of b.Var over evts, each event weighted by its weight
// times norm.Scale(). Data (Norm{}) is filled with unit weights: its weight branch is 1 anyway,
// and a count must stay a count.
func Fill(name string, b Binning, norm Norm, evts ...[]events.Event) (*hbook.H1D, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if err := norm.validate(); err != nil {
		return nil, err
	}
	h := hbook.NewH1D(b.Bins, b.Min, b.Max)
	h.Ann["name"] = name
	scale := norm.Scale()
	for _, es := range evts {
		for i := range es {
			x, _ := es[i].Var(b.Var)
			w := 1.0
			if norm != (Norm{}) {
				w = float64(es[i].Weight) * scale
			}
			h.Fill(x, w)
		}
	}
	return h, nil
}

// SameBinning reports whether a and b have identical bin edges.
func SameBinning(a, b *hbook.H1D) bool {
	if len(a.Binning.Bins) != len(b.Binning.Bins) {
		return false
	}
	for i := range a.Binning.Bins {
		ra, rb := a.Binning.Bins[i].Range, b.Binning.Bins[i].Range
		if !close(ra.Min, rb.Min) || !close(ra.Max, rb.Max) {
			return false
		}
	}
	return true
}

func close(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// Source is a histogram and where it came from, for error messages.
type Source struct {
	File string
	Hist *hbook.H1D
}

// Merge sums the histograms of the same name and keeps the others as they are. It returns them
// sorted by name. Histograms of the same name must have the same binning.
func Merge(srcs []Source) ([]*hbook.H1D, error) {
	sums := make(map[string]*hbook.H1D)
	from := make(map[string]string)
	for _, s := range srcs {
		name := s.Hist.Name()
		prev, ok := sums[name]
		if !ok {
			sums[name] = s.Hist.Clone()
			from[name] = s.File
			continue
		}
		if !SameBinning(prev, s.Hist) {
			return nil, fmt.Errorf("histogram %s: binning in %s differs from %s", name, s.File, from[name])
		}
		sum := hbook.AddH1D(prev, s.Hist)
		sum.Ann["name"] = name
		sums[name] = sum
	}
	out := make([]*hbook.H1D, 0, len(sums))
	for _, h := range sums {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}
