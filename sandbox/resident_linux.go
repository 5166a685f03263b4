package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Starting bwrap costs a few milliseconds: a user namespace, a mount
// namespace with /dev, /proc and the hidden folders, a network namespace.
// Cheap actions take about as long, so a bwrap per action made the linux
// strategy three times as slow as none. A resident sandbox is started once
// per slot instead: one bwrap whose PID 1 is this binary (serveResident),
// which runs the slot's actions one after another. Each action still gets a
// fresh /tmp, only its output folders writable, a session of its own and no
// capabilities, and when it ends every process it left is killed. What the
// actions of one slot share is the namespaces themselves: their network
// (none) and host name, and their IPC namespace, emptied after each action.

// maxResidentMsg bounds a request: a SOCK_SEQPACKET packet must fit the
// socket's buffer. A command whose request is larger runs in a bwrap of
// its own.
const maxResidentMsg = 128 << 10

// errResidentUnusable says the command was not run by the resident
// sandbox and may run in a bwrap of its own.
var errResidentUnusable = errors.New("resident sandbox unusable")

// resident is the caller's end of a resident sandbox, or of a reaper
// (see reaperPool), which speaks the same protocol. Not safe for
// concurrent use: its slot's action holds it.
type resident struct {
	// key names the sandbox it is: the same mounts serve the same key.
	key string
	// name says what it is in errors: "linux sandbox", "reaper".
	name   string
	cmd    *exec.Cmd
	conn   *net.UnixConn
	stderr bytes.Buffer // bwrap's and the server's complaints
	exited chan struct{}
	wmu    sync.Mutex // the action's request against the watcher's signals
	buf    []byte     // for replies
}

// startResident starts bwrap with the given arguments (ending in "--")
// running this binary as the resident sandbox with the exec root at
// execRoot and /tmp and /dev/shm of tmpSize bytes, and waits until it is
// ready.
func startResident(key, execRoot string, tmpSize int64, bwrapArgv []string) (*resident, error) {
	// The binary goes by descriptor: its path may be hidden in the sandbox
	// (a build under /tmp or the output base) or replaced by a newer build.
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("starting resident sandbox: %w", err)
	}
	defer exe.Close()
	argv := append(append([]string(nil), bwrapArgv...), "/proc/self/fd/4", residentArg, execRoot, strconv.FormatInt(tmpSize, 10))
	r, err := startHelper("linux sandbox", argv[0], argv, exe) // descriptor 4
	if err != nil {
		return nil, fmt.Errorf("starting resident sandbox: %w", err)
	}
	r.key = key
	return r, nil
}

