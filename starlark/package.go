package starlark

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/graph"
)

// ruleInstance is a rule target with its class, as analysis sees it.
type ruleInstance struct {
	target *graph.Target
	class  *ruleClass
}

// pkgBuilder collects the targets of one BUILD file while it runs. It lives
// in the thread's locals and is used by one goroutine only.
type pkgBuilder struct {
	l         *Loader
	pkg       *graph.Package
	classes   ruleClasses // of the rules, for analysis
	refs      []string    // names of same-package labels used in attributes before they were declared, in order of mention
	readFiles []string
	globCache []string // files of the package (no sub-packages), listed on first glob
	globDone  bool
	// emptyGlobs are the glob calls of the BUILD file itself that matched
	// nothing, for lint.
	emptyGlobs []EmptyGlob
	strs       map[string]any    // see boxString
	lastLists  map[*attrSpec]any // see shareLabels
	// lastRefs is the first label of the last list passed to ref: a list
	// shared with the previous target needs no second look.
	lastRefs *graph.Label

	// pipelined lets a large BUILD file declare its rules on a ruleQueue
	// once it has declared rules of them; queue is that queue, once started.
	pipelined bool
	rules     int
	queue     *ruleQueue
	// printed counts the print() calls the BUILD file made; quiet, those a
	// second run of the file does not show again (see ruleQueue).
	printed, quiet int
}

// EmptyGlob is a glob() written in a BUILD file that matched no file,
// though it did not say allow_empty = True.
type EmptyGlob struct {
	Pos     graph.Pos
	Include []string
}

// noteEmptyGlob records a glob that matched nothing, when the BUILD file
// calls it itself and does not say allow_empty: a macro that globs for
// optional files, or a call that allows an empty result in so many words,
// means it.
func (b *pkgBuilder) noteEmptyGlob(thread *starlark.Thread, include []string, kwargs []starlark.Tuple) {
	for _, kv := range kwargs {
		if string(kv[0].(starlark.String)) == "allow_empty" {
			return
		}
	}
	if pos := thread.CallFrame(1).Pos; pos.Filename() == b.pkg.BuildFile {
		b.emptyGlobs = append(b.emptyGlobs, EmptyGlob{Pos: posOf(pos), Include: include})
	}
}

func newPkgBuilder(l *Loader, pkg, buildFile string) *pkgBuilder {
	return &pkgBuilder{
		l:       l,
		pkg:     &graph.Package{Name: pkg, BuildFile: buildFile, Targets: map[string]*graph.Target{}},
		classes: ruleClasses{byKind: map[string]*ruleClass{}},
	}
}

// ruleClasses records the rule class of each rule target of a package. The
// rules of one kind (graph.Target.RuleClass) nearly always share one class,
// so it keeps a class per kind, and a class per target only for the targets
// whose kind several classes share (rules of the same name loaded from
// different files): a package of a million rules needs no map of them.
type ruleClasses struct {
	byKind   map[string]*ruleClass
	byTarget map[string]*ruleClass // target name -> class, where byKind does not tell
}

func (rc *ruleClasses) add(t *graph.Target, c *ruleClass) {
	switch rc.byKind[t.RuleClass] {
	case nil:
		rc.byKind[t.RuleClass] = c
	case c:
		// the usual case
	default:
		if rc.byTarget == nil {
			rc.byTarget = map[string]*ruleClass{}
		}
		rc.byTarget[t.Label.Name] = c
	}
}

// of returns the class of the rule target t, or nil.
func (rc *ruleClasses) of(t *graph.Target) *ruleClass {
	if c, ok := rc.byTarget[t.Label.Name]; ok {
		return c
	}
	return rc.byKind[t.RuleClass]
}

// maxBoxedStrings bounds boxString's map: the repeated texts of a
// package are few, and a package of unique texts should not pay for a
// map of them all.
const maxBoxedStrings = 1 << 12

// boxString returns s as an attribute value, one value (one allocation)
// for every target of the package whose attribute has the same text:
// generated BUILD files give thousands of targets the same command.
func (b *pkgBuilder) boxString(s string) any {
	if v, ok := b.strs[s]; ok {
		return v
	}
	var v any = s
	if len(b.strs) < maxBoxedStrings {
		if b.strs == nil {
			b.strs = map[string]any{}
		}
		b.strs[s] = v
	}
	return v
}

// shareLabels returns the label list ls of attribute spec, which v holds,
// as an attribute value: the previous target's value of the same attribute
// when it holds the same labels, else v. Comprehensions over systematic shifts
// give consecutive targets the same inputs, and a million-target package
// then keeps a quarter of the lists. Attribute values are never modified,
// so targets may share one.
func (b *pkgBuilder) shareLabels(spec *attrSpec, ls []graph.Label, v any) any {
	if prev, ok := b.lastLists[spec].([]graph.Label); ok && slices.Equal(prev, ls) {
		return b.lastLists[spec]
	}
	if b.lastLists == nil {
		b.lastLists = map[*attrSpec]any{}
	}
	b.lastLists[spec] = v
	return v
}

func (b *pkgBuilder) label(name string) graph.Label {
	return graph.Label{Pkg: b.pkg.Name, Name: name}
}

func (b *pkgBuilder) add(t *graph.Target, owner graph.Label) error {
	if prev, ok := b.pkg.Targets[t.Label.Name]; ok {
		what := "target"
		if prev.IsGeneratedFile() {
			what = "output of " + prev.Generator.String()
		}
		return errorf(owner, "duplicate target name %q: already declared at %s as %s", t.Label.Name, prev.Pos, what)
	}
	b.pkg.Targets[t.Label.Name] = t
	b.appendOrder(t.Label.Name)
	return nil
}

