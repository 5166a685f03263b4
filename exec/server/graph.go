package server

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// The graph of a build is shown one level at a time, never more than
// api.MaxNodes nodes. Node paths (api.GraphNode.Path) are:
//
//	""              the top: the build's packages
//	"//a/b"         a package (the package part of its targets' labels)
//	"P*"            (no colon) the packages whose names begin with the name
//	                tokens of P, when there are more than api.MaxNodes packages
//	"//a/b:G*"      the targets of package //a/b whose names begin with the
//	                tokens of G ("sel_*", "sel_d0_*")
//	"//a/b:name"    a target: its label
//	"X~A-B"         where X is "*" (all packages), a package group, "//a/b:*"
//	                (all targets of a package) or a target group: members A
//	                to B-1 of X, in the order below, when the names of X split
//	                into more than api.MaxNodes groups at once
//
// Names are cut into tokens after each separator ('_', '-', '.', '/') and
// where letters and digits meet: "sel_d10_f2" is "sel_", "d", "10_", "f",
// "2". A group's children are the coarsest token level at which its names
// fall into more than one and at most api.MaxNodes groups; a name with no
// more tokens than that level is a target of its own. Names sort by their
// tokens, numbers by value, so every group is a contiguous range of one
// sorted order: a node is a range, counting it is a sum over the range,
// and the paths above need no stored tree to be resolved.

// graphIndex is the sorted order of a build's targets and the memoised
// children and edges of the nodes asked for. It belongs to one plan size:
// a plan that grows gets a new index. Guarded by its build's mu.
type graphIndex struct {
	planned int

	order   []int32  // position -> target
	pos     []int32  // target -> position
	keys    []string // position -> sort key of the target's name
	names   []string // position -> the target's name (after the colon)
	pkgs    []pkgRange
	pkgKeys []string
	pkgOf   map[string]int
	actOff  []int32 // position -> start of its actions in acts; len(order)+1
	acts    []int32

	children map[string][]gnode
	edges    map[string][]api.GraphEdge
}

type pkgRange struct {
	name   string
	lo, hi int // positions of its targets
}

// gnode is a node of the graph: a range of positions, and how its children
// are made.
type gnode struct {
	path, label, kind string
	lo, hi            int  // positions
	pkgLevel          bool // its children are packages or package groups
	plo, phi          int  // package indices, when pkgLevel
	pkg               int  // package index, below the package level
	base              int  // tokens in its name prefix
	chunkOf           string
	target            int32
}

func isSep(c byte) bool   { return c == '_' || c == '-' || c == '.' || c == '/' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// tokenEnd is the end of the token of s that starts at i.
func tokenEnd(s string, i int) int {
	if isSep(s[i]) {
		return i + 1
	}
	d := isDigit(s[i])
	j := i
	for j < len(s) && !isSep(s[j]) && isDigit(s[j]) == d {
		j++
	}
	if j < len(s) && isSep(s[j]) {
		j++
	}
	return j
}

// sortKey is s's tokens, each ended by a 0 byte; a token that begins with
// digits is preceded by their count, so that numbers sort by value.
func sortKey(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	appendSortKey(&b, s)
	return b.String()
}

func appendSortKey(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		j := tokenEnd(s, i)
		if isDigit(s[i]) {
			n := 0
			for i+n < j && isDigit(s[i+n]) {
				n++
			}
			b.WriteByte(byte(min(n, 31)))
		}
		b.WriteString(s[i:j])
		b.WriteByte(0)
		i = j
	}
}

// prefixLen is the length of the first k tokens of s.
func prefixLen(s string, k int) int {
	i := 0
	for ; k > 0 && i < len(s); k-- {
		i = tokenEnd(s, i)
	}
	return i
}

func tokenCount(s string) int {
	n := 0
	for i := 0; i < len(s); n++ {
		i = tokenEnd(s, i)
	}
	return n
}

// keyPrefix is the first k tokens of a sort key, and whether the key has
// no more than k tokens (a leaf at level k).
func keyPrefix(key string, k int) (string, bool) {
	i := 0
	for ; k > 0; k-- {
		j := strings.IndexByte(key[i:], 0)
		if j < 0 {
			return key, true
		}
		i += j + 1
	}
	return key[:i], i == len(key)
}

