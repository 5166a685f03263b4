// Package worker runs actions by their key on a machine that loaded
// nothing: a batch node. It reads each action's REAPI messages, its Spec
// and its inputs from a cache, runs it with a local executor exactly as a
// build on the submitting machine would, and stores the outputs and the
// action result (with the log) in the same cache. How an action that ran
// and failed ended is recorded under exec.FailureKey for the submitter.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec"
)

// Ref names one action to run: its action digest and its Spec's digest.
type Ref struct {
	Action, Spec cache.Digest
}

// ParseRef reads "ACTIONHASH/SIZE:SPECHASH/SIZE".
func ParseRef(s string) (Ref, error) {
	a, sp, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("%q: want ACTION-DIGEST:SPEC-DIGEST (each HASH/SIZE)", s)
	}
	ad, err := cache.ParseDigest(a)
	if err != nil {
		return Ref{}, fmt.Errorf("%q: action digest: %w", s, err)
	}
	sd, err := cache.ParseDigest(sp)
	if err != nil {
		return Ref{}, fmt.Errorf("%q: spec digest: %w", s, err)
	}
	return Ref{Action: ad, Spec: sd}, nil
}

func (r Ref) String() string { return r.Action.String() + ":" + r.Spec.String() }

// Worker runs actions. Configure it before Run.
type Worker struct {
	// Cache holds the actions' messages and inputs and receives their results.
	Cache cache.Cache
	// Executor runs an action in its sandbox and software environment.
	Executor exec.Executor
	// Dir is a node-local scratch folder; each action gets an exec root
	// below it, removed afterwards.
	Dir string
	// Token is the submission's token (see exec.FailureKey).
	Token string
	// Out receives one line per action: what happened to it.
	Out io.Writer
}

// Status is how Run ended for the actions it was given.
type Status int

const (
	AllSucceeded Status = iota
	SomeFailed          // at least one action ran and failed (recorded in the cache)
	CouldNotRun         // at least one action could not be run (cache unreachable, bad description)
)

// maxSpec bounds a Spec blob (an action with a million inputs lists them
// in its tree, not in its Spec; the Spec holds its write content).
const maxSpec = 256 << 20

// Run runs every action in turn and returns how they ended. A context
// cancelled (the job killed) stops at once.
func (w *Worker) Run(ctx context.Context, refs []Ref) Status {
	st := AllSucceeded
	for _, ref := range refs {
		if ctx.Err() != nil {
			w.say("%s: interrupted", ref.Action)
			return CouldNotRun
		}
		outcome, err := w.one(ctx, ref)
		var ae *exec.ActionError
		switch {
		case err == nil:
			w.say("%s: %s", ref.Action, outcomeWord(outcome))
		case errors.As(err, &ae) && killedWithJob(ctx, ae):
			w.say("%s: interrupted: %s", ref.Action, ae.Reason)
			return CouldNotRun
		case errors.As(err, &ae):
			w.say("%s: failed: %s", ref.Action, ae.Reason)
			if rerr := w.recordFailure(ctx, ref, ae); rerr != nil {
				w.say("%s: could not record the failure: %v", ref.Action, rerr)
				st = CouldNotRun
			} else if st == AllSucceeded {
				st = SomeFailed
			}
		default:
			w.say("%s: could not run: %v", ref.Action, err)
			st = CouldNotRun
		}
	}
	return st
}

// signalGrace is how long a worker whose action died of a signal waits
// to be told to stop itself before it records the death as the action's.
const signalGrace = time.Second

