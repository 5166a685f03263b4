package sandbox

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DefaultGrace is how long a terminated process group may take to exit
// before it is killed, when the Spec does not say.
const DefaultGrace = 5 * time.Second

// Spec describes one command to run. Paths in Inputs, Outputs and OutputDirs
// are relative to ExecRoot, in the workspace layout (pkg/file for sources,
// hepbuild-out/pkg/file for generated files).
type Spec struct {
	// ExecRoot is the absolute path of the workspace root.
	ExecRoot string
	// Argv is the command line. Argv[0] is a path (relative to the exec root
	// when it holds a slash) or a name looked up on Env["PATH"].
	Argv []string
	// Env is exactly the environment of the process: nothing is inherited.
	Env map[string]string
	// Inputs are the files and folders the command may read.
	Inputs []string
	// LinkInputs are the inputs that are declared symbolic links: the
	// command sees each as the link it is, whose target may lead anywhere
	// or nowhere. Other inputs that are links show what they lead to.
	LinkInputs []string
	// Outputs are the files the command must write; their folders are created.
	Outputs []string
	// OutputDirs are folders the command fills; they are created empty.
	OutputDirs []string
	// Network allows network access; strategies without network isolation ignore it.
	Network bool
	// HostPaths are absolute host paths the command reads besides its
	// inputs (a built venv, a release area); the linux strategy binds them
	// read-only. Environments.Apply fills it.
	HostPaths []string
	// Image, when set, is the container image the command runs in: an
	// unpacked root file system (a folder) or an image for Apptainer or
	// Podman. Environments.Apply sets it for kind "container".
	Image string
	// Memory bounds the resident memory of the command and its descendants
	// in bytes, and CPU its cores; zero means no bound. Only strategies with
	// cgroups enforce them (see Linux).
	Memory int64
	CPU    float64
	// Tmp bounds the in-memory /tmp and /dev/shm of the linux strategy, each,
	// in bytes; zero means Memory, or DefaultTmpSize without it.
	Tmp int64
	// Expose are absolute host paths the linux strategy shows read-only
	// although they are hidden (home folders, /run, Linux.Hide).
	Expose []string
	// Timeout bounds the run; zero means no bound.
	Timeout time.Duration
	// Grace is the time between SIGTERM and SIGKILL; zero means DefaultGrace.
	Grace time.Duration
	// LogPath, when set, receives stdout and stderr together (created or
	// truncated) and Stdout and Stderr are ignored.
	LogPath string
	// Stdout and Stderr receive the command's output when LogPath is empty;
	// nil discards it.
	Stdout, Stderr io.Writer
}

// grace is Spec.Grace, or DefaultGrace when it is not set.
func (s Spec) grace() time.Duration {
	if s.Grace <= 0 {
		return DefaultGrace
	}
	return s.Grace
}

// Result is how a command ended. A command that ran and failed is a Result,
// not an error.
type Result struct {
	// ExitCode is the exit status, or -1 when the process was killed by a signal.
	ExitCode int
	// Signal names the signal that killed the process ("killed", "terminated"), if any.
	Signal string
	// TimedOut says that the run was stopped because it exceeded Spec.Timeout.
	TimedOut bool
	// Duration is the wall time from start to exit.
	Duration time.Duration
	// MemoryExceeded says that the command was killed because it exceeded
	// Spec.Memory.
	MemoryExceeded bool
	// CPU is the user and system CPU time of the command and of the
	// processes it waited for; zero where it is not known.
	CPU time.Duration
}

// Success reports whether the command exited with status 0 on its own.
func (r Result) Success() bool {
	return r.ExitCode == 0 && r.Signal == "" && !r.TimedOut && !r.MemoryExceeded
}

// Strategy runs commands with some degree of isolation. Implementations are
// safe for concurrent use.
type Strategy interface {
	// Name is the strategy's name as --sandbox spells it.
	Name() string
	// Run runs the command and waits for it and its process group to end.
	// The error says that the command could not be run (a *StartError when
	// it could not be started, ctx.Err() when it was cancelled); a command
	// that ran and failed is reported in the Result alone.
	Run(ctx context.Context, s Spec) (Result, error)
}

// StartError says that the command could not be started: not found, not
// executable, bad interpreter. It is a property of the command, not of the
// machine, so callers usually treat it as a failure of the action.
type StartError struct {
	Path string
	Err  error
}

func (e *StartError) Error() string { return fmt.Sprintf("could not start %s: %v", e.Path, e.Err) }

func (e *StartError) Unwrap() error { return e.Err }
