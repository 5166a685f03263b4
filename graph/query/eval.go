package query

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
)

// targetSet is the value of every expression. Sets stay maps while an
// expression is evaluated and are sorted once, in the Result.
type targetSet map[graph.Label]*graph.Target

// Result is the value of a query: its targets, sorted by label, and what the
// output formats need to show them. A Result is immutable, and safe for
// concurrent use.
type Result struct {
	Targets []*graph.Target
	set     targetSet
	src     *memoSource
}

// Contains reports whether the result holds the target labelled l.
func (r *Result) Contains(l graph.Label) bool {
	_, ok := r.set[l]
	return ok
}

// Labels returns the labels of the result, sorted.
func (r *Result) Labels() []graph.Label {
	out := make([]graph.Label, len(r.Targets))
	for i, t := range r.Targets {
		out[i] = t.Label
	}
	return out
}

// Deps returns the direct dependencies of t that are in the result, in
// t's attribute order: the edges of the result's subgraph.
func (r *Result) Deps(t *graph.Target) []*graph.Target {
	var out []*graph.Target
	for _, l := range t.Deps(false) {
		if d, ok := r.set[l]; ok {
			out = append(out, d)
		}
	}
	return out
}

// Eval evaluates e against the packages of src, with relative target
// patterns taken relative to workingPkg. Packages load on demand, each once;
// src must be safe for concurrent use. Dependencies are those of
// `bazel query --noimplicit_deps`: attributes whose names start with "_"
// are not followed.
func Eval(ctx context.Context, src graph.PackageSource, e Expr, workingPkg string) (*Result, error) {
	ev := &evaluator{ctx: ctx, src: newMemoSource(src), workingPkg: workingPkg}
	set, err := ev.eval(e, nil)
	if err != nil {
		return nil, err
	}
	return &Result{Targets: graph.SortTargets(set), set: set, src: ev.src}, nil
}

// Run parses and evaluates a query string.
func Run(ctx context.Context, src graph.PackageSource, query, workingPkg string) (*Result, error) {
	e, err := Parse(query)
	if err != nil {
		return nil, err
	}
	return Eval(ctx, src, e, workingPkg)
}

type evaluator struct {
	ctx        context.Context
	src        *memoSource
	workingPkg string
}

// scope holds let bindings, innermost first.
type scope struct {
	name  string
	value targetSet
	outer *scope
}

func (s *scope) lookup(name string) (targetSet, bool) {
	for ; s != nil; s = s.outer {
		if s.name == name {
			return s.value, true
		}
	}
	return nil, false
}

func (ev *evaluator) eval(e Expr, env *scope) (targetSet, error) {
	if err := ev.ctx.Err(); err != nil {
		return nil, err
	}
	switch e := e.(type) {
	case *Word:
		return ev.pattern(e.Value)
	case *Var:
		v, ok := env.lookup(e.Name)
		if !ok {
			return nil, fmt.Errorf("undefined variable $%s at column %d", e.Name, e.Col)
		}
		return v, nil
	case *Let:
		v, err := ev.eval(e.Value, env)
		if err != nil {
			return nil, err
		}
		return ev.eval(e.Body, &scope{e.Name, v, env})
	case *SetExpr:
		out := targetSet{}
		for _, w := range e.Words {
			s, err := ev.pattern(w.Value)
			if err != nil {
				return nil, err
			}
			for l, t := range s {
				out[l] = t
			}
		}
		return out, nil
	case *Binary:
		x, err := ev.eval(e.X, env)
		if err != nil {
			return nil, err
		}
		y, err := ev.eval(e.Y, env)
		if err != nil {
			return nil, err
		}
		return binary(e.Op, x, y), nil
	case *Call:
		return ev.call(e, env)
	}
	return nil, fmt.Errorf("unknown expression %T", e)
}

// binary returns a new set: operands may be let-bound and used again.
func binary(op BinaryOp, x, y targetSet) targetSet {
	out := targetSet{}
	switch op {
	case Union:
		for l, t := range x {
			out[l] = t
		}
		for l, t := range y {
			out[l] = t
		}
	case Except:
		for l, t := range x {
			if _, ok := y[l]; !ok {
				out[l] = t
			}
		}
	case Intersect:
		if len(y) < len(x) {
			x, y = y, x
		}
		for l, t := range x {
			if _, ok := y[l]; ok {
				out[l] = t
			}
		}
	}
	return out
}

func (ev *evaluator) pattern(w string) (targetSet, error) {
	p, err := graph.ParsePattern(w, ev.workingPkg)
	if err != nil {
		return nil, err
	}
	return graph.ExpandSet(ev.src, []graph.Pattern{p})
}

