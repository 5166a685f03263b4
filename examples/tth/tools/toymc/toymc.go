// Package toymc generates toy ttH(bb) events: a signal and its main backgrounds, after a
// notional one-lepton preselection, with distributions shaped like the real ones but made up.
//
// Generation is deterministic: the same process, seed and count always give the same events,
// on every machine (for a given Go release, whose math/rand/v2 streams are fixed).
package toymc

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
)

// Process describes how one physics process looks in the toy.
type Process struct {
	Name   string  // short name used in file and histogram names
	Label  string  // legend label
	Signal bool    // the process whose strength is measured
	XSec   float64 // effective cross section in pb: sigma x branching x preselection efficiency

	extraJets float64    // mean number of jets beyond the four of the tt decay
	ptAlpha   float64    // power of the jet pT tail: smaller is harder
	bTrue     [5]float64 // probabilities of 0..4 true b jets in the event
	mistag    float64    // probability that a non-b jet is b-tagged
	peakFrac  float64    // fraction of events whose leading b pair comes from a resonance
	peakMass  float64    // resonance mass as reconstructed, GeV
	peakWidth float64    // resonance resolution, GeV
	combShape float64    // gamma shape of the combinatorial m_bb distribution
	combScale float64    // gamma scale of the combinatorial m_bb distribution, GeV
	dnnA      float64    // Beta(a, b) parameters of the classifier score
	dnnB      float64
}

// Processes are the simulated processes, signal first. Their order is the Proc index of events.
var Processes = []Process{
	{Name: "tth", Label: "ttH (H→bb)", Signal: true, XSec: 0.012,
		extraJets: 2.0, ptAlpha: 1.9, bTrue: [5]float64{0, 0, 0.05, 0.15, 0.80}, mistag: 0.03,
		peakFrac: 0.55, peakMass: 120, peakWidth: 14, combShape: 2.6, combScale: 42, dnnA: 3.2, dnnB: 1.8},
	{Name: "ttbb", Label: "tt+bb", XSec: 0.15,
		extraJets: 1.7, ptAlpha: 2.0, bTrue: [5]float64{0, 0, 0.05, 0.35, 0.60}, mistag: 0.03,
		combShape: 2.4, combScale: 40, dnnA: 2.0, dnnB: 3.0},
	{Name: "ttlf", Label: "tt+lf", XSec: 0.9,
		extraJets: 1.1, ptAlpha: 2.2, bTrue: [5]float64{0, 0.05, 0.95, 0, 0}, mistag: 0.06,
		combShape: 2.0, combScale: 38, dnnA: 1.5, dnnB: 4.5},
	{Name: "ttv", Label: "ttV", XSec: 0.02,
		extraJets: 1.6, ptAlpha: 2.0, bTrue: [5]float64{0, 0, 0.70, 0.05, 0.25}, mistag: 0.04,
		peakFrac: 0.20, peakMass: 88, peakWidth: 12, combShape: 2.4, combScale: 40, dnnA: 2.0, dnnB: 3.5},
	{Name: "st", Label: "single t", XSec: 0.07,
		extraJets: 0.7, ptAlpha: 2.2, bTrue: [5]float64{0, 0.4, 0.6, 0, 0}, mistag: 0.05,
		combShape: 2.0, combScale: 38, dnnA: 1.4, dnnB: 4.5},
}

// Data is the name of the pseudo-data process: a mixture of all Processes in proportion to their
// cross sections, the signal's multiplied by a signal strength.
const Data = "data"

// Lookup returns the process called name.
func Lookup(name string) (Process, int, error) {
	for i, p := range Processes {
		if p.Name == name {
			return p, i, nil
		}
	}
	return Process{}, -1, fmt.Errorf("unknown process %q (known: %s, %s)", name, strings.Join(Names(), ", "), Data)
}

// Names returns the names of the simulated processes.
func Names() []string {
	var names []string
	for _, p := range Processes {
		names = append(names, p.Name)
	}
	return names
}

const (
	minJetPt = 25.0 // stored jets; the analysis threshold (30 GeV) is applied by the selection
	maxJets  = 10
	tagEff   = 0.70 // b-tagging efficiency of a true b jet

	weightSpread = 0.1 // width of the log-normal generator weights, standing in for pile-up weights
)

// Config says what to generate.
type Config struct {
	Process string  // a name from Processes, or Data
	Seed    uint64  // a different seed per file of a dataset
	Events  int     // number of events
	Mu      float64 // signal strength of Data; ignored for simulated processes
}

