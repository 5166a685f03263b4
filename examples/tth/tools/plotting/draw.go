package plotting

import (
	"image/color"
	"math"
	"sync"

	"go-hep.org/x/hep/hbook"
	"go-hep.org/x/hep/hplot"
	stdfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// hatch draws an uncertainty band as diagonal hatching over each bin, the way analysis plots
// show it: the stack stays visible underneath.
type hatch struct {
	Counts []hbook.Count
	Color  color.Color
}

const hatchStep = 4 // points between hatch lines

func (h *hatch) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := draw.LineStyle{Color: h.Color, Width: vg.Points(0.6)}
	for _, cnt := range h.Counts {
		x0, x1 := trX(cnt.XRange.Min), trX(cnt.XRange.Max)
		y0, y1 := trY(cnt.Val-cnt.Err.Low), trY(cnt.Val+cnt.Err.High)
		clip := c.Rectangle
		x0, x1 = max(x0, clip.Min.X), min(x1, clip.Max.X)
		y0, y1 = max(y0, clip.Min.Y), min(y1, clip.Max.Y)
		if x1 <= x0 || y1 <= y0 {
			continue
		}
		hatchRect(c, sty, x0, x1, y0, y1)
	}
}

// hatchRect draws the lines y = x + k*step (in canvas units, anchored at the origin so that
// neighbouring bins line up) that cross the rectangle.
func hatchRect(c draw.Canvas, sty draw.LineStyle, x0, x1, y0, y1 vg.Length) {
	step := vg.Points(hatchStep)
	kmin := math.Ceil(float64((y0 - x1) / step))
	kmax := math.Floor(float64((y1 - x0) / step))
	for k := kmin; k <= kmax; k++ {
		off := vg.Length(k) * step
		xa, xb := max(x0, y0-off), min(x1, y1-off)
		if xb <= xa {
			continue
		}
		c.StrokeLine2(sty, xa, xa+off, xb, xb+off)
	}
}

func (h *hatch) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, c := range h.Counts {
		xmin, xmax = math.Min(xmin, c.XRange.Min), math.Max(xmax, c.XRange.Max)
		ymin, ymax = math.Min(ymin, c.Val-c.Err.Low), math.Max(ymax, c.Val+c.Err.High)
	}
	return
}

// Thumbnail draws the legend's hatched square.
func (h *hatch) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	hatchRect(*c, draw.LineStyle{Color: h.Color, Width: vg.Points(0.6)}, r.Min.X, r.Max.X, r.Min.Y, r.Max.Y)
}

// trimTicks is the default tick marker without the label at the axis minimum, which would touch
// the ratio panel's top label.
type trimTicks struct{ min float64 }

func (t trimTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Value == t.min {
			ticks[i].Label = ""
		}
	}
	return ticks
}

// boldVariant names Liberation Sans Bold registered as a regular-weight variant: gonum's PDF
// canvas registers every font without a style but selects bold ones with style "B", so a bold
// font fails there ("undefined font").
const boldVariant = "SansBoldAsRegular"

var registerBold sync.Once

func boldFont(size vg.Length) font.Font {
	registerBold.Do(func() {
		for _, f := range liberation.Collection() {
			if f.Font.Variant == "Sans" && f.Font.Weight == stdfont.WeightBold && f.Font.Style == stdfont.StyleNormal {
				f.Font.Variant = boldVariant
				f.Font.Weight = stdfont.WeightNormal
				hplot.DefaultStyle.Fonts.Cache.Add(font.Collection{f})
			}
		}
	})
	f := hplot.DefaultStyle.Fonts.Default
	f.Variant = boldVariant
	f.Size = size
	return f
}

func regularFont(size vg.Length) font.Font {
	f := hplot.DefaultStyle.Fonts.Default
	f.Size = size
	return f
}

// lumiTitle draws the ratio plot and, flush with the right edge above the frame where analysis
// plots have it, "L fb^-1 (13 TeV)" with a real superscript; gonum centres titles and the PDF
// fonts have no superscript minus.
type lumiTitle struct {
	rp   *hplot.RatioPlot
	lumi string
}

func (t lumiTitle) Draw(dc draw.Canvas) {
	t.rp.Top.Title.Text = " " // keeps the room for the title
	t.rp.Draw(dc)
	sty := t.rp.Top.Title.TextStyle
	sty.XAlign = draw.XRight
	sty.YAlign = draw.YTop
	small := sty
	small.Font.Size = sty.Font.Size * 0.7
	x, y := dc.Max.X, dc.Max.Y
	for _, part := range []struct {
		sty  draw.TextStyle
		text string
		dy   vg.Length
	}{
		{sty, " (13 TeV)", 0},
		{small, "-1", sty.Font.Size * 0.4},
		{sty, t.lumi + " fb", 0},
	} {
		dc.FillText(part.sty, vg.Point{X: x, Y: y + part.dy}, part.text)
		x -= part.sty.Width(part.text)
	}
}
