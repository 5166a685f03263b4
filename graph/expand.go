package graph

import (
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// TargetResolver is implemented by package sources that resolve labels beyond
// a package's declared targets, such as an existing source file that no BUILD
// file mentions. Expand and the query language use it when the source has it;
// otherwise only declared targets (and the BUILD file) resolve.
type TargetResolver interface {
	Target(l Label) (*Target, error)
}

// LookupTarget returns the target named l, loading its package from src. A
// name that is not declared resolves through src's TargetResolver if it has
// one, to the package's BUILD file (a source file target, as in Bazel), or
// fails with *NoSuchTargetError suggesting the nearest declared name.
func LookupTarget(src PackageSource, l Label) (*Target, error) {
	p, err := src.Package(l.Repo, l.Pkg)
	if err != nil {
		return nil, err
	}
	if t := p.Targets[l.Name]; t != nil {
		return t, nil
	}
	if r, ok := src.(TargetResolver); ok {
		return r.Target(l)
	}
	if t := buildFileTarget(p); t != nil && t.Label == l {
		return t, nil
	}
	return nil, noSuchTarget(p, l)
}

func noSuchTarget(p *Package, l Label) *NoSuchTargetError {
	names := make([]string, 0, len(p.Targets))
	for n := range p.Targets {
		names = append(names, n)
	}
	sort.Strings(names) // ties in Suggest go to the first candidate: keep it stable
	e := &NoSuchTargetError{Label: l}
	if s := Suggest(l.Name, names); s != "" {
		e.Suggestion = Label{Repo: l.Repo, Pkg: l.Pkg, Name: s}.String()
	}
	return e
}

// buildFileTarget returns the source file target of p's BUILD file, or nil
// when p has no BUILD file path.
func buildFileTarget(p *Package) *Target {
	if p.BuildFile == "" {
		return nil
	}
	name := path.Base(p.BuildFile)
	if t := p.Targets[name]; t != nil {
		return t
	}
	return &Target{Label: Label{Repo: p.Repo, Pkg: p.Name, Name: name}, Pos: Pos{File: p.BuildFile, Line: 1, Col: 1}}
}

// PackageTargets returns every target of p in declaration order, the BUILD
// file included (Bazel counts it among the package's targets, so //pkg:*
// lists it) even when the source did not declare it.
func PackageTargets(p *Package) []*Target {
	out := make([]*Target, 0, len(p.Order)+1)
	seen := false
	bf := ""
	if p.BuildFile != "" {
		bf = path.Base(p.BuildFile)
	}
	for _, n := range p.Order {
		if t := p.Targets[n]; t != nil {
			out = append(out, t)
			seen = seen || n == bf
		}
	}
	if len(out) < len(p.Targets) {
		// Order is incomplete (a hand-built package): fall back to names.
		out = out[:0]
		seen = false
		names := make([]string, 0, len(p.Targets))
		for n := range p.Targets {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, p.Targets[n])
			seen = seen || n == bf
		}
	}
	if !seen {
		if t := buildFileTarget(p); t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Expand resolves target patterns to the targets they match, loading packages
// from src: a single label to its target, //pkg:all to the rules of pkg,
// //pkg:* to all its targets, and //pkg/... to the rules (or with :* all
// targets) of pkg and every package beneath it. The result has no duplicates
// and is sorted by label. Errors name the pattern.
func Expand(src PackageSource, patterns []Pattern) ([]*Target, error) {
	set, err := ExpandSet(src, patterns)
	if err != nil {
		return nil, err
	}
	return SortTargets(set), nil
}

// ExpandSet is Expand without the sorting, for callers that go on with sets.
func ExpandSet(src PackageSource, patterns []Pattern) (map[Label]*Target, error) {
	var set map[Label]*Target
	for _, p := range patterns {
		ts, err := expandOne(src, p)
		if err != nil {
			return nil, err
		}
		if set == nil {
			// Sized for the first pattern, often the only one: a
			// million-target package grows a map through every size
			// otherwise, a tenth of the time of a query.
			set = make(map[Label]*Target, len(ts))
		}
		for _, t := range ts {
			set[t.Label] = t
		}
	}
	if set == nil {
		set = map[Label]*Target{}
	}
	return set, nil
}

// ExpandArgs parses and expands command line target patterns relative to
// workingPkg. As in Bazel, a pattern starting with "-" removes what it
// matches from the targets of the patterns before it: "//... -//tools/...".
func ExpandArgs(src PackageSource, args []string, workingPkg string) ([]*Target, error) {
	if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
		// One pattern matches each target once; a set of every target of a
		// large package would cost more than the sorting.
		p, err := ParsePattern(args[0], workingPkg)
		if err != nil {
			return nil, err
		}
		ts, err := expandOne(src, p)
		if err != nil {
			return nil, err
		}
		sortTargets(ts)
		return ts, nil
	}
	set := map[Label]*Target{}
	for _, a := range args {
		neg := strings.HasPrefix(a, "-")
		p, err := ParsePattern(strings.TrimPrefix(a, "-"), workingPkg)
		if err != nil {
			return nil, err
		}
		ts, err := expandOne(src, p)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if neg {
				delete(set, t.Label)
			} else {
				set[t.Label] = t
			}
		}
	}
	return SortTargets(set), nil
}

