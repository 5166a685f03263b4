package query

import (
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hepbuild/hepbuild/graph"
)

// memSource is a hand-built graph.PackageSource for unit tests. It counts
// package loads and records the peak number of concurrent ones.
type memSource struct {
	pkgs    map[string]*graph.Package
	loads   atomic.Int64
	mu      sync.Mutex
	loading map[string]int // package → loads
	block   chan struct{}  // when set, loads of packages other than "app" wait for it
	active  atomic.Int64
	peak    atomic.Int64
}

// rule declares a rule target for newMemSource. Label strings are relative to
// the rule's package.
type rule struct {
	name, class string
	srcs, outs  []string
	tools, tags []string
	tool        string // an implicit label attribute, "_tool"
	cmd         string
	pos         int // line in the BUILD file
	extraAttrs  []graph.Attr
}

// pkgSpec is one package: rules, the source files it declares (every src of
// its own package is declared too, as the loader does) and its loads.
type pkgSpec struct {
	rules []rule
	files []string
	loads []string
}

func newMemSource(t testing.TB, spec map[string]pkgSpec) *memSource {
	t.Helper()
	s := &memSource{pkgs: map[string]*graph.Package{}, loading: map[string]int{}}
	for name, ps := range spec {
		p := &graph.Package{Name: name, BuildFile: path.Join(name, "BUILD.hep"), Targets: map[string]*graph.Target{}}
		add := func(tg *graph.Target) {
			if _, ok := p.Targets[tg.Label.Name]; !ok {
				p.Targets[tg.Label.Name] = tg
				p.Order = append(p.Order, tg.Label.Name)
			}
		}
		parse := func(s string) graph.Label {
			l, err := graph.ParseRelative(s, name)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		labels := func(ss []string) []graph.Label {
			out := []graph.Label{}
			for _, s := range ss {
				out = append(out, parse(s))
			}
			return out
		}
		var srcFiles []graph.Label
		for _, r := range ps.rules {
			rl := graph.Label{Pkg: name, Name: r.name}
			tg := graph.NewRule(rl, r.class, graph.Pos{File: p.BuildFile, Line: int32(r.pos), Col: 1})
			tg.Attrs = append(tg.Attrs,
				graph.Attr{Name: "name", Type: graph.AttrString, Value: r.name, Explicit: true},
				graph.Attr{Name: "srcs", Type: graph.AttrLabelList, Value: labels(r.srcs), Explicit: r.srcs != nil},
				graph.Attr{Name: "outs", Type: graph.AttrOutputList, Value: labels(r.outs), Explicit: r.outs != nil},
				graph.Attr{Name: "tools", Type: graph.AttrLabelList, Value: labels(r.tools), Explicit: r.tools != nil},
				graph.Attr{Name: "tags", Type: graph.AttrStringList, Value: append([]string{}, r.tags...), Explicit: r.tags != nil},
				graph.Attr{Name: "cmd", Type: graph.AttrString, Value: r.cmd, Explicit: r.cmd != ""},
			)
			if r.tool != "" {
				tg.Attrs = append(tg.Attrs, graph.Attr{Name: "_tool", Type: graph.AttrLabel, Value: parse(r.tool)})
			}
			tg.Attrs = append(tg.Attrs, r.extraAttrs...)
			sort.Slice(tg.Attrs, func(i, j int) bool { return tg.Attrs[i].Name < tg.Attrs[j].Name })
			tg.Outputs = labels(r.outs)
			add(tg)
			for _, o := range tg.Outputs {
				add(&graph.Target{Label: o, Generator: &rl})
			}
			for _, l := range labels(r.srcs) {
				if l.Pkg == name {
					srcFiles = append(srcFiles, l)
				}
			}
		}
		for _, f := range ps.files {
			srcFiles = append(srcFiles, parse(f))
		}
		for _, l := range srcFiles {
			add(&graph.Target{Label: l, Pos: graph.Pos{File: p.BuildFile, Line: 1, Col: 1}})
		}
		p.Loads = labels(ps.loads)
		s.pkgs[name] = p
	}
	return s
}

func (s *memSource) Package(repo, pkg string) (*graph.Package, error) {
	s.loads.Add(1)
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if s.block != nil && pkg != "app" {
		<-s.block
	}
	s.mu.Lock()
	s.loading[pkg]++
	s.mu.Unlock()
	if p := s.pkgs[pkg]; p != nil && repo == "" {
		return p, nil
	}
	var names []string
	for n := range s.pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, &graph.NoSuchPackageError{Pkg: pkg, Suggestion: graph.Suggest(pkg, names)}
}

func (s *memSource) PackagesBeneath(repo, prefix string) ([]string, error) {
	var out []string
	for n := range s.pkgs {
		if prefix == "" || n == prefix || strings.HasPrefix(n, prefix+"/") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, &graph.NoSuchPackageError{Pkg: prefix}
	}
	return out, nil
}

// smallGraph is the graph of the unit tests:
//
//	//app:bin ─srcs→ //app:main.txt, //lib:lib  ─tools→ //tools:gen   (and _tool → //tools:hidden)
//	//lib:lib ─srcs→ //lib:a.txt, //lib:b.txt.gen ← //lib:genb ─srcs→ //lib:b.in
//	//tools:gen ─outs→ //tools:gen.sh;  //tools:hidden
//	//cyc:x ⇄ //cyc:y (a cycle)
func smallGraph(t testing.TB) *memSource {
	return newMemSource(t, map[string]pkgSpec{
		"app": {rules: []rule{
			{name: "bin", class: "task", pos: 3, srcs: []string{"main.txt", "//lib"}, outs: []string{"bin.out"},
				tools: []string{"//tools:gen"}, tool: "//tools:hidden", tags: []string{"z", "a"}, cmd: "run $(SRCS) > $@"},
			{name: "all_files", class: "filegroup", pos: 12, srcs: []string{":bin.out", "README", "//lib:a.txt"}},
		}, loads: []string{"//tools:defs.star"}},
		"lib": {rules: []rule{
			{name: "lib", class: "filegroup", pos: 1, srcs: []string{"a.txt", ":b.txt.gen"}},
			{name: "genb", class: "task", pos: 6, srcs: []string{"b.in"}, outs: []string{"b.txt.gen"}, cmd: "cp $< $@",
				extraAttrs: []graph.Attr{
					{Name: "retries", Type: graph.AttrInt, Value: int64(2), Explicit: true},
					{Name: "environ", Type: graph.AttrStringDict, Value: map[string]string{"B": "2", "A": "1"}, Explicit: true},
					{Name: "local", Type: graph.AttrBool, Value: true, Explicit: true},
					{Name: "env", Type: graph.AttrLabel, Value: graph.Label{}},
				}},
		}},
		"lib/sub": {rules: []rule{{name: "sub", class: "filegroup", pos: 1, srcs: []string{"s.txt"}}}},
		"tools": {rules: []rule{
			{name: "gen", class: "task", pos: 1, outs: []string{"gen.sh"}, cmd: "echo > $@"},
			{name: "hidden", class: "filegroup", pos: 5},
		}, files: []string{"defs.star"}, loads: []string{"//tools:defs.star"}},
		"cyc": {rules: []rule{
			{name: "x", class: "filegroup", pos: 1, srcs: []string{":y"}},
			{name: "y", class: "filegroup", pos: 2, srcs: []string{":x"}},
		}},
	})
}
