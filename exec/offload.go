package exec

import (
	"context"
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
