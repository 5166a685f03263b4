package starlark

import "syscall"

// lstatSource says of the file at full, without following a symbolic
// link, whether it is a link, a folder, and executable by anyone. Unlike
// os.Lstat it allocates no FileInfo: a large analysis stats hundreds of
// thousands of source files, and that garbage would add to its peak.
func lstatSource(full string) (isLink, isDir, isExec bool, err error) {
	var st syscall.Stat_t
	for {
		err = syscall.Lstat(full, &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return false, false, false, err
	}
	mode := uint32(st.Mode)
	return mode&syscall.S_IFMT == syscall.S_IFLNK, mode&syscall.S_IFMT == syscall.S_IFDIR, mode&0o111 != 0, nil
}
