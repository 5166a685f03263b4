package exec

import (
	"errors"
	"testing"

	"github.com/hepbuild/hepbuild/graph"
)

func writer(name string, outs ...string) *Action {
	a := &Action{Owner: graph.Label{Pkg: "p", Name: name}, Kind: KindWrite}
	for _, o := range outs {
		a.Outputs = append(a.Outputs, Artifact{Path: OutDir + "/p/" + o})
	}
	return a
}

// TestNewGraphConflicts checks that NewGraph names both actions of an
// output written twice, and an output inside another, whatever the order
// of the actions and however many outputs of one folder come before.
func TestNewGraphConflicts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		actions []*Action
		// first and then are the owners the error names, path the output
		first, then, path string
		prefix            bool
	}{
		{"none", []*Action{writer("a", "x/1", "x/2"), writer("b", "x/3", "y")}, "", "", "", false},
		{"twice", []*Action{writer("a", "x/1"), writer("b", "x/2"), writer("c", "x/2")}, "b", "c", OutDir + "/p/x/2", false},
		{"twice in one action", []*Action{writer("a", "x/1", "x/1")}, "a", "a", OutDir + "/p/x/1", false},
		{"inside, after", []*Action{writer("a", "x/1", "x/2"), writer("b", "x"), writer("c", "x/y/3")}, "b", "a", OutDir + "/p/x/1", true},
		{"inside, siblings first", []*Action{writer("a", "q/1", "q/2"), writer("b", "q/3"), writer("c", "q")}, "c", "a", OutDir + "/p/q/1", true},
		{"inside, deeper", []*Action{writer("a", "d/e/1"), writer("b", "d/e/2"), writer("c", "d/f/3"), writer("d", "d/f")}, "d", "c", OutDir + "/p/d/f/3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGraph(tc.actions, nil)
			if tc.then == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(g.Producer) != 4 {
					t.Errorf("Producer has %d paths, want 4", len(g.Producer))
				}
				return
			}
			var first, then *Action
			var p string
			var ce *ConflictError
			var pe *PrefixError
			switch {
			case !tc.prefix && errors.As(err, &ce):
				first, then, p = ce.First, ce.Then, ce.Path
			case tc.prefix && errors.As(err, &pe):
				first, then, p = pe.First, pe.Then, pe.Path
			default:
				t.Fatalf("got error %v, want a conflict (prefix %v)", err, tc.prefix)
			}
			if first.Owner.Name != tc.first || then.Owner.Name != tc.then || p != tc.path {
				t.Errorf("got %s, %s, %s; want %s, %s, %s", first.Owner.Name, then.Owner.Name, p, tc.first, tc.then, tc.path)
			}
		})
	}
}
