package sandbox

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setDeathSignal has the process sent sig when the thread that started it
// exits.
func setDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) { attr.Pdeathsig = sig }

// startInCgroup starts the process in the open cgroup folder fd.
func startInCgroup(attr *syscall.SysProcAttr, fd int) {
	attr.UseCgroupFD = true
	attr.CgroupFD = fd
}

// waitExit blocks until the process has exited, leaving it a zombie.
func waitExit(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