// span is a child of a node: members lo..hi-1 of the node's sorted keys.
type span struct {
	lo, hi int
	leaf   bool // a single name
	chunk  bool // a run of groups, for want of a coarser level
	k      int  // the group's token level
}

// split is the children of a node whose sorted keys are keys and whose
// names share base tokens; see the comment at the top of the file.
func split(keys []string, base int) []span {
	n := len(keys)
	if n == 1 {
		return []span{{lo: 0, hi: 1, leaf: true}}
	}
	// The keys are sorted: those between the first and the last share the
	// tokens these two share, and no level above that splits them. Start
	// there rather than at base+1, one scan of all keys per level: names
	// with a long common run of tokens cost its square otherwise.
	first, last := keys[0], keys[n-1]
	common := 0
	for common < len(first) && common < len(last) && first[common] == last[common] {
		common++
	}
	for k := max(base+1, strings.Count(first[:common], "\x00")); ; k++ {
		var spans []span
		var prev string
		prevLeaf := false
		for i, key := range keys {
			p, leaf := keyPrefix(key, k)
			if i == 0 || leaf || prevLeaf || p != prev {
				spans = append(spans, span{lo: i, hi: i + 1, leaf: leaf, k: k})
			} else {
				spans[len(spans)-1].hi = i + 1
			}
			prev, prevLeaf = p, leaf
		}
		switch {
		case len(spans) > api.MaxNodes:
			return chunks(spans)
		case len(spans) > 1:
			return spans
		case spans[0].leaf:
			// One name left: n == 1 was handled; unreachable with
			// distinct keys, but a plan may repeat a name.
			return spans
		}
	}
}

// chunks puts runs of spans into at most api.MaxNodes chunks.
func chunks(spans []span) []span {
	size := (len(spans) + api.MaxNodes - 1) / api.MaxNodes
	var out []span
	for i := 0; i < len(spans); i += size {
		j := min(i+size, len(spans))
		if j-i == 1 {
			out = append(out, spans[i])
			continue
		}
		out = append(out, span{lo: spans[i].lo, hi: spans[j-1].hi, chunk: true})
	}
	return out
}

// splitLabel cuts a target label into its package and name.
func splitLabel(label string) (pkg, name string) {
	if i := strings.LastIndexByte(label, ':'); i >= 0 {
		return label[:i], label[i+1:]
	}
	if i := strings.LastIndexByte(label, '/'); i >= 0 {
		return label, label[i+1:]
	}
	return label, label
}

