package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// An OwnedFolder is a kind of folder hepbuild makes and marks as its own
// (a disk cache, an output base): it writes a marker file into the folder
// when it creates it or finds it empty, and never writes into, nor removes
// anything from, a folder that holds other files and no marker. A mistyped
// --disk-cache or --output-base (a home folder, the workspace) is refused
// instead of being filled, or emptied by clean --expunge.
//
// A folder made before the marker existed has none: it is taken for one of
// hepbuild's when every entry is one hepbuild makes there (Known) and it
// also holds what only hepbuild makes there (Files, Dirs), since names like
// out/ or output/ are common in users' own folders.
type OwnedFolder struct {
	What   string // "disk cache", "output base"
	Marker string // the marker file's name
	// Known reports whether name is an entry hepbuild makes at the top of
	// such a folder.
	Known func(name string) bool
	// Files and Dirs are the entries an unmarked folder must hold, as a
	// regular file and as a folder, to be taken for an old one.
	Files, Dirs []string
	// Temporary, when set, reports whether name is a temporary file
	// hepbuild writes there (its marker before it is renamed into place):
	// a folder holding only such files is being claimed, as good as empty.
	Temporary func(name string) bool
}

func allTemporary(ents []fs.DirEntry, temporary func(string) bool) bool {
	for _, e := range ents {
		if !e.Type().IsRegular() || !temporary(e.Name()) {
			return false
		}
	}
	return true
}

// FolderState says what a folder named as an OwnedFolder is.
type FolderState int

const (
	FolderAbsent FolderState = iota // nothing there yet
	FolderEmpty                     // an empty folder, which hepbuild may claim
	FolderOwned                     // hepbuild's, with its marker
	FolderLegacy                    // hepbuild's layout without the marker
)

// NotOwnedError says that a folder named as an OwnedFolder holds files
// hepbuild did not make, or is another workspace's output base.
type NotOwnedError struct {
	Dir    string
	What   string   // "output base", "disk cache"
	Marker string   // the marker file's name
	Sample []string // a few of the entries hepbuild did not make
	// Workspace, when set, is the workspace whose output base Dir is.
	Workspace string
}

func (e *NotOwnedError) Error() string {
	if e.Workspace != "" {
		return fmt.Sprintf("%s is the output base of the workspace %s: name another folder for this one", e.Dir, e.Workspace)
	}
	return fmt.Sprintf("%s is not a hepbuild %s: it holds files hepbuild did not make (%s) and no %s marker; "+
		"hepbuild neither writes into nor removes from such a folder: name a new or empty folder",
		e.Dir, e.What, strings.Join(e.Sample, ", "), e.Marker)
}

// Inspect says what dir is: a *NotOwnedError when it holds anything but
// what hepbuild makes there, an error when it is not a folder.
func (o OwnedFolder) Inspect(dir string) (FolderState, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return FolderAbsent, nil
	}
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s exists and is not a folder", dir)
	}
	if mfi, err := os.Lstat(filepath.Join(dir, o.Marker)); err == nil && mfi.Mode().IsRegular() {
		return FolderOwned, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	if len(ents) == 0 || o.Temporary != nil && allTemporary(ents, o.Temporary) {
		// Only a marker being written: another process is making it.
		return FolderEmpty, nil
	}
	var foreign []string
	for _, e := range ents {
		if !o.Known(e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	for _, f := range o.Files {
		if fi, err := os.Lstat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
			foreign = append(foreign, "no "+f)
		}
	}
	for _, d := range o.Dirs {
		if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			foreign = append(foreign, "no "+d)
		}
	}
	if len(foreign) == 0 {
		return FolderLegacy, nil
	}
	sort.Strings(foreign)
	if len(foreign) > 3 {
		foreign = append(foreign[:3], "...")
	}
	return 0, &NotOwnedError{Dir: dir, What: o.What, Marker: o.Marker, Sample: foreign}
}

// RemoveTree removes path and everything below it, making read-only folders
// (outputs are read-only) writable first. Symbolic links are removed, never
// followed.
func RemoveTree(path string) error {
	// With a trailing slash the walk below (when RemoveAll fails) would
	// follow a symbolic link at path and make its target's folders
	// writable.
	path = filepath.Clean(path)
	// By far the usual case: a file, or nothing at all (an output about to
	// be written). One unlink settles both, where os.RemoveAll would try
	// rmdir too on a missing path. A folder is refused and removed below.
	if err := syscall.Unlink(path); err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}