// appendOrder appends name to the package's Order, doubling it when full:
// append grows a long slice by a quarter at a time, and the Order of a
// million-rule package then allocates five times its final size, garbage
// the collector has to find.
func (b *pkgBuilder) appendOrder(name string) {
	o := b.pkg.Order
	if len(o) == cap(o) && len(o) >= 1024 {
		grown := make([]string, len(o), 2*len(o))
		copy(grown, o)
		o = grown
	}
	b.pkg.Order = append(o, name)
}

// ref records a label used in an attribute: if it names a target of this
// package that is not declared (yet), finish makes it a source file.
func (b *pkgBuilder) ref(l graph.Label) {
	if l.Repo != "" || l.Pkg != b.pkg.Name {
		return
	}
	if _, declared := b.pkg.Targets[l.Name]; !declared {
		b.refs = append(b.refs, l.Name) // a third of a Label: a package may mention a million
	}
}

// finish creates source-file targets for labels used but not declared, and
// the BUILD file's own target.
func (b *pkgBuilder) finish(loads []graph.Label) (*graph.Package, error) {
	// Whether a file is in a sub-package depends on its folder only, and
	// a package's files are often many to a folder.
	subpackageIn := map[string]string{}
	for _, name := range b.refs {
		l := b.label(name)
		if _, ok := b.pkg.Targets[l.Name]; ok {
			continue // declared after its mention, or mentioned before
		}
		dir := path.Dir(l.Name)
		sub, ok := subpackageIn[dir]
		if !ok {
			sub = b.l.subpackageOf(l)
			subpackageIn[dir] = sub
		}
		if sub != "" {
			return nil, &Error{Pos: graph.Pos{File: b.pkg.BuildFile}, Target: l,
				Msg: fmt.Sprintf("label crosses into package %s: use //%s:%s", sub, sub, strings.TrimPrefix(l.Path(), sub+"/"))}
		}
		t := &graph.Target{Label: l, Pos: graph.Pos{File: l.Path(), Line: 1, Col: 1}}
		b.pkg.Targets[l.Name] = t
		b.appendOrder(l.Name)
	}
	bf := path.Base(b.pkg.BuildFile)
	if _, ok := b.pkg.Targets[bf]; !ok {
		b.pkg.Targets[bf] = &graph.Target{Label: b.label(bf), Pos: graph.Pos{File: b.pkg.BuildFile, Line: 1, Col: 1}}
		b.appendOrder(bf)
	}
	b.pkg.Loads = loads
	b.pkg.ReadFiles = b.readFiles
	return b.pkg, nil
}

// callerPos is where the current rule call was made: the innermost frame in
// the BUILD file itself, so targets made by macros point at the macro call.
func callerPos(thread *starlark.Thread, buildFile string) graph.Pos {
	for d := 1; d < thread.CallStackDepth(); d++ {
		if fr := thread.CallFrame(d); fr.Pos.Filename() == buildFile {
			return posOf(fr.Pos)
		}
	}
	return posOf(thread.CallFrame(1).Pos)
}

func currentPackage(thread *starlark.Thread, fn string) (*pkgBuilder, error) {
	b, _ := thread.Local(localPkg).(*pkgBuilder)
	if b == nil {
		return nil, fmt.Errorf("%s can only be called while a BUILD file is loading (from the BUILD file, or a macro it calls), not at the top level of a .star file", fn)
	}
	return b, nil
}

// glob lists the package's files matching include and not exclude. It does
// not descend into sub-packages nor the output tree.
func (b *pkgBuilder) glob(include, exclude []string, excludeDirs bool, allowEmpty bool) ([]string, error) {
	if !b.globDone {
		b.globDone = true
		dir := filepath.Join(b.l.root, filepath.FromSlash(b.pkg.Name))
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				// The listing depends on the folder's entries, and on
				// whether a sub-folder holds a BUILD file (its own entries).
				b.l.dependNoStat(path.Join(b.pkg.Name, rel))
				if p == dir {
					return nil
				}
				if d.Name() == "hepbuild-out" || strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				for _, n := range append(buildFileNames, WorkspaceFile) {
					if _, err := os.Stat(filepath.Join(p, n)); err == nil {
						return filepath.SkipDir
					}
				}
				b.globCache = append(b.globCache, rel+"/")
				return nil
			}
			if d.Type()&os.ModeSymlink != 0 && rel == "hepbuild-out" {
				return nil
			}
			b.globCache = append(b.globCache, rel)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, p := range append(append([]string{}, include...), exclude...) {
		if strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			return nil, fmt.Errorf("glob pattern %q must be relative to the package and stay inside it", p)
		}
	}
	var out []string
	for _, f := range b.globCache {
		if strings.HasSuffix(f, "/") {
			if excludeDirs {
				continue
			}
			f = strings.TrimSuffix(f, "/")
		}
		if matchAny(include, f) && !matchAny(exclude, f) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	if len(out) == 0 && !allowEmpty {
		return nil, fmt.Errorf("glob(%q) matched no files and allow_empty = False", include)
	}
	return out, nil
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if globMatch(strings.Split(p, "/"), strings.Split(name, "/")) {
			return true
		}
	}
	return false
}

// globMatch matches path segments; "**" matches zero or more segments.
func globMatch(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if globMatch(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
