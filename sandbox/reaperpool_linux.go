package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hepbuild/hepbuild/sandbox/internal/reaper"
)

// A command without a PID namespace of its own (the none and symlink
// strategies, the no-sandbox tag) runs under a reaper, a child subreaper
// that kills what the command leaves (see package reaper). Starting one
// per command cost as much as a cheap action itself: the reaper is this
// binary, and starting it takes about 15 ms. So reapers are resident, as
// the linux strategy's sandboxes are: a pool of them, one per command
// running at once, each running one command after another as the caller
// asks over a socket, in the resident sandbox's protocol. A reaper runs
// one command at a time, so every orphan reparented to it is that
// command's, and it kills and reaps them all before it says the command
// ended. When the pool cannot start a reaper, a reaper per command runs
// it instead (launchProcess).

// reaperArg, as the only argument, makes this binary a resident reaper
// (see init).
const reaperArg = "__hepbuild-reaper-pool__"

func init() {
	if len(os.Args) == 2 && os.Args[1] == reaperArg {
		os.Exit(serveReaper())
	}
}

// reapers are the idle reapers of this process.
var reapers struct {
	mu   sync.Mutex
	idle []*resident
	// failures counts the reapers that could not be started in a row;
	// after three, off says commands get a reaper of their own.
	failures int
	off      bool
}

// runProcess runs s.Argv in dir, in its own process group, under a reaper,
// and returns once the process and everything it left have exited.
func runProcess(ctx context.Context, s Spec, dir string) (Result, error) {
	r := takeReaper()
	if r == nil {
		return launchProcess(ctx, s, launch{dir: dir})
	}
	res, err := r.run(ctx, s, dir, nil)
	if r.done() {
		r.stop()
	} else {
		putReaper(r)
	}
	if errors.Is(err, errResidentUnusable) {
		// The command did not run: the reaper died or refused it.
		return launchProcess(ctx, s, launch{dir: dir})
	}
	return res, err
}

// takeReaper returns an idle reaper, or a new one; nil when none can be
// started.
func takeReaper() *resident {
	reapers.mu.Lock()
	for n := len(reapers.idle); n > 0; n = len(reapers.idle) {
		r := reapers.idle[n-1]
		reapers.idle = reapers.idle[:n-1]
		if !r.done() {
			reapers.mu.Unlock()
			return r
		}
		r.stop() // exited: killed from outside
	}
	off := reapers.off
	reapers.mu.Unlock()
	if off {
		return nil
	}
	r, err := startHelper("reaper", "/proc/self/exe", []string{"hepbuild", reaperArg})
	reapers.mu.Lock()
	defer reapers.mu.Unlock()
	if err != nil {
		if reapers.failures++; reapers.failures >= 3 {
			reapers.off = true
		}
		return nil
	}
	reapers.failures = 0
	return r
}

func putReaper(r *resident) {
	reapers.mu.Lock()
	reapers.idle = append(reapers.idle, r)
	reapers.mu.Unlock()
}

// stopReapers stops the idle reapers; those running a command are kept
// for the next one.
func stopReapers() {
	reapers.mu.Lock()
	idle := reapers.idle
	reapers.idle = nil
	reapers.mu.Unlock()
	for _, r := range idle {
		r.conn.Close() // all hang up at once, then each is waited for
	}
	for _, r := range idle {
		r.stop()
	}
}

// serveReaper runs commands one after another as the caller asks, each in
// a process group of its own, and kills what each leaves before it says
// how it ended. It returns when the caller hangs up, which it does when
// the build ends or hepbuild dies, however it dies: the socket's other end
// is hepbuild's alone. (A parent-death signal would say less: it follows
// the thread that started the reaper, not the process.)
func serveReaper() int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "hepbuild reaper: %v\n", err)
		return 2
	}
	// A second P, idle, is what keeps the runtime from taking this
	// goroutine's P while it waits in a system call (see waitYield).
	runtime.GOMAXPROCS(2)
	if err := reaper.BecomeSubreaper(); err != nil {
		return fail(err)
	}
	// Nothing this process inherited (the socket) may reach the commands.
	if err := unix.CloseRange(residentFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(fmt.Errorf("marking descriptors close-on-exec: %w", err))
	}
	// Signals to the reaper do not end it, which would leave a command's
	// orphans to init; caught rather than ignored, since ignored signals
	// stay ignored in what this process executes. Those whose default is
	// to be ignored are left to the runtime, which ignores them without
	// waking a goroutine: SIGCHLD comes with every command's end.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	signal.Reset(unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH)
	go func() {
		for range sigs {
		}
	}()
	// Waiting for a command and for the caller's messages at once takes a
	// pidfd (Linux 5.3); without it this process is no reaper, and each
	// command gets a reaper of its own.
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err != nil {
		return fail(fmt.Errorf("no pidfd: %w", err))
	} else {
		unix.Close(fd)
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	c := newServerConn(residentFD)
	if err := c.reply(residentReply{Ready: true}); err != nil {
		return fail(err)
	}
	var y waitYield
	for {
		y.beforeWait()
		req, fds, err := c.read()
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
		rep, hungUp := reapCommand(&c, &y, req, fds, null)
		closeAll(fds)
		if hungUp {
			return 0
		}
		if err := c.reply(rep); err != nil {
			return fail(err)
		}
		if rep.Err != "" {
			return 2
		}
	}
}

// reapCommand runs one command, applying the signals asked for meanwhile,
// and kills and reaps what it left once it has exited. hungUp says the
// caller went away, and the command and all it left were killed.
func reapCommand(c *serverConn, y *waitYield, req residentRequest, fds []int, null int) (rep residentReply, hungUp bool) {
	files, err := commandFiles(req, fds, null)
	if err != nil {
		return residentReply{Err: err.Error()}, false
	}
	cmd, startErr := startCommand(req, files, func(i, first int) *syscall.SysProcAttr {
		// The first leads a process group the others join.
		return &syscall.SysProcAttr{Setpgid: true, Pgid: first}
	})
	if cmd == nil {
		return residentReply{StartErr: startErr}, false
	}
	defer cmd.close()
	// The command's groups and children are signalled only before the
	// command is reaped, so its pids cannot have been reused.
	killTree := func() {
		cmd.signal(unix.SIGKILL)
		reaper.KillChildren()
	}
	exited := cmd.exitedAtStart()
	for {
		y.beforeWait()
		poll := append(cmd.pollFDs(exited), unix.PollFd{Fd: int32(c.fd), Events: unix.POLLIN})
		if _, err := unix.Poll(poll, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			fmt.Fprintf(os.Stderr, "hepbuild reaper: waiting for the command: %v\n", err)
			killTree()
			break
		}
		if cmd.markExited(exited, poll[:len(poll)-1]) {
			break
		}
		if poll[len(poll)-1].Revents == 0 {
			continue
		}
		m, mfds, err := c.read()
		closeAll(mfds)
		if err != nil {
			// The caller is gone: end the command with all it left.
			killTree()
			_, _ = cmd.reap()
			reaper.KillLeftovers()
			return residentReply{}, true
		}
		switch sig := unix.Signal(m.Signal); sig {
		case unix.SIGKILL:
			killTree()
		case 0:
		default:
			cmd.signal(sig)
		}
	}
	status, cpu := cmd.reap()
	reaper.KillLeftovers()
	return residentReply{Status: int(status), CPU: cpu}, false
}
