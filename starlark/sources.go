package starlark

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
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

// sourceKind says what the workspace holds at rel (a slash path from the
// root): "file", "folder", or "" when nothing is there. It records the
// folder's listing as a dependency of loading: a source file added later
// must be noticed.
func (l *Loader) sourceKind(rel string) string {
	dir, name := path.Split(rel)
	dir = path.Clean(dir)
	v, _ := l.listings.LoadOrStore(dir, &dirListing{})
	d := v.(*dirListing)
	d.once.Do(func() {
		l.depend(dir)
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
	})
	t, ok := d.names[name]
	switch {
	case !ok:
		return ""
	case t.IsDir():
		return "folder"
	case t&fs.ModeSymlink != 0:
		// A link to a folder is a source folder to whoever reads it.
		if fi, err := os.Stat(filepath.Join(l.root, filepath.FromSlash(rel))); err == nil && fi.IsDir() {
			return "folder"
		}
	}
	return "file"
}
