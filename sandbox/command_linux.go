package sandbox

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hepbuild/hepbuild/internal/shell"
)

// A command a helper (a reaper, a resident sandbox) started: one process,
// or the processes of a task's pipeline it took over from bash (see
// pipelineRequest).
type command struct {
	pids   []int
	pidfds []int
	// groups are the process groups to signal.
	groups []int
	// failed holds, for a stage that could not start, its exit status as
	// bash gives it (126, 127); 0 for the others.
	failed []int
	// forks says bash would have run the programs as its children (see
	// shell.Pipeline.Forks): their status is bash's, not theirs.
	forks bool
	// stderr is the script's stderr, for bash's report of a program
	// killed by a signal.
	stderr int
	text   string
	// openCPU is the CPU time in nanoseconds the helper spent opening
	// the command's redirections, which bash spends in the command's
	// processes (see startPipeline).
	openCPU int64
}

// startCommand starts what req asks for in req.Dir, with files as its
// stdin, stdout and stderr: req.Pipeline's stages when they can all be
// started as bash would start them, else req.Argv. sys gives the
// attributes of the i-th process; first is the pid of the first (0 for
// the first itself). The caller closes the pidfds (close).
func startCommand(req residentRequest, files []uintptr, sys func(i, first int) *syscall.SysProcAttr) (*command, string) {
	if req.Pipeline != nil {
		if c := startPipeline(req, files, sys); c != nil {
			return c, ""
		}
	}
	if len(req.Argv) == 0 {
		return nil, "empty command line"
	}
	path, err := lookPath(req.Argv[0], envValue(req.Env, "PATH"), req.Dir)
	if err != nil {
		return nil, err.Error()
	}
	attr := sys(0, 0)
	pidfd := -1
	attr.PidFD = &pidfd
	pid, err := syscall.ForkExec(path, req.Argv, &syscall.ProcAttr{Dir: req.Dir, Env: req.Env, Files: files, Sys: attr})
	if err != nil {
		return nil, err.Error()
	}
	return &command{pids: []int{pid}, pidfds: []int{pidfd}, groups: []int{pid}, failed: []int{0}}, ""
}

