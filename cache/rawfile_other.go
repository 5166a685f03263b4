//go:build !linux && !darwin

package cache

import "os"

// RawFile is a file opened for reading (see rawfile_unix.go): here an
// os.File.
type RawFile = os.File

// OpenRaw opens path for reading.
func OpenRaw(path string) (*RawFile, error) { return os.Open(path) }