// newGraphIndex sorts the targets of p. The sort keys are cut from one
// buffer and the sort moves int32s: at a million targets, allocating a
// string per key and moving structs cost most of the time.
func newGraphIndex(p *plan) *graphIndex {
	n := len(p.targets)
	var buf strings.Builder
	size := 0
	for _, label := range p.targets {
		size += len(label) + len(label)/2
	}
	buf.Grow(size)
	off := make([]int, n+1)
	pkgRank := make([]int32, n)
	pkgIdx := map[string]int32{}
	var pkgNames []string
	for t, label := range p.targets {
		pkg, name := splitLabel(label)
		r, ok := pkgIdx[pkg]
		if !ok {
			r = int32(len(pkgNames))
			pkgIdx[pkg] = r
			pkgNames = append(pkgNames, pkg)
		}
		pkgRank[t] = r
		appendSortKey(&buf, name)
		off[t+1] = buf.Len()
	}
	all := buf.String()
	keyOf := func(t int32) string { return all[off[t]:off[t+1]] }
	// Packages in their own order, then the targets by package rank and key.
	pkgKeys := make([]string, len(pkgNames))
	byKey := make([]int32, len(pkgNames))
	for i, pkg := range pkgNames {
		pkgKeys[i] = sortKey(pkg)
		byKey[i] = int32(i)
	}
	slices.SortFunc(byKey, func(a, b int32) int { return strings.Compare(pkgKeys[a], pkgKeys[b]) })
	rank := make([]int32, len(pkgNames))
	for r, i := range byKey {
		rank[i] = int32(r)
	}
	order := make([]int32, n)
	for t := range order {
		order[t] = int32(t)
		pkgRank[t] = rank[pkgRank[t]]
	}
	slices.SortFunc(order, func(a, b int32) int {
		if ra, rb := pkgRank[a], pkgRank[b]; ra != rb {
			return int(ra - rb)
		}
		if c := strings.Compare(keyOf(a), keyOf(b)); c != 0 {
			return c
		}
		return int(a - b)
	})
	g := &graphIndex{
		planned: p.planned, order: order, pos: make([]int32, n), keys: make([]string, n),
		names: make([]string, n), pkgOf: map[string]int{},
		children: map[string][]gnode{}, edges: map[string][]api.GraphEdge{},
	}
	for i, t := range order {
		g.pos[t], g.keys[i] = int32(i), keyOf(t)
		pkg, name := splitLabel(p.targets[t])
		g.names[i] = name
		if len(g.pkgs) == 0 || g.pkgs[len(g.pkgs)-1].name != pkg {
			g.pkgOf[pkg] = len(g.pkgs)
			g.pkgs = append(g.pkgs, pkgRange{name: pkg, lo: i})
			g.pkgKeys = append(g.pkgKeys, pkgKeys[byKey[pkgRank[t]]])
		}
		g.pkgs[len(g.pkgs)-1].hi = i + 1
	}
	// Actions by the position of their target.
	g.actOff = make([]int32, n+1)
	for _, t := range p.target {
		if t >= 0 {
			g.actOff[g.pos[t]+1]++
		}
	}
	for i := 1; i <= n; i++ {
		g.actOff[i] += g.actOff[i-1]
	}
	g.acts = make([]int32, g.actOff[n])
	fill := slices.Clone(g.actOff[:n])
	for id, t := range p.target {
		if t >= 0 {
			q := g.pos[t]
			g.acts[fill[q]] = int32(id)
			fill[q]++
		}
	}
	return g
}

// keyRange is the range of sorted keys that begin with prefix and are
// longer than it.
func keyRange(keys []string, prefix string) (int, int) {
	lo := sort.SearchStrings(keys, prefix)
	if lo < len(keys) && keys[lo] == prefix {
		lo++
	}
	hi := lo + sort.Search(len(keys)-lo, func(i int) bool { return !strings.HasPrefix(keys[lo+i], prefix) })
	return lo, hi
}

func (g *graphIndex) top() gnode {
	return gnode{path: "", pkgLevel: true, plo: 0, phi: len(g.pkgs), lo: 0, hi: len(g.order), chunkOf: "*", kind: "group"}
}

func (g *graphIndex) pkgNode(i int) gnode {
	p := g.pkgs[i]
	return gnode{path: p.name, label: p.name, kind: "package", lo: p.lo, hi: p.hi, pkg: i, chunkOf: p.name + ":*", target: -1}
}

