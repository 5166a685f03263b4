package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// The template of a new workspace. Its files end in .tmpl so that this
// repository's own workspace sees no BUILD or WORKSPACE.hep in them.
//
//go:embed inittemplate
var initTemplate embed.FS

// initFiles are the files init writes: where, from which template file, and
// what the summary says of each.
var initFiles = []struct{ path, from, what string }{
	{"WORKSPACE.hep", "WORKSPACE.hep.tmpl", "the workspace root"},
	{"BUILD", "BUILD.tmpl", "the task //:select, a selection over data/events.csv"},
	{"data/events.csv", "events.csv.tmpl", "ten toy events"},
	{".hepbuildrc", "hepbuildrc.tmpl", "the most useful settings, commented out"},
	{".gitignore", "gitignore.tmpl", "leaves hepbuild-out out of git"},
}

// initTarget is the template's one task, the first thing to build.
const initTarget = "//:select"

// InitCmd starts a new analysis workspace.
type InitCmd struct {
	Name string `name:"name" placeholder:"NAME" help:"The workspace's name, for workspace(name = ...) (default: the folder's name, made into letters, digits and _)."`
	Dir  string `arg:"" optional:"" name:"dir" help:"The folder of the new workspace, created when missing (default: the current folder)."`
}

// Run writes the template into the folder, all of it or, when any of its
// files exists already, nothing.
func (c *InitCmd) Run(g *Globals, e *env) error {
	base := e.cwd
	if g.Directory != "" {
		base = resolveDir(e.cwd, g.Directory)
	}
	dir := c.Dir
	if dir == "" {
		dir = "."
	}
	abs := filepath.Clean(resolveDir(base, dir))
	name := c.Name
	if name == "" {
		name = workspaceNameFor(filepath.Base(abs))
	} else if !validWorkspaceName.MatchString(name) {
		return badInput("--name %q: a workspace name starts with a letter and holds only letters, digits, _, - and .", name)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return badInput("init: %s is not a folder", abs)
	}
	contents := make([][]byte, len(initFiles))
	var exist []string
	for i, f := range initFiles {
		b, err := renderInitFile(f.from, name)
		if err != nil {
			return err
		}
		contents[i] = b
		if _, err := os.Lstat(filepath.Join(abs, filepath.FromSlash(f.path))); err == nil {
			exist = append(exist, f.path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if len(exist) > 0 {
		return badInput("init: %s already has %s; init writes nothing into a folder that has any of its files",
			abs, strings.Join(exist, ", "))
	}
	// A folder inside a workspace becomes a nested workspace, which the
	// outer one no longer sees: allowed, as in Bazel, but seldom what
	// someone who meant to add a package wants.
	if outer, _, err := hstarlark.FindWorkspace(filepath.Dir(abs)); err == nil {
		fmt.Fprintf(e.stderr, "WARNING: %s is inside the workspace %s: it becomes a nested workspace, which %s's //... and glob no longer enter (as in Bazel). For a new package of %s, write a BUILD file there instead.\n",
			abs, outer, outer, outer)
	}
	var written []string
	for i, f := range initFiles {
		p := filepath.Join(abs, filepath.FromSlash(f.path))
		if err := writeNewFile(p, contents[i]); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			if errors.Is(err, fs.ErrExist) {
				return badInput("init: %s was created while init ran; wrote nothing", p)
			}
			return fmt.Errorf("init: %w", err)
		}
		written = append(written, p)
	}
	fmt.Fprintf(e.stdout, "Created the workspace %q in %s:\n", name, abs)
	for _, f := range initFiles {
		fmt.Fprintf(e.stdout, "  %-16s %s\n", f.path, f.what)
	}
	next := "hepbuild " + initTarget
	if rel, err := filepath.Rel(e.cwd, abs); err != nil || rel != "." {
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = abs
		}
		next = "cd " + shellQuote(rel) + " && " + next
	}
	fmt.Fprintf(e.stdout, "Next: %s\n", next)
	return nil
}

// validWorkspaceName is what Bazel accepts as a workspace name.
var validWorkspaceName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

var notNameChars = regexp.MustCompile(`[^a-z0-9]+`)

// workspaceNameFor makes a folder's name into a workspace name: lower
// case, runs of other characters as one _, starting with a letter
// ("My Analysis (2024)" is my_analysis_2024, "2024-tth" is ws_2024_tth).
func workspaceNameFor(folder string) string {
	n := strings.Trim(notNameChars.ReplaceAllString(strings.ToLower(folder), "_"), "_")
	switch {
	case n == "":
		return "analysis"
	case n[0] >= '0' && n[0] <= '9':
		return "ws_" + n
	}
	return n
}

func renderInitFile(from, name string) ([]byte, error) {
	t, err := template.ParseFS(initTemplate, "inittemplate/"+from)
	if err != nil {
		return nil, fmt.Errorf("init template %s: %w", from, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ Name string }{name}); err != nil {
		return nil, fmt.Errorf("init template %s: %w", from, err)
	}
	return b.Bytes(), nil
}

// writeNewFile writes data to a temporary file beside path and links it to
// path, which fails when path exists: a file created since it was checked
// is not overwritten either. Where the file system has no hard links the
// temporary file is renamed instead.
func writeNewFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".init-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	err = os.Link(tmp.Name(), path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(path); serr == nil {
		return fs.ErrExist
	}
	return os.Rename(tmp.Name(), path)
}

var plainPath = regexp.MustCompile(`^[A-Za-z0-9_./+-]+$`)

// shellQuote quotes s for a shell when it holds more than a path's usual characters.
func shellQuote(s string) string {
	if plainPath.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
