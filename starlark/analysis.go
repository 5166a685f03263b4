package starlark

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// configured is an analysed target: its providers and default outputs.
// A million-action analysis holds one for each task and each source file,
// so what only a few targets have is behind details.
type configured struct {
	target     *graph.Target
	files      []*File // DefaultInfo files, flattened
	executable *File
	// action is the action of a task, whose Outputs are the task's files:
	// Analyze shares them rather than copy them for each target asked for.
	// A task's files are its predeclared outputs.
	action  *exec.Action
	details *targetDetails
}

// targetDetails is what only the targets of rule implementations and
// environments have, and the Starlark value of targets rule code sees.
type targetDetails struct {
	providers   map[*Provider]*ProviderInstance
	env         *exec.Environment // set for environment() targets
	predeclared []*File           // outputs declared in the BUILD file (outs, attr.output, rule outputs)
	value       *TargetValue      // made by targetValue
}

func (c *configured) label() graph.Label { return c.target.Label }

// providers returns the target's providers by provider; nil (empty) for
// native rules and files.
func (c *configured) providers() map[*Provider]*ProviderInstance {
	if c.details == nil {
		return nil
	}
	return c.details.providers
}

// env returns the software environment of an environment() target, or nil.
func (c *configured) env() *exec.Environment {
	if c.details == nil {
		return nil
	}
	return c.details.env
}

// predeclared returns the outputs declared in the BUILD file: for a task,
// its files.
func (c *configured) predeclared() []*File {
	switch {
	case c.action != nil:
		return c.files
	case c.details != nil:
		return c.details.predeclared
	}
	return nil
}

// targetValue is the target as rule code sees it, made on first use: most
// targets are never seen by rule code, only by native rules.
func (c *configured) targetValue() *TargetValue {
	if c.details == nil {
		c.details = &targetDetails{}
	}
	if c.details.value == nil {
		c.details.value = &TargetValue{c: c}
	}
	return c.details.value
}

// configuredFile is a configured target of one file (a source file, or a
// task with one output) with the file, in one allocation: a large analysis
// has millions of them.
type configuredFile struct {
	configured
	file  File
	files [1]*File
}

// newConfiguredFile returns target t, whose one file is art, declared by owner.
func newConfiguredFile(t *graph.Target, art exec.Artifact, owner *graph.Target) *configured {
	x := &configuredFile{configured: configured{target: t}, file: File{art: art, owner: owner}}
	x.files[0] = &x.file
	x.configured.files = x.files[:]
	return &x.configured
}

// inProgress stands, in analyzer.done, for a target whose analysis has begun
// and not ended: meeting it again means a dependency cycle.
var inProgress = &configured{}

// analyzer runs rule implementations. One analyzer serves one Analyze call
// and is used by one goroutine.
type analyzer struct {
	l       *Loader
	done    configuredMap
	stack   []graph.Label
	actions []*exec.Action
	cmdBuf  []byte // reused by analyzeTask
	// deps is a stack of the analysed dependencies of the rules being
	// configured, each rule's above those of the rules that depend on it,
	// in the order configureRule visits them; depAttrs says where each
	// label attribute's are, and ruleAttrs where the depAttrs of the rule
	// whose native implementation runs begin. Natives find their
	// dependencies there (attrDeps) rather than look each up again in
	// done: a million-action analysis has millions of edges.
	deps      []*configured
	depAttrs  []depAttr
	ruleAttrs int
}

// depAttr is where the dependencies of one label attribute are in analyzer.deps.
type depAttr struct {
	name     string
	from, to int
}

// Analyze loads the given targets and everything they depend on, runs the
// rule implementations and returns the action graph. Errors are *Error values
// naming the file, line and target.
func (l *Loader) Analyze(labels []graph.Label) (*exec.Graph, error) {
	return l.analyze(len(labels), func(a *analyzer, i int) (*configured, error) {
		return a.configure(labels[i], nil)
	})
}

