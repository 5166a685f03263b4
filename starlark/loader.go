package starlark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/rules"
)

// BuiltinRepo is the repository name of the embedded rule library.
const BuiltinRepo = "hepbuild"

// Loader loads the packages of one workspace: it evaluates BUILD files and the
// .star/.bzl files they load, each file once, packages in parallel. It
// implements graph.PackageSource. A Loader is safe for concurrent use.
type Loader struct {
	root          string
	ctx           context.Context
	workspaceName string
	stderr        io.Writer
	stderrMu      sync.Mutex // writes to stderr: print() of concurrent loads, notices of interruptible from timers

	realRootOnce sync.Once
	realRootPath string
	realRootErr  error
	realDirsMu   sync.Mutex
	realDirs     map[string]string // see realDir

	mu       sync.Mutex
	modules  map[graph.Label]*loadEntry
	packages map[string]*pkgEntry
	files    map[graph.Label]*graph.Target // source files of other packages resolved on demand

	depMu sync.Mutex
	deps  map[string]depState // see Dependencies

	listingsMu sync.RWMutex
	listings   map[dirKey]*dirListing // see sourceKind

	remote RemoteData // see SetRemoteData
}

// loadEntry is one .star file or BUILD file being evaluated or done. Waiting
// goroutines block on ready; waitingFor (guarded by Loader.mu) links the
// files each evaluation waits on, so a load cycle is found and named even
// when its files are evaluated by different goroutines.
type loadEntry struct {
	label      graph.Label
	ready      chan struct{}
	globals    starlark.StringDict
	loads      []graph.Label // transitive, sorted
	err        error
	waitingFor *loadEntry
}

type pkgEntry struct {
	ready      chan struct{}
	pkg        *graph.Package
	classes    ruleClasses
	emptyGlobs []EmptyGlob
	err        error
}

// NewLoader returns a loader for the workspace at root (the folder holding WORKSPACE.hep).
// print() output of BUILD files goes to stderr.
func NewLoader(root string, stderr io.Writer) (*Loader, error) {
	return NewLoaderContext(context.Background(), root, stderr)
}

// NewLoaderContext is NewLoader whose loading and analysis stop when ctx
// is done (an interrupt): the Starlark code running then, however long it
// would loop, is cancelled, and the call under way returns an error
// wrapping ctx.Err().
func NewLoaderContext(ctx context.Context, root string, stderr io.Writer) (*Loader, error) {
	if stderr == nil {
		stderr = io.Discard
	}
	if ctx == nil {
		ctx = context.Background()
	}
	l := &Loader{
		ctx:      ctx,
		root:     root,
		stderr:   stderr,
		modules:  map[graph.Label]*loadEntry{},
		packages: map[string]*pkgEntry{},
		files:    map[graph.Label]*graph.Target{},
		deps:     map[string]depState{},
	}
	l.depend(WorkspaceFile)
	name, err := l.readWorkspaceName(root)
	if err != nil {
		return nil, err
	}
	l.workspaceName = name
	return l, nil
}

// ForgetPackages drops the packages, rule files and source files loaded so
// far; what Dependencies reports stays. A build that has its action graph
// needs the target graph no more, and in a large package the targets are
// a large part of the memory. A later call loads them again.
func (l *Loader) ForgetPackages() {
	l.mu.Lock()
	l.modules = map[graph.Label]*loadEntry{}
	l.packages = map[string]*pkgEntry{}
	l.files = map[graph.Label]*graph.Target{}
	l.mu.Unlock()
}

// Root returns the workspace root.
func (l *Loader) Root() string { return l.root }

// depend records that what was loaded depends on the workspace-relative
// path: a file's content, or a folder's list of entries. Call it before
// reading the path: the first call stats it, and that state is what the
// loader read (see DependencyState).
func (l *Loader) depend(rel string) {
	if rel == "" {
		rel = "."
	}
	l.depMu.Lock()
	_, ok := l.deps[rel]
	l.depMu.Unlock()
	if ok {
		return
	}
	fi, err := os.Stat(filepath.Join(l.root, filepath.FromSlash(rel)))
	st := depState{fi: fi, taken: err == nil || errors.Is(err, fs.ErrNotExist)}
	l.depMu.Lock()
	if _, ok := l.deps[rel]; !ok {
		l.deps[rel] = st
	}
	l.depMu.Unlock()
}

