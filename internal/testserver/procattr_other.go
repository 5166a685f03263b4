//go:build !linux

package testserver

import "syscall"

// groupLeaderDyingWithParent starts a process leading its own group. There
// is no parent-death signal outside Linux: a killed test binary leaves it
// running.
func groupLeaderDyingWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
