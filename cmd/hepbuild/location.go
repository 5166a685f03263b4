package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkOutputBase returns the output base for the workspace at root. An
// output base chosen with --output-base (or HEPBUILD_OUTPUT_BASE, or a
// .hepbuildrc line) may neither contain the workspace nor lie inside it:
// hepbuild-out links to it, builds rewrite it and clean --expunge removes
// it, so either would mix the workspace's files with build state. The
// default, under the cache home, is taken as it is even when the
// workspace holds the cache home (a workspace that is the home folder).
func (f *LocationFlags) checkOutputBase(root string) (string, error) {
	base := f.outputBase(root)
	if f.OutputBase == "" {
		return base, nil
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		return "", badInput("--output-base %s: %v", base, err)
	}
	realBase, realRoot := resolveExisting(abs), resolveExisting(root)
	switch {
	case within(realRoot, realBase):
		return "", badInput("--output-base %s: it contains the workspace %s; name a folder outside the workspace", base, root)
	case within(realBase, realRoot):
		return "", badInput("--output-base %s: it is inside the workspace %s; name a folder outside the workspace (hepbuild-out links to it)", base, root)
	}
	return abs, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolveExisting resolves the symbolic links of the longest part of p that
// exists, so that a path through a link is compared by where it leads.
func resolveExisting(p string) string {
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(p, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// isLink reports whether p is a symbolic link pointing at target.
func isLink(p, target string) bool {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return false
	}
	dest, err := os.Readlink(p)
	return err == nil && dest == target
}