// dependNoStat is depend without the stat (see DependencyState): for a
// folder, whose mtime moves with any entry added (hepbuild-out in the
// root, after loading listed it), and for a path whose existence alone
// was looked at, where the caller stats it anyway.
func (l *Loader) dependNoStat(rel string) {
	if rel == "" {
		rel = "."
	}
	l.depMu.Lock()
	if _, ok := l.deps[rel]; !ok {
		l.deps[rel] = depState{}
	}
	l.depMu.Unlock()
}

// depState is the stat of a dependency taken before it was first read.
type depState struct {
	fi    fs.FileInfo // nil: it did not exist
	taken bool
}

// DependencyState returns the stat the loader took of a dependency (see
// Dependencies) before it first read it: fi is nil when it did not exist
// then, and ok false when no stat was taken. A file edited while loading
// went on, after it was read, differs from it: a build stamp must not
// record its state after loading as what the build was made from.
func (l *Loader) DependencyState(rel string) (fi fs.FileInfo, ok bool) {
	l.depMu.Lock()
	st := l.deps[rel]
	l.depMu.Unlock()
	return st.fi, st.taken
}

// Dependencies returns, sorted, the workspace-relative paths of every file
// the loader read (WORKSPACE.hep, BUILD files, loaded .star and .bzl files,
// read_json files, source files looked up by label) and every folder whose
// entries it looked at (package folders probed for a BUILD file, folders
// listed by glob or by package patterns; "." is the root). Files of the
// built-in rule library are part of the binary and not listed. Nothing else
// on disk can change what the loader produced, so a caller may skip loading
// when none of these changed (exec.Stamp).
func (l *Loader) Dependencies() []string {
	l.depMu.Lock()
	out := make([]string, 0, len(l.deps))
	for p := range l.deps {
		out = append(out, p)
	}
	l.depMu.Unlock()
	sort.Strings(out)
	return out
}

// WorkspaceName returns the name given by workspace(name = ...) in WORKSPACE.hep, or "".
func (l *Loader) WorkspaceName() string { return l.workspaceName }

func (l *Loader) readWorkspaceName(root string) (string, error) {
	file := filepath.Join(root, WorkspaceFile)
	src, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", WorkspaceFile, err)
	}
	name := ""
	workspace := starlark.NewBuiltin("workspace", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "name", &name); err != nil {
			return nil, err
		}
		return starlark.None, nil
	})
	thread := &starlark.Thread{Name: WorkspaceFile}
	err = l.interruptible(thread, "loading "+WorkspaceFile, func() error {
		_, err := starlark.ExecFileOptions(fileOptions, thread, WorkspaceFile, src, starlark.StringDict{"workspace": workspace})
		return err
	})
	if l.interrupted(err) {
		return "", err
	}
	if err != nil {
		return "", formatError(err)
	}
	return name, nil
}

var fileOptions = &syntax.FileOptions{Set: true, While: false, TopLevelControl: false, GlobalReassign: false}

// thread-local keys
const (
	localLoader = "hepbuild.loader"
	localFile   = "hepbuild.file"    // graph.Label of the file being evaluated
	localEntry  = "hepbuild.entry"   // *loadEntry of the file being evaluated
	localPkg    = "hepbuild.package" // *pkgBuilder, only while a BUILD file runs
)

func (l *Loader) newThread(name string, file graph.Label, e *loadEntry) *starlark.Thread {
	t := &starlark.Thread{
		Name: name,
		Load: l.loadFromThread,
		Print: func(t *starlark.Thread, msg string) {
			if b, _ := t.Local(localPkg).(*pkgBuilder); b != nil {
				if b.syncQueue() != nil {
					return // the run is discarded (see ruleQueue)
				}
				if b.printed++; b.printed <= b.quiet {
					return // printed by the run before
				}
			}
			pos := t.CallFrame(1).Pos
			// BUILD files load concurrently, and the notices of
			// interruptible come from timers: one write at a time.
			l.stderrMu.Lock()
			fmt.Fprintf(l.stderr, "DEBUG: %s: %s\n", pos, msg)
			l.stderrMu.Unlock()
		},
	}
	t.SetLocal(localLoader, l)
	t.SetLocal(localFile, file)
	t.SetLocal(localEntry, e)
	return t
}

// slowNotice is how long a file's evaluation or a rule's analysis runs
// before the loader says on stderr what it is busy with: a BUILD file that
// loops for minutes otherwise looks like a hung hepbuild.
const slowNotice = time.Second

