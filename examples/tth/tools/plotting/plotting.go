// Package plotting draws the analysis plot of the toy ttH(bb) analysis: stacked backgrounds, the
// signal as a line, data as points, and a data/prediction ratio panel with an uncertainty band.
package plotting

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strings"

	"go-hep.org/x/hep/hbook"
	"go-hep.org/x/hep/hplot"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/hepbuild/hepbuild/examples/tth/tools/histo"
)

// Process is one histogram of the plot with its shape variations.
type Process struct {
	Name  string
	Label string // legend entry; Name when empty
	Hist  *hbook.H1D
	// Up and Down hold the shape variations by systematic name; they feed the uncertainty band.
	Up, Down map[string]*hbook.H1D
}

// Spec is everything the plot shows.
type Spec struct {
	Backgrounds []Process // stacked, the smallest at the bottom
	Signal      *Process  // drawn as a line, scaled by SignalScale; may be nil
	SignalScale float64   // 0 means 10
	Data        *hbook.H1D
	Var         string  // event variable, for the axis label
	Category    string  // shown under the experiment label
	Lumi        float64 // fb^-1
}

// Colors are the fill colours of the known processes.
var Colors = map[string]color.Color{
	"ttbb": color.NRGBA{R: 153, G: 0, B: 0, A: 255},
	"ttlf": color.NRGBA{R: 251, G: 180, B: 174, A: 255},
	"ttv":  color.NRGBA{R: 95, G: 170, B: 95, A: 255},
	"st":   color.NRGBA{R: 255, G: 204, B: 0, A: 255},
	"tth":  color.NRGBA{R: 0, G: 60, B: 220, A: 255},
}

var fallback = []color.Color{
	color.NRGBA{R: 120, G: 120, B: 200, A: 255},
	color.NRGBA{R: 200, G: 120, B: 200, A: 255},
	color.NRGBA{R: 120, G: 200, B: 200, A: 255},
	color.NRGBA{R: 160, G: 160, B: 160, A: 255},
}

// axis describes an event variable on an axis.
type axis struct{ label, unit string }

var axes = map[string]axis{
	"mbb":     {"m(bb)", "GeV"},
	"ht":      {"H_T", "GeV"},
	"lead_pt": {"leading jet p_T", "GeV"},
	"dnn":     {"DNN score", ""},
	"njet":    {"number of jets", ""},
	"nbtag":   {"number of b-tagged jets", ""},
	"weight":  {"event weight", ""},
}

// Labels returns the x-axis label ("m(bb) [GeV]") and y-axis label ("Events / 10 GeV") of a
// variable binned like h.
func Labels(v string, h *hbook.H1D) (x, y string) {
	a, ok := axes[v]
	if !ok {
		a = axis{label: v}
	}
	x = a.label
	if a.unit != "" {
		x += " [" + a.unit + "]"
	}
	w := h.Binning.Bins[0].XWidth()
	uniform := true
	for _, b := range h.Binning.Bins {
		if math.Abs(b.XWidth()-w) > 1e-9*w {
			uniform = false
		}
	}
	switch {
	case !uniform || a.unit == "" && w == 1:
		y = "Events / bin"
	case a.unit != "":
		y = fmt.Sprintf("Events / %s %s", trimFloat(w), a.unit)
	default:
		y = "Events / " + trimFloat(w)
	}
	return x, y
}

func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.3g", v), ".0") }

// CategoryLabel turns "6j4b" into "≥6 jets, ≥4 b tags"; other names are shown as they are.
func CategoryLabel(c string) string {
	var nj, nb int
	if n, err := fmt.Sscanf(c, "%dj%db", &nj, &nb); err == nil && n == 2 && fmt.Sprintf("%dj%db", nj, nb) == c {
		return fmt.Sprintf("≥%d jets, ≥%d b tags", nj, nb)
	}
	return c
}

// Band returns, per bin, the total prediction and its downward and upward uncertainty: the
// statistical error of the simulation and, for every systematic, the summed shift of all
// processes (fully correlated between processes), added in quadrature.
func Band(procs []Process) (total, down, up []float64) {
	n := len(procs[0].Hist.Binning.Bins)
	total = make([]float64, n)
	stat2 := make([]float64, n)
	systs := make(map[string]bool)
	for _, p := range procs {
		for i, b := range p.Hist.Binning.Bins {
			total[i] += b.SumW()
			stat2[i] += b.SumW2()
		}
		for s := range p.Up {
			systs[s] = true
		}
		for s := range p.Down {
			systs[s] = true
		}
	}
	names := make([]string, 0, len(systs))
	for s := range systs {
		names = append(names, s)
	}
	sort.Strings(names)
	down2 := append([]float64(nil), stat2...)
	up2 := append([]float64(nil), stat2...)
	for _, s := range names {
		du := make([]float64, n)
		dd := make([]float64, n)
		for _, p := range procs {
			for i, b := range p.Hist.Binning.Bins {
				if h := p.Up[s]; h != nil {
					du[i] += h.Binning.Bins[i].SumW() - b.SumW()
				}
				if h := p.Down[s]; h != nil {
					dd[i] += h.Binning.Bins[i].SumW() - b.SumW()
				}
			}
		}
		for i := range n {
			hi := math.Max(0, math.Max(du[i], dd[i]))
			lo := math.Min(0, math.Min(du[i], dd[i]))
			up2[i] += hi * hi
			down2[i] += lo * lo
		}
	}
	down = make([]float64, n)
	up = make([]float64, n)
	for i := range n {
		down[i], up[i] = math.Sqrt(down2[i]), math.Sqrt(up2[i])
	}
	return total, down, up
}

