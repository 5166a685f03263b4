//go:build !linux

package disk

import (
	"io/fs"
	"os"
)

// openAnonymous: files without names are Linux's; elsewhere every result
// is a file of its own.
func openAnonymous(dir string, perm fs.FileMode) (*os.File, error) { return nil, errNoPacks }

func linkAnonymous(f *os.File, dst string) error { return errNoPacks }
