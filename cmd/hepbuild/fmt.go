package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// FmtCmd formats BUILD and .star files with the canonical BUILD style.
type FmtCmd struct {
	Check bool     `help:"Do not write: list files that need formatting and fail if there are any."`
	Files []string `arg:"" optional:"" help:"Files to format; default: every BUILD, BUILD.hep, .star and .bzl file of the workspace."`
}

// Run formats the files.
func (c *FmtCmd) Run(g *Globals, e *env) error {
	files := c.Files
	base := e.cwd
	if len(files) == 0 {
		w, err := openWorkspace(g, e)
		if err != nil {
			return err
		}
		base = w.root
		if files, err = workspaceStarlarkFiles(w.root); err != nil {
			return err
		}
	}
	var unformatted []string
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(base, f)
		}
		changed, err := formatFile(f, !c.Check)
		if err != nil {
			return &badInputError{err}
		}
		if changed {
			rel, _ := filepath.Rel(base, f)
			unformatted = append(unformatted, rel)
			if !c.Check {
				fmt.Fprintf(e.stdout, "formatted %s\n", rel)
			}
		}
	}
	if c.Check && len(unformatted) > 0 {
		for _, f := range unformatted {
			fmt.Fprintln(e.stdout, f)
		}
		return &buildFailedError{fmt.Sprintf("%d file(s) need formatting: run hepbuild fmt", len(unformatted))}
	}
	return nil
}

// workspaceStarlarkFiles lists every BUILD, BUILD.hep, WORKSPACE.hep,
// .star and .bzl file under root, outside dot-folders and hepbuild-out, in
// walk order: what fmt and lint see with no files named.
func workspaceStarlarkFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "hepbuild-out") {
			return filepath.SkipDir
		}
		if !d.IsDir() && isStarlarkFile(d.Name()) {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

func isStarlarkFile(name string) bool {
	return name == "BUILD" || name == "BUILD.hep" || name == "WORKSPACE.hep" || strings.HasSuffix(name, ".star") || strings.HasSuffix(name, ".bzl")
}

// formatFile reports whether the file needed formatting, writing it if
// asked, atomically (writeFileAtomic). A BUILD file that is a symbolic link
// (to a file shared between workspaces, say) stays a link: the file it
// points to is what gets formatted.
func formatFile(path string, write bool) (bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	out, err := hstarlark.Format(path, src)
	if err != nil {
		return false, err
	}
	if bytes.Equal(out, src) {
		return false, nil
	}
	if !write {
		return true, nil
	}
	if err := writeFileAtomic(path, out); err != nil {
		return false, fmt.Errorf("formatting %s: %w", path, err)
	}
	return true, nil
}

// writeFileAtomic replaces the content of the file at path with data: a
// temporary file beside the file's real location, with its mode, renamed
// over it, so a crash loses nothing. A file that is a symbolic link stays a
// link: the file it points to is what gets rewritten.
func writeFileAtomic(path string, data []byte) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(target)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".fmt-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), fi.Mode().Perm()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
