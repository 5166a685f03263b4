package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// targetKind says which targets of a package a command's arguments name.
type targetKind uint8

const (
	kindRule targetKind = 1 << iota
	kindGenerated
	kindSource

	ruleKinds   = kindRule                 // run: a program to run
	targetKinds = kindRule | kindGenerated // build and the like
	allKinds    = kindRule | kindGenerated | kindSource
)

// completionIndexDir is the folder of the output base holding, per
// package, the names of its targets and what they were read from
// (completionIndex). Its version is in its name, so that a change of the
// format makes old indexes unread rather than misread.
const completionIndexDir = exec.CompletionIndexDir

// completionLoadTimeout bounds the loading of a package whose index is
// missing or stale: a BUILD file that loops must not hang the prompt.
const completionLoadTimeout = 2 * time.Second

// findWorkspaceQuietly is FindWorkspace, for completion (which never says why).
func findWorkspaceQuietly(dir string) (root, pkg string, err error) {
	return hstarlark.FindWorkspace(dir)
}

// labels completes a target label or pattern: package paths ("//a/b:",
// "//a/", "//a/..."), targets of a package ("//a/b:name"), and relative
// labels in the package of dir (":name", "name", "sub:name", "sub/").
func (c *completer) labels(dir, word string, kinds targetKind) []string {
	if strings.HasPrefix(word, "@") || strings.HasPrefix(word, "-") {
		return nil
	}
	root, working, err := findWorkspaceQuietly(dir)
	if err != nil {
		return nil
	}
	if word == "/" {
		word = "//" // on the way to an absolute label
	}
	abs := strings.HasPrefix(word, "//")
	rest, base := word, ""
	if abs {
		rest, base = word[2:], "//"
	}
	resolve := func(p string) string {
		if abs {
			return p
		}
		return path.Join(working, p)
	}
	var out []string
	if pkgPart, name, ok := strings.Cut(rest, ":"); ok {
		pkg := resolve(pkgPart)
		if !isPackageDir(root, pkg) {
			return nil
		}
		names, loaded := c.targetNames(root, pkg, kinds, name)
		for _, n := range names {
			out = append(out, base+pkgPart+":"+n)
		}
		if loaded && kinds != ruleKinds && strings.HasPrefix("all", name) {
			out = append(out, base+pkgPart+":all")
		}
		return out
	}
	dirPart, last := "", rest
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		dirPart, last = rest[:i+1], rest[i+1:]
	}
	parent := resolve(strings.TrimSuffix(dirPart, "/"))
	entries, _ := os.ReadDir(filepath.Join(root, filepath.FromSlash(parent)))
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, last) || skippedDir(root, path.Join(parent, name), name) {
			continue
		}
		p := path.Join(parent, name)
		if isPackageDir(root, p) {
			out = append(out, base+dirPart+name+":")
		}
		if hasPackageBelow(root, p) {
			out = append(out, base+dirPart+name+"/")
		}
	}
	if kinds != ruleKinds && strings.HasPrefix("...", last) {
		out = append(out, base+dirPart+"...")
	}
	if abs && dirPart == "" && last == "" && isPackageDir(root, "") {
		out = append(out, "//:")
	}
	if !abs && dirPart == "" {
		// A bare name is a target of the package of the current folder.
		names, _ := c.targetNames(root, working, kinds, last)
		out = append(out, names...)
	}
	return out
}

// skippedDir says whether a folder is no place for packages: hidden, the
// output tree, or another workspace.
func skippedDir(root, rel, name string) bool {
	if strings.HasPrefix(name, ".") || name == exec.OutDir {
		return true
	}
	_, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel), hstarlark.WorkspaceFile))
	return err == nil
}

func isPackageDir(root, pkg string) bool {
	for _, n := range []string{"BUILD.hep", "BUILD"} {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(pkg), n)); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// hasPackageBelow says whether a package lies strictly beneath pkg. It
// looks at no more than a few hundred folders (a folder of data files
// can hold thousands); beyond, it answers yes.
func hasPackageBelow(root, pkg string) bool {
	queue := []string{pkg}
	for budget := 300; len(queue) > 0; budget-- {
		if budget == 0 {
			return true
		}
		d := queue[0]
		queue = queue[1:]
		entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil {
			continue
		}
		for _, e := range entries {
			p := path.Join(d, e.Name())
			if !e.IsDir() || skippedDir(root, p, e.Name()) {
				continue
			}
			if isPackageDir(root, p) {
				return true
			}
			queue = append(queue, p)
		}
	}
	return false
}

