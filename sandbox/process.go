package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hepbuild/hepbuild/sandbox/internal/reaper"
)

// launch says how to start a command beyond its Spec.
type launch struct {
	// dir is the working folder on the host; argv[0] is looked up relative to it.
	dir string
	// wrapper is a command line (bwrap ...) that runs the Spec's argv, which
	// is appended to it; empty runs the argv directly.
	wrapper []string
	// inImage says that argv[0] lives in a container image: it is not
	// looked up on the host.
	inImage bool
	// cgroupFD, when positive, is an open cgroup folder the process starts in.
	cgroupFD int
}

// launchProcess runs the command as l says, in its own process group, and
// returns once the process has exited and its group is gone.
func launchProcess(ctx context.Context, s Spec, l launch) (Result, error) {
	if len(s.Argv) == 0 {
		return Result{}, &StartError{Path: "", Err: errors.New("empty command line")}
	}
	dir := l.dir
	path, args := "", s.Argv
	if !l.inImage {
		p, err := lookPath(s.Argv[0], s.Env["PATH"], dir)
		if err != nil {
			return Result{}, &StartError{Path: s.Argv[0], Err: err}
		}
		path = p
	}
	if len(l.wrapper) > 0 {
		path = l.wrapper[0]
		args = append(append([]string(nil), l.wrapper...), s.Argv...)
	}
	grace := s.grace()
	// A pipe, not a spare log (see spareLog): a reaper of one command that
	// is killed from outside leaves the command's processes running.
	out, err := openOutput(s, false)
	if err != nil {
		return Result{}, err
	}
	defer out.close()

	cmd := &exec.Cmd{
		Path:        path,
		Args:        args,
		Env:         envList(s.Env),
		Dir:         dir,
		Stdin:       nil, // /dev/null
		Stdout:      out.stdout,
		Stderr:      out.stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	// A command without a PID namespace of its own runs under a reaper
	// (see package reaper), which outlives it to kill what it left: a
	// reaper of its own, when the resident ones (see runProcess) cannot.
	// Where there are no child subreapers (not Linux), only the command's
	// process group is killed.
	var status *os.File
	if reaped := reaper.Supported && len(l.wrapper) == 0 && !l.inImage; reaped {
		r, w, err := os.Pipe()
		if err != nil {
			return Result{}, fmt.Errorf("starting %s: %w", s.Argv[0], err)
		}
		defer r.Close()
		defer w.Close()
		status = r
		cmd.Path = "/proc/self/exe"
		cmd.Args = append([]string{"hepbuild", reaper.Arg, path}, s.Argv...)
		cmd.ExtraFiles = []*os.File{w} // reaper.StatusFD
		// The reaper kills the command's tree when hepbuild dies.
		setDeathSignal(cmd.SysProcAttr, reaper.Kill)
	}
	if l.cgroupFD > 0 {
		startInCgroup(cmd.SysProcAttr, l.cgroupFD)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, &StartError{Path: s.Argv[0], Err: err}
	}
	out.started()
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	pgid := cmd.Process.Pid

	// The group is signalled only while the leader has not been reaped, so
	// the group id cannot have been reused by then. A reaper leads the
	// group: it survives SIGTERM and kills everything on reaper.Kill.
	kill := func() { _ = unix.Kill(-pgid, unix.SIGKILL) }
	if status != nil {
		kill = func() { _ = unix.Kill(pgid, reaper.Kill) }
	}
	stopped := watchRun(ctx, s.Timeout, grace,
		func() { _ = unix.Kill(-pgid, unix.SIGTERM) }, kill)

	// Wait for the leader to exit without reaping it, kill what is left of
	// its group, then reap it.
	waitExit(pgid)
	timedOut, cancelled := stopped()
	_ = unix.Kill(-pgid, unix.SIGKILL)
	werr := cmd.Wait()
	dur := time.Since(start)
	out.finish(grace)

	res := Result{ExitCode: cmd.ProcessState.ExitCode(), TimedOut: timedOut, Duration: dur,
		CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if status != nil {
		msg, _ := io.ReadAll(status)
		cws, startErr, ok := reaper.ParseStatus(string(msg))
		switch {
		case startErr != "":
			return Result{}, &StartError{Path: s.Argv[0], Err: errors.New(startErr)}
		case ok:
			ws, werr = cws, nil
			res.ExitCode = ws.ExitStatus()
		}
	}
	if ws.Signaled() {
		res.ExitCode = -1
		res.Signal = ws.Signal().String()
	}
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return res, fmt.Errorf("waiting for %s: %w", s.Argv[0], werr)
		}
	}
	if cancelled {
		return res, ctx.Err()
	}
	if err := out.err(); err != nil {
		return res, err
	}
	return res, nil
}

// watchRun stops a running command when ctx is done or the timeout (if
// positive) passes: term, then kill once the grace time has passed too.
// The returned function is called once the command has exited; it ends
// the watch and says whether the command timed out or was cancelled.
func watchRun(ctx context.Context, timeout, grace time.Duration, term, kill func()) (exited func() (timedOut, cancelled bool)) {
	done := make(chan struct{})
	watcherDone := make(chan struct{})
	var timedOut, cancelled bool
	go func() {
		defer close(watcherDone)
		var deadline <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-done:
			return
		case <-ctx.Done():
			cancelled = true
		case <-deadline:
			timedOut = true
		}
		term()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			kill()
		}
	}()
	return func() (bool, bool) {
		close(done)
		<-watcherDone
		return timedOut, cancelled
	}
}

