// Package reaper runs one command as a child subreaper and kills what the
// command leaves behind (see package sandbox, which starts it for commands
// without a PID namespace of their own). It imports only a few standard
// packages, so that the hook in its init runs before the initialisation
// of the rest of the binary (protocol buffers, the Starlark interpreter,
// the network), which costs more than the reaper's own work and would be
// paid once per action.
package reaper

import (
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
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
//
// Usually the reaper is a resident one, which runs command after command
// (see package sandbox, runProcess) and uses KillLeftovers; this reaper of
// one command is what runs a command when no resident one can.

// Arg, as the first argument, makes this binary the reaper of one
// command: the arguments after it are the command's path and argv.
const Arg = "__hepbuild-reaper__"

// StatusFD is the reaper's descriptor of the pipe on which it tells
// the caller how the command ended: "status N" (a wait status) or
// "start MESSAGE" (the command could not be started).
const StatusFD = 3

// Kill, sent to the reaper, kills the command and everything it
// started; SIGKILL to the reaper's group would kill the reaper first, and
// leave the orphans to no one.
const Kill = syscall.SIGUSR1

// Like the resident sandbox, the reaper is this binary started again.
func init() {
	if len(os.Args) >= 3 && os.Args[1] == Arg {
		os.Exit(serve(os.Args[2:]))
	}
}

// serve runs args[1:] as the command, with args[0] its path, in this
// process's folder, environment and process group, and returns once the
// command and every process it left have exited.
func serve(args []string) int {
	status := os.NewFile(StatusFD, "status")
	fail := func(err error) int {
		status.WriteString("start " + err.Error())
		return 0
	}
	if err := BecomeSubreaper(); err != nil {
		return fail(err)
	}
	// Nothing but the command's own descriptors reaches it: os/exec gave
	// this process those and the status pipe alone.
	syscall.CloseOnExec(StatusFD)
	// The signals hepbuild sends the command's group reach the command
	// directly; caught (not ignored: that would pass to the command), they
	// leave the reaper alive to clean up.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, Kill)
	go func() {
		for s := range sigs {
			if s == Kill {
				KillChildren()
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
	KillLeftovers()
	status.WriteString("status " + strconv.Itoa(int(ws)))
	return 0
}

// KillLeftovers kills and reaps every process a subreaper's commands
// left: whatever a command left is the subreaper's child once the command
// has exited, or the descendant of one; so it kills the children, reaps
// them (which reparents their children to it) and repeats until none is
// left. Usually none is, and that takes one system call.
func KillLeftovers() {
	for {
		var other syscall.WaitStatus
		got, err := syscall.Wait4(-1, &other, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left
			return
		}
		if got == 0 {
			KillChildren()
			if _, err := syscall.Wait4(-1, &other, 0, nil); err != nil && err != syscall.EINTR {
				return
			}
		}
	}
}

// KillChildren sends SIGKILL to every child of this process: it scans
// /proc for them, since kill(-1) outside a PID namespace of its own would
// reach every process of the user.
func KillChildren() {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok && ppid == self {
			_ = syscall.Kill(pid, syscall.SIGKILL)
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

// ParseStatus reads what the reaper said: the command's wait status,
// or why it could not start it. ok is false when the reaper said nothing
// (it was killed).
func ParseStatus(msg string) (ws syscall.WaitStatus, startErr string, ok bool) {
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

// reapUntil reaps children, orphans included, until pid has exited, and
// returns its status.
func reapUntil(pid int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || got == pid {
			return ws
		}
	}
}
