package sandbox

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Without a PID namespace (the none and symlink strategies, the no-sandbox
// tag) a command can leave processes behind: a daemon that calls setsid
// leaves the process group hepbuild kills, and a double fork leaves the
// command's process tree, reparented to init. Attributing such orphans to
// the action that made them is what a PID namespace or a cgroup does; the
// one tool every kernel since 3.4 has is the child subreaper. So each such
// command runs under a reaper of its own: this binary again (see init), a
// subreaper that starts the command, waits for it, and then kills and
// reaps whatever the command left, since every orphan of the command's
// tree is reparented to it and to no other action's. (A cgroup per action
// would do the same, but needs cgroups v2 delegated to the user, which
// batch nodes and many laptops lack; the reaper works everywhere.)

// reaperArg, as the first argument, makes this binary the reaper of one
// command: the arguments after it are the command's path and argv.
const reaperArg = "__hepbuild-reaper__"

// reaperStatusFD is the reaper's descriptor of the pipe on which it tells
// the caller how the command ended: "status N" (a wait status) or
// "start MESSAGE" (the command could not be started).
const reaperStatusFD = 3

// reaperKill, sent to the reaper, kills the command and everything it
// started; SIGKILL to the reaper's group would kill the reaper first, and
// leave the orphans to no one.
const reaperKill = unix.SIGUSR1

// Like the resident sandbox, the reaper is this binary started again.
func init() {
	if len(os.Args) >= 3 && os.Args[1] == reaperArg {
		os.Exit(serveReaper(os.Args[2:]))
	}
}

// serveReaper runs args[1:] as the command, with args[0] its path, in this
// process's folder, environment and process group, and returns once the
// command and every process it left have exited.
func serveReaper(args []string) int {
	status := os.NewFile(reaperStatusFD, "status")
	fail := func(err error) int {
		fmt.Fprintf(status, "start %v", err)
		return 0
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("becoming a subreaper: %w", err))
	}
	// Nothing but the command's own descriptors reaches it.
	if err := unix.CloseRange(reaperStatusFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(fmt.Errorf("marking descriptors close-on-exec: %w", err))
	}
	// The signals hepbuild sends the command's group reach the command
	// directly; caught (not ignored: that would pass to the command), they
	// leave the reaper alive to clean up.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, reaperKill)
	go func() {
		for s := range sigs {
			if s == reaperKill {
				killChildren()
			}
		}
	}()
	pid, err := syscall.ForkExec(args[0], args[1:], &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		return fail(err)
	}
	ws := reapUntil(pid)
	// Whatever the command left is this process's child by now, or the
	// descendant of one: kill the children, reap them (which reparents
	// their children here) and repeat until none is left.
	for {
		var other unix.WaitStatus
		got, err := unix.Wait4(-1, &other, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left
			break
		}
		if got == 0 {
			killChildren()
			if _, err := unix.Wait4(-1, &other, 0, nil); err != nil && err != unix.EINTR {
				break
			}
		}
	}
	fmt.Fprintf(status, "status %d", int(ws))
	return 0
}

// killChildren sends SIGKILL to every child of this process.
func killChildren() {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok && ppid == self {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// parentOf is the parent pid from /proc/PID/stat.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...; comm may hold anything but ends at the
	// last parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// parseReaperStatus reads what the reaper said: the command's wait status,
// or why it could not start it. ok is false when the reaper said nothing
// (it was killed).
func parseReaperStatus(msg string) (ws syscall.WaitStatus, startErr string, ok bool) {
	if m, found := strings.CutPrefix(msg, "start "); found {
		return 0, m, true
	}
	if m, found := strings.CutPrefix(msg, "status "); found {
		n, err := strconv.Atoi(m)
		if err == nil {
			return syscall.WaitStatus(n), "", true
		}
	}
	return 0, "", false
}
