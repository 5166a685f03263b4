package main

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// workspace is the analysis the command runs in.
type workspace struct {
	root       string
	workingPkg string
	loader     *hstarlark.Loader
}

func openWorkspace(g *Globals, e *env) (*workspace, error) {
	dir := e.cwd
	if g.Directory != "" {
		dir = g.Directory
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(e.cwd, dir)
		}
	}
	root, pkg, err := hstarlark.FindWorkspace(dir)
	if err != nil {
		return nil, &badInputError{err}
	}
	l, err := hstarlark.NewLoaderContext(e.ctx, root, e.stderr)
	if err != nil {
		return nil, err
	}
	return &workspace{root: root, workingPkg: pkg, loader: l}, nil
}

// expand resolves command-line target patterns to targets.
func (w *workspace) expand(patterns []string) ([]*graph.Target, error) {
	if len(patterns) == 0 {
		return nil, badInput("no targets given: name one, as in `hepbuild //analysis:datacards`, or `//...` for everything")
	}
	// Targets tagged "manual" are built only when named, not through //... or :all (as in Bazel).
	named := map[graph.Label]bool{}
	for _, p := range patterns {
		pat, err := graph.ParsePattern(strings.TrimPrefix(p, "-"), w.workingPkg)
		if err != nil {
			return nil, &badInputError{err}
		}
		if pat.Kind == graph.PatternSingle && !strings.HasPrefix(p, "-") {
			named[pat.Label] = true
		}
	}
	all, err := graph.ExpandArgs(w.loader, patterns, w.workingPkg)
	if err != nil {
		return nil, err
	}
	ts := all[:0]
	for _, t := range all {
		if a, ok := t.Attr("tags"); ok && !named[t.Label] && hasString(a.Value, "manual") {
			continue
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func isLoadError(err error) bool {
	var se *hstarlark.Error
	var np *graph.NoSuchPackageError
	var nt *graph.NoSuchTargetError
	return errors.As(err, &se) || errors.As(err, &np) || errors.As(err, &nt)
}

func hasString(v any, s string) bool {
	list, _ := v.([]string)
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