// close closes the pidfds.
func (c *command) close() {
	for _, fd := range c.pidfds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// signal sends sig to the command's process groups. Only before the
// command is reaped: until then its pids cannot have been reused.
func (c *command) signal(sig unix.Signal) {
	for _, g := range c.groups {
		_ = unix.Kill(-g, sig)
	}
}

// pollFDs are the pidfds of the processes that have not exited, for poll.
func (c *command) pollFDs(exited []bool) []unix.PollFd {
	var p []unix.PollFd
	for i, fd := range c.pidfds {
		if !exited[i] && fd >= 0 {
			p = append(p, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
	}
	return p
}

// markExited records, from a poll's results, which processes exited; it
// says whether all have.
func (c *command) markExited(exited []bool, polled []unix.PollFd) bool {
	for _, p := range polled {
		if p.Revents == 0 {
			continue
		}
		for i, fd := range c.pidfds {
			if int32(fd) == p.Fd {
				exited[i] = true
			}
		}
	}
	for i := range exited {
		if !exited[i] {
			return false
		}
	}
	return true
}

// exitedAtStart marks the stages that never started.
func (c *command) exitedAtStart() []bool {
	exited := make([]bool, len(c.pids))
	for i, pid := range c.pids {
		exited[i] = pid == 0
	}
	return exited
}

// reap reaps children, orphans included, until every process of the
// command has exited, and returns the command's wait status: the
// process's own, or bash's for a pipeline (pipefail: the last stage that
// failed decides, 128+N for signal N); and the CPU time in nanoseconds of
// the command's processes and those they waited for, with what opening
// its redirections cost.
func (c *command) reap() (unix.WaitStatus, int64) {
	statuses := make([]unix.WaitStatus, len(c.pids))
	left := 0
	for _, pid := range c.pids {
		if pid != 0 {
			left++
		}
	}
	cpu := c.openCPU
	for left > 0 {
		var ws unix.WaitStatus
		var ru unix.Rusage
		got, err := unix.Wait4(-1, &ws, 0, &ru)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break
		}
		cpu += ru.Utime.Nano() + ru.Stime.Nano()
		for i, pid := range c.pids {
			if pid == got {
				statuses[i] = ws
				left--
			}
		}
	}
	if !c.forks {
		return statuses[0], cpu
	}
	code := 0
	for i, ws := range statuses {
		switch {
		case c.pids[i] == 0:
			code = c.failed[i]
		case ws.Signaled():
			code = 128 + int(ws.Signal())
			if s := ws.Signal(); s != unix.SIGINT && s != unix.SIGPIPE {
				// As bash reports a child a signal killed.
				msg := fmt.Sprintf("hepbuild: line 1: %d %s\t%s\n", c.pids[i], signalText(s), c.text)
				_, _ = unix.Write(c.stderr, []byte(msg))
			}
		case ws.ExitStatus() != 0:
			code = ws.ExitStatus()
		}
	}
	return unix.WaitStatus(code << 8), cpu
}

// threadCPU is the calling thread's CPU time in nanoseconds. Not
// getrusage(RUSAGE_THREAD): for the running thread it leaves out what ran
// since the scheduler last accounted for it, up to a clock tick.
func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

func signalText(s unix.Signal) string {
	t := s.String()
	return strings.ToUpper(t[:1]) + t[1:]
}

// startPipeline starts the stages of req.Pipeline, or returns nil, having
// started nothing, when bash would not start them exactly so: then the
// caller runs req.Argv, and bash does what it does (says that a program
// is missing, that an output cannot be created, ...).
func startPipeline(req residentRequest, files []uintptr, sys func(i, first int) *syscall.SysProcAttr) *command {
	p := req.Pipeline
	n := len(p.Stages)
	if n == 0 {
		return nil
	}
	pwd, err := filepath.EvalSymlinks(req.Dir)
	if err != nil || !filepath.IsAbs(pwd) {
		return nil
	}
	pathEnv := envValue(p.Env, "PATH")
	paths := make([]string, n)
	for i, st := range p.Stages {
		if paths[i] = bashLookPath(st.Argv[0], pathEnv, req.Dir); paths[i] == "" {
			return nil
		}
	}
	// Every descriptor opened here is closed once the processes have
	// them (ForkExec gives each its three).
	var opened []int
	defer func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	}()
	table := make([][]uintptr, n)
	for i := range table {
		table[i] = []uintptr{files[0], files[1], files[2]}
	}
	for i := 0; i+1 < n; i++ {
		var pipe [2]int
		if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
			return nil
		}
		opened = append(opened, pipe[0], pipe[1])
		table[i][1] = uintptr(pipe[1])
		table[i+1][0] = uintptr(pipe[0])
	}
	// Bash opens a redirection in the process that then executes the
	// program, so what opening costs (truncating a large file, say) is
	// the command's CPU; here it is this thread's, measured and counted
	// as the command's too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var openCPU int64
	for i, st := range p.Stages {
		for _, r := range st.Redirects {
			if r.Op == shell.Dup {
				table[i][r.FD] = table[i][r.From]
				continue
			}
			// Not filepath.Join: the kernel resolves .. after a symlink.
			path := r.Path
			if !filepath.IsAbs(path) {
				path = req.Dir + "/" + path
			}
			before := threadCPU()
			fd, ok := openRedirect(path, r.Op)
			openCPU += threadCPU() - before
			if !ok {
				return nil
			}
			opened = append(opened, fd)
			table[i][r.FD] = uintptr(fd)
		}
	}
	c := &command{
		pids: make([]int, n), pidfds: make([]int, n), failed: make([]int, n),
		forks: p.Forks, stderr: int(files[2]), text: p.Text, openCPU: openCPU,
	}
	env := make([]string, len(p.Env))
	for i, st := range p.Stages {
		copy(env, p.Env)
		for j, kv := range env {
			switch kv {
			case "_=":
				env[j] = "_=" + bashUnderscore(st.Argv[0], paths[i])
			case "PWD=":
				env[j] = "PWD=" + pwd
			}
		}
		attr := sys(i, c.pids[0])
		c.pidfds[i] = -1
		attr.PidFD = &c.pidfds[i]
		// A path is executed as written, relative to req.Dir: the kernel
		// gives a script's interpreter the path it was executed by.
		exe := paths[i]
		if strings.Contains(st.Argv[0], "/") {
			exe = st.Argv[0]
		}
		pid, err := syscall.ForkExec(exe, st.Argv, &syscall.ProcAttr{Dir: req.Dir, Env: env, Files: table[i], Sys: attr})
		if err != nil {
			if i == 0 {
				return nil
			}
			// Bash, having started the stages before, reports this one
			// and goes on; it stays in the pipeline with bash's status.
			c.failed[i] = 126
			if err == syscall.ENOENT {
				c.failed[i] = 127
			}
			msg := fmt.Sprintf("hepbuild: line 1: %s: cannot execute: %v\n", st.Argv[0], err)
			_, _ = unix.Write(int(table[i][2]), []byte(msg))
			continue
		}
		c.pids[i] = pid
		if !attr.Setpgid || attr.Pgid == 0 {
			c.groups = append(c.groups, pid) // leads a group of its own
		}
	}
	return c
}