// resolve finds the node named by path; false when there is none.
func (g *graphIndex) resolve(p *plan, path string) (gnode, bool) {
	if path == "" || path == "*" {
		return g.top(), true
	}
	if i := strings.LastIndex(path, "*~"); i >= 0 {
		x, ok := g.resolve(p, path[:i+1])
		if !ok || x.kind == "target" {
			return gnode{}, false
		}
		a, b, ok := parseRange(path[i+2:])
		if !ok {
			return gnode{}, false
		}
		n := gnode{path: path, kind: "group", base: x.base, chunkOf: x.chunkOf, pkg: x.pkg, pkgLevel: x.pkgLevel, target: -1}
		if x.pkgLevel {
			if b > x.phi-x.plo {
				return gnode{}, false
			}
			n.plo, n.phi = x.plo+a, x.plo+b
			n.lo, n.hi = g.pkgs[n.plo].lo, g.pkgs[n.phi-1].hi
		} else {
			if b > x.hi-x.lo {
				return gnode{}, false
			}
			n.lo, n.hi = x.lo+a, x.lo+b
		}
		n.label = g.chunkLabel(n)
		return n, true
	}
	colon := strings.LastIndexByte(path, ':')
	if colon < 0 {
		if strings.HasSuffix(path, "*") {
			prefix := path[:len(path)-1]
			lo, hi := keyRange(g.pkgKeys, sortKey(prefix))
			if lo >= hi {
				return gnode{}, false
			}
			return gnode{path: path, label: path, kind: "group", pkgLevel: true, plo: lo, phi: hi,
				lo: g.pkgs[lo].lo, hi: g.pkgs[hi-1].hi, base: tokenCount(prefix), chunkOf: path, target: -1}, true
		}
		i, ok := g.pkgOf[path]
		if !ok {
			return gnode{}, false
		}
		return g.pkgNode(i), true
	}
	pi, ok := g.pkgOf[path[:colon]]
	if !ok {
		return gnode{}, false
	}
	rest := path[colon+1:]
	if rest == "*" {
		return g.pkgNode(pi), true
	}
	if strings.HasSuffix(rest, "*") {
		prefix := rest[:len(rest)-1]
		pr := g.pkgs[pi]
		lo, hi := keyRange(g.keys[pr.lo:pr.hi], sortKey(prefix))
		if lo >= hi {
			return gnode{}, false
		}
		return gnode{path: path, label: rest, kind: "group", lo: pr.lo + lo, hi: pr.lo + hi, pkg: pi,
			base: tokenCount(prefix), chunkOf: path, target: -1}, true
	}
	t, ok := p.targetIdx[path]
	if !ok {
		return gnode{}, false
	}
	q := int(g.pos[t])
	return gnode{path: path, label: rest, kind: "target", lo: q, hi: q + 1, pkg: pi, target: t}, true
}

func parseRange(s string) (int, int, bool) {
	as, bs, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	a, err1 := strconv.Atoi(as)
	b, err2 := strconv.Atoi(bs)
	return a, b, err1 == nil && err2 == nil && a >= 0 && a < b
}

func (g *graphIndex) chunkLabel(n gnode) string {
	if n.pkgLevel {
		return g.pkgs[n.plo].name + " … " + g.pkgs[n.phi-1].name
	}
	return g.names[n.lo] + " … " + g.names[n.hi-1]
}

// childrenOf is the children of n, memoised.
func (g *graphIndex) childrenOf(p *plan, n gnode) []gnode {
	if n.kind == "target" {
		return nil
	}
	if c, ok := g.children[n.path]; ok {
		return c
	}
	var out []gnode
	chunkPath := func(lo, hi int) string {
		// Chunks are numbered within the node they were cut from.
		x, _ := g.resolve(p, n.chunkOf)
		if n.pkgLevel {
			return fmt.Sprintf("%s~%d-%d", n.chunkOf, lo-x.plo, hi-x.plo)
		}
		return fmt.Sprintf("%s~%d-%d", n.chunkOf, lo-x.lo, hi-x.lo)
	}
	if n.pkgLevel {
		if n.path == "" && n.phi-n.plo <= api.MaxNodes {
			for i := n.plo; i < n.phi; i++ {
				out = append(out, g.pkgNode(i))
			}
		} else {
			for _, s := range split(g.pkgKeys[n.plo:n.phi], n.base) {
				lo, hi := n.plo+s.lo, n.plo+s.hi
				switch {
				case s.leaf:
					out = append(out, g.pkgNode(lo))
				case s.chunk:
					c := gnode{path: chunkPath(lo, hi), kind: "group", pkgLevel: true, plo: lo, phi: hi,
						lo: g.pkgs[lo].lo, hi: g.pkgs[hi-1].hi, base: n.base, chunkOf: n.chunkOf, target: -1}
					c.label = g.chunkLabel(c)
					out = append(out, c)
				default:
					name := g.pkgs[lo].name
					prefix := name[:prefixLen(name, s.k)] + "*"
					out = append(out, gnode{path: prefix, label: prefix, kind: "group", pkgLevel: true, plo: lo, phi: hi,
						lo: g.pkgs[lo].lo, hi: g.pkgs[hi-1].hi, base: s.k, chunkOf: prefix, target: -1})
				}
			}
		}
	} else {
		pkg := g.pkgs[n.pkg].name
		for _, s := range split(g.keys[n.lo:n.hi], n.base) {
			lo, hi := n.lo+s.lo, n.lo+s.hi
			switch {
			case s.leaf:
				t := g.order[lo]
				out = append(out, gnode{path: p.targets[t], label: g.names[lo], kind: "target", lo: lo, hi: lo + 1, pkg: n.pkg, target: t})
			case s.chunk:
				c := gnode{path: chunkPath(lo, hi), kind: "group", lo: lo, hi: hi, pkg: n.pkg, base: n.base, chunkOf: n.chunkOf, target: -1}
				c.label = g.chunkLabel(c)
				out = append(out, c)
			default:
				name := g.names[lo]
				prefix := name[:prefixLen(name, s.k)] + "*"
				out = append(out, gnode{path: pkg + ":" + prefix, label: prefix, kind: "group", lo: lo, hi: hi, pkg: n.pkg,
					base: s.k, chunkOf: pkg + ":" + prefix, target: -1})
			}
		}
	}
	if len(g.children) >= maxGraphMemo {
		clear(g.children)
	}
	g.children[n.path] = out
	return out
}