// startHelper starts path with argv and the caller's end of a new socket
// as descriptor 3 (followed by extra), and waits until it says it is
// ready. name says what it is in errors.
func startHelper(name, path string, argv []string, extra ...*os.File) (*resident, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name)
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, err
	}
	r := &resident{name: name, conn: c.(*net.UnixConn), exited: make(chan struct{})}
	r.cmd = &exec.Cmd{
		Path:       path,
		Args:       argv,
		Env:        []string{},
		Stderr:     &r.stderr,
		ExtraFiles: append([]*os.File{theirs}, extra...),
		// Out of the terminal's process group: Ctrl-C reaches hepbuild,
		// which stops the command as it stops any (SIGTERM, then SIGKILL).
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = r.cmd.Start()
	// Only the helper holds its end now: if it dies, the read below ends;
	// and when hepbuild dies, the helper reads the end of the socket.
	theirs.Close()
	if err != nil {
		r.conn.Close()
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rep, err := r.readReply()
	_ = r.conn.SetReadDeadline(time.Time{})
	if err == nil && !rep.Ready {
		err = fmt.Errorf("unexpected first message %+v", rep)
	}
	if err != nil {
		r.stop()
		return nil, fmt.Errorf("%w%s", err, r.complaint())
	}
	return r, nil
}

// complaint is what bwrap or the server said on stderr, as ": ..." or "".
func (r *resident) complaint() string {
	if msg := strings.TrimSpace(r.stderr.String()); msg != "" && r.done() {
		return ": " + msg
	}
	return ""
}

func (r *resident) done() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// stop hangs up, which ends the sandbox and whatever runs in it, and waits
// for bwrap to exit.
func (r *resident) stop() {
	r.conn.Close()
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

func (r *resident) send(req residentRequest, fds []int) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if len(b) > maxResidentMsg && req.Pipeline != nil {
		// Bash runs it: its command line alone may fit.
		req.Pipeline = nil
		return r.send(req, fds)
	}
	if len(b) > maxResidentMsg {
		return fmt.Errorf("%w: request of %d bytes", errResidentUnusable, len(b))
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, _, err = r.conn.WriteMsgUnix(b, oob, nil)
	return err
}

func (r *resident) readReply() (residentReply, error) {
	if r.buf == nil {
		r.buf = make([]byte, maxResidentMsg)
	}
	n, err := r.conn.Read(r.buf)
	if err == nil && n == 0 {
		err = errors.New("the resident sandbox hung up")
	}
	if err != nil {
		return residentReply{}, err
	}
	return parseReply(r.buf[:n])
}

// run runs s in the sandbox, in dir, with the writable folders (all paths
// as the sandbox sees them), as launchProcess runs a command: stopped on
// cancellation or timeout, SIGTERM first, SIGKILL after the grace time.
// An error wrapping errResidentUnusable means it did not run, and the
// resident sandbox may be used again only when r.done() is false.
func (r *resident) run(ctx context.Context, s Spec, dir string, writable []string) (Result, error) {
	if len(s.Argv) == 0 {
		return Result{}, &StartError{Path: "", Err: errors.New("empty command line")}
	}
	req := residentRequest{Argv: s.Argv, Env: envList(s.Env), Dir: dir, Writable: writable, Stdout: -1, Stderr: -1, Pipeline: takeOver(s)}
	grace := s.grace()
	// The helper replies once the command and all it left have exited,
	// so the output may go to a spare log.
	out, err := openOutput(s, true)
	if err != nil {
		return Result{}, err
	}
	defer out.close()
	var fds []int
	if out.stdout != nil {
		req.Stdout = len(fds)
		fds = append(fds, int(out.stdout.Fd()))
	}
	switch {
	case out.stderr != nil && out.stderr == out.stdout:
		req.Stderr = req.Stdout
	case out.stderr != nil:
		req.Stderr = len(fds)
		fds = append(fds, int(out.stderr.Fd()))
	}
	start := time.Now()
	if err := r.send(req, fds); err != nil {
		// A request too large for a packet leaves the sandbox as it was
		// (the bwrap of the command's own opens the output again).
		if !errors.Is(err, errResidentUnusable) {
			r.stop()
		}
		return Result{}, fmt.Errorf("%w: %v", errResidentUnusable, err)
	}
	out.started()

	// The sandbox sends the signals asked for: SIGKILL reaches every
	// process of it, also those that left the command's group.
	stopped := watchRun(ctx, s.Timeout, grace,
		func() { _ = r.send(residentRequest{Signal: int(unix.SIGTERM)}, nil) },
		func() { _ = r.send(residentRequest{Signal: int(unix.SIGKILL)}, nil) })
	rep, err := r.readReply()
	timedOut, cancelled := stopped()
	dur := time.Since(start)
	if err != nil {
		r.stop()
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if !timedOut && !cancelled && errors.Is(err, syscall.ECONNRESET) {
			// The helper went away with a message of ours unread, and the
			// request was the only one: it never read it, and the command
			// did not run. (A helper killed while idle may take its socket
			// with it only after the request was sent.)
			return Result{}, fmt.Errorf("%w: %v", errResidentUnusable, err)
		}
		return Result{}, fmt.Errorf("%s: %v%s", r.name, err, r.complaint())
	}
	// The helper killed whatever the command left before it replied (or
	// never started the command): no process of its writes the output any
	// more.
	out.stopped = timedOut || cancelled || unix.WaitStatus(rep.Status).Signaled()
	out.finish(grace)
	if rep.Err != "" {
		// The server exits after a failed step; the command did not run.
		r.stop()
		return Result{}, fmt.Errorf("%w: %s", errResidentUnusable, rep.Err)
	}
	if rep.Retire {
		// The command ran; the next one gets a new sandbox.
		r.stop()
	}
	if rep.StartErr != "" {
		return Result{}, &StartError{Path: s.Argv[0], Err: errors.New(rep.StartErr)}
	}
	ws := unix.WaitStatus(rep.Status)
	res := Result{ExitCode: ws.ExitStatus(), TimedOut: timedOut, Duration: dur, CPU: time.Duration(rep.CPU)}
	if ws.Signaled() {
		res.ExitCode = -1
		res.Signal = ws.Signal().String()
	}
	if cancelled {
		return res, ctx.Err()
	}
	if err := out.err(); err != nil {
		return res, err
	}
	return res, nil
}
