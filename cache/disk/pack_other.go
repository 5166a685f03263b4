//go:build !linux

package disk

import (
	"io/fs"
	"os"

	"github.com/hepbuild/hepbuild/cache"
)

// openAnonymous: files without names are Linux's; elsewhere every result
// is a file of its own.
func openAnonymous(dir string, perm fs.FileMode) (*os.File, error) { return nil, errNoPacks }

func linkAnonymous(f *os.File, dst string) error { return errNoPacks }

// onLocalFS: packs are read here (made on Linux, in a shared cache), but
// not kept open, whose safety needs to know the file system (see the
// Linux onLocalFS).
func onLocalFS(f *cache.RawFile) bool { return false }
