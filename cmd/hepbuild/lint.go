package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// LintCmd reports buildtools' warnings and hepbuild's own checks on BUILD
// and .star files, and fixes what can be fixed automatically.
type LintCmd struct {
	Fix      bool     `help:"Apply the automatic fixes and the formatting (atomically), then report what remains."`
	Warnings string   `placeholder:"LIST" help:"Checks to run: +NAME,-NAME change the default set; NAME,NAME replace it; 'all' is every check, 'default' the default set."`
	Format   string   `enum:"text,json" default:"text" help:"Output: text (FILE:LINE:COL: CHECK: message) or json."`
	Files    []string `arg:"" optional:"" help:"Files to lint; default: every BUILD, BUILD.hep, .star and .bzl file of the workspace."`
}

// lintJSON is one finding of --format=json.
type lintJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Check   string `json:"check"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
	Fixable bool   `json:"fixable"`
}

// Run lints the files.
func (c *LintCmd) Run(g *Globals, e *env) error {
	enabled, err := lintChecks(c.Warnings)
	if err != nil {
		return err
	}
	dir := e.cwd
	if g.Directory != "" {
		dir = g.Directory
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(e.cwd, dir)
		}
	}
	// The workspace gives paths their names and hepbuild's own checks
	// their packages; files named outside any workspace still get
	// buildtools' warnings.
	w, werr := openWorkspace(g, e)
	if werr != nil && len(c.Files) == 0 {
		return werr
	}
	var files []string
	if len(c.Files) == 0 {
		if files, err = workspaceStarlarkFiles(w.root); err != nil {
			return err
		}
	} else {
		for _, f := range c.Files {
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			files = append(files, f)
		}
	}
	root := dir
	if w != nil {
		root = w.root
	}

	var findings []hstarlark.LintFinding
	var broken []string // files that do not parse or load: exit 2
	linted := map[string]*hstarlark.LintedFile{}
	fixed := 0
	for _, f := range files {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		rel := f
		if r, err := filepath.Rel(root, f); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			rel = filepath.ToSlash(r)
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return badInput("lint: %v", err)
		}
		lf, err := hstarlark.LintFile(root, rel, src, enabled, c.Fix)
		if err != nil {
			broken = append(broken, err.Error())
			continue
		}
		if c.Fix && !bytes.Equal(lf.Fixed, src) {
			if err := writeFileAtomic(f, lf.Fixed); err != nil {
				return fmt.Errorf("lint --fix: writing %s: %w", rel, err)
			}
			fixed++
			fmt.Fprintf(e.stderr, "fixed %s\n", rel)
		}
		linted[rel] = lf
		findings = append(findings, lf.Findings...)
	}

	// hepbuild's own checks, package by package, after --fix wrote its
	// files, so what is reported is what remains.
	if w != nil && ownChecksEnabled(enabled) {
		var pkgs []string
		for rel := range linted {
			if base := path.Base(rel); (base == "BUILD" || base == "BUILD.hep") && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel) && !inNestedWorkspace(w.root, rel) {
				pkgs = append(pkgs, strings.TrimPrefix(path.Dir(rel), "."))
			}
		}
		sort.Strings(pkgs)
		pkgs = slices.Compact(pkgs)
		for _, pkg := range pkgs {
			own, err := w.loader.LintPackage(pkg, enabled)
			if err != nil {
				if ctxErr := e.ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				broken = append(broken, err.Error())
				continue
			}
			for _, fd := range own {
				if lf := linted[fd.Pos.File]; lf != nil && lf.Suppressed(int(fd.Pos.Line), fd.Check) {
					continue
				}
				findings = append(findings, fd)
			}
		}
	}
	hstarlark.SortLintFindings(findings)

	if c.Format == "json" {
		out := make([]lintJSON, 0, len(findings))
		for _, fd := range findings {
			j := lintJSON{File: fd.Pos.File, Line: int(fd.Pos.Line), Col: int(fd.Pos.Col), Check: fd.Check, Message: fd.Message, Fixable: fd.Fixable}
			if !fd.Target.IsZero() {
				j.Target = fd.Target.String()
			}
			out = append(out, j)
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, fd := range findings {
			fmt.Fprintln(e.stdout, fd.String())
		}
	}

	summary := fmt.Sprintf("%d finding(s) in %d file(s)", len(findings), len(files))
	if fixable := countFixable(findings); fixable > 0 && !c.Fix {
		summary += fmt.Sprintf(", %d fixable with hepbuild lint --fix", fixable)
	}
	if c.Fix {
		summary += fmt.Sprintf("; fixed %d file(s)", fixed)
	}
	if len(broken) > 0 {
		sort.Strings(broken)
		return badInput("lint: %s; %d file(s) did not parse or load:\n%s", summary, len(broken), strings.Join(broken, "\n"))
	}
	if len(findings) > 0 {
		return &buildFailedError{"lint: " + summary}
	}
	fmt.Fprintf(e.stderr, "hepbuild lint: %s\n", summary)
	return nil
}

// lintChecksHelp ends lint --help with the default checks.
func lintChecksHelp() string {
	return "\n\nChecks on by default: " + strings.Join(hstarlark.DefaultLintChecks(), ", ") + "."
}

func countFixable(fs []hstarlark.LintFinding) int {
	n := 0
	for _, f := range fs {
		if f.Fixable {
			n++
		}
	}
	return n
}

func ownChecksEnabled(enabled map[string]bool) bool {
	return enabled[hstarlark.CheckUndeclaredInput] || enabled[hstarlark.CheckUnknownTag] || enabled[hstarlark.CheckEmptyGlob]
}

// lintChecks turns --warnings into the set of checks to run: "" or
// "default" is the default set, "all" every check; +NAME and -NAME change
// the default set, plain names replace it (buildtools' convention).
func lintChecks(spec string) (map[string]bool, error) {
	known := map[string]bool{}
	all := hstarlark.AllLintChecks()
	for _, n := range all {
		known[n] = true
	}
	enabled := map[string]bool{}
	set := func(names []string) {
		for _, n := range names {
			enabled[n] = true
		}
	}
	spec = strings.TrimSpace(spec)
	switch spec {
	case "", "default":
		set(hstarlark.DefaultLintChecks())
		return enabled, nil
	case "all":
		set(all)
		return enabled, nil
	}
	items := strings.Split(spec, ",")
	relative := strings.HasPrefix(strings.TrimSpace(items[0]), "+") || strings.HasPrefix(strings.TrimSpace(items[0]), "-")
	if relative {
		set(hstarlark.DefaultLintChecks())
	}
	for _, it := range items {
		it = strings.TrimSpace(it)
		name := strings.TrimLeft(it, "+-")
		if name == "" {
			return nil, badInput("--warnings %q: an empty name", spec)
		}
		if !known[name] {
			msg := fmt.Sprintf("--warnings %q: no check named %q", spec, name)
			if s := graph.Suggest(name, all); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, badInput("%s; hepbuild lint --help lists the checks", msg)
		}
		switch {
		case strings.HasPrefix(it, "-"):
			if !relative {
				return nil, badInput("--warnings %q: mix +NAME/-NAME (changes to the default set) or plain names (the set itself), not both", spec)
			}
			delete(enabled, name)
		case strings.HasPrefix(it, "+"):
			if !relative {
				return nil, badInput("--warnings %q: mix +NAME/-NAME (changes to the default set) or plain names (the set itself), not both", spec)
			}
			enabled[name] = true
		default:
			if relative {
				return nil, badInput("--warnings %q: mix +NAME/-NAME (changes to the default set) or plain names (the set itself), not both", spec)
			}
			enabled[name] = true
		}
	}
	return enabled, nil
}

// inNestedWorkspace reports whether the workspace file rel lies in another
// workspace below root (a folder with its own WORKSPACE.hep, such as a test
// fixture): its packages are not packages of this workspace.
func inNestedWorkspace(root, rel string) bool {
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir), hstarlark.WorkspaceFile)); err == nil {
			return true
		}
	}
	return false
}
