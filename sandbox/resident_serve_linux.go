package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentArg, as the only argument, makes this binary serve a resident
// sandbox instead of doing what it was built for (see init).
const residentArg = "__hepbuild-resident-sandbox__"

// The resident sandbox is this very binary, started again inside bwrap:
// the helper must be a program whose protocol matches the caller's, and
// the running binary is the one program certain to. Every binary that links
// this package can serve, test binaries too, so the hook is an init
// function rather than a call each main must remember to make.
func init() {
	if len(os.Args) == 4 && os.Args[1] == residentArg {
		os.Exit(serveResident(os.Args[2], os.Args[3]))
	}
}

// The messages between the caller and the resident sandbox, one per
// SOCK_SEQPACKET packet.
type (
	// residentRequest asks for one command, or, with only Signal set, for
	// a signal to the running one. Paths are the sandbox's.
	residentRequest struct {
		Argv []string `json:",omitempty"`
		Env  []string `json:",omitempty"`
		Dir  string   `json:",omitempty"`
		// Writable are folders inside the read-only exec root the command
		// may write in.
		Writable []string `json:",omitempty"`
		// Stdout and Stderr say which of the passed descriptors are the
		// command's: 0 or 1 is the index among them, -1 is /dev/null.
		Stdout, Stderr int
		// Signal, in a message of its own, asks for a signal: SIGTERM goes
		// to the command's process group, SIGKILL to every process of the
		// sandbox.
		Signal int `json:",omitempty"`
		// Pipeline, when set, is Argv, a task's command, taken over from
		// bash: its programs are started directly (see pipelineRequest).
		Pipeline *pipelineRequest `json:",omitempty"`
	}
	// residentReply says the sandbox is ready (the first message), or how
	// the command ended.
	residentReply struct {
		Ready bool `json:",omitempty"`
		// Status is the command's wait status.
		Status int `json:",omitempty"`
		// CPU is the command's user and system CPU time in nanoseconds
		// (see Result.CPU).
		CPU int64 `json:",omitempty"`
		// StartErr says the command could not be started; Err that the
		// sandbox failed before it could start it.
		StartErr, Err string `json:",omitempty"`
		// Retire says the command ran but the sandbox cannot serve
		// another: it exits after this reply.
		Retire bool `json:",omitempty"`
	}
)

// residentFD is the descriptor of the socket to the caller in the resident sandbox.
const residentFD = 3

