package starlark

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// An output with the name of a source file would shadow that file for
// every action that reads it (both are //pkg:name), so it is an analysis
// error, as in Bazel. Each workspace folder that holds outputs is listed
// once per loader, without a stat per entry: a package's outputs are
// usually many to a folder.

// dirListing is one folder's entries, listed once.
type dirListing struct {
	once  sync.Once
	names map[string]fs.FileMode // type bits only
}

// sourceKind says what the workspace holds at name in package pkg:
// "file", "folder", or "" when nothing is there. It records the folder's
// listing as a dependency of loading: a source file added later must be
// noticed. It allocates nothing for a name in an already listed folder:
// it runs for every output of the graph.
func (l *Loader) sourceKind(pkg, name string) string {
	// The folder is keyed by package and sub-folder, not by their joined
	// path, so that looking it up allocates nothing.
	key, base := dirKey{pkg: pkg}, name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		key.sub, base = name[:i], name[i+1:]
	}
	// A map under a lock, not a sync.Map: a key boxed in an interface
	// would cost an allocation per output.
	l.listingsMu.RLock()
	d := l.listings[key]
	l.listingsMu.RUnlock()
	if d == nil {
		l.listingsMu.Lock()
		if d = l.listings[key]; d == nil {
			if l.listings == nil {
				l.listings = map[dirKey]*dirListing{}
			}
			d = &dirListing{}
			l.listings[key] = d
		}
		l.listingsMu.Unlock()
	}
	d.once.Do(func() { d.list(l, key.dir()) })
	t, ok := d.names[base]
	switch {
	case !ok:
		return ""
	case t.IsDir():
		return "folder"
	case t&fs.ModeSymlink != 0:
		// A link to a folder is a source folder to whoever reads it.
		if fi, err := os.Stat(filepath.Join(l.root, filepath.FromSlash(key.dir()), base)); err == nil && fi.IsDir() {
			return "folder"
		}
	}
	return "file"
}

// dirKey names a workspace folder: a package and a folder inside it.
type dirKey struct{ pkg, sub string }

func (k dirKey) dir() string {
	if d := path.Join(k.pkg, k.sub); d != "" {
		return d
	}
	return "."
}

func (d *dirListing) list(l *Loader, dir string) {
	l.dependNoStat(dir)
	d.names = map[string]fs.FileMode{}
	f, err := os.Open(filepath.Join(l.root, filepath.FromSlash(dir)))
	if err != nil {
		return // no folder: no source in it
	}
	defer f.Close()
	entries, _ := f.ReadDir(-1)
	for _, e := range entries {
		d.names[e.Name()] = e.Type()
	}
}
