package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/cache"
)

// A disk cache is hepbuild's: Open writes a marker file into the folder
// when it creates it (or finds it empty) and refuses a folder that holds
// other files, so that a mistyped --disk-cache (a home folder, a data
// folder) is neither filled with entries nor emptied by clean --expunge.
// A cache made before the marker existed has none; a folder of the old
// layout (cacheFolder) is taken to be one of those and gets its marker when
// it is next opened for writing.

// Marker is the marker file's name.
const Marker = ".hepbuild-disk-cache"

const markerText = "hepbuild disk cache\n"

// OutputDir is the folder, in the default cache home, that holds the
// default output bases of workspaces (one sub-folder each).
const OutputDir = "output"

// environmentsDir holds software environments built for the cache's users.
const environmentsDir = "environments"

// NotOwnedError says that a folder named as the disk cache holds files
// hepbuild did not make.
type NotOwnedError = cache.NotOwnedError

// cacheEntry reports whether name is a file or folder hepbuild makes at the
// top of a disk cache folder (which is also the default home of output
// bases and software environments).
func cacheEntry(name string) bool {
	switch name {
	case casDir, acDir, acDirV1, environmentsDir, OutputDir, Marker:
		return true
	}
	return strings.HasPrefix(name, tmpPrefix)
}

// cacheFolder is what a disk cache is. output/ and environments/ are
// common names in users' own folders: an unmarked folder is taken for an
// old cache only when it also holds both of the cache's own folders, whose
// names only hepbuild uses.
var cacheFolder = cache.OwnedFolder{What: "disk cache", Marker: Marker, Known: cacheEntry,
	Dirs: []string{casDir, acDirV1}, Temporary: isMarkerTemp}

// isMarkerTemp says whether name is a marker being written (writeMarker).
func isMarkerTemp(name string) bool { return strings.HasPrefix(name, tmpPrefix+"marker-") }

// inspect says whether dir is hepbuild's disk cache: a *NotOwnedError when
// it holds anything else.
func inspect(dir string) (cache.FolderState, error) { return cacheFolder.Inspect(dir) }

// Check returns an error when dir exists and is not hepbuild's disk cache
// (a *NotOwnedError when it holds other files). It changes nothing.
func Check(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	_, err = inspect(abs)
	return err
}

// Claim makes dir, if absent, and marks it as hepbuild's disk cache when it
// is new, empty or of the old layout: before anything else is put there
// (the default output bases live below the default cache folder), so that
// the folder is known as hepbuild's from its first entry on. A folder that
// holds other files is a *NotOwnedError.
func Claim(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	st, err := inspect(abs)
	if err != nil || st == cache.FolderOwned {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	return writeMarker(abs)
}

// writeMarker marks dir as hepbuild's disk cache.
func writeMarker(dir string) error {
	p := filepath.Join(dir, Marker)
	f, err := os.CreateTemp(dir, tmpPrefix+"marker-*")
	if err != nil {
		return err
	}
	if _, err := f.WriteString(markerText); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	_ = os.Chmod(f.Name(), 0o644)
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// RemoveOptions says what Remove removes besides the cache's own entries.
type RemoveOptions struct {
	// RemoveOutputBase removes one default output base (a folder of
	// OutputDir) and returns what it kept; nil keeps them all.
	RemoveOutputBase func(dir string) (left []string, err error)
}

// RemoveReport says what Remove removed and what it kept.
type RemoveReport struct {
	// OutputBases removed from OutputDir.
	OutputBases []string
	// Kept lists what hepbuild did not make, and the output bases that
	// RemoveOutputBase did not remove, all left in place.
	Kept []string
}

// Remove removes the disk cache in dir: its entries, software environments,
// temporary files and marker, and the folder itself when that leaves it
// empty. It removes nothing from a folder that is not a hepbuild disk cache
// (*NotOwnedError) and follows no symbolic link: a link inside the cache is
// removed, never what it points to. The output bases in OutputDir go only
// through opts.RemoveOutputBase (which should remove only what hepbuild
// made); without it they are kept.
func Remove(dir string, opts RemoveOptions) (RemoveReport, error) {
	var rep RemoveReport
	abs, err := filepath.Abs(dir)
	if err != nil {
		return rep, err
	}
	st, err := inspect(abs)
	if err != nil || st == cache.FolderAbsent {
		return rep, err
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return rep, err
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(abs, name)
		switch {
		case name == Marker:
		case name == OutputDir && e.IsDir():
			bases, err := os.ReadDir(p)
			if err != nil {
				return rep, err
			}
			for _, b := range bases {
				bp := filepath.Join(p, b.Name())
				if opts.RemoveOutputBase == nil || !b.IsDir() {
					rep.Kept = append(rep.Kept, bp)
					continue
				}
				left, err := opts.RemoveOutputBase(bp)
				if err != nil {
					return rep, err
				}
				if len(left) > 0 {
					rep.Kept = append(rep.Kept, bp)
					continue
				}
				rep.OutputBases = append(rep.OutputBases, bp)
			}
			_ = os.Remove(p) // only when empty
		case cacheEntry(name):
			if err := cache.RemoveTree(p); err != nil {
				return rep, fmt.Errorf("removing disk cache %s: %w", abs, err)
			}
		default:
			rep.Kept = append(rep.Kept, p)
		}
	}
	if len(rep.Kept) > 0 {
		return rep, nil
	}
	if err := os.Remove(filepath.Join(abs, Marker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("removing disk cache %s: %w", abs, err)
	}
	if fi, err := os.Lstat(abs); err == nil && fi.IsDir() {
		_ = os.Remove(abs)
	}
	return rep, nil
}