func (s *Spec) validate() error {
	if len(s.Backgrounds) == 0 {
		return fmt.Errorf("no backgrounds to stack")
	}
	ref := s.Backgrounds[0].Hist
	check := func(what string, h *hbook.H1D) error {
		if !histo.SameBinning(ref, h) {
			return fmt.Errorf("%s is binned unlike %s", what, s.Backgrounds[0].Name)
		}
		return nil
	}
	all := append([]Process(nil), s.Backgrounds...)
	if s.Signal != nil {
		all = append(all, *s.Signal)
	}
	for _, p := range all {
		if err := check(p.Name, p.Hist); err != nil {
			return err
		}
		for name, h := range p.Up {
			if err := check(p.Name+" "+name+" up", h); err != nil {
				return err
			}
		}
		for name, h := range p.Down {
			if err := check(p.Name+" "+name+" down", h); err != nil {
				return err
			}
		}
	}
	if s.Data != nil {
		return check("data", s.Data)
	}
	return nil
}

const (
	width  = 16 * vg.Centimeter
	height = 16 * vg.Centimeter
	dpi    = 150
)

// Draw returns the figure for an image format ("png" or "pdf"), ready for hplot.WriterTo.
//
// gonum's PDF canvas embeds one font per family and writes text bytes as they are, so the PDF
// gets ASCII labels in the regular font; the PNG has bold and the proper symbols.
func Draw(s Spec, format string) (hplot.Drawer, error) {
	txt := func(s string) string { return s }
	bold := boldFont
	if format == "pdf" {
		txt = asciiLabel
		bold = regularFont
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if s.SignalScale == 0 {
		s.SignalScale = 10
	}
	ref := s.Backgrounds[0].Hist
	xlab, ylab := Labels(s.Var, ref)
	xmin, xmax := ref.XMin(), ref.XMax()

	bkgs := append([]Process(nil), s.Backgrounds...)
	sort.SliceStable(bkgs, func(i, j int) bool { return histo.Sum(bkgs[i].Hist) < histo.Sum(bkgs[j].Hist) })

	rp := hplot.NewRatioPlot()
	rp.Ratio = 0.28
	top, bot := rp.Top, rp.Bottom
	for _, p := range []*hplot.Plot{top, bot} {
		p.X.Min, p.X.Max = xmin, xmax
		p.X.Tick.Label.Font.Size = 11
		p.Y.Tick.Label.Font.Size = 11
		p.X.Label.TextStyle.Font.Size = 13
		p.Y.Label.TextStyle.Font.Size = 13
		p.X.Padding, p.Y.Padding = 0, 0
	}

	// Stack.
	var hs []*hplot.H1D
	for i, p := range bkgs {
		h := hplot.NewH1D(p.Hist)
		h.FillColor = colorOf(p.Name, i)
		h.LineStyle.Color = color.Black
		h.LineStyle.Width = vg.Points(0.5)
		hs = append(hs, h)
	}
	stack := hplot.NewHStack(hs)
	top.Add(stack)

	total, down, up := Band(bkgs)
	var counts, ratioCounts []hbook.Count
	for i, b := range ref.Binning.Bins {
		c := hbook.Count{XRange: b.Range, Val: total[i], Err: struct{ Low, High float64 }{down[i], up[i]}}
		counts = append(counts, c)
		if total[i] > 0 {
			ratioCounts = append(ratioCounts, hbook.Count{XRange: b.Range, Val: 1,
				Err: struct{ Low, High float64 }{down[i] / total[i], up[i] / total[i]}})
		}
	}
	band := &hatch{Counts: counts, Color: color.NRGBA{A: 200}}
	top.Add(band)

	ymax := 0.0
	for i := range total {
		ymax = math.Max(ymax, total[i]+up[i])
	}

	var sigLine *hplot.H1D
	if s.Signal != nil {
		sh := s.Signal.Hist.Clone()
		sh.Scale(s.SignalScale)
		sigLine = hplot.NewH1D(sh)
		sigLine.FillColor = nil
		sigLine.LineStyle.Color = colorOf(s.Signal.Name, 0)
		sigLine.LineStyle.Width = vg.Points(2)
		top.Add(sigLine)
		for _, b := range sh.Binning.Bins {
			ymax = math.Max(ymax, b.SumW())
		}
	}

	var dataPts *hplot.S2D
	if s.Data != nil {
		pts, ratio := dataPoints(s.Data, total)
		dataPts = hplot.NewS2D(pts, hplot.WithYErrBars(true), hplot.WithXErrBars(false))
		dataPts.GlyphStyle = draw.GlyphStyle{Shape: draw.CircleGlyph{}, Color: color.Black, Radius: vg.Points(2.5)}
		dataPts.YErrs.LineStyle.Width = vg.Points(1)
		dataPts.YErrs.CapWidth = 0
		top.Add(dataPts)
		for i := range pts.Len() {
			_, y := pts.XY(i)
			_, hi := pts.YError(i)
			ymax = math.Max(ymax, y+hi)
		}
		rpts := hplot.NewS2D(ratio, hplot.WithYErrBars(true))
		rpts.GlyphStyle = dataPts.GlyphStyle
		rpts.YErrs.LineStyle.Width = vg.Points(1)
		rpts.YErrs.CapWidth = 0
		bot.Add(&hatch{Counts: ratioCounts, Color: color.NRGBA{A: 200}})
		one := hplot.HLine(1, nil, nil)
		one.Line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		one.Line.Color = color.NRGBA{R: 80, G: 80, B: 80, A: 255}
		bot.Add(one, rpts)
	} else {
		bot.Add(&hatch{Counts: ratioCounts, Color: color.NRGBA{A: 200}})
	}

	// Headroom for the legend and the labels.
	top.Y.Min, top.Y.Max = 0, ymax*1.75
	top.Y.Label.Text = ylab
	top.Y.Tick.Marker = trimTicks{min: top.Y.Min}

	bot.X.Min, bot.X.Max = xmin, xmax
	bot.Y.Min, bot.Y.Max = 0.5, 1.5
	bot.Y.Label.Text = "Data / Pred."
	bot.X.Label.Text = xlab
	bot.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}, {Value: 1.25}, {Value: 1.5, Label: "1.5"}})

	// Legend, in the order a reader scans it: data, backgrounds top to bottom, signal, band.
	top.Legend.Top = true
	top.Legend.Left = false
	top.Legend.XOffs = -vg.Points(6)
	top.Legend.YOffs = -vg.Points(6)
	top.Legend.TextStyle.Font.Size = 11
	top.Legend.ThumbnailWidth = vg.Points(18)
	if dataPts != nil {
		top.Legend.Add("Data", dataPts)
	}
	for i := len(bkgs) - 1; i >= 0; i-- {
		top.Legend.Add(txt(labelOf(bkgs[i])), hs[i])
	}
	if sigLine != nil {
		top.Legend.Add(txt(fmt.Sprintf("%s ×%s", labelOf(*s.Signal), trimFloat(s.SignalScale))), sigLine)
	}
	top.Legend.Add("Uncertainty", band)

	exp := hplot.NewLabel(0.04, 0.94, "hepbuild toy", hplot.WithLabelNormalized(true),
		hplot.WithLabelTextStyle(draw.TextStyle{Color: color.Black, Font: bold(16), Handler: hplot.DefaultStyle.TextHandler}))
	cat := hplot.NewLabel(0.04, 0.87, txt(CategoryLabel(s.Category)), hplot.WithLabelNormalized(true),
		hplot.WithLabelTextStyle(draw.TextStyle{Color: color.Black, Font: regularFont(12), Handler: hplot.DefaultStyle.TextHandler}))
	top.Add(exp, cat)
	top.Title.TextStyle.Font.Size = 12
	top.Title.Padding = vg.Points(4)

	fig := hplot.Figure(lumiTitle{rp: rp, lumi: trimFloat(s.Lumi)}, hplot.WithDPI(dpi))
	fig.Border = hplot.Border{Left: vg.Points(4), Right: vg.Points(10), Top: vg.Points(6), Bottom: vg.Points(4)}
	return fig, nil
}