// interruptible runs fn, which evaluates Starlark code on thread, so that
// the evaluation is cancelled when the loader's context is done, and says
// on stderr what is running when it runs longer than slowNotice. An error
// of an evaluation that was cancelled wraps the context's error, not the
// interpreter's "cancelled" message.
func (l *Loader) interruptible(thread *starlark.Thread, what string, fn func() error) error {
	stop := context.AfterFunc(l.ctx, func() { thread.Cancel("interrupted") })
	noticed := make(chan struct{})
	slow := time.AfterFunc(slowNotice, func() {
		defer close(noticed)
		l.stderrMu.Lock()
		fmt.Fprintf(l.stderr, "hepbuild: %s: still running after %s\n", what, slowNotice)
		l.stderrMu.Unlock()
	})
	err := fn()
	if !slow.Stop() {
		<-noticed // the notice is written before the caller goes on
	}
	stop()
	if err != nil && l.ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, l.ctx.Err())
	}
	return err
}

// interrupted reports whether err is the error of an evaluation stopped by
// the loader's context.
func (l *Loader) interrupted(err error) bool {
	return err != nil && l.ctx.Err() != nil && errors.Is(err, l.ctx.Err())
}

// Package implements graph.PackageSource: it loads the package once; later
// and concurrent calls share the result.
func (l *Loader) Package(repo, pkg string) (*graph.Package, error) {
	key := repo + "//" + pkg
	l.mu.Lock()
	e, ok := l.packages[key]
	if ok {
		l.mu.Unlock()
		<-e.ready
		return e.pkg, e.err
	}
	e = &pkgEntry{ready: make(chan struct{})}
	l.packages[key] = e
	l.mu.Unlock()
	e.pkg, e.classes, e.emptyGlobs, e.err = l.loadPackage(repo, pkg)
	close(e.ready)
	return e.pkg, e.err
}

// EmptyGlobs returns the glob() calls of the BUILD file of pkg that matched
// no file without saying allow_empty, in the order they ran. The package
// must have been loaded (Package).
func (l *Loader) EmptyGlobs(pkg string) []EmptyGlob {
	l.mu.Lock()
	e, ok := l.packages["//"+pkg]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	<-e.ready
	return e.emptyGlobs
}

// LoadedPackages returns the packages of the workspace loaded so far
// without error, in no particular order, without waiting for those still
// loading (shell completion keeps an index of their target names).
func (l *Loader) LoadedPackages() []*graph.Package {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*graph.Package
	for _, e := range l.packages {
		select {
		case <-e.ready:
			if e.err == nil && e.pkg != nil && e.pkg.Repo == "" {
				out = append(out, e.pkg)
			}
		default:
		}
	}
	return out
}

// buildFile returns the workspace-relative path of pkg's BUILD file, or "".
func (l *Loader) buildFile(pkg string) string {
	l.dependNoStat(pkg)
	for _, n := range buildFileNames {
		rel := path.Join(pkg, n)
		if fi, err := os.Stat(filepath.Join(l.root, filepath.FromSlash(rel))); err == nil && !fi.IsDir() {
			return rel
		}
	}
	return ""
}

func (l *Loader) loadPackage(repo, pkg string) (*graph.Package, ruleClasses, []EmptyGlob, error) {
	if repo != "" {
		return nil, ruleClasses{}, nil, &graph.NoSuchPackageError{Pkg: "@" + repo + "//" + pkg + " (repository @" + repo + " holds rule files only)"}
	}
	bf := l.buildFile(pkg)
	if bf == "" {
		return nil, ruleClasses{}, nil, &graph.NoSuchPackageError{Pkg: pkg, Suggestion: l.suggestPackage(pkg)}
	}
	l.depend(bf)
	src, err := os.ReadFile(filepath.Join(l.root, filepath.FromSlash(bf)))
	if err != nil {
		return nil, ruleClasses{}, nil, fmt.Errorf("reading %s: %w", bf, err)
	}
	fileLabel := graph.Label{Pkg: pkg, Name: path.Base(bf)}
	entry := &loadEntry{label: fileLabel, ready: make(chan struct{})}
	b := newPkgBuilder(l, pkg, bf)
	b.pipelined = true
	thread := l.newThread(bf, fileLabel, entry)
	thread.SetLocal(localPkg, b)
	run := func(thread *starlark.Thread, b *pkgBuilder) (queueErr bool, err error) {
		_, err = starlark.ExecFileOptions(fileOptions, thread, bf, src, buildPredeclared)
		return b.stopQueue() != nil, err
	}
	err = l.interruptible(thread, "loading package //"+pkg+" ("+bf+")", func() error {
		queueErr, err := run(thread, b)
		if !queueErr {
			return err
		}
		if l.ctx.Err() != nil {
			// Interrupted: the package is wrong, even when the file
			// itself ran to its end before the interrupt.
			if err == nil {
				err = l.ctx.Err()
			}
			return err
		}
		// A rule the queue declared is wrong, and the run stopped at some
		// point after it: run the file again without a queue, for the
		// error, position and backtrace of a run without one. The file
		// does the same again up to there, but does not print again.
		quiet := b.printed
		b = newPkgBuilder(l, pkg, bf)
		b.quiet = quiet
		entry.loads = nil
		thread := l.newThread(bf, fileLabel, entry)
		thread.SetLocal(localPkg, b)
		defer context.AfterFunc(l.ctx, func() { thread.Cancel("interrupted") })()
		_, err = run(thread, b)
		return err
	})
	close(entry.ready)
	if l.interrupted(err) {
		return nil, ruleClasses{}, nil, err
	}
	if err != nil {
		return nil, ruleClasses{}, nil, formatError(err)
	}
	p, err := b.finish(entry.loads)
	if err != nil {
		return nil, ruleClasses{}, nil, err
	}
	for _, f := range p.ReadFiles {
		l.depend(f)
	}
	return p, b.classes, b.emptyGlobs, nil
}

