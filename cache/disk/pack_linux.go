package disk

import (
	"errors"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/hepbuild/hepbuild/cache"
)

// openAnonymous opens a new file without a name in dir (O_TMPFILE), for
// writing, with the given permissions. errNoPacks: the file system cannot.
func openAnonymous(dir string, perm fs.FileMode) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return nil, errNoPacks
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir+"/(pack)")
	// The mode asked for, whatever the umask: the entries are every
	// group member's to read.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// linkAnonymous gives the file f, made by openAnonymous, the name dst. A
// name that exists is fs.ErrExist; a file whose names were all removed
// cannot be linked again: fs.ErrNotExist.
func linkAnonymous(f *os.File, dst string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: dst, Err: err}
	}
	return nil
}

// onLocalFS says whether the open file f is on a local file system, where
// a file's inode is not freed, and its number not given to another file,
// while a descriptor of it is open. Not so on a network file system (NFS,
// CephFS, AFS, a FUSE mount; a shared cache, the folder of a file://
// remote): a pack removed from another machine is freed on the server,
// whose next file can take its number, and a name of that file would be
// read through the descriptor of the pack. Only the file systems known to
// be local are named here.
func onLocalFS(f *cache.RawFile) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.BCACHEFS_SUPER_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, zfsSuperMagic:
		return true
	}
	return false
}

// zfsSuperMagic is OpenZFS's f_type (not in x/sys/unix).
const zfsSuperMagic = 0x2fc12fc1
