package web

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// The graph is laid out here, on the server, as plain SVG: a GraphView has
// at most api.MaxNodes nodes, so a layered layout costs little, and the
// browser only has to draw boxes and curves (no layout script to run, no
// library to load). Data flows left to right: a node's column is the
// length of the longest chain of dependencies under it.

// Sizes of the drawing, in SVG units (pixels at 100%).
const (
	boxW     = 210
	boxH     = 50
	rowGap   = 12
	colGap   = 110 // between layers: room for the edges' curves
	subGap   = 24  // between the columns of one long layer
	margin   = 16
	maxRows  = 20   // a layer with more nodes wraps into more columns
	maxEdges = 3000 // the heaviest edges are drawn; more would only be ink
	labelMax = 25   // characters of a label in a box (monospace)
	labelMin = 19   // ... beside the "+N" of a node that opens
)

// graphLayout is a GraphView placed on a plane.
type graphLayout struct {
	Width, Height int
	Nodes         []layoutNode
	Edges         []layoutEdge
	Hidden        int // edges not drawn (beyond maxEdges)
}

type layoutNode struct {
	api.GraphNode
	X, Y    int
	W, H    int
	URL     string // expand (Children > 0) or the action's page; "" for none
	Short   string // the label cut to fit the box
	Summary string // counts, one line
	Class   string // state class
	Strip   []segment
	Layer   int
}

type layoutEdge struct {
	D      string // SVG path
	Width  string
	Count  int
	From   string // paths, for the script that highlights a node's edges
	To     string
	Back   bool // against the flow: a cycle between aggregated nodes
	Detail string
	// Where the count is written, when there are few enough edges for
	// the numbers to help rather than clutter.
	LX, LY    int
	ShowCount bool
}

// maxLabelledEdges is how many edges may carry their counts.
const maxLabelledEdges = 60