// loadFromThread implements load(): module is a label, relative to the
// loading file's package.
func (l *Loader) loadFromThread(thread *starlark.Thread, module string) (starlark.StringDict, error) {
	from := thread.Local(localFile).(graph.Label)
	cur := thread.Local(localEntry).(*loadEntry)
	lbl, err := graph.ParseRelativeIn(module, from.Repo, from.Pkg)
	if err != nil {
		return nil, fmt.Errorf("load(%q): %v", module, err)
	}
	if ext := path.Ext(lbl.Name); ext != ".star" && ext != ".bzl" {
		return nil, fmt.Errorf("load(%q): only .star and .bzl files can be loaded", module)
	}
	e, err := l.module(lbl, cur)
	if err != nil {
		return nil, err
	}
	// Record the load (and what it loads) on the loading file, for loadfiles()/buildfiles().
	cur.loads = mergeLabels(cur.loads, append([]graph.Label{lbl}, e.loads...))
	return e.globals, nil
}

func mergeLabels(a, b []graph.Label) []graph.Label {
	seen := make(map[graph.Label]bool, len(a)+len(b))
	var out []graph.Label
	for _, x := range append(append([]graph.Label{}, a...), b...) {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// module evaluates the .star file lbl once; cur is the file asking for it.
func (l *Loader) module(lbl graph.Label, cur *loadEntry) (*loadEntry, error) {
	l.mu.Lock()
	e, ok := l.modules[lbl]
	if ok {
		// Before waiting, follow what e waits on: reaching cur is a cycle.
		var chain []string
		for x := e; x != nil; x = x.waitingFor {
			chain = append(chain, x.label.String())
			if x == cur {
				l.mu.Unlock()
				return nil, fmt.Errorf("load cycle: %s -> %s", cur.label, strings.Join(chain, " -> "))
			}
		}
		cur.waitingFor = e
		l.mu.Unlock()
		<-e.ready
		l.mu.Lock()
		cur.waitingFor = nil
		l.mu.Unlock()
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	}
	e = &loadEntry{label: lbl, ready: make(chan struct{})}
	l.modules[lbl] = e
	cur.waitingFor = e
	l.mu.Unlock()

	e.globals, e.err = l.execModule(lbl, e)
	close(e.ready)
	l.mu.Lock()
	cur.waitingFor = nil
	l.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

func (l *Loader) readSource(lbl graph.Label) ([]byte, string, error) {
	if lbl.Repo == BuiltinRepo {
		name := lbl.Name
		if lbl.Pkg != "rules" {
			return nil, "", fmt.Errorf("no such file %s: the built-in library lives in @hepbuild//rules", lbl)
		}
		src, err := fs.ReadFile(rules.FS, name)
		if err != nil {
			return nil, "", fmt.Errorf("no such file %s in the built-in rule library", lbl)
		}
		return src, lbl.String(), nil
	}
	if lbl.Repo != "" {
		return nil, "", fmt.Errorf("unknown repository @%s (external repositories are not supported)", lbl.Repo)
	}
	rel := lbl.Path()
	l.depend(rel)
	src, err := os.ReadFile(filepath.Join(l.root, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("file %s does not exist", rel)
		}
		return nil, "", err
	}
	return src, rel, nil
}

func (l *Loader) execModule(lbl graph.Label, e *loadEntry) (starlark.StringDict, error) {
	src, filename, err := l.readSource(lbl)
	if err != nil {
		return nil, err
	}
	thread := l.newThread(filename, lbl, e)
	var globals starlark.StringDict
	err = l.interruptible(thread, "loading "+lbl.String(), func() error {
		var err error
		globals, err = starlark.ExecFileOptions(fileOptions, thread, filename, src, starPredeclared)
		return err
	})
	if l.interrupted(err) {
		return nil, err
	}
	if err != nil {
		return nil, formatError(err)
	}
	nameExports(globals)
	globals.Freeze()
	return globals, nil
}

// PackagesBeneath implements graph.PackageSource.
func (l *Loader) PackagesBeneath(repo, prefix string) ([]string, error) {
	if repo != "" {
		return nil, nil
	}
	start := filepath.Join(l.root, filepath.FromSlash(prefix))
	var out []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != start && (strings.HasPrefix(name, ".") || name == "hepbuild-out") {
			return filepath.SkipDir
		}
		if rel, err := filepath.Rel(l.root, p); err == nil {
			l.dependNoStat(filepath.ToSlash(rel))
		}
		// A folder with its own WORKSPACE.hep is another workspace, not a package of this one.
		if p != l.root {
			if _, err := os.Stat(filepath.Join(p, WorkspaceFile)); err == nil {
				return filepath.SkipDir
			}
		}
		rel, _ := filepath.Rel(l.root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if rel == "" && prefix != "" {
			return nil
		}
		if l.buildFile(rel) != "" {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &graph.NoSuchPackageError{Pkg: prefix, Suggestion: l.suggestPackage(prefix)}
		}
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

func (l *Loader) suggestPackage(pkg string) string {
	all, err := l.PackagesBeneath("", "")
	if err != nil {
		return ""
	}
	return graph.Suggest(pkg, all)
}

// Target returns the target named by lbl: a declared target, or an existing
// source file of the package (hepbuild, unlike Bazel, does not require
// exports_files for files used from another package).
func (l *Loader) Target(lbl graph.Label) (*graph.Target, error) {
	p, err := l.Package(lbl.Repo, lbl.Pkg)
	if err != nil {
		return nil, err
	}
	if t := p.Targets[lbl.Name]; t != nil {
		return t, nil
	}
	l.mu.Lock()
	t := l.files[lbl]
	l.mu.Unlock()
	if t != nil {
		return t, nil
	}
	full := filepath.Join(l.root, filepath.FromSlash(lbl.Path()))
	l.dependNoStat(lbl.Path())
	if _, err := os.Stat(full); err == nil {
		if sub := l.subpackageOf(lbl); sub != "" {
			return nil, fmt.Errorf("label %s crosses into package %s: use //%s:%s", lbl, sub, sub, strings.TrimPrefix(lbl.Path(), sub+"/"))
		}
		t = &graph.Target{Label: lbl, Pos: graph.Pos{File: lbl.Path()}}
		l.mu.Lock()
		if prev := l.files[lbl]; prev != nil {
			t = prev
		} else {
			l.files[lbl] = t
		}
		l.mu.Unlock()
		return t, nil
	}
	names := make([]string, 0, len(p.Targets))
	for n := range p.Targets {
		names = append(names, n)
	}
	return nil, &graph.NoSuchTargetError{Label: lbl, Suggestion: suggestLabel(lbl, graph.Suggest(lbl.Name, names))}
}

func suggestLabel(l graph.Label, name string) string {
	if name == "" {
		return ""
	}
	return graph.Label{Repo: l.Repo, Pkg: l.Pkg, Name: name}.String()
}

// subpackageOf returns the sub-package of lbl's package that contains the file, or "".
func (l *Loader) subpackageOf(lbl graph.Label) string {
	dir := path.Dir(lbl.Name)
	for dir != "." && dir != "/" {
		p := path.Join(lbl.Pkg, dir)
		if l.buildFile(p) != "" {
			return p
		}
		dir = path.Dir(dir)
	}
	return ""
}

// ruleClassOf returns the class of the rule target t of a loaded package,
// or nil.
func (l *Loader) ruleClassOf(t *graph.Target) *ruleClass {
	l.mu.Lock()
	e := l.packages[t.Label.Repo+"//"+t.Label.Pkg]
	l.mu.Unlock()
	if e == nil {
		return nil
	}
	<-e.ready
	return e.classes.of(t)
}