func (ev *evaluator) call(c *Call, env *scope) (targetSet, error) {
	spec := functions[c.Func]
	// Evaluate the expression arguments first; the rest are words and integers.
	sets := make([]targetSet, len(c.Args))
	for i, a := range c.Args {
		if spec.args[i] == argExpr {
			s, err := ev.eval(a.Expr, env)
			if err != nil {
				return nil, err
			}
			sets[i] = s
		}
	}
	intArg := func(i, def int) int {
		if i < len(c.Args) {
			return c.Args[i].Int
		}
		return def
	}
	regexArg := func(i int) (*regexp.Regexp, error) {
		re, err := regexp.Compile(c.Args[i].Word)
		if err != nil {
			return nil, fmt.Errorf("%s: invalid regular expression %q: %w", c.Func, c.Args[i].Word, err)
		}
		return re, nil
	}
	switch c.Func {
	case "deps":
		return ev.deps(sets[0], intArg(1, -1))
	case "rdeps":
		return ev.rdeps(sets[0], sets[1], intArg(2, -1))
	case "allpaths":
		return ev.allpaths(sets[0], sets[1])
	case "somepath":
		return ev.somepath(sets[0], sets[1])
	case "kind", "filter":
		re, err := regexArg(0)
		if err != nil {
			return nil, err
		}
		key := func(t *graph.Target) string { return t.Kind() }
		if c.Func == "filter" {
			key = func(t *graph.Target) string { return t.Label.String() }
		}
		out := targetSet{}
		for l, t := range sets[1] {
			if re.MatchString(key(t)) {
				out[l] = t
			}
		}
		return out, nil
	case "attr":
		re, err := regexArg(1)
		if err != nil {
			return nil, err
		}
		out := targetSet{}
		for l, t := range sets[2] {
			if v, ok := attrString(t, c.Args[0].Word); ok && re.MatchString(v) {
				out[l] = t
			}
		}
		return out, nil
	case "labels":
		return ev.labels(c.Args[0].Word, sets[1])
	case "buildfiles":
		return ev.buildfiles(sets[0], true)
	case "loadfiles":
		return ev.buildfiles(sets[0], false)
	case "siblings":
		return ev.siblings(sets[0])
	case "some":
		n := intArg(1, 1)
		if len(sets[0]) == 0 {
			return nil, fmt.Errorf("some: the argument set is empty")
		}
		if n == 0 {
			return nil, fmt.Errorf("some: the count must be at least 1")
		}
		out := targetSet{}
		// Sorting makes the choice reproducible.
		for _, t := range graph.SortTargets(sets[0]) {
			if len(out) == n {
				break
			}
			out[t.Label] = t
		}
		return out, nil
	}
	return nil, fmt.Errorf("function %s is not implemented", c.Func)
}

// forward walks the dependency graph breadth-first from roots, up to depth
// levels (all of them when depth < 0), loading the packages of each level
// concurrently. visit is called once for each target reached, with the
// target it was first reached from (nil for roots); it returns false to
// stop the walk. With sorted, roots and so paths are taken in label order,
// which costs a sort.
func (ev *evaluator) forward(roots targetSet, depth int, sorted bool, visit func(t, from *graph.Target) bool) (targetSet, error) {
	// A copy of roots costs a fraction of inserting its targets one by
	// one, and deps(//:all) of a large package starts from a million.
	seen := maps.Clone(roots)
	if seen == nil {
		seen = targetSet{}
	}
	var frontier []*graph.Target
	if sorted {
		frontier = graph.SortTargets(roots)
	} else {
		frontier = make([]*graph.Target, 0, len(roots))
		for _, t := range roots {
			frontier = append(frontier, t)
		}
	}
	for i, t := range frontier {
		if !visit(t, nil) {
			for _, u := range frontier[i+1:] {
				delete(seen, u.Label)
			}
			return seen, nil
		}
	}
	var deps []graph.Label // of one target, reused
walk:
	for d := 0; len(frontier) > 0 && (depth < 0 || d < depth); d++ {
		if err := ev.ctx.Err(); err != nil {
			return nil, err
		}
		var next []graph.Label
		var from []*graph.Target
		for _, t := range frontier {
			deps = t.AppendDeps(deps[:0], false)
			for _, l := range deps {
				if _, ok := seen[l]; !ok {
					seen[l] = nil
					next = append(next, l)
					from = append(from, t)
				}
			}
		}
		ev.src.prefetch(ev.ctx, next)
		prev := frontier
		frontier = make([]*graph.Target, 0, len(next))
		var bad graph.Label
		var levelErr error
		for i, l := range next {
			t, err := ev.src.Target(l)
			if err != nil {
				// Report the least missing label of the level, whatever the map order.
				if levelErr == nil || l.String() < bad.String() {
					levelErr, bad = err, l
				}
				continue
			}
			if levelErr != nil {
				continue
			}
			seen[l] = t
			frontier = append(frontier, t)
			if !visit(t, from[i]) {
				break walk
			}
		}
		if levelErr != nil {
			return nil, fmt.Errorf("loading the dependencies of %s: %w", leastReferrer(prev, bad), levelErr)
		}
	}
	for l, t := range seen {
		if t == nil { // reached but not looked up: the walk stopped early
			delete(seen, l)
		}
	}
	return seen, nil
}