// targetNames returns the names of the targets of pkg of the given kinds
// that start with prefix, from the package's index in the output base when
// it is current, else by loading the package (its BUILD file and the files
// it loads, nothing more) and writing the index for the next time. loaded
// says whether the package has targets at all.
func (c *completer) targetNames(root, pkg string, kinds targetKind, prefix string) (names []string, loaded bool) {
	ob := c.outputBase
	if ob == "" {
		ob = (&LocationFlags{OutputBase: pathValue(os.Getenv("HEPBUILD_OUTPUT_BASE"))}).outputBase(root)
	}
	// Only the matching names become strings: the peer workload's package
	// has 45,331 targets, and a Tab must not pay for each.
	pre := []byte(prefix)
	idx, err := readCompletionIndex(ob, root, pkg, func(k targetKind, name []byte) bool {
		return k&kinds != 0 && bytes.HasPrefix(name, pre)
	})
	if err != nil {
		idx, err = loadCompletionIndex(root, pkg)
		if err != nil {
			return nil, false
		}
		// Without an index, the next Tab loads the package again: slower,
		// never wrong, so a failure to write it is not reported.
		_ = writeCompletionIndex(ob, root, idx)
	}
	for _, t := range idx.targets {
		if t.kind&kinds != 0 && strings.HasPrefix(t.name, prefix) {
			names = append(names, t.name)
		}
	}
	return names, idx.count > 0
}

// completionIndex is what completion knows of one package: its targets,
// and every file and folder loading it read, with their size and
// modification time, so that a change to any of them is seen.
type completionIndex struct {
	pkg     string
	deps    []indexDep
	targets []indexTarget
	count   int // of targets, kept or not (readCompletionIndex)
}

type indexDep struct {
	path        string // workspace-relative
	size, mtime int64  // -1, -1 for a path that did not exist
}

type indexTarget struct {
	kind targetKind
	name string
}

const completionIndexHeader = "hepbuild completion index v1"

func fingerprint(root, rel string) indexDep {
	fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return indexDep{rel, -1, -1}
	}
	return indexDep{rel, fi.Size(), fi.ModTime().UnixNano()}
}

func completionIndexPath(ob, pkg string) string {
	sum := sha256.Sum256([]byte(pkg))
	return filepath.Join(ob, completionIndexDir, hex.EncodeToString(sum[:8]))
}

// loadCompletionIndex loads pkg with a loader of its own and records what
// it read. A package whose BUILD file fails to load has an index without
// targets, so that Tab after Tab does not evaluate it again until it
// changes; a load cut short by the timeout has none.
func loadCompletionIndex(root, pkg string) (*completionIndex, error) {
	ctx, cancel := context.WithTimeout(context.Background(), completionLoadTimeout)
	defer cancel()
	l, err := hstarlark.NewLoaderContext(ctx, root, io.Discard)
	if err != nil {
		return nil, err
	}
	p, err := l.Package("", pkg)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	idx := &completionIndex{pkg: pkg}
	for _, d := range l.Dependencies() {
		idx.deps = append(idx.deps, fingerprint(root, d))
	}
	if err == nil {
		idx.targets = packageTargets(p)
		idx.count = len(idx.targets)
	} else if !isLoadError(err) {
		return nil, err
	}
	return idx, nil
}

// packageTargets lists the targets of a loaded package with their kinds.
func packageTargets(p *graph.Package) []indexTarget {
	out := make([]indexTarget, 0, len(p.Order))
	for _, name := range p.Order {
		t := p.Targets[name]
		if t == nil {
			continue
		}
		k := kindSource
		switch {
		case t.IsRule():
			k = kindRule
		case t.Generator != nil:
			k = kindGenerated
		}
		out = append(out, indexTarget{k, name})
	}
	return out
}

// readCompletionIndex reads pkg's index and checks that nothing it was
// made from changed; an error means there is none to trust. It keeps the
// targets keep accepts (all when keep is nil).
func readCompletionIndex(ob, root, pkg string, keep func(targetKind, []byte) bool) (*completionIndex, error) {
	data, err := os.ReadFile(completionIndexPath(ob, pkg))
	if err != nil {
		return nil, err
	}
	header, rest, _ := bytes.Cut(data, []byte("\n"))
	if string(header) != completionIndexHeader+" "+strconv.Quote(pkg) {
		return nil, errors.New("completion index of another package or format")
	}
	idx := &completionIndex{pkg: pkg}
	inTargets := false
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, errors.New("truncated completion index")
		}
		line := rest[:i]
		rest = rest[i+1:]
		if !inTargets {
			if string(line) == "--" {
				inTargets = true
				continue
			}
			f := strings.SplitN(string(line), " ", 3)
			if len(f) != 3 {
				return nil, errors.New("malformed completion index")
			}
			size, err1 := strconv.ParseInt(f[0], 10, 64)
			mtime, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, errors.New("malformed completion index")
			}
			if fingerprint(root, f[2]) != (indexDep{f[2], size, mtime}) {
				return nil, fmt.Errorf("%s changed", f[2])
			}
			continue
		}
		if len(line) < 3 || line[0] < '1' || line[0] > '7' || line[1] != ' ' {
			return nil, errors.New("malformed completion index")
		}
		idx.count++
		k, name := targetKind(line[0]-'0'), line[2:]
		if keep == nil || keep(k, name) {
			idx.targets = append(idx.targets, indexTarget{k, string(name)})
		}
	}
	if !inTargets {
		return nil, errors.New("truncated completion index")
	}
	return idx, nil
}