// AnalyzeTargets is Analyze for targets already loaded, as a command's
// target patterns give them: it spares looking each up again by label.
func (l *Loader) AnalyzeTargets(targets []*graph.Target) (*exec.Graph, error) {
	return l.analyze(len(targets), func(a *analyzer, i int) (*configured, error) {
		t := targets[i]
		if c, ok := a.done.get(t.Label); ok {
			return c, nil // analysed as a dependency of an earlier one
		}
		return a.configureTarget(t, nil)
	})
}

// analyze analyses the n targets root gives and returns the action graph.
func (l *Loader) analyze(n int, root func(a *analyzer, i int) (*configured, error)) (*exec.Graph, error) {
	// Every target given is analysed, with what it depends on: sizing the
	// map and the list of actions for them saves growing them through all
	// the smaller sizes.
	a := &analyzer{l: l, done: newConfiguredMap(n), actions: make([]*exec.Action, 0, n)}
	outs := make([][]exec.Artifact, n)
	for i := range n {
		c, err := root(a, i)
		if err != nil {
			return nil, err
		}
		if c.action != nil && len(c.files) == 1 && len(c.action.Outputs) == 1 && c.files[0].art == c.action.Outputs[0] {
			// A task with one output, the usual case: both are read only.
			outs[i] = c.action.Outputs
			continue
		}
		arts := make([]exec.Artifact, len(c.files))
		for i, f := range c.files {
			arts[i] = f.art
		}
		outs[i] = arts
	}
	g, err := exec.NewGraph(a.actions, outs)
	if err != nil {
		var ce *exec.ConflictError
		if errors.As(err, &ce) {
			return nil, &Error{Pos: ce.Then.Pos, Target: ce.Then.Owner,
				Msg: fmt.Sprintf("output %s is also written by %s (declared at %s)", ce.Path, ce.First.Owner, ce.First.Pos)}
		}
		var pe *exec.PrefixError
		if errors.As(err, &pe) {
			return nil, &Error{Pos: pe.Then.Pos, Target: pe.Then.Owner,
				Msg: fmt.Sprintf("output %s is inside %s, an output of %s (declared at %s)", pe.Path, pe.Outer, pe.First.Owner, pe.First.Pos)}
		}
		return nil, err
	}
	return g, nil
}

// dep returns the analysed target lbl, or nil: rules find their
// dependencies, which configureRule analysed first, with it.
func (a *analyzer) dep(lbl graph.Label) *configured {
	c, _ := a.done.get(lbl)
	return c
}

// attrDeps returns the analysed dependencies of the native rule being
// analysed named by its attribute attr, whose labels are ls: those
// configureRule found, or else those dep finds.
func (a *analyzer) attrDeps(attr string, ls []graph.Label) []*configured {
	if len(ls) == 0 {
		return nil
	}
	for _, d := range a.depAttrs[a.ruleAttrs:] {
		if d.name == attr && d.to-d.from == len(ls) {
			return a.deps[d.from:d.to]
		}
	}
	out := make([]*configured, len(ls))
	for i, l := range ls {
		out[i] = a.dep(l)
	}
	return out
}

// configuredMap maps labels to their analysed targets. It keys by package,
// then by name, as nearly every label of an analysis is in a few packages:
// a slot then takes 24 bytes rather than the 56 of a graph.Label key, and
// hashing a name is cheaper than hashing a label. A million-action
// analysis holds over a million entries.
type configuredMap struct {
	pkgs     map[pkgID]map[string]*configured
	lastID   pkgID // the package of the last lookup, and its map
	last     map[string]*configured
	sizeHint int // of the first package's map: the one of the targets asked for
}

type pkgID struct{ repo, pkg string }

func newConfiguredMap(sizeHint int) configuredMap {
	return configuredMap{pkgs: map[pkgID]map[string]*configured{}, sizeHint: sizeHint}
}