// serveResident runs commands one after another as the caller asks, as PID
// 1 of the sandbox's PID namespace, and returns the exit status of the
// process when the caller hangs up. execRoot is where the sandbox shows the
// slot's exec root, read-only; tmpSize bounds the /tmp and /dev/shm it
// mounts afresh, as bwrap bounded the first.
//
// Each command starts in an empty /tmp, with its output folders made
// writable, in a session of its own, with no capabilities; when it exits,
// every other process of the namespace is killed (kill(-1) from PID 1
// reaches exactly those), so nothing it started outlives it.
//
// All of it happens on one OS thread, in plain system calls: each action
// waits for this loop twice (its start, its end), and a hand-over between
// threads costs as much as the work.
func serveResident(execRoot, tmpSize string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "hepbuild resident sandbox: %v\n", err)
		return 2
	}
	size, err := strconv.ParseInt(tmpSize, 10, 64)
	if err != nil || size <= 0 {
		return fail(fmt.Errorf("bad tmp size %q", tmpSize))
	}
	// kill(-1) anywhere but in a PID namespace of our own would reach every
	// process of the user.
	if os.Getpid() != 1 {
		return fail(errors.New("not PID 1 of a PID namespace of its own"))
	}
	// The thread's credentials are about to differ from the other threads'.
	runtime.LockOSThread()
	// A second P, idle, is what keeps the runtime from taking this
	// goroutine's P while it waits in a system call (see waitYield).
	runtime.GOMAXPROCS(2)
	if err := dropInheritedCapabilities(); err != nil {
		return fail(err)
	}
	// Nothing this process inherited (the socket, the binary it was
	// started from) may reach the commands.
	if err := unix.CloseRange(residentFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(fmt.Errorf("marking descriptors close-on-exec: %w", err))
	}
	// Commands run as this user: they must not reach into this process
	// (ptrace, /proc/1/mem), nor stop it with a signal (PID 1 gets only the
	// signals it handles).
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(err)
	}
	// Caught rather than ignored: ignored signals stay ignored in what
	// this process executes. Those whose default is to be ignored are
	// left to the runtime, whose handler ignores them without waking a
	// goroutine: SIGCHLD comes with every command's end.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	signal.Reset(unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH)
	go func() {
		for range sigs {
		}
	}()
	r := &residentServer{serverConn: newServerConn(residentFD), execRoot: execRoot, writable: map[string]uint64{}, tmpSize: size}
	if r.rootMount, err = mountID(execRoot); err != nil {
		return fail(err)
	}
	if r.null, err = unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		return fail(err)
	}
	if underAny(execRoot, []string{"/tmp"}) {
		// A fresh /tmp covers the exec root bwrap mounted in the first;
		// this descriptor of it lets it be mounted again.
		if r.execRootFD, err = unix.Open(execRoot, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			return fail(err)
		}
		for d := filepath.Dir(execRoot); d != "/"; d = filepath.Dir(d) {
			r.tmpDirs = append(r.tmpDirs, d)
		}
	} else {
		r.tmpDirs = []string{"/tmp"}
	}
	r.tmpDirs = append(r.tmpDirs, "/dev/shm")
	if r.marks, err = changeMarks(r.tmpDirs); err != nil {
		return fail(err)
	}
	if r.oomFD, err = unix.Open("/proc/self/oom_score_adj", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return fail(err)
	}
	if err := readPID1State(r.oomFD, &r.pid1); err != nil {
		return fail(err)
	}
	if err := unix.Mount("mqueue", mqueueDir, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fail(fmt.Errorf("mounting %s: %w", mqueueDir, err))
	}
	marks, err := changeMarks([]string{mqueueDir})
	if err != nil {
		return fail(err)
	}
	r.mqueueMark = marks[0]
	if err := r.reply(residentReply{Ready: true}); err != nil {
		return fail(err)
	}
	for {
		r.yield.beforeWait()
		req, fds, err := r.read()
		if errors.Is(err, errEOF) {
			return 0
		}
		if err != nil {
			return fail(err)
		}
		if req.Signal != 0 {
			closeAll(fds) // a signal for a command that has ended
			continue
		}
		rep, hungUp := r.run(req, fds)
		closeAll(fds)
		if hungUp {
			return 0
		}
		if err := r.reply(rep); err != nil {
			return fail(err)
		}
		if rep.Err != "" || rep.Retire {
			// The namespace may hold what the failed step left; a fresh
			// sandbox replaces this one.
			return 2
		}
	}
}

type residentServer struct {
	serverConn
	yield    waitYield
	execRoot string
	// rootMount is the mount ID of the exec root: a command that moved a
	// folder leading to it, in /tmp, would leave the next without one.
	rootMount uint64
	// writable are the folders bound writable, with their mount IDs. They
	// stay mounted while consecutive commands write in the same folders,
	// as those of one package do.
	writable map[string]uint64
	null     int   // /dev/null, the command's stdin
	tmpSize  int64 // bytes, of each fresh /tmp and /dev/shm

	// tmpDirs are the writable tmpfs folders a command may change: /tmp
	// (or, when the exec root is inside it, the folders leading to it)
	// and /dev/shm. marks are their change times when the last command
	// started: a command that created, removed, renamed or changed
	// anything in them, or their mode, changed those.
	tmpDirs []string
	marks   []mark
	// execRootFD, when positive, is the exec root under /tmp, to mount
	// again in a fresh /tmp; freshTmp and freshShm say the current /tmp
	// and /dev/shm are such fresh mounts over bwrap's.
	execRootFD         int
	freshTmp, freshShm bool
	// mqueueMark is the mark of mqueueDir with no queue in it.
	mqueueMark mark
	// pid1 is what a command may change of this process that its
	// successors would inherit; pid1Now is read after each command, to
	// compare; oomFD is /proc/self/oom_score_adj.
	pid1, pid1Now processState
	oomFD         int
}

