// Package local executes actions on this machine: processes through a
// sandbox strategy, and file writes and copies directly.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/sandbox"
)

// Executor runs actions on this machine. It implements exec.Executor and is
// safe for concurrent use.
type Executor struct {
	strategy sandbox.Strategy
	grace    time.Duration
	envs     *sandbox.Environments
	fetcher  exec.Fetcher
}

// Option configures an Executor.
type Option func(*Executor)

// WithGrace sets the time a stopped action gets between SIGTERM and SIGKILL.
func WithGrace(d time.Duration) Option { return func(e *Executor) { e.grace = d } }

// WithEnvironments sets where software environments are built and how they
// are applied; the default builds them under DefaultEnvironmentRoot.
func WithEnvironments(envs *sandbox.Environments) Option {
	return func(e *Executor) { e.envs = envs }
}

// WithFetcher sets what downloads the remote files of fetch actions
// (remote_files); without one, fetch actions cannot run.
func WithFetcher(f exec.Fetcher) Option { return func(e *Executor) { e.fetcher = f } }

// DefaultEnvironmentRoot is where venvs, conda environments and release
// areas are built when no WithEnvironments says otherwise:
// $XDG_CACHE_HOME/hepbuild/environments.
func DefaultEnvironmentRoot() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hepbuild", "environments")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "hepbuild", "environments")
	}
	return filepath.Join(os.TempDir(), "hepbuild-environments")
}

// New returns an executor that runs processes with the strategy; actions
// tagged no-sandbox run with sandbox.None.
func New(strategy sandbox.Strategy, opts ...Option) *Executor {
	e := &Executor{strategy: strategy, grace: sandbox.DefaultGrace}
	for _, o := range opts {
		o(e)
	}
	if e.envs == nil {
		e.envs = sandbox.NewEnvironments(DefaultEnvironmentRoot())
	}
	return e
}

// Execute runs the action with root as exec root. Process output goes to
// logPath. A failed run is reported in the result; the error means the
// action could not be run at all.
func (e *Executor) Execute(ctx context.Context, a *exec.Action, root, logPath string) (exec.ExecResult, error) {
	switch a.Kind {
	case exec.KindWrite:
		return e.write(a, root)
	case exec.KindSymlink:
		if len(a.Outputs) == 1 && a.Outputs[0].Symlink {
			return e.link(a, root)
		}
		return e.copy(a, root)
	case exec.KindFetch:
		return e.fetch(ctx, a, root)
	}
	return e.run(ctx, a, root, logPath)
}