// names returns the map of the package of lbl, made when create is set, or nil.
func (m *configuredMap) names(lbl graph.Label, create bool) map[string]*configured {
	id := pkgID{lbl.Repo, lbl.Pkg}
	if m.last != nil && id == m.lastID {
		return m.last
	}
	n := m.pkgs[id]
	if n == nil {
		if !create {
			return nil
		}
		n = make(map[string]*configured, m.sizeHint)
		m.sizeHint = 0
		m.pkgs[id] = n
	}
	m.lastID, m.last = id, n
	return n
}

func (m *configuredMap) get(lbl graph.Label) (*configured, bool) {
	c, ok := m.names(lbl, false)[lbl.Name]
	return c, ok
}

func (m *configuredMap) set(lbl graph.Label, c *configured) { m.names(lbl, true)[lbl.Name] = c }

func (m *configuredMap) delete(lbl graph.Label) { delete(m.names(lbl, false), lbl.Name) }

// configure analyses one target; from is the target that depends on it (nil for a root).
func (a *analyzer) configure(lbl graph.Label, from *graph.Target) (*configured, error) {
	if c, ok := a.done.get(lbl); ok && c != inProgress {
		return c, nil
	} else if ok {
		i := len(a.stack) - 1
		for i > 0 && a.stack[i] != lbl {
			i--
		}
		path := make([]string, 0, len(a.stack)-i+1)
		for _, s := range a.stack[i:] {
			path = append(path, s.String())
		}
		path = append(path, lbl.String())
		pos := graph.Pos{}
		tgt := lbl
		if from != nil {
			pos, tgt = from.Pos, from.Label
		}
		return nil, &Error{Pos: pos, Target: tgt, Msg: "dependency cycle: " + strings.Join(path, " -> ")}
	}
	t, err := a.l.Target(lbl)
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			return nil, err
		}
		e := &Error{Msg: err.Error()}
		if from != nil {
			e.Pos, e.Target = from.Pos, from.Label
			e.Msg = "depends on " + lbl.String() + ": " + err.Error()
		}
		return nil, e
	}
	return a.configureTarget(t, from)
}

// configureTarget analyses target t, not analysed yet; from is the target
// that depends on it (nil for a root).
func (a *analyzer) configureTarget(t *graph.Target, from *graph.Target) (*configured, error) {
	lbl := t.Label
	if t.IsSourceFile() {
		// A source file depends on nothing, so it cannot be in a cycle:
		// it is entered in done once, when analysed.
		c, err := a.configureSource(t, from)
		if err != nil {
			return nil, err
		}
		a.done.set(lbl, c)
		return c, nil
	}
	a.done.set(lbl, inProgress)
	a.stack = append(a.stack, lbl)
	finished := false
	defer func() {
		a.stack = a.stack[:len(a.stack)-1]
		if !finished {
			a.done.delete(lbl)
		}
	}()
	var c *configured
	var err error
	switch {
	case t.IsGeneratedFile():
		gen, err2 := a.configure(*t.Generator, t)
		if err2 != nil {
			return nil, err2
		}
		f := gen.output(outputArtifact(lbl, false).Path)
		if f == nil {
			return nil, &Error{Pos: gen.target.Pos, Target: gen.label(), Msg: fmt.Sprintf("declared output %s is not produced by any action of the rule", lbl.Name)}
		}
		c = &configured{target: t, files: []*File{f}}
	default:
		c, err = a.configureRule(t)
	}
	if err != nil {
		return nil, err
	}
	a.done.set(lbl, c)
	finished = true
	return c, nil
}

// output returns the file at path among the rule's outputs (for a
// generated-file target), or nil. Like allOutputs, but it makes no list for
// the usual case: the file is one of the outputs the BUILD file declared.
func (c *configured) output(path string) *File {
	predeclared := c.predeclared()
	for i := len(predeclared) - 1; i >= 0; i-- {
		if predeclared[i].art.Path == path {
			return predeclared[i]
		}
	}
	var f *File
	for _, x := range c.allOutputs() {
		if x.art.Path == path {
			f = x // the last one, as predeclared outputs come last
		}
	}
	return f
}