// maxGraphMemo bounds the levels whose children, and those whose edges, an
// index remembers: the pages ask for a few, but a chunked level's ranges
// can be named in as many ways as there are pairs, each worth up to
// api.MaxNodes children. Beyond, the memory starts over.
const maxGraphMemo = 2048

// edgesOf is the edges among the children of n, memoised: an action under
// one child that reads the output of an action under another.
func (g *graphIndex) edgesOf(p *plan, n gnode, children []gnode) []api.GraphEdge {
	if e, ok := g.edges[n.path]; ok {
		return e
	}
	childOf := make([]int32, n.hi-n.lo)
	for i := range childOf {
		childOf[i] = -1
	}
	for ci, c := range children {
		for q := c.lo; q < c.hi; q++ {
			childOf[q-n.lo] = int32(ci)
		}
	}
	count := map[[2]int32]int{}
	for q := n.lo; q < n.hi; q++ {
		ci := childOf[q-n.lo]
		if ci < 0 {
			continue
		}
		for _, a := range g.acts[g.actOff[q]:g.actOff[q+1]] {
			for _, d := range p.depsOf(a) {
				if int(d) >= len(p.target) {
					continue
				}
				t := p.target[d]
				if t < 0 || int(t) >= len(g.pos) {
					continue
				}
				dq := int(g.pos[t])
				if dq < n.lo || dq >= n.hi {
					continue
				}
				if cj := childOf[dq-n.lo]; cj >= 0 && cj != ci {
					count[[2]int32{ci, cj}]++
				}
			}
		}
	}
	edges := make([]api.GraphEdge, 0, len(count))
	for k, c := range count {
		edges = append(edges, api.GraphEdge{From: children[k[0]].path, To: children[k[1]].path, Count: c})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].From != edges[j].From {
			return edges[i].From < edges[j].From
		}
		return edges[i].To < edges[j].To
	})
	if len(g.edges) >= maxGraphMemo {
		clear(g.edges)
	}
	g.edges[n.path] = edges
	return edges
}

// graphView is one level of b's graph. b.mu is held.
func (b *build) graphView(path string) (*api.GraphView, error) {
	p := b.plan
	if b.graph == nil || b.graph.planned != p.planned {
		b.graph = newGraphIndex(p)
	}
	g := b.graph
	n, ok := g.resolve(p, path)
	if !ok || n.kind == "target" {
		return nil, api.ErrNotFound
	}
	children := g.childrenOf(p, n)
	v := &api.GraphView{Build: b.start.ID, Path: path, Nodes: make([]api.GraphNode, 0, len(children))}
	ended := b.ended()
	for _, c := range children {
		var sum tcounts
		for q := c.lo; q < c.hi; q++ {
			sum.add(&b.tcounts[g.order[q]])
		}
		counts := sum.apiCounts(ended)
		node := api.GraphNode{Path: c.path, Label: c.label, Kind: c.kind, Counts: counts, State: nodeState(counts), Action: -1}
		if c.kind == "target" {
			node.Action = p.first[c.target]
		} else {
			node.Children = len(g.childrenOf(p, c))
		}
		v.Nodes = append(v.Nodes, node)
	}
	v.Edges = g.edgesOf(p, n, children)
	return v, nil
}
