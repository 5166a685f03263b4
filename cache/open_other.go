//go:build !linux && !darwin

package cache

import (
	"io/fs"
	"os"
)

// OpenFile opens a file as os.OpenFile does (see open_unix.go for why
// Linux and darwin differ).
func OpenFile(path string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

// Open opens a file for reading, as os.Open does.
func Open(path string) (*os.File, error) { return os.Open(path) }
