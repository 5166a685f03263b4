package sandbox

import "golang.org/x/sys/unix"

// renameNew renames src to dst where nothing is at dst, and fails
// otherwise. Renaming over a file costs more than removing it first: ext4
// then writes the new file's data out at once (its auto_da_alloc, for
// programs that replace a file by renaming a new one over it).
func renameNew(src, dst string) error {
	return unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
}
