// Package fitting fits the signal strength of CMS Combine datacards with a binned profile
// likelihood: the statistical model's consumer in the toy ttH(bb) analysis.
//
// The model is Combine's for the subset the analysis writes: per bin, the expected yield is the
// sum over processes of mu (signals only) times the nominal template, shifted by every shape
// nuisance (vertical morphing: quadratic inside ±1 sigma, linear outside) and scaled by every lnN
// nuisance (kappa^theta, asymmetric kappas interpolated the same way in log kappa). Nuisances are
// unit Gaussians shared by name across cards. Bin-by-bin simulation statistics (autoMCStats) are
// not modelled: the uncertainty is somewhat smaller than Combine's.
package fitting

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go-hep.org/x/hep/hbook"
	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/optimize"

	"github.com/hepbuild/hepbuild/examples/tth/tools/card"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// Model is the likelihood of one or more datacards. A Model is safe for concurrent reads; Fit
// and Scan do not modify it.
type Model struct {
	Channels  []Channel
	Nuisances []string // names; parameter i+1 of the fit is Nuisances[i], parameter 0 is mu
}

// Channel is one bin of a datacard (a category): observed counts per histogram bin and the
// processes' templates.
type Channel struct {
	Name      string
	Data      []float64
	Processes []Process
}

// Process is one process's contribution to a channel.
type Process struct {
	Name    string
	Signal  bool
	Nominal []float64
	Effects []Effect
}

// Effect is what one nuisance does to a process: an lnN scale (Up, Down are kappas) or a shape
// (UpHist, DownHist are the shifted templates).
type Effect struct {
	Nuisance         int // index in Model.Nuisances
	Shape            bool
	Up, Down         float64   // lnN: kappa at +1 and -1 sigma
	UpHist, DownHist []float64 // shape
	Scale            float64   // shape: the card's entry (1 for a full effect)
}

