package toymc

import (
	"math"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
)

func TestGenerateIsDeterministic(t *testing.T) {
	a, err := Generate(Config{Process: "ttbb", Seed: 3, Events: 500})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(Config{Process: "ttbb", Seed: 3, Events: 500})
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different events (-first +second):\n%s", diff)
	}
	c, _ := Generate(Config{Process: "ttbb", Seed: 4, Events: 500})
	if cmp.Equal(a, c) {
		t.Errorf("seeds 3 and 4 give the same events")
	}
	d, _ := Generate(Config{Process: "ttlf", Seed: 3, Events: 500})
	if a[0].MBB == d[0].MBB {
		t.Errorf("ttbb and ttlf with the same seed share their random stream")
	}
}

type summary struct {
	meanJets, meanTags, medianPeak float64
}

func summarise(evts []events.Event) summary {
	var s summary
	var near []float64
	for _, e := range evts {
		s.meanJets += float64(e.NJet)
		s.meanTags += float64(e.NBTag)
		if e.MBB > 80 && e.MBB < 160 {
			near = append(near, float64(e.MBB))
		}
	}
	s.meanJets /= float64(len(evts))
	s.meanTags /= float64(len(evts))
	sort.Float64s(near)
	s.medianPeak = near[len(near)/2]
	return s
}

func TestProcessesLookPlausible(t *testing.T) {
	const n = 20000
	sums := make(map[string]summary)
	for _, p := range Processes {
		t.Run(p.Name, func(t *testing.T) {
			evts, err := Generate(Config{Process: p.Name, Seed: 1, Events: n})
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range evts {
				if e.NJet < 4 || e.NJet > 10 || int(e.NJet) != len(e.JetPt) {
					t.Fatalf("event %d: njet %d with %d jets", i, e.NJet, len(e.JetPt))
				}
				if e.NBTag < 0 || e.NBTag > e.NJet {
					t.Fatalf("event %d: nbtag %d of %d jets", i, e.NBTag, e.NJet)
				}
				ht := 0.0
				for j, pt := range e.JetPt {
					if pt < 25 || j > 0 && pt > e.JetPt[j-1] {
						t.Fatalf("event %d: jets %v not sorted above 25 GeV", i, e.JetPt)
					}
					ht += float64(pt)
				}
				if math.Abs(ht-float64(e.HT)) > 1e-3*ht {
					t.Fatalf("event %d: ht %g, jets sum to %g", i, e.HT, ht)
				}
				if e.DNN < 0 || e.DNN > 1 || e.MBB < 15 || e.Weight <= 0 {
					t.Fatalf("event %d out of range: %+v", i, e)
				}
				if e.ID != int64(1)<<32|int64(i) {
					t.Fatalf("event %d has id %d", i, e.ID)
				}
			}
			sums[p.Name] = summarise(evts)
		})
	}
	// The physics the analysis relies on: ttH and tt+bb have more b tags than tt+light, and the
	// signal's m_bb peaks near the Higgs mass.
	if !(sums["tth"].meanTags > sums["ttlf"].meanTags+0.8 && sums["ttbb"].meanTags > sums["ttlf"].meanTags+0.5) {
		t.Errorf("mean b tags tth %.2f, ttbb %.2f, ttlf %.2f: heavy-flavour processes should have clearly more",
			sums["tth"].meanTags, sums["ttbb"].meanTags, sums["ttlf"].meanTags)
	}
	if m := sums["tth"].medianPeak; m < 110 || m > 130 {
		t.Errorf("tth m_bb median in [80, 160] GeV is %.1f, want near 120", m)
	}
	if sums["tth"].meanJets <= sums["st"].meanJets {
		t.Errorf("tth has %.2f jets on average, single t %.2f: ttH should be busier", sums["tth"].meanJets, sums["st"].meanJets)
	}
}

func TestDataIsTheMixture(t *testing.T) {
	const n = 50000
	evts, err := Generate(Config{Process: Data, Seed: 9, Events: n, Mu: 1})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]float64, len(Processes))
	for _, e := range evts {
		counts[e.Proc]++
		if e.Weight != 1 {
			t.Fatalf("data event with weight %g", e.Weight)
		}
	}
	total := ExpectedData(1, 1) / 1000
	for i, p := range Processes {
		want := n * p.XSec / total
		if d := math.Abs(counts[i] - want); d > 5*math.Sqrt(want)+1 {
			t.Errorf("%s: %g events in data, want %.0f", p.Name, counts[i], want)
		}
	}
	bkg, _ := Generate(Config{Process: Data, Seed: 9, Events: n, Mu: 0})
	for _, e := range bkg {
		if Processes[e.Proc].Signal {
			t.Fatalf("signal event in mu=0 data")
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Process: "zz", Events: 1},
		{Process: "tth", Events: -1},
		{Process: "tth", Events: 1, Seed: 1 << 31},
		{Process: Data, Events: 1, Mu: -1},
	} {
		if _, err := Generate(cfg); err == nil {
			t.Errorf("Generate(%+v): no error", cfg)
		}
	}
}

func BenchmarkGenerate10k(b *testing.B) {
	for b.Loop() {
		if _, err := Generate(Config{Process: "tth", Seed: 1, Events: 10000}); err != nil {
			b.Fatal(err)
		}
	}
}