// allOutputs lists the files a rule's actions produce (for generated-file targets).
func (c *configured) allOutputs() []*File {
	out := append([]*File{}, c.files...)
	if og, ok := c.providers()[outputGroupInfo]; ok {
		for _, v := range og.fields {
			if d, ok := v.(*Depset); ok {
				for _, x := range d.toList() {
					if f, ok := x.(*File); ok {
						out = append(out, f)
					}
				}
			}
		}
	}
	if predeclared := c.predeclared(); predeclared != nil {
		out = append(out, predeclared...)
	}
	return out
}

func (a *analyzer) configureSource(t *graph.Target, from *graph.Target) (*configured, error) {
	rel := t.Label.Path()
	// A source target is analysed once (see done), with one lstat: a file
	// that is not a symbolic link needs no stat, and checkInside then
	// resolves only its folder.
	full := filepath.Join(a.l.root, filepath.FromSlash(rel))
	isLink, isDir, isExec, err := lstatSource(full)
	if isLink {
		var fi os.FileInfo
		if fi, err = os.Stat(full); err == nil {
			isDir, isExec = fi.IsDir(), fi.Mode()&0o111 != 0
		}
	}
	if err != nil {
		e := &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("missing input file %s", rel)}
		if from != nil {
			e.Pos, e.Target = from.Pos, from.Label
			e.Msg = fmt.Sprintf("missing input file %s: it does not exist and no rule declares it as an output", rel)
		}
		return nil, e
	}
	if err := a.l.checkInside(rel, full, isLink); err != nil {
		e := &Error{Pos: t.Pos, Target: t.Label, Msg: err.Error()}
		if from != nil {
			e.Pos, e.Target = from.Pos, from.Label
		}
		return nil, e
	}
	c := newConfiguredFile(t, sourceArtifact(t.Label, isDir), t)
	if isExec && !isDir {
		c.executable = c.files[0]
	}
	return c, nil
}

func (a *analyzer) configureRule(t *graph.Target) (*configured, error) {
	class := a.l.ruleClassOf(t)
	if class == nil {
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: "internal error: rule class not recorded"}
	}
	// Native rules find their dependencies in a.done (a.dep); only rule
	// implementations need them by label.
	var deps map[graph.Label]*configured
	if class.native == nil {
		deps = map[graph.Label]*configured{}
	}
	depBase, attrBase := len(a.deps), len(a.depAttrs)
	defer func() { a.deps, a.depAttrs = a.deps[:depBase], a.depAttrs[:attrBase] }()
	// visit analyses the dependencies named by one attribute.
	visit := func(at graph.Attr) error {
		var ls []graph.Label
		switch v := at.Value.(type) {
		case graph.Label:
			if at.Type == graph.AttrLabel && !v.IsZero() {
				ls = []graph.Label{v}
			}
		case []graph.Label:
			if at.Type == graph.AttrLabelList {
				ls = v
			}
		}
		if len(ls) == 0 {
			return nil
		}
		spec := class.attrs[at.Name]
		from := len(a.deps)
		for _, dl := range ls {
			dc, err := a.configure(dl, t)
			if err != nil {
				return err
			}
			if err := checkDep(t, at.Name, spec, dc); err != nil {
				return err
			}
			// Only rules are deprecated, and asking a file costs two
			// searches of nothing for each of millions of edges.
			if dc.target.IsRule() {
				if msg := attrString(dc.target, "deprecation"); msg != "" {
					a.l.stderrMu.Lock()
					fmt.Fprintf(a.l.stderr, "WARNING: %s: %s depends on deprecated %s: %s\n", t.Pos, t.Label, dl, msg)
					a.l.stderrMu.Unlock()
				}
			}
			if deps != nil {
				deps[dl] = dc
			}
			// The dependency's own analysis has taken its entries off again.
			a.deps = append(a.deps, dc)
		}
		a.depAttrs = append(a.depAttrs, depAttr{name: at.Name, from: from, to: len(a.deps)})
		return nil
	}
	if t.OwnLabels() {
		for _, at := range t.Attrs {
			if err := visit(at); err != nil {
				return nil, err
			}
		}
	} else {
		for at := range t.AllAttrs() {
			if err := visit(at); err != nil {
				return nil, err
			}
		}
	}
	if class.native != nil {
		a.ruleAttrs = attrBase
		c, err := class.native(a, t)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return a.runImplementation(&ruleInstance{target: t, class: class}, deps)
}

