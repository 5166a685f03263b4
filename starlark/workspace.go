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
// what the workspace does not hold. isLink says whether rel itself is a
// symbolic link; when it is not, only its folder needs resolving, which is
// done once per folder rather than a system call per path component of
// every source file. full is rel's absolute path.
func (l *Loader) checkInside(rel, full string, isLink bool) error {
	var real string
	var err error
	if isLink {
		real, err = filepath.EvalSymlinks(full)
	} else {
		// The file is inside when its folder is: the file's own path is
		// made only for the message, as this runs for every source file.
		real, err = l.realDir(filepath.Dir(full))
	}
	if err != nil {
		return fmt.Errorf("resolving %s: %v", rel, err)
	}
	root, err := l.realRoot()
	if err != nil {
		return err
	}
	if real != root && !(strings.HasPrefix(real, root) && real[len(root)] == filepath.Separator) {
		if !isLink {
			real = filepath.Join(real, filepath.Base(full))
		}
		return fmt.Errorf("input %s is a symbolic link to %s, outside the workspace: copy the file in, or declare it another way", rel, real)
	}
	return nil
}

// realDir is the folder dir with symbolic links resolved, remembered.
func (l *Loader) realDir(dir string) (string, error) {
	l.realDirsMu.Lock()
	defer l.realDirsMu.Unlock()
	if real, ok := l.realDirs[dir]; ok {
		return real, nil
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if l.realDirs == nil {
		l.realDirs = map[string]string{}
	}
	l.realDirs[dir] = real
	return real, nil
}

// realRoot is the workspace root with symbolic links resolved, computed once.
func (l *Loader) realRoot() (string, error) {
	l.realRootOnce.Do(func() { l.realRootPath, l.realRootErr = filepath.EvalSymlinks(l.root) })
	return l.realRootPath, l.realRootErr
}