func (e *Executor) run(ctx context.Context, a *exec.Action, root, logPath string) (exec.ExecResult, error) {
	st := e.strategy
	if a.HasTag("no-sandbox") {
		st = sandbox.None{}
	}
	spec := sandbox.Spec{
		ExecRoot: root,
		Argv:     a.Argv,
		Env:      a.Env,
		Network:  a.HasTag("requires-network"),
		Timeout:  a.RunTimeout(),
		Grace:    e.grace,
		LogPath:  logPath,
		Memory:   a.Extras().Resources.Memory,
		CPU:      a.Extras().Resources.CPU,
		Tmp:      a.Extras().Resources.Tmp,
		Expose:   a.Extras().SandboxExpose,
	}
	for _, set := range [][]exec.Artifact{a.Inputs, a.Extras().Tools} {
		for _, in := range set {
			spec.Inputs = append(spec.Inputs, in.Path)
			if in.Symlink {
				spec.LinkInputs = append(spec.LinkInputs, in.Path)
			}
		}
	}
	if a.Environment != nil {
		for _, f := range a.Environment.Files {
			spec.Inputs = append(spec.Inputs, f.Path)
		}
	}
	for _, o := range a.Outputs {
		if o.Dir {
			spec.OutputDirs = append(spec.OutputDirs, o.Path)
		} else {
			spec.Outputs = append(spec.Outputs, o.Path)
		}
	}
	if a.Environment != nil {
		env := &sandbox.Environment{Kind: a.Environment.Kind, Params: a.Environment.Params}
		var err error
		if spec, err = e.envs.Apply(ctx, spec, env); err != nil {
			var ee *sandbox.EnvironmentError
			if errors.As(err, &ee) {
				// A stack that cannot be set up fails the action, with what
				// the setup tool said in the log.
				writeLog(logPath, "hepbuild: "+ee.Error()+"\n"+ee.Output)
				return exec.ExecResult{ExitCode: -1, Failure: ee.Error(), Strategy: st.Name()}, nil
			}
			return exec.ExecResult{}, err
		}
	}
	res, err := st.Run(ctx, spec)
	out := exec.ExecResult{
		ExitCode: res.ExitCode,
		Signal:   res.Signal,
		TimedOut: res.TimedOut,
		Timeout:  spec.Timeout,
		Duration: res.Duration,
		CPU:      res.CPU,
		Strategy: st.Name(),
	}
	var se *sandbox.StartError
	var ee *sandbox.EnvironmentError
	switch {
	case errors.As(err, &se):
		// A wrong tool path is the action's fault: report it as a failed run,
		// and put the reason in the log where its output would have been.
		out.ExitCode = -1
		out.StartError = se.Error()
		writeLog(logPath, se.Error()+"\n")
		return out, nil
	case errors.As(err, &ee):
		out.ExitCode = -1
		out.Failure = ee.Error()
		writeLog(logPath, "hepbuild: "+ee.Error()+"\n"+ee.Output)
		return out, nil
	case err == nil && res.MemoryExceeded:
		out.ExitCode = -1
		out.Failure = fmt.Sprintf("exceeded its memory limit of %s", formatBytes(spec.Memory))
		appendLog(logPath, "hepbuild: the action "+out.Failure+" and was killed\n")
	}
	return out, err
}

// writeLog replaces the log with msg.
func writeLog(logPath, msg string) {
	if logPath == "" {
		return
	}
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	_ = os.WriteFile(logPath, []byte(msg), 0o644)
}

