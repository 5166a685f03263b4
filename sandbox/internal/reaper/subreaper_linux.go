package reaper

import (
	"errors"
	"syscall"
)

// Supported says whether this OS has child subreapers, without which no
// reaper can work.
const Supported = true

// BecomeSubreaper makes this process the child subreaper of its
// descendants: the orphans among them are reparented to it, not to init.
func BecomeSubreaper() error {
	const prSetChildSubreaper = 36 // linux/prctl.h
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return errors.New("becoming a subreaper: " + e.Error())
	}
	return nil
}
