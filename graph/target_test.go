package graph

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTargetKinds: a file's target has no Rule, and what Target says of it
// comes from its Label and Generator alone, without reading rule fields.
func TestTargetKinds(t *testing.T) {
	rule := NewRule(MustParseLabel("//p:r"), "task", Pos{File: "p/BUILD", Line: 3, Col: 1})
	rule.Attrs = []Attr{{Name: "srcs", Type: AttrLabelList, Value: []Label{MustParseLabel("//p:in.txt")}, Explicit: true}}
	rule.Outputs = []Label{MustParseLabel("//p:out.txt")}
	out := &Target{Label: MustParseLabel("//p:out.txt"), Generator: &rule.Label, Pos: rule.Pos}
	src := &Target{Label: MustParseLabel("//p:in.txt"), Pos: Pos{File: "p/in.txt", Line: 1, Col: 1}}

	type facts struct {
		Kind                       string
		Class                      string
		Rule, Source, Generated    bool
		Deps                       []string
		Attrs                      []string
		HasSrcs, HasName, OwnLabel bool
	}
	describe := func(tg *Target) facts {
		f := facts{Kind: tg.Kind(), Class: tg.Class(), Rule: tg.IsRule(), Source: tg.IsSourceFile(), Generated: tg.IsGeneratedFile(), OwnLabel: tg.OwnLabels()}
		for _, l := range tg.Deps(true) {
			f.Deps = append(f.Deps, l.String())
		}
		for a := range tg.AllAttrs() {
			f.Attrs = append(f.Attrs, a.Name)
		}
		_, f.HasSrcs = tg.Attr("srcs")
		_, f.HasName = tg.Attr("name")
		return f
	}
	for _, tc := range []struct {
		target *Target
		want   facts
	}{
		{rule, facts{Kind: "task rule", Class: "task", Rule: true, Deps: []string{"//p:in.txt"}, Attrs: []string{"name", "srcs"}, HasSrcs: true, HasName: true, OwnLabel: true}},
		{out, facts{Kind: "generated file", Generated: true, Deps: []string{"//p:r"}, OwnLabel: true}},
		{src, facts{Kind: "source file", Source: true, OwnLabel: true}},
	} {
		if diff := cmp.Diff(tc.want, describe(tc.target)); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tc.target.Label, diff)
		}
	}
	if got := rule.AppendDeps(nil, false); !slices.Equal(got, []Label{MustParseLabel("//p:in.txt")}) {
		t.Errorf("AppendDeps of the rule = %v", got)
	}
}

// TestDepsAcrossAttributes: the labels of one list go in unchecked (a list
// holds none twice), and those of later attributes, short or long, and of
// the class's defaults, are dropped when an earlier attribute named them.
func TestDepsAcrossAttributes(t *testing.T) {
	labels := func(prefix string, n int) []Label {
		var ls []Label
		for i := range n {
			ls = append(ls, Label{Pkg: "p", Name: prefix + string(rune('a'+i%26)) + string(rune('a'+i/26))})
		}
		return ls
	}
	long := labels("in", 40) // beyond what a scan checks
	rule := NewRule(MustParseLabel("//p:r"), "task", Pos{File: "p/BUILD", Line: 3, Col: 1})
	rule.Attrs = []Attr{
		{Name: "data", Type: AttrLabelList, Value: long, Explicit: true},
		{Name: "dep", Type: AttrLabel, Value: long[3], Explicit: true},
		{Name: "srcs", Type: AttrLabelList, Value: append(labels("x", 3), long[39], long[0]), Explicit: true},
	}
	rule.Defaults = []Attr{{Name: "tools", Type: AttrLabelList, Value: []Label{long[5], MustParseLabel("//t:tool")}}}
	want := append(append(slices.Clone(long), labels("x", 3)...), MustParseLabel("//t:tool"))
	if diff := cmp.Diff(want, rule.Deps(false)); diff != "" {
		t.Errorf("Deps mismatch (-want +got):\n%s", diff)
	}
	short := NewRule(MustParseLabel("//p:s"), "task", Pos{File: "p/BUILD", Line: 4, Col: 1})
	short.Attrs = []Attr{
		{Name: "dep", Type: AttrLabel, Value: long[1], Explicit: true},
		{Name: "srcs", Type: AttrLabelList, Value: long[:3], Explicit: true},
	}
	if diff := cmp.Diff([]Label{long[1], long[0], long[2]}, short.Deps(false)); diff != "" {
		t.Errorf("Deps of a label then a list: mismatch (-want +got):\n%s", diff)
	}
}