// run runs one command and says how it ended, applying the signals asked
// for meanwhile. hungUp says the caller went away, and the command with
// everything else was killed.
func (r *residentServer) run(req residentRequest, fds []int) (rep residentReply, hungUp bool) {
	files, err := commandFiles(req, fds, r.null)
	if err != nil {
		return residentReply{Err: err.Error()}, false
	}
	if len(req.Argv) == 0 {
		return residentReply{StartErr: "empty command line"}, false
	}
	if id, err := mountID(r.execRoot); err != nil || id != r.rootMount {
		return residentReply{Err: "the exec root is no longer mounted"}, false
	}
	if err := r.setWritable(req.Writable); err != nil {
		return residentReply{Err: err.Error()}, false
	}

	c, startErr := startCommand(req, files, func(i, first int) *syscall.SysProcAttr {
		// Each in a session of its own: a process may join a group only
		// in its own session.
		return &syscall.SysProcAttr{Setsid: true}
	})
	if c == nil {
		return residentReply{StartErr: startErr}, false
	}
	defer c.close()
	// Wait for the command's exit or a message: a signal to pass on, or
	// the caller hanging up.
	exited := c.exitedAtStart()
	for {
		r.yield.beforeWait()
		poll := append(c.pollFDs(exited), unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN})
		if _, err := unix.Poll(poll, -1); err != nil && err != unix.EINTR {
			fmt.Fprintf(os.Stderr, "hepbuild resident sandbox: waiting for the command: %v\n", err)
			_ = unix.Kill(-1, unix.SIGKILL)
			break
		}
		if c.markExited(exited, poll[:len(poll)-1]) {
			break
		}
		if poll[len(poll)-1].Revents == 0 {
			continue
		}
		m, mfds, err := r.read()
		closeAll(mfds)
		if err != nil {
			// The caller is gone: end the command with everything else.
			killAll()
			return residentReply{}, true
		}
		switch sig := unix.Signal(m.Signal); sig {
		case unix.SIGKILL:
			_ = unix.Kill(-1, unix.SIGKILL)
		case 0:
		default:
			c.signal(sig)
		}
	}
	status, cpu := c.reap()
	killAll()
	rep = residentReply{Status: int(status), CPU: cpu}
	// What the command changed that the next would see is undone, or
	// this sandbox retires; either way before the caller hears of the
	// end, so the cost is this command's.
	if err := r.reset(); err != nil {
		fmt.Fprintf(os.Stderr, "hepbuild resident sandbox: %v\n", err)
		rep.Retire = true
	}
	return rep, false
}

// setWritable makes exactly the given folders writable: binds that are
// not wanted, or no longer bound (the slot replaced the folder, which
// detaches the mount), go; the missing ones are bound.
func (r *residentServer) setWritable(want []string) error {
	wanted := map[string]bool{}
	for _, p := range want {
		wanted[p] = true
	}
	var gone []string
	for p, id := range r.writable {
		if now, err := mountID(p); !wanted[p] || err != nil || now != id {
			gone = append(gone, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(gone))) // inner mounts first
	for _, p := range gone {
		if id, err := mountID(p); err == nil && id == r.writable[p] {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmounting %s: %w", p, err)
			}
		}
		delete(r.writable, p)
	}
	for _, p := range want {
		if _, ok := r.writable[p]; ok {
			continue
		}
		if err := bindWritable(p); err != nil {
			return err
		}
		id, err := mountID(p)
		if err != nil {
			return err
		}
		r.writable[p] = id
	}
	return nil
}

// mountID is the ID of the mount p is on.
func mountID(p string) (uint64, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return 0, err
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return 0, fmt.Errorf("%s: the kernel gives no mount ID", p)
	}
	return st.Mnt_id, nil
}

// reset undoes what the last command changed that the next would see:
// /tmp and /dev/shm it touched are replaced by empty ones, and keys it
// added to the user's keyrings are dropped. What it changed of this
// process (resource limits, its OOM score) cannot all be undone without
// privileges, and is an error.
func (r *residentServer) reset() error {
	now, err := changeMarks(r.tmpDirs)
	if err != nil {
		return err
	}
	// A folder leading to the exec root that was moved and another put
	// in its place would keep the counts.
	id, err := mountID(r.execRoot)
	tmp, shm := err != nil || id != r.rootMount, false
	for i, d := range r.tmpDirs {
		if now[i] != r.marks[i] {
			if d == "/dev/shm" {
				shm = true
			} else {
				tmp = true
			}
		}
	}
	if tmp {
		if err := r.freshTmpfs("/tmp", &r.freshTmp); err != nil {
			return err
		}
		if r.execRootFD > 0 {
			if err := r.remountExecRoot(); err != nil {
				return err
			}
		}
		// The writable binds went with the old /tmp when the exec root is
		// in it; otherwise they are kept.
		for p, id := range r.writable {
			if now, err := mountID(p); err != nil || now != id {
				delete(r.writable, p)
			}
		}
	}
	if shm {
		if err := r.freshTmpfs("/dev/shm", &r.freshShm); err != nil {
			return err
		}
	}
	if tmp || shm {
		if r.marks, err = changeMarks(r.tmpDirs); err != nil {
			return err
		}
	}
	if err := r.clearIPC(); err != nil {
		return err
	}
	for _, ring := range []int{unix.KEY_SPEC_USER_KEYRING, unix.KEY_SPEC_USER_SESSION_KEYRING} {
		if _, err := unix.KeyctlInt(unix.KEYCTL_CLEAR, ring, 0, 0, 0); err != nil {
			return fmt.Errorf("clearing the keyring: %w", err)
		}
	}
	if err := readPID1State(r.oomFD, &r.pid1Now); err != nil {
		return err
	}
	if r.pid1Now != r.pid1 {
		return errors.New("a command changed the resource limits or the OOM score of PID 1")
	}
	return nil
}

