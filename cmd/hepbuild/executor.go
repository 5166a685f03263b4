package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	cacheremote "github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/exec/batch/arc"
	"github.com/hepbuild/hepbuild/exec/batch/glite"
	"github.com/hepbuild/hepbuild/exec/batch/htcondor"
	"github.com/hepbuild/hepbuild/exec/batch/lsf"
	"github.com/hepbuild/hepbuild/exec/batch/slurm"
	"github.com/hepbuild/hepbuild/exec/remote"
)

// ExecutorFlags choose where actions run: here, or on a batch system.
type ExecutorFlags struct {
	Executor       string        `name:"executor" placeholder:"NAME" help:"Where run actions go: local, a batch system (slurm, htcondor, lsf, arc, glite) whose jobs run hepbuild worker, or remote (--remote-executor). Writes, copies and actions tagged local stay here (default: remote with --remote-executor, else local)."`
	RemoteExecutor string        `name:"remote-executor" placeholder:"URL" help:"A Remote Execution API service (grpc:// or grpcs://) that runs actions; its CAS is the remote cache. Takes the header and TLS flags of the remote cache."`
	ExecutorFor    []string      `name:"executor-for" placeholder:"MNEMONIC=NAME" sep:"none" help:"Send the actions of this mnemonic to executor NAME (local keeps them here), e.g. Histogram=slurm. Repeatable."`
	BatchJobs      int           `name:"batch-jobs" default:"1000" placeholder:"N" help:"At most N batch jobs in flight at once, apart from -j."`
	ActionsPerJob  int           `name:"actions-per-job" default:"1" placeholder:"N" help:"Run up to N actions (of the same resource request) one after another in one batch job."`
	BatchWindow    time.Duration `name:"batch-window" default:"2s" placeholder:"DURATION" help:"Gather ready actions this long before submitting them together as one job array."`
	BatchPoll      time.Duration `name:"batch-poll" default:"10s" placeholder:"DURATION" help:"Ask the batch system for the state of all jobs in flight (one query) this often."`
	BatchOption    []string      `name:"batch-option" placeholder:"SYSTEM:OPTION" sep:"none" help:"Pass OPTION to every submission to SYSTEM, e.g. slurm:--partition=short, htcondor:accounting_group=cms. Repeatable."`
	BatchDir       pathValue     `name:"batch-dir" placeholder:"DIR" help:"Where job scripts and job logs go, on a file system the nodes share (default: the output base's batch folder)."`
	WorkerBinary   pathValue     `name:"worker-binary" placeholder:"PATH" help:"The hepbuild binary the jobs run as hepbuild worker, at a path the nodes see (default: this hepbuild)."`
	RetryBump      string        `name:"retry-bump" placeholder:"memory=2x" help:"On resubmitting an action whose job exceeded its memory request, multiply the request by this factor."`
	ShipWorker     bool          `name:"ship-worker" help:"Send the worker binary with every job (ARC), for nodes that share no file system with this machine."`
	WorkerEnv      []string      `name:"worker-env" placeholder:"NAME[=VALUE]" sep:"none" help:"Set this variable for hepbuild worker in every job (its value here without =VALUE), e.g. X509_USER_PROXY for a remote cache on the node. Not passed to actions. Repeatable."`
	Detach         bool          `name:"detach" help:"On Ctrl-C, leave the batch jobs running; the next build re-attaches to them."`
}

// executors are the batch systems --executor knows.
var executors = []string{"local", "slurm", "htcondor", "lsf", "arc", "glite", "remote"}

// checkExecutors refuses bad executor flags before anything is loaded.
func (f *ExecutorFlags) check() error {
	known := func(n string) bool {
		for _, e := range executors {
			if e == n {
				return true
			}
		}
		return false
	}
	if f.Executor != "" && !known(f.Executor) {
		return badInput("--executor %s: unknown (known: %s)", f.Executor, strings.Join(executors, ", "))
	}
	for _, kv := range f.ExecutorFor {
		m, n, ok := strings.Cut(kv, "=")
		if !ok || m == "" || !known(n) {
			return badInput("--executor-for %q: want MNEMONIC=NAME with NAME one of %s", kv, strings.Join(executors, ", "))
		}
	}
	if f.RemoteExecutor == "" && (f.Executor == "remote" || strings.Contains(strings.Join(f.ExecutorFor, ","), "=remote")) {
		return badInput("executor remote: give the service with --remote-executor URL")
	}
	if f.BatchJobs < 1 {
		return badInput("--batch-jobs %d: give at least 1", f.BatchJobs)
	}
	if f.ActionsPerJob < 1 {
		return badInput("--actions-per-job %d: give at least 1", f.ActionsPerJob)
	}
	if f.BatchPoll <= 0 || f.BatchWindow < 0 {
		return badInput("--batch-poll and --batch-window: give positive durations")
	}
	for _, o := range f.BatchOption {
		if sys, opt, ok := strings.Cut(o, ":"); !ok || !known(sys) || sys == "local" || opt == "" {
			return badInput("--batch-option %q: want SYSTEM:OPTION, e.g. slurm:--partition=short", o)
		}
	}
	if _, err := f.memoryBump(); err != nil {
		return err
	}
	_, err := f.workerEnv()
	return err
}