// leastReferrer returns the least label among targets that depend on l.
func leastReferrer(targets []*graph.Target, l graph.Label) graph.Label {
	var best graph.Label
	for _, t := range targets {
		if slices.Contains(t.Deps(false), l) && (best.IsZero() || t.Label.String() < best.String()) {
			best = t.Label
		}
	}
	return best
}

func (ev *evaluator) deps(x targetSet, depth int) (targetSet, error) {
	return ev.forward(x, depth, false, func(_, _ *graph.Target) bool { return true })
}

// reverse returns the reverse edges of a set closed under dependencies.
func reverse(universe targetSet) map[graph.Label][]*graph.Target {
	rev := make(map[graph.Label][]*graph.Target, len(universe))
	for _, t := range universe {
		for _, l := range t.Deps(false) {
			rev[l] = append(rev[l], t)
		}
	}
	return rev
}

// backward walks reverse edges from the members of x that are in universe.
func backward(universe, x targetSet, rev map[graph.Label][]*graph.Target, depth int) targetSet {
	out := targetSet{}
	var frontier []*graph.Target
	for l := range x {
		if t, ok := universe[l]; ok {
			out[l] = t
			frontier = append(frontier, t)
		}
	}
	for d := 0; len(frontier) > 0 && (depth < 0 || d < depth); d++ {
		var next []*graph.Target
		for _, t := range frontier {
			for _, r := range rev[t.Label] {
				if _, ok := out[r.Label]; !ok {
					out[r.Label] = r
					next = append(next, r)
				}
			}
		}
		frontier = next
	}
	return out
}

// rdeps is Bazel's: the reverse dependencies of x within the transitive
// closure of the universe u.
func (ev *evaluator) rdeps(u, x targetSet, depth int) (targetSet, error) {
	universe, err := ev.deps(u, -1)
	if err != nil {
		return nil, err
	}
	return backward(universe, x, reverse(universe), depth), nil
}

// allpaths is every target on a path from a member of from to one of to:
// reachable from from, and reaching to.
func (ev *evaluator) allpaths(from, to targetSet) (targetSet, error) {
	universe, err := ev.deps(from, -1)
	if err != nil {
		return nil, err
	}
	return backward(universe, to, reverse(universe), -1), nil
}

