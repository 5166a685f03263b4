package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
)

// RemoteExecutor runs actions away from this machine: on a batch system
// through `hepbuild worker`, or on a Remote Execution API service. The
// action's inputs go to a cache the far side reads (UploadInputs), the far
// side runs the action by its key, and its outputs come back as an action
// result whose blobs are in the cache the runner reads: the runner then
// restores them exactly as it restores a cache hit.
//
// Execute blocks until the action ended. A run that failed is an
// ExecResponse with an unsuccessful Result (the log written to
// req.LogPath); the error is an infrastructure failure: the job could
// not be submitted, was lost more often than allowed, the service is gone.
// Implementations are safe for concurrent use and bound the work in flight
// themselves (their own job limit, separate from local -j).
type RemoteExecutor interface {
	// Name is the executor's name as --executor spells it: slurm, reapi, ...
	Name() string
	Execute(ctx context.Context, req *ExecRequest) (*ExecResponse, error)
}

// ExecRequest is one action to run remotely.
type ExecRequest struct {
	Action *Action
	// Key is the action's key with every REAPI message (Action, Command,
	// input Directories) in Key.Blobs.
	Key *Key
	// ExecRoot holds the action's inputs, for upload (UploadInputs).
	ExecRoot string
	// Inputs digests them, as the key was computed.
	Inputs Inputs
	// LogPath is where the log of a run that failed goes, for the runner's
	// failure message; a successful run's log comes with its result.
	LogPath string
	// Progress is told how the action's job advances; nil means nobody asks.
	Progress func(JobUpdate)
}

// JobState is where an action's batch job or remote operation is.
type JobState string

const (
	JobQueued    JobState = "queued"    // waiting to be submitted (grouped into a job)
	JobSubmitted JobState = "submitted" // accepted by the batch system, pending
	JobRunning   JobState = "running"
	JobFinished  JobState = "finished"
	JobFailed    JobState = "failed" // the job (not only an action in it) failed or was lost
)

// JobUpdate says where the job running an action is.
type JobUpdate struct {
	State JobState
	// Executor is the executor's name: slurm, htcondor, reapi, ...
	Executor string
	// JobID is the batch system's id of the job (or array task), or the
	// operation's name; empty while queued.
	JobID string
	// Log is the batch system's log file of the job, where there is one.
	Log string
	// Message adds a reason: a hold reason, "over its memory limit".
	Message string
}

// ExecResponse is how a remotely executed action ended.
type ExecResponse struct {
	// Result is how the run ended; Result.Strategy names where it ran.
	Result ExecResult
	// ActionResult, for a successful run, lists the outputs; its blobs are
	// in the cache the runner reads. Nil means: read the action cache.
	ActionResult *repb.ActionResult
	// Where names what ran the action, e.g. "slurm job 1234_5".
	Where string
	// Queued is how long the action waited before it started to run.
	Queued time.Duration
}

// route returns the remote executor of the action, or nil to run it here.
// An action that cannot be cached cannot come back from a remote run.
func (r *Runner) route(a *Action) RemoteExecutor {
	if r.Route == nil || !r.cacheable(a) {
		return nil
	}
	return r.Route(a)
}

// executeRemote runs the action on a remote executor and restores its
// outputs from the cache, as a hit. It holds no local job slot: the
// executor bounds its own work, and the action's walltime is the remote
// system's to enforce, from its request.
func (r *Runner) executeRemote(ctx context.Context, rx RemoteExecutor, a *Action, key *Key, in *inputDigests) error {
	CommandDone(ctx) // give the local slot back: nothing runs here
	logPath := r.logPath(a)
	req := &ExecRequest{Action: a, Key: key, ExecRoot: r.ExecRoot, Inputs: in, LogPath: logPath, Progress: r.jobProgress(a, key)}
	resp, err := rx.Execute(ctx, req)
	if err != nil {
		var ce *inputChangedError
		if errors.As(err, &ce) {
			ce.failure = &ActionError{Action: a, ExitCode: -1, Reason: ce.Error(), Command: describeCommand(a)}
			return ce
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %s: could not run %s on %s: %w", a.Pos, a.Owner, a.Mnemonic, rx.Name(), err)
	}
	if !resp.Result.Success() {
		_ = r.removeOutputs(a)
		ae := r.failure(a, resp.Result, logPath)
		if resp.Where != "" {
			ae.Reason += " (on " + resp.Where + ")"
		}
		return ae
	}
	// The executor already read the result (the engine from the action
	// cache, a REAPI service in its answer): no second lookup.
	var ok bool
	if resp.ActionResult != nil {
		ok, err = r.restoreResult(ctx, a, key, in, resp.ActionResult)
	} else {
		ok, err = r.restore(ctx, a, key, in)
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %s: %s ran %s, but its result is not in the cache (%s)", a.Pos, a.Owner, rx.Name(), a.Mnemonic, resp.Where)
	}
	return nil
}

// jobProgress turns an executor's job updates into events.
func (r *Runner) jobProgress(a *Action, key *Key) func(JobUpdate) {
	if r.Events == nil {
		return nil
	}
	return func(u JobUpdate) {
		t := EventJobSubmitted
		switch u.State {
		case JobQueued:
			t = EventJobQueued
		case JobRunning:
			t = EventJobRunning
		case JobFinished, JobFailed:
			t = EventJobFinished
		}
		msg := u.Executor
		if u.JobID != "" {
			msg += " job " + u.JobID
		}
		if u.Message != "" {
			msg += ": " + u.Message
		}
		r.Events.Event(Event{Type: t, Time: time.Now(), Target: a.Owner.String(), Mnemonic: a.Mnemonic, Key: key.Digest.String(),
			Message: msg, Executor: u.Executor, JobID: u.JobID, JobState: string(u.State), JobReason: u.Message, Log: u.Log, Action: a})
	}
}

// Offloaded reports whether the action would run away from this machine
// (Route), for Scheduler.Offloaded.
func (r *Runner) Offloaded(a *Action) bool {
	r.init()
	return r.route(a) != nil
}
