package starlark

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WorkspaceFile marks the root of a workspace.
const WorkspaceFile = "WORKSPACE.hep"

// buildFileNames are the names of a package's BUILD file, in order of preference.
var buildFileNames = []string{"BUILD.hep", "BUILD"}

// FindWorkspace walks up from dir to the folder holding WORKSPACE.hep and
// returns that folder and the package path of dir relative to it.
func FindWorkspace(dir string) (root, pkg string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, WorkspaceFile)); err == nil {
			rel, _ := filepath.Rel(d, abs)
			if rel == "." {
				rel = ""
			}
			return d, filepath.ToSlash(rel), nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", err
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("%s is not inside a hepbuild workspace: no %s in it or any parent folder (create an empty %s at the analysis root, or use -C DIR)", abs, WorkspaceFile, WorkspaceFile)
		}
	}
}

// checkInside rejects a workspace-relative path that resolves, through
// symbolic links, to somewhere outside the workspace: an action must not read
// what the workspace does not hold.
func (l *Loader) checkInside(rel string) error {
	full := filepath.Join(l.root, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return fmt.Errorf("resolving %s: %v", rel, err)
	}
	root, err := l.realRoot()
	if err != nil {
		return err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return fmt.Errorf("input %s is a symbolic link to %s, outside the workspace: copy the file in, or declare it another way", rel, real)
	}
	return nil
}

// realRoot is the workspace root with symbolic links resolved, computed once.
func (l *Loader) realRoot() (string, error) {
	l.realRootOnce.Do(func() { l.realRootPath, l.realRootErr = filepath.EvalSymlinks(l.root) })
	return l.realRootPath, l.realRootErr
}
