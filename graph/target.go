package graph

import (
	"fmt"
	"iter"
	"slices"
	"sort"
)

// Pos is a position in a BUILD or .star file: workspace-relative file, 1-based line and column.
// Line and Col are 32 bits, as in go.starlark.net's syntax.Position: every
// target and every action holds a Pos, and the smaller one moves both into
// a smaller allocation size class (a million-action analysis keeps about
// 70 MB less).
type Pos struct {
	File string
	Line int32
	Col  int32
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// AttrType is the declared type of a rule attribute. It is a byte so that
// an Attr, of which a large package holds millions, stays small.
type AttrType uint8

const (
	AttrString AttrType = iota
	AttrInt
	AttrBool
	AttrStringList
	AttrIntList
	AttrStringDict
	AttrLabel      // Value is Label (zero Label for None)
	AttrLabelList  // Value is []Label
	AttrOutput     // Value is Label; the rule's output, not a dependency
	AttrOutputList // Value is []Label; outputs, not dependencies
)

// Attr is one attribute of a rule target. Value is one of: string, int64,
// bool, []string, []int64, map[string]string, Label, []Label, nil. A
// []Label holds no label twice: loading rejects such a list, and Deps
// relies on it.
type Attr struct {
	Name     string
	Value    any
	Type     AttrType
	Explicit bool // set in the BUILD file rather than defaulted
}

// Implicit reports whether the attribute is implicit (its name starts with "_"),
// which --noimplicit_deps style queries skip.
func (a Attr) Implicit() bool { return len(a.Name) > 0 && a.Name[0] == '_' }

// Target is a node of the target graph: a rule, a source file or a generated file.
// Targets are immutable once their package is loaded, and safe for concurrent reads.
type Target struct {
	Label Label
	// Generator is the label of the rule that makes a generated file; nil
	// for rules and source files. It points at the rule's own Label rather
	// than hold a copy: a pointer keeps every target 40 bytes smaller.
	Generator *Label
	Pos       Pos
	// Rule holds what only a rule has; nil for files. Files are most of
	// the targets of a large package (a million-action package holds over
	// two million targets, one in two a generated file), and without
	// these fields a file's target takes 96 bytes rather than 176. Its
	// fields read through Target (t.Attrs) only when IsRule.
	*Rule
}

// Rule is the part of a Target that only rules have.
type Rule struct {
	// RuleClass is the rule's name ("task", "filegroup", "histogram").
	RuleClass string
	// Attrs of a rule, sorted by name: those set in the BUILD file, and
	// possibly defaulted ones. AllAttrs yields these and Defaults together.
	// The name attribute may be left out (loading does: it is the label's
	// name, and a million-rule package would keep a million copies);
	// Attr and AllAttrs then yield it.
	Attrs []Attr
	// Defaults are attributes a rule takes from its rule class, sorted by
	// name; an attribute in Attrs hides the one of the same name here. The
	// targets of one rule class share the slice rather than each keep a copy
	// of the same defaults, so it must not be modified.
	Defaults []Attr
	// Outputs of a rule: its declared and predeclared output files, in declaration order.
	Outputs []Label
	// Visibility, tags and the like stay in Attrs.
}

// NewRule returns a rule target of class ruleClass. The target and its
// Rule are one allocation, as a package of a million rules makes them.
func NewRule(l Label, ruleClass string, pos Pos) *Target {
	r := &struct {
		t Target
		r Rule
	}{t: Target{Label: l, Pos: pos}, r: Rule{RuleClass: ruleClass}}
	r.t.Rule = &r.r
	return &r.t
}

// IsRule reports whether the target is a rule.
func (t *Target) IsRule() bool { return t.Rule != nil && t.RuleClass != "" }

// IsSourceFile reports whether the target is a source file.
func (t *Target) IsSourceFile() bool { return !t.IsRule() && t.Generator == nil }

// IsGeneratedFile reports whether the target is an output of a rule.
func (t *Target) IsGeneratedFile() bool { return !t.IsRule() && t.Generator != nil }

// Class is the rule's class, "" for a file.
func (t *Target) Class() string {
	if t.Rule == nil {
		return ""
	}
	return t.RuleClass
}

// Kind is Bazel's kind string: "task rule", "source file", "generated file".
func (t *Target) Kind() string {
	switch {
	case t.IsRule():
		return t.RuleClass + " rule"
	case t.Generator != nil:
		return "generated file"
	}
	return "source file"
}

// Attr returns the named attribute, from Attrs or else from Defaults; a
// rule's name is its label's.
func (t *Target) Attr(name string) (Attr, bool) {
	if t.Rule == nil {
		return Attr{}, false
	}
	if a, ok := findAttr(t.Attrs, name); ok {
		return a, true
	}
	if name == "name" && t.IsRule() {
		return t.nameAttr(), true
	}
	return findAttr(t.Defaults, name)
}

// nameAttr is the name attribute of a rule whose Attrs leave it out.
func (t *Target) nameAttr() Attr {
	return Attr{Name: "name", Value: t.Label.Name, Type: AttrString, Explicit: true}
}

func findAttr(attrs []Attr, name string) (Attr, bool) {
	i := sort.Search(len(attrs), func(i int) bool { return attrs[i].Name >= name })
	if i < len(attrs) && attrs[i].Name == name {
		return attrs[i], true
	}
	return Attr{}, false
}

// AllAttrs yields every attribute of a rule, sorted by name: those of Attrs,
// and those of Defaults that Attrs does not hide, and the name attribute
// (the label's name) when Attrs leaves it out.
func (t *Target) AllAttrs() iter.Seq[Attr] { return t.attrs(true) }

// attrs is AllAttrs, without the name attribute that Attrs leaves out
// unless withName: making it costs an allocation, and Deps has no use for
// a string.
func (t *Target) attrs(withName bool) iter.Seq[Attr] {
	return func(yield func(Attr) bool) {
		if t.Rule == nil {
			return
		}
		set, def := t.Attrs, t.Defaults
		name := withName && t.IsRule() // the name is yet to come
		for len(set) > 0 || len(def) > 0 || name {
			var a Attr
			switch {
			case len(set) == 0 && len(def) == 0:
				a, name = t.nameAttr(), false
			case len(def) == 0 || len(set) > 0 && set[0].Name <= def[0].Name:
				if len(def) > 0 && def[0].Name == set[0].Name {
					def = def[1:]
				}
				a, set = set[0], set[1:]
			default:
				a, def = def[0], def[1:]
			}
			if name && a.Name >= "name" {
				name = false
				if a.Name != "name" {
					if !yield(t.nameAttr()) {
						return
					}
				}
			}
			if !yield(a) {
				return
			}
		}
	}
}

// Deps returns the direct dependencies of the target, in attribute order,
// without duplicates. A generated file depends on its generating rule; a
// rule on the labels of its label attributes (outputs excluded). Implicit
// attributes (names starting with "_") are included only when implicit is true.
func (t *Target) Deps(implicit bool) []Label {
	if t.IsGeneratedFile() {
		return []Label{*t.Generator}
	}
	return t.AppendDeps(nil, implicit)
}

// AppendDeps appends the direct dependencies of t, as Deps returns them, to
// out[:0] and returns it: a walk over a million targets reuses one slice
// rather than make one for each.
func (t *Target) AppendDeps(out []Label, implicit bool) []Label {
	out = out[:0]
	if t.IsGeneratedFile() {
		return append(out, *t.Generator)
	}
	if t.Rule == nil {
		return out // a source file
	}
	// Most rules have a few dependencies, which a scan of out checks
	// faster than a map; a query of a million targets asks each.
	const scanned = 16
	var seen map[Label]bool
	add := func(l Label) {
		if l.IsZero() {
			return
		}
		if seen == nil && len(out) >= scanned {
			seen = make(map[Label]bool, 2*len(out))
			for _, x := range out {
				seen[x] = true
			}
		}
		if seen == nil {
			if slices.Contains(out, l) {
				return
			}
		} else {
			if seen[l] {
				return
			}
			seen[l] = true
		}
		out = append(out, l)
	}
	visit := func(a Attr) {
		if a.Implicit() && !implicit {
			return
		}
		switch v := a.Value.(type) {
		case Label:
			if a.Type == AttrLabel {
				add(v)
			}
		case []Label:
			if a.Type != AttrLabelList {
				return
			}
			if len(out) == 0 {
				// A label list holds no label twice (see Attr), so the
				// first one needs no check: the thousand inputs of a
				// merge would otherwise make a map, for each of a
				// thousand merges.
				for _, l := range v {
					if !l.IsZero() {
						out = append(out, l)
					}
				}
				return
			}
			for _, l := range v {
				add(l)
			}
		}
	}
	if t.OwnLabels() {
		for _, a := range t.Attrs {
			visit(a)
		}
		return out
	}
	for a := range t.attrs(false) {
		visit(a)
	}
	return out
}

// OwnLabels reports whether the labels a rule names are all in its Attrs:
// whether the defaults of its class name none, as those of most classes
// do not. Callers then walk Attrs, sorted as AllAttrs is, and spare the
// merge with the defaults a million times in a large package.
func (t *Target) OwnLabels() bool { return t.Rule == nil || !hasDeps(t.Defaults) }

// hasDeps reports whether attrs hold a label or a non-empty label list.
func hasDeps(attrs []Attr) bool {
	for _, a := range attrs {
		switch v := a.Value.(type) {
		case Label:
			if a.Type == AttrLabel && !v.IsZero() {
				return true
			}
		case []Label:
			if a.Type == AttrLabelList && len(v) > 0 {
				return true
			}
		}
	}
	return false
}
