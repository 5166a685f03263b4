//go:build !linux && !darwin

package cache

import (
	"fmt"
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