// Load reads the datacards (each with its shapes file, named relative to the card) into one model.
func Load(cards ...string) (*Model, error) {
	m := &Model{}
	index := map[string]int{}
	for _, path := range cards {
		if err := m.add(path, index); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(m.Channels) == 0 {
		return nil, errors.New("no datacard")
	}
	return m, nil
}

func (m *Model) add(path string, index map[string]int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	c, err := card.Parse(f)
	f.Close()
	if err != nil {
		return err
	}
	hists := map[string]map[string]*hbook.H1D{} // file -> name -> histogram
	read := func(file, name string) ([]float64, error) {
		file = filepath.Join(filepath.Dir(path), file)
		if hists[file] == nil {
			hs, err := rootio.ReadHists(file)
			if err != nil {
				return nil, err
			}
			hists[file] = map[string]*hbook.H1D{}
			for _, h := range hs {
				hists[file][h.Name()] = h
			}
		}
		h, ok := hists[file][name]
		if !ok {
			return nil, fmt.Errorf("no histogram %s in %s", name, file)
		}
		out := make([]float64, len(h.Binning.Bins))
		for i := range h.Binning.Bins {
			out[i] = h.Binning.Bins[i].SumW()
		}
		return out, nil
	}
	// Parameters in the card's order, shared by name with earlier cards.
	for _, s := range c.Systematics {
		if _, ok := index[s.Name]; !ok {
			index[s.Name] = len(m.Nuisances)
			m.Nuisances = append(m.Nuisances, s.Name)
		}
	}
	for bi, bin := range c.Bins {
		ch := Channel{Name: bin}
		dataShapes, ok := c.ShapesFor("data_obs", bin)
		if !ok {
			return fmt.Errorf("no shapes line for data_obs in %s", bin)
		}
		if ch.Data, err = read(dataShapes.File, expand(dataShapes.Nominal, "data_obs", bin, "")); err != nil {
			return err
		}
		if sum(ch.Data) != c.Observation[bi] && math.Abs(sum(ch.Data)-c.Observation[bi]) > 1e-6*c.Observation[bi] {
			return fmt.Errorf("observation %g in %s, but data_obs holds %g", c.Observation[bi], bin, sum(ch.Data))
		}
		for col, pc := range c.Columns {
			if pc.Bin != bin {
				continue
			}
			sh, ok := c.ShapesFor(pc.Process, bin)
			if !ok {
				return fmt.Errorf("no shapes line for %s in %s", pc.Process, bin)
			}
			p := Process{Name: pc.Process, Signal: pc.Index <= 0}
			if p.Nominal, err = read(sh.File, expand(sh.Nominal, pc.Process, bin, "")); err != nil {
				return err
			}
			if len(p.Nominal) != len(ch.Data) {
				return fmt.Errorf("%s has %d bins in %s, data_obs %d", pc.Process, len(p.Nominal), bin, len(ch.Data))
			}
			for _, s := range c.Systematics {
				e := s.Entries[col]
				if e == "-" || e == "0" {
					continue
				}
				eff := Effect{Nuisance: index[s.Name]}
				switch {
				case s.Type == "lnN":
					if eff.Down, eff.Up, err = parseLnN(e); err != nil {
						return fmt.Errorf("systematic %s, %s: %w", s.Name, pc.Process, err)
					}
				case s.IsShape():
					eff.Shape = true
					if eff.Scale, err = strconv.ParseFloat(e, 64); err != nil {
						return fmt.Errorf("systematic %s, %s: shape entry %q: %w", s.Name, pc.Process, e, err)
					}
					if eff.UpHist, err = read(sh.File, expand(sh.Syst, pc.Process, bin, s.Name+"Up")); err != nil {
						return err
					}
					if eff.DownHist, err = read(sh.File, expand(sh.Syst, pc.Process, bin, s.Name+"Down")); err != nil {
						return err
					}
				default:
					return fmt.Errorf("systematic %s: type %s is not supported (lnN and shape are)", s.Name, s.Type)
				}
				p.Effects = append(p.Effects, eff)
			}
			ch.Processes = append(ch.Processes, p)
		}
		m.Channels = append(m.Channels, ch)
	}
	return nil
}

func expand(pattern, process, bin, syst string) string {
	return strings.NewReplacer("$PROCESS", process, "$CHANNEL", bin, "$SYSTEMATIC", syst).Replace(pattern)
}

func parseLnN(e string) (down, up float64, err error) {
	parts := strings.Split(e, "/")
	vals := make([]float64, len(parts))
	for i, p := range parts {
		if vals[i], err = strconv.ParseFloat(p, 64); err != nil || vals[i] <= 0 {
			return 0, 0, fmt.Errorf("lnN entry %q: want a positive number or down/up", e)
		}
	}
	switch len(vals) {
	case 1:
		return 1 / vals[0], vals[0], nil
	case 2:
		return vals[0], vals[1], nil
	}
	return 0, 0, fmt.Errorf("lnN entry %q: want a positive number or down/up", e)
}

// interp is the shift at theta of an effect that is up at +1 and down at -1 (and 0 at 0):
// quadratic inside [-1, 1], continued linearly with the same slope outside, so smooth.
func interp(theta, up, down float64) float64 {
	a, b := (up-down)/2, (up+down)/2
	switch {
	case theta > 1:
		return up + (theta-1)*(a+2*b)
	case theta < -1:
		return down + (theta+1)*(a-2*b)
	}
	return theta*a + theta*theta*b
}

// Expected returns the expected counts of channel c at the parameters (mu, nuisances...).
func (m *Model) Expected(c int, params []float64) []float64 {
	ch := m.Channels[c]
	out := make([]float64, len(ch.Data))
	for _, p := range ch.Processes {
		norm := 1.0
		if p.Signal {
			norm = params[0]
		}
		logScale := 0.0
		for _, e := range p.Effects {
			if !e.Shape {
				logScale += interp(params[1+e.Nuisance], math.Log(e.Up), math.Log(e.Down))
			}
		}
		norm *= math.Exp(logScale)
		for i, n := range p.Nominal {
			v := n
			for _, e := range p.Effects {
				if e.Shape {
					v += interp(params[1+e.Nuisance]*e.Scale, e.UpHist[i]-n, e.DownHist[i]-n)
				}
			}
			out[i] += norm * math.Max(v, 0)
		}
	}
	return out
}

// NLL is the negative log-likelihood (up to a constant) at params: Poisson terms for every bin,
// unit Gaussian constraints for every nuisance.
func (m *Model) NLL(params []float64) float64 {
	nll := 0.0
	for c, ch := range m.Channels {
		for i, lambda := range m.Expected(c, params) {
			lambda = math.Max(lambda, 1e-9)
			nll += lambda - ch.Data[i]*math.Log(lambda)
		}
	}
	for _, t := range params[1:] {
		nll += t * t / 2
	}
	return nll
}

// Asimov returns a copy of the model whose data are its own expectation at mu with every
// nuisance at zero: fitting it gives the expected uncertainty.
func (m *Model) Asimov(mu float64) *Model {
	a := &Model{Nuisances: m.Nuisances}
	params := make([]float64, 1+len(m.Nuisances))
	params[0] = mu
	for c, ch := range m.Channels {
		ch.Data = m.Expected(c, params)
		a.Channels = append(a.Channels, ch)
	}
	return a
}

// Result is a fit: the best-fit parameters and the likelihood there.
type Result struct {
	Params []float64 // mu, then the nuisances in Model.Nuisances order
	NLL    float64
}

// minimize finds the minimum of the NLL from start; with fixMu, mu stays at start[0].
func (m *Model) minimize(start []float64, fixMu bool) (Result, error) {
	free := func(x []float64) []float64 {
		p := append([]float64(nil), start...)
		if fixMu {
			copy(p[1:], x)
		} else {
			copy(p, x)
		}
		return p
	}
	x0 := start
	if fixMu {
		x0 = start[1:]
	}
	if len(x0) == 0 {
		return Result{Params: start, NLL: m.NLL(start)}, nil
	}
	f := func(x []float64) float64 { return m.NLL(free(x)) }
	problem := optimize.Problem{
		Func: f,
		Grad: func(grad, x []float64) { fd.Gradient(grad, f, x, &fd.Settings{Formula: fd.Central}) },
	}
	res, err := optimize.Minimize(problem, append([]float64(nil), x0...), &optimize.Settings{GradientThreshold: 1e-7}, &optimize.BFGS{})
	if err != nil && res == nil {
		return Result{}, fmt.Errorf("minimising: %w", err)
	}
	return Result{Params: free(res.X), NLL: res.F}, nil
}

// Fit returns the maximum-likelihood estimate of mu and the nuisances.
func (m *Model) Fit() (Result, error) {
	start := make([]float64, 1+len(m.Nuisances))
	start[0] = 1
	return m.minimize(start, false)
}

// Profile returns the profiled -log L at fixed mu (nuisances minimised), starting from best.
func (m *Model) Profile(mu float64, best Result) (float64, error) {
	start := append([]float64(nil), best.Params...)
	start[0] = mu
	r, err := m.minimize(start, true)
	return r.NLL, err
}

// Interval returns the 68% confidence interval of mu, where the profile likelihood ratio
// 2 (NLL(mu) - NLL(best)) crosses 1, found by bisection on each side of the best fit.
func (m *Model) Interval(best Result) (lo, hi float64, err error) {
	q := func(mu float64) (float64, error) {
		nll, err := m.Profile(mu, best)
		return 2*(nll-best.NLL) - 1, err
	}
	muHat := best.Params[0]
	side := func(dir float64) (float64, error) {
		step := 0.1
		inside, outside := muHat, muHat+dir*step
		for {
			v, err := q(outside)
			if err != nil {
				return 0, err
			}
			if v > 0 {
				break
			}
			inside, step = outside, step*2
			outside = muHat + dir*step
			if step > 1e3 {
				return 0, fmt.Errorf("no crossing of the profile likelihood within %g of the best fit", step)
			}
		}
		for range 40 {
			mid := (inside + outside) / 2
			v, err := q(mid)
			if err != nil {
				return 0, err
			}
			if v > 0 {
				outside = mid
			} else {
				inside = mid
			}
		}
		return (inside + outside) / 2, nil
	}
	if lo, err = side(-1); err != nil {
		return 0, 0, err
	}
	if hi, err = side(+1); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}

func sum(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}
