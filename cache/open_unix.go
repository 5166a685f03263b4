//go:build linux || darwin

package cache

import (
	"io/fs"
	"os"
	"syscall"
)

// OpenFile opens a file as os.OpenFile does, for the files the cache and
// the executor read and write by the thousand: cache entries, outputs being
// hashed, temporary files. os.OpenFile offers every file to the runtime's
// poller, which cannot wait on a regular file: setting O_NONBLOCK, the
// refused epoll_ctl and clearing O_NONBLOCK again cost four system calls
// per open, about as much as the open itself on a small VM. A file opened
// here is never in the poller (os.NewFile sees it blocking), so reads and
// writes are plain system calls, as they are for a regular file anyway.
// Use os.OpenFile for pipes, sockets and terminals.
func OpenFile(path string, flag int, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// Open opens a file for reading, as os.Open does, through OpenFile.
func Open(path string) (*os.File, error) { return OpenFile(path, os.O_RDONLY, 0) }
