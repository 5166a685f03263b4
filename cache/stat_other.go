//go:build !linux && !darwin

package cache

import (
	"fmt"
	"io/fs"
	"os"
)

// statFile returns the stat data of the file path names, following links.
// Elsewhere than Linux and darwin only size, mtime and mode are portable;
// the stat cache is weaker there (no ctime or inode check) but still
// follows the racy rule.
func statFile(path string) (fileStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileStat{}, fmt.Errorf("%s is not a regular file", path)
	}
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: uint32(fi.Mode().Perm())}, nil
}

// fileStatOf is statFile's data from a stat already taken (os.Stat, or
// os.Lstat of what is not a link); false when fi is not a regular file.
func fileStatOf(fi fs.FileInfo) (fileStat, bool) {
	if !fi.Mode().IsRegular() {
		return fileStat{}, false
	}
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: uint32(fi.Mode().Perm())}, true
}
