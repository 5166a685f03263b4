package sandbox

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// Foreground describes a program that runs as part of the user's own
// command (hepbuild run), not as an action: with the caller's standard
// streams and environment, unsandboxed and without a timeout.
type Foreground struct {
	Path   string   // the program; not looked up in PATH
	Args   []string // the arguments after the program's name
	Dir    string
	Env    []string // "NAME=value"; nil is no variable at all
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// forwarded are the signals that hepbuild passes on to a foreground program.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// RunForeground runs the program and returns its exit status: a shell's,
// 128+N when signal N killed it. The error says only that it could not be
// started (a *StartError) or waited for.
//
// The program stays in hepbuild's process group, so that it can read from
// the terminal. SIGTERM and SIGHUP that hepbuild receives are sent on to it;
// so are SIGINT and SIGQUIT, unless stdin is a terminal: then Ctrl-C and
// Ctrl-\ reached the whole foreground group, the program included, and
// sending them again would count twice for a program that counts them.
func RunForeground(f Foreground) (int, error) {
	cmd := &exec.Cmd{
		Path:   f.Path,
		Args:   append([]string{f.Path}, f.Args...),
		Dir:    f.Dir,
		Env:    f.Env,
		Stdin:  f.Stdin,
		Stdout: f.Stdout,
		Stderr: f.Stderr,
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	fromTerminal := false
	if in, ok := f.Stdin.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		fromTerminal = true
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, &StartError{Path: f.Path, Err: err}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if fromTerminal && (s == syscall.SIGINT || s == syscall.SIGQUIT) {
					continue
				}
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, err
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}