// somepath returns one shortest path from a member of from to one of to,
// or the empty set when there is none.
func (ev *evaluator) somepath(from, to targetSet) (targetSet, error) {
	parent := map[graph.Label]*graph.Target{}
	var end *graph.Target
	_, err := ev.forward(from, -1, true, func(t, p *graph.Target) bool {
		parent[t.Label] = p
		if _, ok := to[t.Label]; ok {
			end = t
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := targetSet{}
	for t := end; t != nil; t = parent[t.Label] {
		out[t.Label] = t
	}
	return out, nil
}

func (ev *evaluator) labels(attr string, x targetSet) (targetSet, error) {
	out := targetSet{}
	var ls []graph.Label
	var from []*graph.Target
	for _, t := range graph.SortTargets(x) {
		a, ok := t.Attr(attr)
		if !ok {
			continue
		}
		switch v := a.Value.(type) {
		case graph.Label:
			if !v.IsZero() {
				ls = append(ls, v)
				from = append(from, t)
			}
		case []graph.Label:
			for _, l := range v {
				ls = append(ls, l)
				from = append(from, t)
			}
		}
	}
	ev.src.prefetch(ev.ctx, ls)
	for i, l := range ls {
		t, err := ev.src.Target(l)
		if err != nil {
			return nil, fmt.Errorf("labels(%s): %w (in %s)", attr, err, from[i].Label)
		}
		out[l] = t
	}
	return out, nil
}

// packagesOf loads the packages of the targets of x.
func (ev *evaluator) packagesOf(x targetSet) ([]*graph.Package, error) {
	seen := map[pkgKey]bool{}
	var ls []graph.Label
	for l := range x {
		k := pkgKey{l.Repo, l.Pkg}
		if !seen[k] {
			seen[k] = true
			ls = append(ls, graph.Label{Repo: l.Repo, Pkg: l.Pkg})
		}
	}
	ev.src.prefetch(ev.ctx, ls)
	pkgs := make([]*graph.Package, 0, len(ls))
	for _, l := range ls {
		p, err := ev.src.Package(l.Repo, l.Pkg)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func (ev *evaluator) siblings(x targetSet) (targetSet, error) {
	pkgs, err := ev.packagesOf(x)
	if err != nil {
		return nil, err
	}
	out := targetSet{}
	for _, p := range pkgs {
		for _, t := range graph.PackageTargets(p) {
			out[t.Label] = t
		}
	}
	return out, nil
}

// buildfiles implements buildfiles(x) and, with withBuild false,
// loadfiles(x). As in Bazel, buildfiles also names the BUILD files of the
// packages that hold the loaded .star/.bzl files.
func (ev *evaluator) buildfiles(x targetSet, withBuild bool) (targetSet, error) {
	pkgs, err := ev.packagesOf(x)
	if err != nil {
		return nil, err
	}
	out := targetSet{}
	addBuild := func(p *graph.Package) {
		if p.BuildFile == "" {
			return
		}
		l := graph.Label{Repo: p.Repo, Pkg: p.Name, Name: path.Base(p.BuildFile)}
		out[l] = fileTarget(p, l, graph.Pos{File: p.BuildFile, Line: 1, Col: 1})
	}
	loadPkgs := map[pkgKey]bool{}
	for _, p := range pkgs {
		if withBuild {
			addBuild(p)
		}
		for _, l := range p.Loads {
			out[l] = &graph.Target{Label: l, Pos: graph.Pos{File: loadPath(l), Line: 1, Col: 1}}
			loadPkgs[pkgKey{l.Repo, l.Pkg}] = true
		}
	}
	if withBuild {
		for k := range loadPkgs {
			p, err := ev.src.Package(k.repo, k.pkg)
			var nsp *graph.NoSuchPackageError
			if errors.As(err, &nsp) {
				continue // a rule library without a BUILD file, such as @hepbuild//rules
			}
			if err != nil {
				return nil, err
			}
			addBuild(p)
		}
	}
	return out, nil
}

// fileTarget returns p's declared target l, or a source file target at pos.
func fileTarget(p *graph.Package, l graph.Label, pos graph.Pos) *graph.Target {
	if t := p.Targets[l.Name]; t != nil {
		return t
	}
	return &graph.Target{Label: l, Pos: pos}
}

func loadPath(l graph.Label) string {
	if l.Repo != "" {
		return "@" + l.Repo + "//" + l.Path()
	}
	return l.Path()
}

// attrString returns the value of t's attribute as Bazel's attr() matches
// it: lists as "[a, b]", labels canonical, tags sorted (Bazel keeps them as
// a sorted set). "name" is the target's name even when the source does not
// record it as an attribute.
func attrString(t *graph.Target, name string) (string, bool) {
	if !t.IsRule() {
		return "", false
	}
	a, ok := t.Attr(name)
	if !ok {
		if name == "name" {
			return t.Label.Name, true
		}
		return "", false
	}
	switch v := a.Value.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case int64:
		return fmt.Sprint(v), true
	case bool:
		// Bazel stores booleans as integers.
		if v {
			return "1", true
		}
		return "0", true
	case graph.Label:
		if v.IsZero() {
			return "", true
		}
		return v.String(), true
	case []string:
		if name == "tags" {
			v = sortedCopy(v)
		}
		return "[" + strings.Join(v, ", ") + "]", true
	case []int64:
		parts := make([]string, len(v))
		for i, n := range v {
			parts[i] = fmt.Sprint(n)
		}
		return "[" + strings.Join(parts, ", ") + "]", true
	case []graph.Label:
		parts := make([]string, len(v))
		for i, l := range v {
			parts[i] = l.String()
		}
		return "[" + strings.Join(parts, ", ") + "]", true
	case map[string]string:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		keys = sortedCopy(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + v[k]
		}
		return "{" + strings.Join(parts, ", ") + "}", true
	}
	return fmt.Sprint(a.Value), true
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
