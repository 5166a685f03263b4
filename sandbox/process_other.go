//go:build !linux

package sandbox

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setDeathSignal is never called here: there is no parent-death signal
// outside Linux, and no reaper to send it to (reaper.Supported is false).
func setDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {}

// startInCgroup is never called here: cgroups are a Linux feature, so no
// launch has a cgroup folder.
func startInCgroup(attr *syscall.SysProcAttr, fd int) {}

// waitExit blocks until the process has exited, leaving it a zombie, so
// that its process group id cannot be reused before the group is killed.
// There is no waitid with WNOWAIT here; a kqueue reports the exit without
// reaping. If the kqueue fails, waitExit returns at once, and the group is
// killed with the command still running.
func waitExit(pid int) {
	kq, err := unix.Kqueue()
	if err != nil {
		return
	}
	defer unix.Close(kq)
	ev := make([]unix.Kevent_t, 1)
	unix.SetKevent(&ev[0], pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev[0].Fflags = unix.NOTE_EXIT
	for {
		// An exited (zombie) process fails the registration with ESRCH,
		// which is an answer too.
		_, err := unix.Kevent(kq, ev, ev, nil)
		if err != unix.EINTR {
			return
		}
	}
}
