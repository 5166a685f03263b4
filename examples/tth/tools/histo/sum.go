package histo

import "go-hep.org/x/hep/hbook"

// Sum returns the sum of weights of the in-range bins of h: what ROOT's TH1::Integral and so
// Combine take as a histogram's yield (under- and overflow are not counted).
func Sum(h *hbook.H1D) float64 {
	s := 0.0
	for i := range h.Binning.Bins {
		s += h.Binning.Bins[i].SumW()
	}
	return s
}
