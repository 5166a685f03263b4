package exec

import (
	"fmt"
	"path"
	"sort"
)

// Graph is the action graph of one analysis: every action, and which action
// produces each generated path. It is built once and then only read.
type Graph struct {
	Actions []*Action
	// Producer maps an output path to the action that writes it.
	Producer map[string]*Action
	// TargetOutputs are the default outputs (DefaultInfo files) of each
	// target that analysis was asked for (not those it reached through
	// dependencies), in the order asked. A slice rather than a map by
	// label: `build //:all` asks for every target of a package, a million
	// of them in a large one.
	TargetOutputs [][]Artifact
}

// ConflictError says that two actions write the same file.
type ConflictError struct {
	Path        string
	First, Then *Action
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %s: output %s is also written by %s (declared at %s)",
		e.Then.Pos, e.Then.Owner, e.Path, e.First.Owner, e.First.Pos)
}

// NewGraph indexes the actions by output. Two actions writing one path is an error.
func NewGraph(actions []*Action, targetOutputs [][]Artifact) (*Graph, error) {
	g := &Graph{Actions: actions, Producer: make(map[string]*Action, len(actions)), TargetOutputs: targetOutputs}
	for _, a := range actions {
		for _, o := range a.Outputs {
			// One map operation for each of a million outputs: a
			// conflict, rare, shows as a map that did not grow.
			n := len(g.Producer)
			g.Producer[o.Path] = a
			if len(g.Producer) == n {
				return nil, &ConflictError{Path: o.Path, First: firstProducer(actions, o.Path), Then: a}
			}
		}
	}
	// An output inside another output (a file, a folder or a link) would be
	// written through it. Outputs come grouped by folder: a folder whose
	// ancestors the last output checked is not checked again.
	checked := ""
	for _, a := range actions {
		for _, o := range a.Outputs {
			for d := path.Dir(o.Path); d != "." && d != "/" && d != OutDir; d = path.Dir(d) {
				if d == checked {
					break
				}
				if prev, ok := g.Producer[d]; ok {
					return nil, &PrefixError{Path: o.Path, Outer: d, First: prev, Then: a}
				}
			}
			checked = path.Dir(o.Path)
		}
	}
	return g, nil
}

// firstProducer returns the first of actions that writes p.
func firstProducer(actions []*Action, p string) *Action {
	for _, a := range actions {
		for _, o := range a.Outputs {
			if o.Path == p {
				return a
			}
		}
	}
	return nil
}

// PrefixError says that an output lies inside another action's output.
type PrefixError struct {
	Path, Outer string
	First, Then *Action
}

func (e *PrefixError) Error() string {
	return fmt.Sprintf("%s: %s: output %s is inside %s, an output of %s (declared at %s)",
		e.Then.Pos, e.Then.Owner, e.Path, e.Outer, e.First.Owner, e.First.Pos)
}

// Needed returns the actions needed to produce the given artifacts, in a
// deterministic order (dependencies before dependents).
func (g *Graph) Needed(roots []Artifact) []*Action {
	seen := map[*Action]bool{}
	var order []*Action
	var visit func(a *Action)
	visit = func(a *Action) {
		if seen[a] {
			return
		}
		seen[a] = true
		for _, in := range a.Inputs {
			if p, ok := g.Producer[in.Path]; ok {
				visit(p)
			}
		}
		order = append(order, a)
	}
	paths := make([]string, 0, len(roots))
	for _, r := range roots {
		paths = append(paths, r.Path)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if a, ok := g.Producer[p]; ok {
			visit(a)
		}
	}
	return order
}
