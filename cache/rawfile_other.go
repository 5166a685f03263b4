//go:build !linux && !darwin

package cache

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// RawFile is a file opened for reading (see rawfile_unix.go): here an
// os.File.
type RawFile = os.File

// OpenRaw opens path for reading.
func OpenRaw(path string) (*RawFile, error) { return os.Open(path) }

// OpenRawNoFollow opens path for reading unless it is a symbolic link
// (then an error that is syscall.ELOOP). Here the check and the open are
// two steps.
func OpenRawNoFollow(path string) (*RawFile, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
	}
	return os.Open(path)
}

// SameInode is os.SameFile.
func SameInode(a, b fs.FileInfo) bool { return os.SameFile(a, b) }

// DupRaw returns a second descriptor of the open file f: not here, where
// opening its name again might open another file.
func DupRaw(f *RawFile) (*RawFile, error) { return nil, errors.ErrUnsupported }
