// Package rootio writes ROOT files for the toy ttH(bb) tools so that the same content always gives
// the same bytes, and never leaves a half-written file under the final name.
//
// groot stamps every key with the wall clock and stores the path given to Create inside the file.
// Both would make an output depend on when and where it was written, which defeats a content-addressed
// cache: the clock is pinned to a constant, and the file is created under its final base name
// inside a private temporary folder next to the destination, then renamed into place.
package rootio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
	_ "unsafe" // for go:linkname

	"go-hep.org/x/hep/groot/rhist"
	"go-hep.org/x/hep/groot/riofs"
	"go-hep.org/x/hep/hbook"
	"go-hep.org/x/hep/hbook/rootcnv"
)

// nowUTC is groot's clock for key and directory timestamps. There is no option to set it, so the
// tools pin it: an output must not change with the time it was written.
//
//go:linkname nowUTC go-hep.org/x/hep/groot/riofs.nowUTC
var nowUTC func() time.Time

// Epoch is the timestamp written into every ROOT key and directory.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func init() {
	nowUTC = func() time.Time { return Epoch }
}

// chdirMu serialises Create: the file must be created under its base name, which needs the
// process's working directory for a moment.
var chdirMu sync.Mutex

// File is a ROOT file being written. Commit publishes it under its final name; Abort removes it.
// A File is not safe for concurrent use.
type File struct {
	*riofs.File
	dst    string
	tmpDir string
	done   bool
}

// Create starts writing the ROOT file path. Nothing appears at path until Commit succeeds.
func Create(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmpDir, err := os.MkdirTemp(dir, "."+base+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	f, err := createIn(tmpDir, base)
	if err != nil {
		os.RemoveAll(tmpDir)
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	return &File{File: f, dst: path, tmpDir: tmpDir}, nil
}

func createIn(dir, base string) (*riofs.File, error) {
	chdirMu.Lock()
	defer chdirMu.Unlock()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if err := os.Chdir(dir); err != nil {
		return nil, err
	}
	f, cerr := riofs.Create(base)
	if err := os.Chdir(wd); err != nil {
		// The process is now in the wrong folder; no later relative path can be trusted.
		panic(fmt.Sprintf("rootio: returning to %s: %v", wd, err))
	}
	return f, cerr
}

// Commit closes the file and renames it to its final path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("writing %s: already closed", f.dst)
	}
	f.done = true
	defer os.RemoveAll(f.tmpDir)
	if err := f.File.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", f.dst, err)
	}
	if err := os.Rename(filepath.Join(f.tmpDir, filepath.Base(f.dst)), f.dst); err != nil {
		return fmt.Errorf("writing %s: %w", f.dst, err)
	}
	return nil
}

// Abort discards the file. It is safe to call after Commit, so it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.RemoveAll(f.tmpDir)
}

// WriteHists writes the histograms to path as TH1D objects under their names (hbook annotation
// "name"), in the order given. Names must be unique and non-empty.
func WriteHists(path string, hs []*hbook.H1D) error {
	seen := make(map[string]bool)
	for _, h := range hs {
		switch name := h.Name(); {
		case name == "":
			return fmt.Errorf("writing %s: histogram without a name", path)
		case seen[name]:
			return fmt.Errorf("writing %s: two histograms named %q", path, name)
		default:
			seen[name] = true
		}
	}
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	for _, h := range hs {
		if err := f.Put(h.Name(), rootcnv.FromH1D(h)); err != nil {
			return fmt.Errorf("writing %s: histogram %s: %w", path, h.Name(), err)
		}
	}
	return f.Commit()
}

// ReadHists returns every one-dimensional histogram of the file at path, sorted by name.
func ReadHists(path string) ([]*hbook.H1D, error) {
	f, err := riofs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, unwrapGroot(err))
	}
	defer f.Close()
	var hs []*hbook.H1D
	seen := make(map[string]bool)
	for _, k := range f.Keys() {
		if seen[k.Name()] {
			continue // an older cycle of the same object
		}
		obj, err := k.Object()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %s: %w", path, k.Name(), err)
		}
		h1, ok := obj.(rhist.H1)
		if !ok {
			continue
		}
		seen[k.Name()] = true
		h := rootcnv.H1D(h1)
		h.Ann["name"] = k.Name()
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Name() < hs[j].Name() })
	return hs, nil
}

// ReadHist returns the histogram called name from the file at path.
func ReadHist(path, name string) (*hbook.H1D, error) {
	hs, err := ReadHists(path)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		if h.Name() == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("reading %s: no histogram %q", path, name)
}

// unwrapGroot drops groot's own "riofs: unable to open" prefixes when the cause is a plain
// file-system error, so the message reads like any other Go tool's.
func unwrapGroot(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