// workerEnv is --worker-env as a map.
func (f *ExecutorFlags) workerEnv() (map[string]string, error) {
	if len(f.WorkerEnv) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range f.WorkerEnv {
		name, value, ok := strings.Cut(kv, "=")
		if name == "" || strings.ContainsAny(name, " \t=") {
			return nil, badInput("--worker-env %q: want NAME or NAME=VALUE", kv)
		}
		if !ok {
			value = os.Getenv(name)
		}
		m[name] = value
	}
	return m, nil
}

func (f *ExecutorFlags) memoryBump() (float64, error) {
	if f.RetryBump == "" {
		return 0, nil
	}
	k, v, ok := strings.Cut(f.RetryBump, "=")
	x, err := strconv.ParseFloat(strings.TrimSuffix(v, "x"), 64)
	if !ok || k != "memory" || err != nil || x < 1 || x > 100 {
		return 0, badInput("--retry-bump %q: want memory=FACTOR, e.g. memory=2x", f.RetryBump)
	}
	return x, nil
}

// used lists the batch systems the flags send actions to.
func (f *ExecutorFlags) used() []string {
	set := map[string]bool{}
	if e := f.defaultExecutor(); e != "local" && e != "remote" {
		set[e] = true
	}
	for _, kv := range f.ExecutorFor {
		if _, n, _ := strings.Cut(kv, "="); n != "local" && n != "remote" {
			set[n] = true
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// defaultExecutor is where run actions go unless --executor-for says
// otherwise.
func (f *ExecutorFlags) defaultExecutor() string {
	switch {
	case f.Executor != "":
		return f.Executor
	case f.RemoteExecutor != "":
		return "remote"
	}
	return "local"
}

// keepLocal are the tags that keep an action on this machine.
var keepLocal = []string{"local", "no-remote", "no-remote-exec", "no-remote-cache"}

// router returns the Runner's Route for the flags and executors: writes
// and copies, actions tagged local, and those routed to "local" stay.
func (f *ExecutorFlags) router(byName map[string]exec.RemoteExecutor) func(*exec.Action) exec.RemoteExecutor {
	perMnemonic := map[string]string{}
	for _, kv := range f.ExecutorFor {
		m, n, _ := strings.Cut(kv, "=")
		perMnemonic[m] = n
	}
	return func(a *exec.Action) exec.RemoteExecutor {
		if a.Kind != exec.KindRun {
			return nil
		}
		for _, t := range keepLocal {
			if a.HasTag(t) {
				return nil
			}
		}
		name := f.defaultExecutor()
		if n, ok := perMnemonic[a.Mnemonic]; ok {
			name = n
		}
		if name == "remote" && remote.Remotable(a) != nil {
			return nil // a software environment: the service cannot set it up
		}
		return byName[name]
	}
}

// remoteExecutor connects to the --remote-executor service.
func (s *session) remoteExecutor(e *env, f *BuildFlags) (*remote.Executor, error) {
	if f.RemoteExecutor == "" {
		return nil, nil
	}
	opts, err := f.remoteOptions()
	if err != nil {
		return nil, err
	}
	rx, err := remote.New(e.ctx, f.RemoteExecutor, opts, remote.WithJobs(f.BatchJobs))
	if err != nil {
		return nil, fmt.Errorf("--remote-executor: %w", err)
	}
	s.closers = append(s.closers, rx)
	return rx, nil
}

// sameService reports whether two remote URLs name the same service and instance.
func sameService(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// batchEngines starts one batch engine per batch system the flags use.
func (s *session) batchEngines(e *env, f *BuildFlags, warn func(string)) (map[string]exec.RemoteExecutor, []*batch.Engine, error) {
	names := f.used()
	if len(names) == 0 {
		return nil, nil, nil
	}
	if s.cache == nil {
		return nil, nil, badInput("--executor %s: batch jobs return their results through the cache; drop --no-cache", names[0])
	}
	for _, n := range names {
		// A machine without the system's tools (a laptop, not a login
		// node) is one error now, before anything is uploaded or written.
		if tool := submitTool[n]; tool != "" {
			if _, err := osexec.LookPath(tool); err != nil {
				return nil, nil, fmt.Errorf("--executor %s: %s is not on PATH: run hepbuild on a machine that submits to %s (a login node), or choose another executor", n, tool, n)
			}
		}
	}
	worker, upload, ship, err := s.workerCommand(f)
	if err != nil {
		return nil, nil, err
	}
	bump, _ := f.memoryBump()
	base, err := filepath.Abs(s.outputBase)
	if err != nil {
		return nil, nil, err
	}
	ws := filepath.Base(s.w.root) + "-" + cache.FromBytes([]byte(base)).Hash[:12]
	byName := map[string]exec.RemoteExecutor{}
	var engines []*batch.Engine
	for _, n := range names {
		dir := filepath.Join(s.outputBase, "batch", n)
		if f.BatchDir != "" {
			// A shared folder may serve many workspaces: each keeps its
			// own record of jobs in flight (jobs.json), or one would
			// re-attach to, and cancel, another's jobs.
			dir = filepath.Join(string(f.BatchDir), n, ws)
		}
		be, err := newBackend(n, dir)
		if err != nil {
			for _, en := range engines {
				_ = en.Close(context.Background(), true)
			}
			return nil, nil, err
		}
		var opts []string
		for _, o := range f.BatchOption {
			if sys, opt, _ := strings.Cut(o, ":"); sys == n {
				opts = append(opts, opt)
			}
		}
		wenv, err := f.workerEnv()
		if err != nil {
			return nil, nil, err
		}
		en, err := batch.New(batch.Config{
			WorkerEnv:     wenv,
			Backend:       be,
			Results:       s.cache,
			Upload:        upload,
			Worker:        worker,
			Dir:           dir,
			Name:          "hepbuild-" + filepath.Base(s.w.root),
			MaxJobs:       f.BatchJobs,
			ActionsPerJob: f.ActionsPerJob,
			Window:        max(f.BatchWindow, time.Nanosecond), // 0 would mean the engine's default
			PollInterval:  f.BatchPoll,
			Retries:       int(f.Retries),
			MemoryBump:    bump,
			Options:       opts,
			Ship:          ship,
			Warn:          warn,
		})
		if err != nil {
			if f.ShipWorker {
				return nil, nil, badInput("--ship-worker with --executor %s: %v", n, err)
			}
			return nil, nil, fmt.Errorf("--executor %s: %w", n, err)
		}
		if k := en.Adopted(); k > 0 {
			fmt.Fprintf(e.stderr, "INFO: re-attached to %d %s jobs of an earlier build\n", k, n)
		}
		byName[n] = en
		engines = append(engines, en)
	}
	return byName, engines, nil
}

func hasPassword(u *url.URL) bool {
	_, ok := u.User.Password()
	return ok
}

// submitTool is the command each batch system submits with.
var submitTool = map[string]string{"slurm": "sbatch", "htcondor": "condor_submit", "lsf": "bsub", "glite": "glite-ce-job-submit", "arc": "arcsub"}

func newBackend(name, dir string) (batch.Backend, error) {
	switch name {
	case "arc":
		// The ARC client's job list lives with the build's batch state,
		// not in the user's ~/.arc, so that re-attaching finds it.
		return arc.New(arc.WithJobList(filepath.Join(dir, "arc-jobs.dat"))), nil
	case "slurm":
		return slurm.New(), nil
	case "htcondor":
		return htcondor.New(), nil
	case "lsf":
		return lsf.New(), nil
	case "glite":
		return glite.New(), nil
	}
	return nil, badInput("--executor %s: not available in this hepbuild", name)
}

// workerCommand is what a job runs, and the cache the worker reads: the
// remote cache when there is one, else the disk cache (which must then be
// on a file system the nodes share).
func (s *session) workerCommand(f *BuildFlags) (cmd []string, upload cache.CAS, ship []string, err error) {
	bin, err := workerBinary(f)
	if err != nil {
		return nil, nil, nil, err
	}
	cmd, upload, err = s.workerArgs(f, bin)
	if err != nil || !f.ShipWorker {
		return cmd, upload, nil, err
	}
	return cmd, upload, []string{bin}, nil
}

// workerBinary is the hepbuild the jobs run: --worker-binary, else this one.
func workerBinary(f *BuildFlags) (string, error) {
	bin := string(f.WorkerBinary)
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("finding this hepbuild's binary for the workers: %w (give --worker-binary)", err)
		}
		bin = self
	}
	return filepath.Abs(bin)
}

func (s *session) workerArgs(f *BuildFlags, bin string) ([]string, cache.CAS, error) {
	// The node may not have the binary (no shared file system there) or
	// not be able to run it: the job says so in its log, with exit status 97.
	check := `test -x "$0" || { echo "hepbuild: the worker binary $0 is not on this node: give --worker-binary a path on a file system the nodes share" >&2; exit 97; }; exec "$0" "$@"`
	run := bin
	if f.ShipWorker {
		// Sent into the job's working folder, where it may arrive
		// without its executable bit.
		check = `chmod +x "$0" 2>/dev/null; test -x "$0" || { echo "hepbuild: the worker binary $0 did not arrive with the job (--ship-worker)" >&2; exit 97; }; exec "$0" "$@"`
		run = "./" + filepath.Base(bin)
	}
	cmd := []string{"/bin/sh", "-c", check, run, "worker"}
	if f.Sandbox != "" {
		cmd = append(cmd, "--sandbox="+f.Sandbox)
	}
	if s.tiered != nil {
		r := &f.RemoteFlags
		if u, err := url.Parse(r.RemoteCache); err != nil || u.Opaque != "" || u.RawQuery != "" || hasPassword(u) {
			// Job scripts, the batch system's job records and the
			// worker's arguments are read by others, as for headers.
			return nil, nil, badInput("--remote-cache %s: batch jobs get no password or query in the cache's URL (it would be written into job scripts); give the credential as --remote-header NAME=@FILE", cacheremote.RedactString(r.RemoteCache))
		}
		cmd = append(cmd, "--remote-cache="+r.RemoteCache, "--remote-timeout="+r.RemoteTimeout.String())
		for _, h := range r.RemoteHeader {
			name, value, _ := strings.Cut(h, "=")
			words := strings.Fields(value)
			if len(words) == 0 || !strings.HasPrefix(words[len(words)-1], "@") {
				// Job scripts and the batch system's job records are read
				// by others: a credential must come from a file.
				return nil, nil, badInput("--remote-header %s: batch jobs get headers only as NAME=@FILE (a file on a shared file system), never a value written into job scripts", strings.TrimSpace(name))
			}
			file, err := filepath.Abs(strings.TrimPrefix(words[len(words)-1], "@"))
			if err != nil {
				return nil, nil, err
			}
			words[len(words)-1] = "@" + file
			cmd = append(cmd, "--remote-header="+name+"="+strings.Join(words, " "))
		}
		for _, tf := range []struct {
			flag string
			path pathValue
		}{{"--tls-ca-cert", r.TLSCACert}, {"--tls-client-cert", r.TLSClientCert}, {"--tls-client-key", r.TLSClientKey}} {
			if tf.path != "" {
				cmd = append(cmd, tf.flag+"="+string(tf.path))
			}
		}
		return cmd, s.tiered.Remote(), nil
	}
	dir, err := filepath.Abs(s.cacheDir)
	if err != nil {
		return nil, nil, err
	}
	cmd = append(cmd, "--disk-cache="+dir)
	if f.SigningKey != "" {
		cmd = append(cmd, "--cache-signing-key="+string(f.SigningKey))
	}
	dc := s.diskTier()
	if dc == nil {
		return nil, nil, badInput("--executor: the disk cache %s is unusable", dir)
	}
	return cmd, dc, nil
}

// closeEngines ends the batch engines after the build. Interrupted, every
// job in flight is cancelled with one call per system, unless --detach
// leaves them running for the next build to re-attach to. After a build
// that ended normally nothing of its own is in flight; jobs of an earlier
// build it did not need stay recorded.
func closeEngines(e *env, engines []*batch.Engine, detach bool) {
	interrupted := e.ctx.Err() != nil
	for _, en := range engines {
		ids := en.InFlight()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := en.Close(ctx, detach || !interrupted)
		cancel()
		if st := en.Stats(); st.Jobs > 0 {
			fmt.Fprintf(e.stderr, "hepbuild: %s: %d actions in %d jobs, %d submissions, %d status queries", en.Name(), st.Actions, st.Jobs, st.Submits, st.Polls)
			if st.Resubmitted > 0 {
				fmt.Fprintf(e.stderr, ", %d actions resubmitted", st.Resubmitted)
			}
			fmt.Fprintln(e.stderr)
		}
		switch {
		case err != nil:
			fmt.Fprintf(e.stderr, "WARNING: %v\n", err)
		case interrupted && detach && len(ids) > 0:
			fmt.Fprintf(e.stderr, "INFO: left %d %s jobs running (--detach); the next build re-attaches to them\n", len(ids), en.Name())
		case interrupted && len(ids) > 0:
			fmt.Fprintf(e.stderr, "INFO: cancelled %d %s jobs\n", len(ids), en.Name())
		}
	}
}