// clearIPC removes the System V objects and POSIX message queues of the
// sandbox's IPC namespace, which outlive the processes that made them.
// (An IPC namespace per command would do it too, but costs a tenth of a
// millisecond per command to make and tear down.) Usually there are none,
// and saying so takes four system calls.
func (r *residentServer) clearIPC() error {
	// The counts of existing segments, semaphore sets and queues: the
	// first field of struct shm_info, the eighth of struct seminfo and the
	// first of struct msginfo, from IPC_INFO's siblings.
	const shmInfo, semInfo, msgInfo = 14, 19, 12
	var buf [16]int32
	p := uintptr(unsafe.Pointer(&buf[0]))
	count := func(trap, a1, a2, a3, a4 uintptr, field int) (int32, error) {
		buf = [16]int32{}
		if _, _, e := unix.Syscall6(trap, a1, a2, a3, a4, 0, 0); e != 0 {
			return 0, e
		}
		return buf[field], nil
	}
	for _, k := range []struct {
		file  string
		ctl   uintptr
		count func() (int32, error)
	}{
		{"shm", unix.SYS_SHMCTL, func() (int32, error) { return count(unix.SYS_SHMCTL, 0, shmInfo, p, 0, 0) }},
		{"sem", unix.SYS_SEMCTL, func() (int32, error) { return count(unix.SYS_SEMCTL, 0, 0, semInfo, p, 7) }},
		{"msg", unix.SYS_MSGCTL, func() (int32, error) { return count(unix.SYS_MSGCTL, 0, msgInfo, p, 0, 0) }},
	} {
		n, err := k.count()
		if err != nil {
			return fmt.Errorf("counting IPC objects: %w", err)
		}
		if n == 0 {
			continue
		}
		b, err := os.ReadFile("/proc/sysvipc/" + k.file)
		if err != nil {
			return fmt.Errorf("listing IPC objects: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, line := range lines[1:] { // after the header
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			id, err := strconv.Atoi(f[1])
			if err != nil {
				continue
			}
			const ipcRMID = 0
			if _, _, e := unix.Syscall(k.ctl, uintptr(id), ipcRMID, 0); e != 0 && e != unix.EINVAL && e != unix.EIDRM {
				return fmt.Errorf("removing IPC object %s %d: %w", k.file, id, e)
			}
		}
	}
	// POSIX message queues are the files of the mqueue mount; making or
	// removing one changes its folder.
	marks, err := changeMarks([]string{mqueueDir})
	if err != nil || marks[0] == r.mqueueMark {
		return err
	}
	entries, err := os.ReadDir(mqueueDir)
	if err != nil {
		return fmt.Errorf("listing message queues: %w", err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(mqueueDir, e.Name())); err != nil {
			return fmt.Errorf("removing message queue: %w", err)
		}
	}
	if err := os.Chmod(mqueueDir, 0o1777|os.ModeSticky); err != nil {
		return err
	}
	marks, err = changeMarks([]string{mqueueDir})
	r.mqueueMark = marks[0]
	return err
}

// mqueueDir is where the resident sandbox mounts the POSIX message queues
// of its IPC namespace, as Linux systems do.
const mqueueDir = "/dev/mqueue"

// freshTmpfs mounts an empty tmpfs on dir, over bwrap's; one mounted
// earlier (*fresh) is detached first, so that they do not pile up.
func (r *residentServer) freshTmpfs(dir string, fresh *bool) error {
	if *fresh {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", dir, err)
		}
		*fresh = false
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size="+strconv.FormatInt(r.tmpSize, 10)); err != nil {
		return fmt.Errorf("mounting %s: %w", dir, err)
	}
	*fresh = true
	return nil
}