// killedWithJob reports whether the action's failure is the job's end: a
// batch system ending a job (scancel, preemption) signals all of its
// processes at once, the command's perhaps a moment before the worker's,
// and that death must not be recorded as the action's failure.
func killedWithJob(ctx context.Context, ae *exec.ActionError) bool {
	if ae.ExitCode == -1 || ae.ExitCode > 128 { // a signal, or a shell's report of one
		t := time.NewTimer(signalGrace)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return ctx.Err() != nil
}

func outcomeWord(o exec.Outcome) string {
	if o == exec.OutcomeCached {
		return "already in the cache"
	}
	return "done"
}

func (w *Worker) say(format string, args ...any) {
	if w.Out != nil {
		fmt.Fprintf(w.Out, "hepbuild worker: "+format+"\n", args...)
	}
}

// one runs one action in a fresh exec root.
func (w *Worker) one(ctx context.Context, ref Ref) (exec.Outcome, error) {
	// Someone (an earlier attempt, another build) may have made it already.
	// Not a result whose blobs are gone (evicted from a cache that keeps
	// action results regardless): the submitter, which could not restore
	// it, would get it back again.
	if res, err := w.Cache.GetActionResult(ctx, ref.Action); err == nil && res.GetExitCode() == 0 && w.complete(ctx, res) {
		return exec.OutcomeCached, nil
	}
	b, err := exec.ReadBlob(ctx, w.Cache, ref.Spec, maxSpec)
	if err != nil {
		return exec.OutcomeFailed, fmt.Errorf("reading the action's description %s: %w", ref.Spec, err)
	}
	spec, err := exec.ParseSpec(b)
	if err != nil {
		return exec.OutcomeFailed, err
	}
	ab, err := exec.ReadBlob(ctx, w.Cache, ref.Action, 1<<20)
	if err != nil {
		return exec.OutcomeFailed, fmt.Errorf("reading the action %s: %w", ref.Action, err)
	}
	var action repb.Action
	if err := proto.Unmarshal(ab, &action); err != nil {
		return exec.OutcomeFailed, fmt.Errorf("reading the action %s: %w", ref.Action, err)
	}
	root, err := os.MkdirTemp(w.Dir, "action-")
	if err != nil {
		return exec.OutcomeFailed, err
	}
	defer cache.RemoveTree(root)
	execRoot := filepath.Join(root, "root")
	if err := os.MkdirAll(filepath.Join(execRoot, exec.OutDir), 0o755); err != nil {
		return exec.OutcomeFailed, err
	}
	r := &exec.Runner{
		ExecRoot:   execRoot,
		OutputBase: filepath.Join(root, "base"),
		Cache:      w.Cache,
		Executor:   w.Executor,
		Warn:       func(s string) { w.say("%s: %s", ref.Action, s) },
	}
	if err := w.materialize(ctx, r, &action, spec); err != nil {
		return exec.OutcomeFailed, err
	}
	a := spec.Action
	o, err := r.WorkAs(ctx, a, ref.Action)
	var ae *exec.ActionError
	if errors.As(err, &ae) && ae.Log != "" {
		// The log is about to go with the exec root: keep it with the error.
		if log, rerr := os.ReadFile(ae.Log); rerr == nil {
			ae.Tail = string(log)
		}
	}
	return o, err
}

// complete reports whether every output blob of the result is in the cache.
func (w *Worker) complete(ctx context.Context, res *repb.ActionResult) bool {
	var ds []cache.Digest
	for _, f := range res.GetOutputFiles() {
		ds = append(ds, cache.FromProto(f.GetDigest()))
	}
	for _, d := range res.GetOutputDirectories() {
		ds = append(ds, cache.FromProto(d.GetTreeDigest()))
	}
	for _, d := range ds {
		if ok, err := w.Cache.Contains(ctx, d); err != nil || !ok {
			return false
		}
	}
	return true
}

// materialize writes the action's input tree, its input links and its
// environment's files into the exec root, each file verified and read-only.
func (w *Worker) materialize(ctx context.Context, r *exec.Runner, action *repb.Action, spec *exec.Spec) error {
	execRoot := r.ExecRoot
	get := func(d cache.Digest) ([]byte, error) { return exec.ReadBlob(ctx, w.Cache, d, 64<<20) }
	files, err := exec.InputFiles(cache.FromProto(action.GetInputRootDigest()), get)
	if err != nil {
		return fmt.Errorf("reading the input tree: %w", err)
	}
	// An input link may lead anywhere (a declared link is never followed
	// on the host): nothing is ever written through one, or the
	// description could have the worker write outside its scratch folder.
	links := map[string]bool{}
	for _, f := range files {
		if err := notBelowLink(links, f.Path); err != nil {
			return err
		}
		if t, ok := spec.Links[f.Path]; ok {
			if err := w.link(execRoot, f.Path, t); err != nil {
				return err
			}
			links[f.Path] = true
			continue
		}
		if err := fetch(ctx, r, f.Path, f.Digest, f.Executable); err != nil {
			return err
		}
	}
	// Only the environment's own files, which its digest (and so the key)
	// covers: any other file would be an input the key does not name.
	envFiles := map[string]bool{}
	if e := spec.Action.Environment; e != nil {
		for _, f := range e.Files {
			envFiles[f.Path] = true
		}
	}
	for _, f := range spec.EnvFiles {
		if err := checkRel(f.Path); err != nil {
			return err
		}
		if !envFiles[f.Path] {
			return fmt.Errorf("the action's description names an environment file %q its environment does not have", f.Path)
		}
		if err := notBelowLink(links, f.Path); err != nil {
			return err
		}
		if err := fetch(ctx, r, f.Path, f.Digest, f.Executable); err != nil {
			return err
		}
	}
	return nil
}

// notBelowLink refuses a path with an input link among its parent folders.
func notBelowLink(links map[string]bool, p string) error {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if links[d] {
			return fmt.Errorf("the action's description names a file %q below the input link %q", p, d)
		}
	}
	return nil
}

func checkRel(p string) error {
	if p == "" || filepath.IsAbs(p) || p != filepath.Clean(p) || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("the action's description names a file %q outside its exec root", p)
	}
	return nil
}

func (w *Worker) link(execRoot, p, target string) error {
	if err := checkRel(p); err != nil {
		return err
	}
	dst := filepath.Join(execRoot, p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// fetch writes one input file from the cache, verified: a hard link to a
// disk cache's blob where it can (Runner.FetchFile), else a copy. A file
// listed twice (an environment's file that is also an input) is written
// twice with the same content.
func fetch(ctx context.Context, r *exec.Runner, p string, d cache.Digest, executable bool) error {
	dst := filepath.Join(r.ExecRoot, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := r.FetchFile(ctx, d, executable, dst); err != nil {
		return fmt.Errorf("fetching input %s (%s): %w", p, d, err)
	}
	return nil
}

// recordFailure stores how the action failed under its failure key: the
// exit code and the log, for the submitting build to show.
func (w *Worker) recordFailure(ctx context.Context, ref Ref, ae *exec.ActionError) error {
	log := ae.Tail
	if ae.Reason != "" {
		log += "\nhepbuild worker: " + ae.Reason + "\n"
	}
	const maxLog = 1 << 20
	if len(log) > maxLog {
		log = "...\n" + log[len(log)-maxLog:]
	}
	b := []byte(log)
	d := cache.FromBytes(b)
	if err := w.Cache.Put(ctx, d, strings.NewReader(log)); err != nil {
		return err
	}
	code := int32(ae.ExitCode)
	if code == 0 {
		code = -1 // ran, exited 0, and still failed (an output missing)
	}
	res := &repb.ActionResult{ExitCode: code, StdoutDigest: d.ToProto()}
	return w.Cache.PutActionResult(ctx, exec.FailureKey(ref.Action, w.Token), res)
}