// checkDep enforces allow_files, allow_single_file, executable and providers.
func checkDep(t *graph.Target, attr string, spec *attrSpec, dc *configured) error {
	isFile := !dc.target.IsRule()
	if isFile && !spec.allowFiles && !spec.allowSingleFile {
		return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("attribute %s: %s is a file, but the attribute does not accept files (allow_files)", attr, dc.label())}
	}
	if len(spec.allowedExts) > 0 {
		for _, f := range dc.files {
			ok := false
			for _, ext := range spec.allowedExts {
				if strings.HasSuffix(f.art.Path, ext) {
					ok = true
				}
			}
			if !ok {
				return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("attribute %s: file %s does not have an allowed extension %v", attr, f.shortPath(), spec.allowedExts)}
			}
		}
	}
	if spec.allowSingleFile && len(dc.files) != 1 {
		return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("attribute %s: %s must produce exactly one file, it produces %d", attr, dc.label(), len(dc.files))}
	}
	if spec.executable && dc.executable == nil {
		if len(dc.files) == 1 && !dc.target.IsRule() {
			dc.executable = dc.files[0]
		} else {
			return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("attribute %s: %s is not executable", attr, dc.label())}
		}
	}
	for _, p := range spec.providers {
		// Native rules make DefaultInfo on demand (TargetValue.Get) rather
		// than keep one per target: every target provides it.
		if _, ok := dc.providers()[p]; !ok && p != defaultInfo {
			return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("attribute %s: %s does not provide %s", attr, dc.label(), p.Name())}
		}
	}
	return nil
}

// addAction records an action after checking that it writes only outputs of its own target.
func (a *analyzer) addAction(act *exec.Action) error {
	prefix := exec.OutDir + "/" + act.Owner.Pkg + "/"
	if act.Owner.Pkg == "" {
		prefix = exec.OutDir + "/"
	}
	for _, o := range act.Outputs {
		if !strings.HasPrefix(o.Path, prefix) {
			return &Error{Pos: act.Pos, Target: act.Owner, Msg: fmt.Sprintf("output %s is outside the package %s", o.Path, act.Owner.Pkg)}
		}
	}
	// slices.SortFunc, unlike sort.Slice, allocates nothing: this runs for
	// every action.
	slices.SortFunc(act.Inputs, byPath)
	act.Inputs = dedupArtifacts(act.Inputs)
	if act.Kind == exec.KindRun && !act.HasTag("requires-network") {
		// An action given a URL reads the file from storage itself.
		for _, in := range act.Inputs {
			if in.URL != "" {
				act.SetExtra().Tags = append(slices.Clip(act.Extras().Tags), "requires-network")
				break
			}
		}
	}
	slices.SortFunc(act.Outputs, byPath)
	a.actions = append(a.actions, act)
	return nil
}

func byPath(x, y exec.Artifact) int { return strings.Compare(x.Path, y.Path) }

func dedupArtifacts(in []exec.Artifact) []exec.Artifact {
	if len(in) < 2 {
		return in
	}
	out := in[:1]
	for _, x := range in[1:] {
		if x.Path != out[len(out)-1].Path {
			out = append(out, x)
		}
	}
	return out
}