// appendLog adds msg to the end of the log.
func appendLog(logPath, msg string) {
	if logPath == "" {
		return
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(msg)
}

// formatBytes writes a size the way resources are usually declared: "2 GB".
func formatBytes(n int64) string {
	f := float64(n)
	for _, u := range []struct {
		unit string
		size float64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if f >= u.size {
			return strconv.FormatFloat(f/u.size, 'g', 3, 64) + " " + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func single(a *exec.Action, what string) (exec.Artifact, error) {
	if len(a.Outputs) != 1 || a.Outputs[0].Dir {
		return exec.Artifact{}, fmt.Errorf("%s: %s: a %s action needs exactly one output file, has %d", a.Pos, a.Owner, what, len(a.Outputs))
	}
	return a.Outputs[0], nil
}

// write writes the content to a temporary file beside the output and
// renames it into place, so the output is complete or absent.
func (e *Executor) write(a *exec.Action, root string) (exec.ExecResult, error) {
	start := time.Now()
	out, err := single(a, "write")
	if err != nil {
		return exec.ExecResult{}, err
	}
	mode := fs.FileMode(0o444)
	if a.Executable {
		mode = 0o555
	}
	dst := filepath.Join(root, out.Path)
	err = atomicWrite(dst, mode, func(w io.Writer) error {
		_, err := w.Write(a.Extras().Content)
		return err
	})
	if err != nil {
		return exec.ExecResult{}, fmt.Errorf("writing %s: %w", out.Path, err)
	}
	return exec.ExecResult{Duration: time.Since(start), Strategy: "local"}, nil
}

// fetch downloads the remote file into the output through a temporary
// file, so the output is the verified content or absent. Content that
// does not match its size or checksum is the action's failure; a storage
// that cannot be reached is an error (hepbuild could not run it).
func (e *Executor) fetch(ctx context.Context, a *exec.Action, root string) (exec.ExecResult, error) {
	start := time.Now()
	out, err := single(a, "fetch")
	if err != nil {
		return exec.ExecResult{}, err
	}
	if a.Extras().Remote == nil {
		return exec.ExecResult{}, fmt.Errorf("%s: %s: a fetch action without a remote file", a.Pos, a.Owner)
	}
	if e.fetcher == nil {
		return exec.ExecResult{}, fmt.Errorf("%s: %s: no storage client to download %s", a.Pos, a.Owner, remote.RedactString(a.Extras().Remote.URL))
	}
	// A download that failed for want of the storage is tried once more,
	// from the start, into a new temporary file: XRootD 5.5's HTTP door
	// now and then leaves a request unanswered until the timeout.
	for attempt := 1; ; attempt++ {
		err = atomicWrite(filepath.Join(root, out.Path), 0o444, func(w io.Writer) error {
			return e.fetcher.Fetch(ctx, a.Extras().Remote, w)
		})
		if err == nil || exec.IsFetchError(err) || ctx.Err() != nil || attempt == 2 {
			break
		}
	}
	res := exec.ExecResult{Duration: time.Since(start), Strategy: "local"}
	if exec.IsFetchError(err) {
		res.ExitCode, res.Failure = 1, err.Error()
		return res, nil
	}
	if err != nil {
		// The query may hold a credential.
		return exec.ExecResult{}, fmt.Errorf("downloading %s: %w", remote.RedactString(a.Extras().Remote.URL), err)
	}
	return res, nil
}

// link makes the output, a declared symlink, a link to Content
// (ctx.actions.symlink with target_path), replacing what is there in one
// rename.
func (e *Executor) link(a *exec.Action, root string) (exec.ExecResult, error) {
	start := time.Now()
	dst := filepath.Join(root, a.Outputs[0].Path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return exec.ExecResult{}, err
	}
	tmp := dst + ".hepbuild-link"
	_ = os.Remove(tmp)
	if err := os.Symlink(string(a.Extras().Content), tmp); err != nil {
		return exec.ExecResult{}, fmt.Errorf("%s: %s: making link %s: %w", a.Pos, a.Owner, a.Outputs[0].Path, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return exec.ExecResult{}, fmt.Errorf("%s: %s: making link %s: %w", a.Pos, a.Owner, a.Outputs[0].Path, err)
	}
	return exec.ExecResult{Duration: time.Since(start), Strategy: "local"}, nil
}

// copy makes the output a copy of the single input: a hard link when the
// input is a generated (read-only) file, else a copy, so that making the
// output read-only never changes a source file.
func (e *Executor) copy(a *exec.Action, root string) (exec.ExecResult, error) {
	start := time.Now()
	out, err := single(a, "symlink")
	if err != nil {
		return exec.ExecResult{}, err
	}
	if len(a.Inputs) != 1 {
		return exec.ExecResult{}, fmt.Errorf("%s: %s: a symlink action needs exactly one input, has %d", a.Pos, a.Owner, len(a.Inputs))
	}
	in := a.Inputs[0]
	src := filepath.Join(root, in.Path)
	dst := filepath.Join(root, out.Path)
	fi, err := os.Stat(src)
	if err != nil {
		return exec.ExecResult{}, fmt.Errorf("reading input %s: %w", in.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return exec.ExecResult{}, fmt.Errorf("%s: %s: input %s is not a regular file", a.Pos, a.Owner, in.Path)
	}
	mode := fs.FileMode(0o444)
	if fi.Mode()&0o111 != 0 || a.Executable {
		mode = 0o555
	}
	if strings.HasPrefix(in.Path, exec.OutDir+"/") && fi.Mode().Perm() == mode {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			tmp := dst + ".hepbuild-link"
			_ = os.Remove(tmp)
			if os.Link(src, tmp) == nil {
				if err := os.Rename(tmp, dst); err == nil {
					return exec.ExecResult{Duration: time.Since(start), Strategy: "local"}, nil
				}
				os.Remove(tmp)
			}
		}
	}
	err = atomicWrite(dst, mode, func(w io.Writer) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return exec.ExecResult{}, fmt.Errorf("copying %s to %s: %w", in.Path, out.Path, err)
	}
	return exec.ExecResult{Duration: time.Since(start), Strategy: "local"}, nil
}

func atomicWrite(dst string, mode fs.FileMode, fill func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".hepbuild-tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}
