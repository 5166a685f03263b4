package testserver

import "syscall"

// groupLeaderDyingWithParent starts a process leading its own group, killed
// when the test binary dies.
func groupLeaderDyingWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