// bashLookPath finds the program bash would execute for the command word
// name, or returns "" when it is not one bash would execute directly: not
// found, not executable, or neither a binary nor a script with an
// interpreter (bash runs those in a copy of itself). A PATH entry that is
// relative or ends with a slash is refused too: bash's own search is then
// not worth imitating.
func bashLookPath(name, pathEnv, dir string) string {
	if strings.Contains(name, "/") {
		// Not filepath.Join: the kernel resolves .. after a symlink.
		p := name
		if !filepath.IsAbs(p) {
			p = dir + "/" + p
		}
		if !executesDirectly(p) {
			return ""
		}
		return p
	}
	if pathEnv == "" {
		return ""
	}
	for _, d := range strings.Split(pathEnv, ":") {
		if !filepath.IsAbs(d) || (strings.HasSuffix(d, "/") && d != "/") {
			return ""
		}
		p := d + "/" + name
		if d == "/" {
			p = "/" + name
		}
		var st unix.Stat_t
		if !executableFile(p, &st) {
			continue
		}
		if !executesDirectlyStat(p, &st) {
			return ""
		}
		return p
	}
	return ""
}

// bashUnderscore is the $_ a program bash starts sees: the path bash found
// it at, or the command word as written when it names a path.
func bashUnderscore(name, path string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return path
}

// openRedirect opens path as the redirection op would in the program's
// process, or says it cannot be opened here exactly so. Bash opens it in
// the process that then executes the program; here it is opened in the
// helper, so only what opens alike in both is opened: a regular file
// (existing, or created here), or one of the memory devices such as
// /dev/null. Refused: a FIFO (opening it may block the helper, which
// then can no longer be stopped), a terminal or any other device, a
// directory, and anything on /proc or reached through its magic links
// (/dev/stdout, /dev/fd/N, /proc/self/...: they name the opener's own).
func openRedirect(path string, op shell.Op) (int, bool) {
	flags := unix.O_RDONLY
	switch op {
	case shell.Truncate:
		flags = unix.O_WRONLY | unix.O_TRUNC
	case shell.Append:
		flags = unix.O_WRONLY | unix.O_APPEND
	}
	// openat2 refuses a mode without O_CREAT, and flags beside O_PATH.
	how := func(flags int) *unix.OpenHow {
		h := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_NO_MAGICLINKS}
		if flags&unix.O_PATH == 0 {
			h.Flags |= unix.O_NOCTTY
		}
		if flags&unix.O_CREAT != 0 {
			h.Mode = 0o666
		}
		return h
	}
	// What is there, looked at without opening it.
	var want unix.Stat_t
	p, err := unix.Openat2(unix.AT_FDCWD, path, how(unix.O_PATH))
	switch {
	case err == unix.ENOENT && op != shell.Read:
		// Created here; O_EXCL: nothing may have come in between.
		flags |= unix.O_CREAT | unix.O_EXCL
	case err != nil:
		return -1, false
	default:
		ok := openableHere(p, &want)
		unix.Close(p)
		if !ok {
			return -1, false
		}
	}
	// O_NONBLOCK: should a FIFO have replaced the file meanwhile, the open
	// does not block; it is cleared once the file is known.
	fd, err := unix.Openat2(unix.AT_FDCWD, path, how(flags|unix.O_NONBLOCK))
	if err != nil {
		return -1, false
	}
	var got unix.Stat_t
	if !openableHere(fd, &got) || (flags&unix.O_CREAT == 0 && (got.Dev != want.Dev || got.Ino != want.Ino)) {
		unix.Close(fd)
		return -1, false
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// openableHere says whether fd is a file that opens alike in any process
// (see openRedirect), and fills st.
func openableHere(fd int, st *unix.Stat_t) bool {
	var fs unix.Statfs_t
	if unix.Fstat(fd, st) != nil || unix.Fstatfs(fd, &fs) != nil || fs.Type == unix.PROC_SUPER_MAGIC || fs.Type == unix.SYSFS_MAGIC {
		return false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return true
	case unix.S_IFCHR:
		// /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom.
		switch unix.Major(st.Rdev) {
		case 1:
			switch unix.Minor(st.Rdev) {
			case 3, 5, 7, 8, 9:
				return true
			}
		}
	}
	return false
}
