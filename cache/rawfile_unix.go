//go:build linux || darwin

package cache

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// RawFile is a file opened for reading with plain system calls: no
// os.File, whose every open also asks the kernel for the descriptor's
// flags, and no finalizer. The cache and the executor read entries and
// blobs through it by the thousand. Close it exactly once.
type RawFile struct {
	fd   int
	path string
}

// OpenRaw opens path for reading. The open never waits: a FIFO or a
// device planted where a file should be opens at once, and reading it
// fails instead of blocking; callers check what Stat says it is.
func OpenRaw(path string) (*RawFile, error) { return openRaw(path, 0) }

// OpenRawNoFollow is OpenRaw for a path that must not be a symbolic link:
// one fails with an error that is syscall.ELOOP (errors.Is), and nothing
// it points to is opened.
func OpenRawNoFollow(path string) (*RawFile, error) { return openRaw(path, syscall.O_NOFOLLOW) }

func openRaw(path string, flag int) (*RawFile, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|flag, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return &RawFile{fd: fd, path: path}, nil
	}
}

// Read reads as os.File.Read does: io.EOF at the end.
func (f *RawFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.path, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// Stat returns the stat of the open file.
func (f *RawFile) Stat() (fs.FileInfo, error) {
	fi := &rawInfo{name: filepath.Base(f.path)}
	for {
		err := syscall.Fstat(f.fd, &fi.st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "fstat", Path: f.path, Err: err}
		}
		return fi, nil
	}
}

// Fd returns the descriptor, as os.File's Fd does: valid until Close.
func (f *RawFile) Fd() uintptr { return uintptr(f.fd) }

// Close closes the descriptor.
func (f *RawFile) Close() error {
	if err := syscall.Close(f.fd); err != nil {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// rawInfo is an fs.FileInfo of a syscall.Stat_t, as os.Stat's: Sys
// returns the *syscall.Stat_t. os.SameFile does not know it: compare
// device and inode through Sys.
type rawInfo struct {
	name string
	st   syscall.Stat_t
}

func (fi *rawInfo) Name() string       { return fi.name }
func (fi *rawInfo) Size() int64        { return fi.st.Size }
func (fi *rawInfo) ModTime() time.Time { return time.Unix(0, mtimeNano(&fi.st)) }
func (fi *rawInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *rawInfo) Sys() any           { return &fi.st }

func (fi *rawInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	}
	if fi.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// SameInode is os.SameFile for any FileInfo whose Sys is a
// *syscall.Stat_t, a RawFile's stat included.
func SameInode(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return os.SameFile(a, b)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// ReadAt reads as os.File.ReadAt does: len(b) bytes from off, or io.EOF.
func (f *RawFile) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := syscall.Pread(f.fd, b[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "pread", Path: f.path, Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// DupRaw returns a second descriptor of the open file f, to be closed on
// its own.
func DupRaw(f *RawFile) (*RawFile, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(f.fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, &os.PathError{Op: "fcntl", Path: f.path, Err: errno}
	}
	return &RawFile{fd: int(fd), path: f.path}, nil
}
