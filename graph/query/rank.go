package query

import "github.com/hepbuild/hepbuild/graph"

// ranks returns the minrank (or, with longest, the maxrank) of every target
// of r: the length of the shortest (longest) path from a root of the
// result's subgraph. Strongly connected components are collapsed first, so
// the targets of a cycle share a rank and longest paths are finite.
func ranks(r *Result, longest bool) map[graph.Label]int {
	sccs, comp := components(r)
	// Tarjan emits a component after every component it reaches, so the
	// reverse of that order has each component after its predecessors.
	rank := make([]int, len(sccs))
	for i := range rank {
		rank[i] = -1
	}
	for c := len(sccs) - 1; c >= 0; c-- {
		if rank[c] < 0 {
			rank[c] = 0 // nothing reaches it: a root
		}
		for _, t := range sccs[c] {
			for _, d := range r.Deps(t) {
				s := comp[d.Label]
				if s == c {
					continue
				}
				cand := rank[c] + 1
				if rank[s] < 0 || (longest && cand > rank[s]) || (!longest && cand < rank[s]) {
					rank[s] = cand
				}
			}
		}
	}
	out := make(map[graph.Label]int, len(comp))
	for l, c := range comp {
		out[l] = rank[c]
	}
	return out
}

// components finds the strongly connected components of the result's
// subgraph with Tarjan's algorithm, iteratively so that a long dependency
// chain cannot exhaust the stack.
func components(r *Result) ([][]*graph.Target, map[graph.Label]int) {
	index := make(map[graph.Label]int, len(r.Targets))
	low := make(map[graph.Label]int, len(r.Targets))
	onStack := map[graph.Label]bool{}
	comp := make(map[graph.Label]int, len(r.Targets))
	var stack []*graph.Target
	var sccs [][]*graph.Target

	type frame struct {
		t    *graph.Target
		deps []*graph.Target
		next int
	}
	for _, root := range r.Targets {
		if _, ok := index[root.Label]; ok {
			continue
		}
		calls := []frame{{t: root, deps: r.Deps(root)}}
		index[root.Label], low[root.Label] = len(index), len(index)
		stack = append(stack, root)
		onStack[root.Label] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			if f.next < len(f.deps) {
				d := f.deps[f.next]
				f.next++
				if _, ok := index[d.Label]; !ok {
					index[d.Label], low[d.Label] = len(index), len(index)
					stack = append(stack, d)
					onStack[d.Label] = true
					calls = append(calls, frame{t: d, deps: r.Deps(d)})
				} else if onStack[d.Label] {
					low[f.t.Label] = min(low[f.t.Label], index[d.Label])
				}
				continue
			}
			t := f.t
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].t
				low[p.Label] = min(low[p.Label], low[t.Label])
			}
			if low[t.Label] == index[t.Label] {
				var scc []*graph.Target
				for {
					top := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[top.Label] = false
					comp[top.Label] = len(sccs)
					scc = append(scc, top)
					if top.Label == t.Label {
						break
					}
				}
				sccs = append(sccs, scc)
			}
		}
	}
	return sccs, comp
}