var asciiLabel = strings.NewReplacer("≥", ">=", "≤", "<=", "→", "->", "×", "x").Replace

// Size is the size of the figure.
func Size() (w, h vg.Length) { return width, height }

func colorOf(name string, i int) color.Color {
	if c, ok := Colors[name]; ok {
		return c
	}
	return fallback[i%len(fallback)]
}

func labelOf(p Process) string {
	if p.Label != "" {
		return p.Label
	}
	return p.Name
}

// dataPoints returns the data as points with Poisson errors (sqrt n), and their ratio to the
// prediction. Empty bins are left out, as in published plots.
func dataPoints(data *hbook.H1D, pred []float64) (pts, ratio *hbook.S2D) {
	var p, r []hbook.Point2D
	for i, b := range data.Binning.Bins {
		n := b.SumW()
		if n <= 0 {
			continue
		}
		x := (b.Range.Min + b.Range.Max) / 2
		e := math.Sqrt(n)
		p = append(p, hbook.Point2D{X: x, Y: n, ErrY: hbook.Range{Min: e, Max: e}})
		if pred[i] > 0 {
			r = append(r, hbook.Point2D{X: x, Y: n / pred[i], ErrY: hbook.Range{Min: e / pred[i], Max: e / pred[i]}})
		}
	}
	return hbook.NewS2D(p...), hbook.NewS2D(r...)
}

var _ plotter.XYer = (*hbook.S2D)(nil)