// layoutGraph places g's nodes in layers and draws its edges; link gives a
// node's URL.
func layoutGraph(g *api.GraphView, link func(*api.GraphNode) string) *graphLayout {
	n := len(g.Nodes)
	index := make(map[string]int, n)
	for i, nd := range g.Nodes {
		index[nd.Path] = i
	}
	// deps[i]: the nodes i reads from; users[i]: the nodes that read i.
	deps := make([][]int, n)
	users := make([][]int, n)
	type edge struct{ from, to, count int }
	var edges []edge
	for _, e := range g.Edges {
		f, okf := index[e.From]
		t, okt := index[e.To]
		if !okf || !okt || f == t {
			continue
		}
		deps[f] = append(deps[f], t)
		users[t] = append(users[t], f)
		edges = append(edges, edge{f, t, e.Count})
	}

	// Longest path from the sources, ignoring the edges that close a cycle
	// (aggregated nodes can depend on each other both ways).
	layer := make([]int, n)
	const (
		unseen = iota
		onStack
		finished
	)
	mark := make([]int, n)
	var visit func(i int)
	visit = func(i int) {
		mark[i] = onStack
		for _, d := range deps[i] {
			if mark[d] == unseen {
				visit(d)
			}
			if mark[d] == finished {
				layer[i] = max(layer[i], layer[d]+1)
			}
		}
		mark[i] = finished
	}
	for i := range n {
		if mark[i] == unseen {
			visit(i)
		}
	}
	nl := 0
	for _, l := range layer {
		nl = max(nl, l+1)
	}

	// Order each layer: by label first (so that sel_d2 comes before
	// sel_d10), then a few sweeps of the barycentre heuristic, which puts
	// a node near the nodes it is connected to and so reduces crossings.
	layers := make([][]int, nl)
	for i := range n {
		layers[layer[i]] = append(layers[layer[i]], i)
	}
	pos := make([]float64, n)
	for _, ly := range layers {
		slices.SortFunc(ly, func(a, b int) int { return naturalCompare(g.Nodes[a].Label, g.Nodes[b].Label) })
		setPositions(ly, pos)
	}
	bary := make([]float64, n)
	sweep := func(ly []int, nbrs [][]int) {
		for _, i := range ly {
			sum, k := 0.0, 0
			for _, j := range nbrs[i] {
				sum += pos[j]
				k++
			}
			if k > 0 {
				bary[i] = sum / float64(k)
			} else {
				bary[i] = pos[i]
			}
		}
		slices.SortStableFunc(ly, func(a, b int) int { return cmp.Compare(bary[a], bary[b]) })
		setPositions(ly, pos)
	}
	for range 4 {
		for l := 1; l < nl; l++ {
			sweep(layers[l], deps)
		}
		for l := nl - 2; l >= 0; l-- {
			sweep(layers[l], users)
		}
	}

	// Place: each layer is one or more columns of at most maxRows boxes,
	// centred vertically. The columns of a wrapped layer share their rows,
	// so that the gaps between rows are free corridors for the edges.
	lay := &graphLayout{Nodes: make([]layoutNode, n)}
	left, right := make([]int, nl), make([]int, nl) // of each layer's block
	rows := 0
	for _, ly := range layers {
		rows = max(rows, min(len(ly), maxRows))
	}
	height := rows*(boxH+rowGap) - rowGap
	x := margin
	for l, ly := range layers {
		cols := (len(ly) + maxRows - 1) / maxRows
		left[l] = x
		top := margin + (height-(min(len(ly), maxRows)*(boxH+rowGap)-rowGap))/2
		for c := range cols {
			col := ly[c*maxRows : min(len(ly), (c+1)*maxRows)]
			for r, i := range col {
				nd := &g.Nodes[i]
				lay.Nodes[i] = layoutNode{
					GraphNode: *nd,
					X:         x,
					Y:         top + r*(boxH+rowGap),
					W:         boxW,
					H:         boxH,
					URL:       link(nd),
					Short:     cut(nd.Label, labelLen(nd)),
					Summary:   summary(nd),
					Class:     stateClass(nd.State),
					Strip:     strip(nd.Counts, boxW),
					Layer:     l,
				}
			}
			x += boxW
			if c < cols-1 {
				x += subGap
			}
		}
		right[l] = x
		if l < nl-1 {
			x += colGap
		}
	}
	lay.Width = x + margin
	lay.Height = max(height, 0) + 2*margin
	if n == 0 {
		lay.Width, lay.Height = 0, 0
	}

	// Edges, heaviest first when there are too many to draw.
	if len(edges) > maxEdges {
		slices.SortStableFunc(edges, func(a, b edge) int { return cmp.Compare(b.count, a.count) })
		lay.Hidden = len(edges) - maxEdges
		edges = edges[:maxEdges]
	}
	for _, e := range edges {
		src, dst := &lay.Nodes[e.to], &lay.Nodes[e.from] // data flows from the dependency
		x1, y1 := float64(src.X+src.W), float64(src.Y+src.H/2)
		x2, y2 := float64(dst.X), float64(dst.Y+dst.H/2)
		back := dst.Layer <= src.Layer
		// A cubic curve out of the right side of the dependency into the
		// left side of its reader; a back edge loops above. Out of a
		// wrapped layer, or into one, an edge runs along the corridor
		// under (or above) its box rather than across the other columns.
		var d strings.Builder
		fmt.Fprintf(&d, "M%.0f %.0f", x1, y1)
		if r := float64(right[src.Layer]); !back && x1 < r {
			gy := float64(src.Y + src.H + rowGap/2)
			fmt.Fprintf(&d, " L%.0f %.0f L%.0f %.0f", x1+subGap/2, gy, r, gy)
			x1, y1 = r, gy
		}
		var tail string
		if l := float64(left[dst.Layer]); !back && x2 > l {
			gy := float64(dst.Y - rowGap/2)
			tail = fmt.Sprintf(" L%.0f %.0f L%.0f %.0f", x2-subGap/2, gy, x2, y2)
			x2, y2 = l, gy
		}
		c1x, c1y, c2x, c2y := x1+60, y1-60, x2-60, y2-60
		if !back {
			dx := max(40, (x2-x1)/2)
			c1x, c1y, c2x, c2y = x1+dx, y1, x2-dx, y2
		}
		fmt.Fprintf(&d, " C%.0f %.0f %.0f %.0f %.0f %.0f%s", c1x, c1y, c2x, c2y, x2, y2, tail)
		lay.Edges = append(lay.Edges, layoutEdge{
			D:      d.String(),
			Width:  strconv.FormatFloat(math.Min(1+math.Log10(float64(max(e.count, 1))), 5), 'f', 1, 64),
			Count:  e.count,
			From:   dst.Path,
			To:     src.Path,
			Back:   back,
			Detail: fmt.Sprintf("%s reads %s (%s action dependencies)", dst.Label, src.Label, formatNum(e.count)),
			// The curve's middle (t = 1/2), a little above it.
			LX:        int((x1 + 3*c1x + 3*c2x + x2) / 8),
			LY:        int((y1+3*c1y+3*c2y+y2)/8) - 5,
			ShowCount: len(edges) <= maxLabelledEdges,
		})
	}
	return lay
}

func labelLen(n *api.GraphNode) int {
	if n.Children > 0 {
		return labelMin
	}
	return labelMax
}

func setPositions(ly []int, pos []float64) {
	for k, i := range ly {
		pos[i] = float64(k) / float64(max(len(ly), 1))
	}
}

// summary is a box's second line: how many actions, and the ones to look at.
func summary(n *api.GraphNode) string {
	c := n.Counts
	s := formatNum(c.Total) + " action"
	if c.Total != 1 {
		s += "s"
	}
	switch {
	case c.Failed > 0:
		s += " · " + formatNum(c.Failed) + " failed"
	case c.Running > 0:
		s += " · " + formatNum(c.Running) + " running"
	case c.Waiting > 0:
		s += " · " + formatNum(c.Waiting) + " waiting"
	}
	return s
}

// strip is the box's progress strip, scaled to width w.
func strip(c api.Counts, w int) []segment {
	segs := segments(c)
	for i := range segs {
		segs[i].X = segs[i].X * float64(w) / 1000
		segs[i].W = segs[i].W * float64(w) / 1000
	}
	return segs
}

// cut shortens s to at most n characters, keeping its end, which tells
// targets of one group apart.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-(n-1):])
}

// naturalCompare orders strings with their digit runs compared as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] < 0x80 && unicode.IsDigit(rune(s[i])) {
		i++
	}
	return i
}