func expandOne(src PackageSource, p Pattern) ([]*Target, error) {
	switch p.Kind {
	case PatternSingle:
		t, err := LookupTarget(src, p.Label)
		var nsp *NoSuchPackageError
		if errors.As(err, &nsp) && p.Label.Name == path.Base(p.Label.Pkg) {
			// As in Bazel, "a/b/c" without a colon is //a/b/c:c when a/b/c is a
			// package, else //a/b:c, else //a:b/c: a file or target named by path.
			if t2 := lookupInParent(src, p.Label); t2 != nil {
				return []*Target{t2}, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("target pattern %s: %w", p, err)
		}
		return []*Target{t}, nil
	case PatternRules, PatternTargets:
		pkg, err := src.Package(p.Label.Repo, p.Label.Pkg)
		if err != nil {
			return nil, fmt.Errorf("target pattern %s: %w", p, err)
		}
		return packageMatches(pkg, p.Kind == PatternTargets), nil
	case PatternRecursiveRules, PatternRecursiveTargets:
		names, err := src.PackagesBeneath(p.Label.Repo, p.Label.Pkg)
		if err != nil {
			return nil, fmt.Errorf("target pattern %s: %w", p, err)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("target pattern %s: no packages beneath %q", p, "//"+p.Label.Pkg)
		}
		pkgs, err := loadPackages(src, p.Label.Repo, names)
		if err != nil {
			return nil, fmt.Errorf("target pattern %s: %w", p, err)
		}
		var out []*Target
		for _, pkg := range pkgs {
			out = append(out, packageMatches(pkg, p.Kind == PatternRecursiveTargets)...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("target pattern %s: unknown pattern kind %d", p, p.Kind)
}

// lookupInParent resolves the package path of l (written without a colon)
// as a target of the nearest enclosing package, or returns nil.
func lookupInParent(src PackageSource, l Label) *Target {
	for pkg := l.Pkg; pkg != ""; {
		i := strings.LastIndexByte(pkg, '/')
		pkg = pkg[:max(i, 0)]
		name := strings.TrimPrefix(l.Pkg[len(pkg):], "/")
		t, err := LookupTarget(src, Label{Repo: l.Repo, Pkg: pkg, Name: name})
		if err == nil {
			return t
		}
		var nsp *NoSuchPackageError
		if !errors.As(err, &nsp) {
			return nil // the package exists and has no such target
		}
	}
	return nil
}

func packageMatches(p *Package, all bool) []*Target {
	ts := PackageTargets(p)
	if all {
		return ts
	}
	rules := ts[:0:0]
	for _, t := range ts {
		if t.IsRule() {
			rules = append(rules, t)
		}
	}
	return rules
}

// loadPackages loads the named packages of repo concurrently (the
// PackageSource contract allows it) and returns them in the order of names.
// The first error in that order wins, so the message does not depend on timing.
func loadPackages(src PackageSource, repo string, names []string) ([]*Package, error) {
	pkgs := make([]*Package, len(names))
	errs := make([]error, len(names))
	workers := min(runtime.GOMAXPROCS(0)*2, len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				pkgs[i], errs[i] = src.Package(repo, names[i])
			}
		})
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	return pkgs, firstError(errs)
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// SortTargets returns the targets of set sorted by their canonical label
// string, which is the order of `sort` on Bazel's label output.
func SortTargets(set map[Label]*Target) []*Target {
	out := make([]*Target, 0, len(set))
	for _, t := range set {
		out = append(out, t)
	}
	sortTargets(out)
	return out
}

// sortTargets sorts ts by their canonical label string. The labels of one
// package sort as their names do, so only targets of several packages need
// their label strings made.
func sortTargets(ts []*Target) {
	// Sorting keys beside the targets rather than the targets themselves
	// spares each comparison a read of two targets from all over the heap:
	// sorting a million-target package takes half as long.
	ks := make([]keyedTarget, len(ts))
	if onePackage(ts) {
		for i, t := range ts {
			ks[i] = keyedTarget{t.Label.Name, t}
		}
	} else {
		for i, t := range ts {
			ks[i] = keyedTarget{t.Label.String(), t}
		}
	}
	if len(ks) < parallelSort || runtime.GOMAXPROCS(0) < 2 {
		slices.SortFunc(ks, compareKeyed)
		for i, k := range ks {
			ts[i] = k.t
		}
		return
	}
	// A large set sorts its halves on two cores and merges them: the two
	// million targets of deps(//:all) on a million-action package sort in
	// half the time.
	a, b := ks[:len(ks)/2], ks[len(ks)/2:]
	var wg sync.WaitGroup
	wg.Go(func() { slices.SortFunc(a, compareKeyed) })
	slices.SortFunc(b, compareKeyed)
	wg.Wait()
	i := 0
	for len(a) > 0 && len(b) > 0 {
		if compareKeyed(b[0], a[0]) < 0 {
			ts[i], b = b[0].t, b[1:]
		} else {
			ts[i], a = a[0].t, a[1:]
		}
		i++
	}
	for _, k := range a {
		ts[i] = k.t
		i++
	}
	for _, k := range b {
		ts[i] = k.t
		i++
	}
}

// parallelSort is the number of targets from which sortTargets sorts on two
// cores.
const parallelSort = 1 << 16

// keyedTarget is a target with its sort key.
type keyedTarget struct {
	key string
	t   *Target
}

func compareKeyed(a, b keyedTarget) int { return strings.Compare(a.key, b.key) }

func onePackage(ts []*Target) bool {
	for _, t := range ts {
		if t.Label.Repo != ts[0].Label.Repo || t.Label.Pkg != ts[0].Label.Pkg {
			return false
		}
	}
	return true
}