// Generate returns cfg.Events events of cfg.Process.
func Generate(cfg Config) ([]events.Event, error) {
	if cfg.Events < 0 {
		return nil, fmt.Errorf("negative number of events %d", cfg.Events)
	}
	if cfg.Seed >= 1<<31 {
		return nil, fmt.Errorf("seed %d too large: event numbers are seed<<32|index, seeds must be below 2^31", cfg.Seed)
	}
	g := newGenerator(cfg.Process, cfg.Seed)
	evts := make([]events.Event, cfg.Events)
	jets := make([]float32, 0, maxJets*cfg.Events)
	if cfg.Process == Data {
		if cfg.Mu < 0 {
			return nil, fmt.Errorf("negative signal strength %g", cfg.Mu)
		}
		cum := mixture(cfg.Mu)
		for i := range evts {
			pi := sort.SearchFloat64s(cum, g.rng.Float64()*cum[len(cum)-1])
			jets = g.event(&evts[i], pi, jets)
			evts[i].Weight = 1
		}
	} else {
		_, pi, err := Lookup(cfg.Process)
		if err != nil {
			return nil, err
		}
		for i := range evts {
			jets = g.event(&evts[i], pi, jets)
		}
	}
	for i := range evts {
		evts[i].ID = int64(cfg.Seed)<<32 | int64(i)
	}
	return evts, nil
}

// mixture returns the cumulative cross sections of the processes in data.
func mixture(mu float64) []float64 {
	cum := make([]float64, len(Processes))
	s := 0.0
	for i, p := range Processes {
		x := p.XSec
		if p.Signal {
			x *= mu
		}
		s += x
		cum[i] = s
	}
	return cum
}

// ExpectedData returns the expected number of data events for an integrated luminosity in fb^-1.
func ExpectedData(lumi, mu float64) float64 {
	c := mixture(mu)
	return c[len(c)-1] * lumi * 1000
}

type generator struct {
	rng   *rand.Rand
	gamma distuv.Gamma
}

func newGenerator(process string, seed uint64) *generator {
	h := fnv.New64a()
	h.Write([]byte(process))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	return &generator{rng: rng, gamma: distuv.Gamma{Alpha: 1, Beta: 1, Src: rng}}
}

// event fills e as an event of process pi; its jets are appended to the shared backing array.
func (g *generator) event(e *events.Event, pi int, jets []float32) []float32 {
	p := &Processes[pi]
	n := min(4+g.poisson(p.extraJets), maxJets)

	start := len(jets)
	ht := 0.0
	for range n {
		// Pareto tail above the storage threshold: a falling spectrum like QCD jets'.
		pt := min(minJetPt*math.Pow(1-g.rng.Float64(), -1/p.ptAlpha), 2000)
		ht += pt
		jets = append(jets, float32(pt))
	}
	pts := jets[start:len(jets):len(jets)]
	slices.SortFunc(pts, func(a, b float32) int { return -cmpFloat(a, b) })

	nb := min(g.pick(p.bTrue[:]), n)
	tags := g.binomial(nb, tagEff) + g.binomial(n-nb, p.mistag)

	var mbb float64
	peak := g.rng.Float64() < p.peakFrac
	if peak {
		mbb = p.peakMass + p.peakWidth*g.rng.NormFloat64()
	} else {
		mbb = 20 + g.gammaRand(p.combShape, p.combScale)
	}
	mbb = math.Max(mbb, 15)

	dnn := g.beta(p.dnnA, p.dnnB)
	if peak {
		// A resonant pair is what the classifier learned to find.
		dnn = 1 - (1-dnn)*0.6
	}

	*e = events.Event{
		Proc:  int32(pi),
		NJet:  int32(n),
		NBTag: int32(tags),
		JetPt: pts,
		HT:    float32(ht),
		MBB:   float32(mbb),
		DNN:   float32(dnn),
		// Log-normal with mean exactly 1, so weights do not change the expected yields.
		Weight: float32(math.Exp(weightSpread*g.rng.NormFloat64() - weightSpread*weightSpread/2)),
	}
	return jets
}

func cmpFloat(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// poisson draws by inversion; the means here are small.
func (g *generator) poisson(mean float64) int {
	l := math.Exp(-mean)
	k, p := 0, g.rng.Float64()
	for p > l {
		k++
		p *= g.rng.Float64()
	}
	return k
}

func (g *generator) binomial(n int, p float64) int {
	k := 0
	for range n {
		if g.rng.Float64() < p {
			k++
		}
	}
	return k
}

func (g *generator) pick(probs []float64) int {
	u := g.rng.Float64()
	for i, p := range probs {
		if u < p {
			return i
		}
		u -= p
	}
	return len(probs) - 1
}

func (g *generator) gammaRand(shape, scale float64) float64 {
	g.gamma.Alpha, g.gamma.Beta = shape, 1/scale
	return g.gamma.Rand()
}

func (g *generator) beta(a, b float64) float64 {
	x := g.gammaRand(a, 1)
	y := g.gammaRand(b, 1)
	return x / (x + y)
}
