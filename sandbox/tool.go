package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Tool is a host command hepbuild runs for itself, not for an action: a
// batch system's sbatch, squeue or condor_q. It runs unsandboxed, with
// hepbuild's own environment plus Env, in its own process group.
type Tool struct {
	Argv []string
	// Stdin is written to the command's standard input.
	Stdin []byte
	// Env adds or replaces variables of hepbuild's environment.
	Env map[string]string
	// Dir is the working folder; empty means hepbuild's.
	Dir string
	// Timeout bounds the run; zero means one minute.
	Timeout time.Duration
}

// ToolResult is what a tool printed and how it ended.
type ToolResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// maxToolOutput bounds what is kept of a tool's output: a status query of
// a million jobs prints about 40 MB.
const maxToolOutput = 256 << 20

// ErrToolNotFound says that the tool is not installed (not on PATH).
var ErrToolNotFound = errors.New("not found on PATH")

// RunTool runs the tool and waits for it. A tool that ran and exited with
// a non-zero status is a ToolResult, not an error; the error says it could
// not be started, timed out or printed too much.
func RunTool(ctx context.Context, t Tool) (ToolResult, error) {
	if len(t.Argv) == 0 {
		return ToolResult{}, errors.New("no command")
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path, err := exec.LookPath(t.Argv[0])
	if err != nil {
		return ToolResult{}, fmt.Errorf("%s: %w", t.Argv[0], ErrToolNotFound)
	}
	cmd := exec.CommandContext(ctx, path, t.Argv[1:]...)
	cmd.Args[0] = t.Argv[0]
	cmd.Dir = t.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if len(t.Env) > 0 {
		env := os.Environ()
		for k, v := range t.Env {
			env = append(env, k+"="+v)
		}
		cmd.Env = env
	}
	if t.Stdin != nil {
		cmd.Stdin = bytes.NewReader(t.Stdin)
	}
	var out, errOut limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	res := ToolResult{Stdout: out.Bytes(), Stderr: errOut.Bytes()}
	if out.over || errOut.over {
		return res, fmt.Errorf("%s printed more than %d bytes", t.Argv[0], maxToolOutput)
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return res, fmt.Errorf("%s did not answer within %s", t.Argv[0], timeout)
	case ctx.Err() != nil:
		return res, ctx.Err()
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		if res.ExitCode < 0 {
			return res, fmt.Errorf("%s was killed: %s", t.Argv[0], ee)
		}
		return res, nil
	case err != nil:
		return res, fmt.Errorf("running %s: %w", t.Argv[0], err)
	}
	return res, nil
}

// Brief returns the first lines of a tool's error output, for a message.
func (r ToolResult) Brief() string {
	s := strings.TrimSpace(string(r.Stderr))
	if s == "" {
		s = strings.TrimSpace(string(r.Stdout))
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = append(lines[:5], "...")
	}
	return strings.Join(lines, "\n")
}

type limitedBuffer struct {
	bytes.Buffer
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxToolOutput {
		b.over = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
