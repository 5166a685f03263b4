// Package batch runs actions on batch systems: one generic engine (Engine,
// an exec.RemoteExecutor) groups ready actions into jobs and jobs into
// arrays, submits them, polls all of them with one query per tick, treats
// the action cache as the ground truth, resubmits failed or lost jobs,
// cancels everything on interrupt and records what it submitted so that a
// restarted hepbuild re-attaches. Each batch system is a thin Backend in a
// sub-package (slurm, htcondor, lsf, arc, glite); every job runs
// `hepbuild worker` on the node.
package batch

import (
	"context"
	"time"
)

// Backend is one batch system's command line. Implementations run the
// system's tools through sandbox.RunTool and are safe for concurrent use.
type Backend interface {
	// Name is the executor's name: slurm, htcondor, lsf, arc, glite.
	Name() string
	// Submit submits the jobs of one array with one call where the system
	// has arrays (one call per job where it has none) and returns each
	// job's id, in order. An error means none was submitted, or says
	// which were (the ids of those that were, empty for the others).
	Submit(ctx context.Context, a *Array) ([]string, error)
	// Poll returns the state of the given jobs with one query for all of
	// them. A job the system no longer lists is absent from the map: the
	// engine then asks History, if the backend has it, then the cache.
	Poll(ctx context.Context, ids []string) (map[string]Status, error)
	// Cancel removes the jobs, with one call for all where the system allows.
	Cancel(ctx context.Context, ids []string) error
}

// Historian is a Backend with accounting (sacct, condor_history): the
// state of jobs the queue no longer lists. An error (accounting off or
// down) is not fatal: the cache decides.
type Historian interface {
	History(ctx context.Context, ids []string) (map[string]Status, error)
}

// Retriever is a Backend whose jobs' output stays on the far side until
// fetched (ARC's arcget): Retrieve brings the job's log to Job.Log.
type Retriever interface {
	Retrieve(ctx context.Context, id string, job Job) error
}

// Cleaner is a Backend that keeps finished jobs until told to forget them
// (ARC's arcclean).
type Cleaner interface {
	Clean(ctx context.Context, ids []string) error
}

// Array is jobs submitted together, with the same resources.
type Array struct {
	// Name is the job name the batch system shows, e.g. "hepbuild-tth".
	Name string
	// Dir is a folder for the array's submit files and logs; the engine
	// made it, under the output base (or --batch-dir on a shared file system).
	Dir  string
	Jobs []Job
	// Resources every job of the array requests.
	Resources Request
	// Options are the user's extra options for this system, passed as
	// they are (--batch-option=slurm:--partition=short): sbatch options,
	// submit file lines, bsub options.
	Options []string
	// Ship are files every job needs in its working folder, sent with the
	// job (the worker binary, where no file system is shared); only a
	// Shipper takes them.
	Ship []string
}

// Shipper is a Backend whose system transfers files with a job into its
// working folder (ARC's inputFiles), so that nodes need no file system
// shared with the submitting machine.
type Shipper interface {
	ShipsFiles() bool
}

// Job is one job: it runs Command (a `hepbuild worker` invocation) on a
// node and writes its standard output and error to Log.
type Job struct {
	Command []string
	// Env is set for the command on the node (the worker's settings).
	Env map[string]string
	// Log is the job's log file (absolute).
	Log string
}

// Request is what a job asks the batch system for: the largest request
// of the actions in it.
type Request struct {
	CPU      float64       // cores; 0 means 1
	Memory   int64         // bytes; 0 means the system's default
	Walltime time.Duration // 0 means the system's default
}

// State is where a job is, as the engine needs to know it.
type State int

const (
	StatePending State = iota // queued, held, being transferred
	StateRunning              // started on a node
	StateDone                 // ended; whether its actions succeeded is in the cache
	StateFailed               // ended abnormally (killed, over a limit, node failure)
	StateHeld                 // held (HTCondor): will not run until released; the engine removes and resubmits it
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateRunning:
		return "running"
	case StateDone:
		return "done"
	case StateFailed:
		return "failed"
	case StateHeld:
		return "held"
	}
	return "unknown"
}

// Status is a job's state as the batch system reports it.
type Status struct {
	State State
	// ExitCode is the job's exit status where the system reports it.
	ExitCode int
	// Reason is the system's word on why: a hold reason, "OUT_OF_MEMORY",
	// "TIMEOUT", "NODE_FAIL".
	Reason string
	// OverMemory and OverTime say that the system killed the job for
	// exceeding its memory or walltime request.
	OverMemory, OverTime bool
}
