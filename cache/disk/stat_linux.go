package disk

import (
	"golang.org/x/sys/unix"
)

// touchNow sets p's times to now. UTIME_NOW needs only write permission or
// ownership, so members of a shared cache's group refresh each other's entries.
// A symbolic link at p is not followed (its own times are set, if anything):
// a lookup touches an entry's name after reading it, and a member of the
// group can replace the name by a link meanwhile; what it points to is no
// file of the cache's.
func touchNow(p string) {
	now := unix.Timespec{Nsec: unix.UTIME_NOW}
	unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
}