// envList turns the map into a sorted list; never nil, since a nil Env
// would make os/exec inherit the parent's environment.
func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// lookPath finds the executable the way the child's shell would: names with
// a slash are taken as they are (relative to dir), others are looked up on
// the child's PATH, not the parent's.
func lookPath(name, pathEnv, dir string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	if pathEnv == "" {
		return "", fmt.Errorf("%q not found: the environment has no PATH", name)
	}
	return "", fmt.Errorf("%q not found on PATH %s", name, pathEnv)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a folder", p)
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, fs.ErrPermission)
	}
	return nil
}

// output connects the process's stdout and stderr. Files are handed to the
// process directly; a log, a spare log file (see spareLog) when the caller
// can say when no process can write any more; other writers get a pipe
// copied by a goroutine, which the caller closes after killing the group
// so a leftover process holding the pipe cannot block the run.
type output struct {
	spare *spareLog // the log, when Spec.LogPath is set and a spare was had
	// stopped says the command was stopped from outside (timed out,
	// cancelled, killed by a signal): it may have handed its output to a
	// process not its own (systemd-run --pipe does), which outlives it,
	// so a spare log it leaves empty is not used again.
	stopped        bool
	lazy           *lazyFile // the log, when Spec.LogPath is set and no spare
	stdout, stderr *os.File
	closers        []*os.File // our ends, closed at the end
	childEnds      []*os.File // the child's ends, closed once it started
	copies         sync.WaitGroup
	mu             sync.Mutex
	copyErr        error
}

// openOutput connects the outputs s asks for. reaped says that the caller
// calls finish only once every process that could write has exited: a
// log may then be written to a spare log file.
func openOutput(s Spec, reaped bool) (*output, error) {
	o := &output{}
	if s.LogPath != "" {
		// Most actions print nothing: the log file is created on the first
		// byte, which spares a file creation per action (a large part of a
		// cheap action's cost). An old log of the same path goes first, so
		// a silent run never shows the previous run's output.
		if err := removeLog(s.LogPath); err != nil {
			return nil, fmt.Errorf("removing old log: %w", err)
		}
		if reaped {
			if o.spare = takeSpareLog(s.LogPath); o.spare != nil {
				o.stdout, o.stderr = o.spare.f, o.spare.f
				return o, nil
			}
		}
		o.lazy = &lazyFile{path: s.LogPath}
		f, err := o.connect(o.lazy)
		if err != nil {
			return nil, err
		}
		o.stdout, o.stderr = f, f
		return o, nil
	}
	var err error
	if o.stdout, err = o.connect(s.Stdout); err != nil {
		o.close()
		return nil, err
	}
	if s.Stderr == s.Stdout && s.Stdout != nil {
		o.stderr = o.stdout
		return o, nil
	}
	if o.stderr, err = o.connect(s.Stderr); err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

// removeLog removes the log at path, if there is one. Usually there is
// none: unlink alone says so, where os.Remove would try rmdir next.
func removeLog(path string) error {
	err := syscall.Unlink(path)
	if err == nil || err == syscall.ENOENT {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (o *output) connect(w io.Writer) (*os.File, error) {
	switch w := w.(type) {
	case nil:
		return nil, nil
	case *os.File:
		return w, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	o.closers = append(o.closers, r)
	o.childEnds = append(o.childEnds, pw)
	o.copies.Add(1)
	go func() {
		defer o.copies.Done()
		if _, err := io.Copy(w, r); err != nil && !errors.Is(err, os.ErrClosed) {
			o.mu.Lock()
			o.copyErr = fmt.Errorf("copying output: %w", err)
			o.mu.Unlock()
		}
	}()
	return pw, nil
}

// started closes the child's pipe ends in this process, so the copies end
// when the child's group is gone.
func (o *output) started() {
	if o.spare != nil {
		o.spare.watch()
	}
	for _, f := range o.childEnds {
		f.Close()
	}
	o.childEnds = nil
}

// finish waits for the copies to drain, at most grace: a process that left
// the group (setsid) may still hold the pipe. A spare log is settled: no
// process can write to it any more (see openOutput).
func (o *output) finish(grace time.Duration) {
	if o.spare != nil {
		if err := o.spare.finish(!o.stopped); err != nil {
			o.mu.Lock()
			o.copyErr = err
			o.mu.Unlock()
		}
		o.spare = nil
		return
	}
	o.started()
	done := make(chan struct{})
	go func() { o.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		o.close()
		<-done
	}
}

func (o *output) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.copyErr
}

func (o *output) close() {
	for _, f := range o.childEnds {
		f.Close()
	}
	o.childEnds = nil
	for _, f := range o.closers {
		f.Close()
	}
	o.closers = nil
	if o.lazy != nil {
		o.lazy.close()
	}
	if o.spare != nil {
		// Not finished: the run failed, and a process may still write.
		_ = o.spare.finish(false)
		o.spare = nil
	}
}

// lazyFile is a log file created when the first byte is written to it.
type lazyFile struct {
	path   string
	mu     sync.Mutex // Write (the copying goroutine) against close (after a grace timeout)
	f      *os.File
	err    error
	closed bool
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if l.f == nil && l.err == nil {
		if l.err = os.MkdirAll(filepath.Dir(l.path), 0o755); l.err == nil {
			l.f, l.err = os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		}
		if l.err != nil {
			l.err = fmt.Errorf("opening log: %w", l.err)
		}
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.f.Write(p)
}

func (l *lazyFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f != nil {
		l.f.Close()
	}
}
