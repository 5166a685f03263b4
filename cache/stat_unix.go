//go:build linux || darwin

package cache

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// statFile returns the stat data of the file path names, following links.
// It avoids os.Stat's FileInfo allocation: the stat cache calls it for every
// input of every build.
// (x/sys/unix calls darwin's st_ctimespec Ctim too.)
func statFile(path string) (fileStat, error) {
	var st unix.Stat_t
	for {
		err := unix.Stat(path, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fileStat{}, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		break
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileStat{}, fmt.Errorf("%s is not a regular file", path)
	}
	return fileStat{
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
		mode:  uint32(st.Mode & 0o7777), // uint16 on darwin
	}, nil
}

// fileStatOf is statFile's data from a stat already taken (os.Stat, or
// os.Lstat of what is not a link); false when fi is not a regular file.
func fileStatOf(fi fs.FileInfo) (fileStat, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return fileStat{}, false
	}
	return fileStat{
		size:  st.Size,
		mtime: fi.ModTime().UnixNano(),
		ctime: CtimeNano(st),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
		mode:  uint32(st.Mode & 0o7777),
	}, true
}