// writeCompletionIndex writes the index atomically (a temporary file
// renamed over the old one) into the output base. It never makes the
// output base: that is a build's to claim (under the cache home, which
// must get its own marker first), so before the first build every Tab on
// a label loads the package.
func writeCompletionIndex(ob, root string, idx *completionIndex) error {
	if st, err := exec.InspectOutputBase(ob); err != nil || st != exec.OutputBaseOwned {
		return fmt.Errorf("%s is not an output base yet", ob)
	}
	p := completionIndexPath(ob, idx.pkg)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// Appended, not printed: a package of tens of thousands of targets
	// is indexed after every build, and Fprintf per line cost 10 ms.
	b := make([]byte, 0, 64*(len(idx.deps)+1)+16*len(idx.targets))
	b = append(b, completionIndexHeader+" "...)
	b = strconv.AppendQuote(b, idx.pkg)
	b = append(b, '\n')
	for _, d := range idx.deps {
		b = strconv.AppendInt(b, d.size, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, d.mtime, 10)
		b = append(b, ' ')
		b = append(b, d.path...)
		b = append(b, '\n')
	}
	b = append(b, "--\n"...)
	for _, t := range idx.targets {
		b = strconv.AppendUint(b, uint64(t.kind), 10)
		b = append(b, ' ')
		b = append(b, t.name...)
		b = append(b, '\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".index-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// recordCompletionIndexes writes the index of every package the loader
// loaded, so that completion finds them current after a build or a query
// instead of loading a large package itself on the first Tab. It is best
// effort: completion loads a package whose index is missing or stale.
func recordCompletionIndexes(ob string, l *hstarlark.Loader) {
	root := l.Root()
	deps := l.Dependencies()
	for _, p := range l.LoadedPackages() {
		idx := &completionIndex{pkg: p.Name}
		files := []string{hstarlark.WorkspaceFile, p.BuildFile}
		for _, lb := range p.Loads {
			if lb.Repo == "" {
				files = append(files, path.Join(lb.Pkg, lb.Name))
			}
		}
		files = append(files, p.ReadFiles...)
		// The folders the package's globs listed: the loader records them
		// for the whole workspace, so take those in the package's folder.
		dir := p.Name
		if dir == "" {
			dir = "."
		}
		for _, d := range deps {
			if d == dir || dir == "." || strings.HasPrefix(d, p.Name+"/") {
				if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(d))); err == nil && fi.IsDir() {
					files = append(files, d)
				}
			}
		}
		for _, f := range files {
			idx.deps = append(idx.deps, fingerprint(root, f))
		}
		if indexCurrent(ob, idx) {
			continue
		}
		idx.targets = packageTargets(p)
		if writeCompletionIndex(ob, root, idx) != nil {
			return
		}
	}
}

// indexCurrent reports whether the index of idx.pkg on disk was made from
// idx.deps as they are now: then it holds what loading the package again
// gives (completion trusts it on the same terms), and a build need not
// write it again, megabytes for a large package. Not when a file it was
// made from was modified within indexRacySlop of the index's own write:
// an edit after the index was made, in the same timestamp tick, leaves
// size and mtime as the index has them. This build loaded the package as
// it is now; its index replaces that one, and once the files are older
// than the window, an index is kept.
func indexCurrent(ob string, idx *completionIndex) bool {
	f, err := os.Open(completionIndexPath(ob, idx.pkg))
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	written := fi.ModTime().UnixNano()
	for _, d := range idx.deps {
		if d.mtime >= written-int64(indexRacySlop) {
			return false
		}
	}
	r := bufio.NewReader(f)
	line := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			return "\x00" // matches no line
		}
		return l[:len(l)-1]
	}
	if line() != completionIndexHeader+" "+strconv.Quote(idx.pkg) {
		return false
	}
	for _, d := range idx.deps {
		if line() != fmt.Sprintf("%d %d %s", d.size, d.mtime, d.path) {
			return false
		}
	}
	return line() == "--"
}

// indexRacySlop is how close to an index's write a file it was made from
// may have been modified for the index to be taken as current: two seconds,
// as for whole-second timestamps elsewhere (the stat cache, build stamps).
const indexRacySlop = 2 * time.Second