// remountExecRoot shows the exec root at its path again, read-only, in a
// fresh /tmp.
func (r *residentServer) remountExecRoot() error {
	if err := os.MkdirAll(r.execRoot, 0o755); err != nil {
		return fmt.Errorf("mounting the exec root: %w", err)
	}
	src := fmt.Sprintf("/proc/self/fd/%d", r.execRootFD)
	if err := unix.Mount(src, r.execRoot, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mounting the exec root: %w", err)
	}
	if err := remount(r.execRoot, unix.MS_RDONLY); err != nil {
		return err
	}
	id, err := mountID(r.execRoot)
	if err != nil {
		return err
	}
	r.rootMount = id
	return nil
}

// mark is what tells a folder that changed from one that did not: its
// change time, which may be as coarse as a clock tick; its size, which on
// tmpfs and mqueue counts its entries; and its mode.
type mark struct {
	ctime unix.StatxTimestamp
	size  uint64
	mode  uint16
}

// changeMarks are the marks of the folders; a folder that is gone (moved,
// removed) has a zero one.
func changeMarks(dirs []string) ([]mark, error) {
	marks := make([]mark, len(dirs))
	for i, d := range dirs {
		var st unix.Statx_t
		err := unix.Statx(unix.AT_FDCWD, d, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_CTIME|unix.STATX_SIZE|unix.STATX_MODE, &st)
		if err == nil {
			marks[i] = mark{st.Ctime, st.Size, st.Mode}
		} else if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
	}
	return marks, nil
}

// processState is what a command running as the same user may change of
// PID 1, and that PID 1's later children would inherit.
type processState struct {
	limits   [unix.RLIMIT_RTTIME + 1]unix.Rlimit
	oomScore [16]byte // as /proc/self/oom_score_adj says it, zero-padded
}

// readPID1State reads the state of this process, PID 1, into st. oomFD is
// /proc/self/oom_score_adj, kept open: it is read after every command,
// and opening it each time was most of the cost. The limits are read
// with raw system calls, which return at once.
func readPID1State(oomFD int, st *processState) error {
	for res := range st.limits {
		_, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(res), 0, uintptr(unsafe.Pointer(&st.limits[res])), 0, 0)
		if e != 0 {
			return fmt.Errorf("reading resource limit %d: %w", res, e)
		}
	}
	st.oomScore = [16]byte{}
	n, err := unix.Pread(oomFD, st.oomScore[:], 0)
	if err != nil {
		return fmt.Errorf("reading the OOM score: %w", err)
	}
	if n == len(st.oomScore) {
		return errors.New("reading the OOM score: longer than expected")
	}
	return nil
}

// killAll kills every process of the namespace but this one and reaps them.
// Every other process of a PID namespace descends from its PID 1, orphans
// being reparented to it before their parent can be reaped: so when this
// process has no child left, there is none, and the kill, which visits
// every process of the machine, is skipped.
func killAll() {
	for {
		_, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			return
		}
		if err != unix.EINTR {
			break
		}
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	for {
		_, err := unix.Wait4(-1, nil, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: none left
			return
		}
	}
}

// reapUntil reaps children, orphans included (this is PID 1), until pid
// has exited, and returns its status.
func reapUntil(pid int) unix.WaitStatus {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || got == pid {
			return ws
		}
	}
}

// remount sets the flags of the mount at p, keeping those a user namespace
// may not drop.
func remount(p string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("remounting %s: %w", p, err)
	}
	// The ST_ flags have the values of the MS_ flags of the same name.
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|keep|flags, ""); err != nil {
		return fmt.Errorf("remounting %s: %w", p, err)
	}
	return nil
}

// bindWritable makes the folder p, inside a read-only mount, writable: a
// bind mount of itself, remounted without MS_RDONLY but with the flags a
// user namespace may not drop.
func bindWritable(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("making %s writable: %w", p, err)
	}
	if err := remount(p, 0); err != nil {
		_ = unix.Unmount(p, unix.MNT_DETACH)
		return err
	}
	return nil
}

// dropInheritedCapabilities empties the calling thread's ambient, bounding
// and inheritable capability sets and keeps its permitted and effective
// ones: the thread still mounts, and nothing it executes gains any
// capability, even as uid 0 (root's capabilities at exec are those of the
// bounding set).
func dropInheritedCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	for c := 0; ; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL && c > 0 { // past the last capability
				break
			}
			return fmt.Errorf("dropping capability %d: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropping inheritable capabilities: %w", err)
	}
	return nil
}

// parseRights returns the descriptors passed in the control messages
// (received with MSG_CMSG_CLOEXEC).
func parseRights(oob []byte) ([]int, error) {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, c := range cmsgs {
		f, err := unix.ParseUnixRights(&c)
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// envValue is the value of name in a KEY=VALUE list.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return kv[len(name)+1:]
		}
	}
	return ""
}
