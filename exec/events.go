package exec

import (
	"context"
	"time"
)

// EventType names a state change of a build.
type EventType string

const (
	EventBuildStarted   EventType = "build_started"
	EventBuildFinished  EventType = "build_finished"
	EventActionQueued   EventType = "action_queued"
	EventActionStarted  EventType = "action_started"
	EventActionCached   EventType = "action_cached"   // restored from the cache, not run
	EventActionUpToDate EventType = "action_uptodate" // outputs already in place and current
	EventActionFinished EventType = "action_finished" // ran and succeeded
	EventActionFailed   EventType = "action_failed"
	EventActionRetry    EventType = "action_retry"
	// EventActionWaiting says that the action waits for another build of
	// the group, which runs the same key (Coordinator); it ends with the
	// action's usual end event, or, when this build gets the key after
	// all, with a second action_started: its own run.
	EventActionWaiting EventType = "action_waiting"
	// EventActionInterrupted ends an action that was running when the build
	// was cancelled; its result is unknown and it counts as skipped.
	EventActionInterrupted EventType = "action_interrupted"
	// Job events follow an action run by a remote executor: queued for
	// a job, submitted (with the job's id), running, finished.
	EventJobQueued    EventType = "job_queued"
	EventJobSubmitted EventType = "job_submitted"
	EventJobRunning   EventType = "job_running"
	EventJobFinished  EventType = "job_finished"
	EventWarning      EventType = "warning"
)

// Event is one state change, written as one JSON object per line by --events.
type Event struct {
	Type     EventType     `json:"type"`
	Time     time.Time     `json:"time"`
	Target   string        `json:"target,omitempty"`
	Mnemonic string        `json:"mnemonic,omitempty"`
	Message  string        `json:"message,omitempty"`
	Key      string        `json:"key,omitempty"` // action digest
	Outputs  []string      `json:"outputs,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	ExitCode int           `json:"exit_code,omitempty"`
	Attempt  int           `json:"attempt,omitempty"`
	Log      string        `json:"log,omitempty"` // full log path of a failed action
	Total    int           `json:"total,omitempty"`
	// Executor, JobID and JobState describe a job event: "slurm",
	// "5599680_3", "running" (see JobUpdate).
	Executor string `json:"executor,omitempty"`
	JobID    string `json:"job_id,omitempty"`
	JobState string `json:"job_state,omitempty"`
	// JobReason is the batch system's word on a job's state: why it
	// waits ("Resources", "QOSMaxJobsPerUserLimit"), why it failed.
	JobReason string  `json:"job_reason,omitempty"`
	Action    *Action `json:"-"`
	// Err is the failure of an action_failed or action_retry event that ran
	// and failed; nil for infrastructure failures (see Message).
	Err *ActionError `json:"-"`
}

// EventSink receives events. Implementations must be safe for concurrent use.
type EventSink interface {
	Event(e Event)
}

// Outcome is how an action's outputs came to be.
type Outcome int

const (
	OutcomeExecuted Outcome = iota // ran
	OutcomeCached                  // restored from the action cache
	OutcomeUpToDate                // already in place from an earlier build
	OutcomeFailed
	OutcomeSkipped // not attempted: a dependency failed or the build was interrupted
)

// Work does one action: looks it up, runs it or restores it. The scheduler
// calls it once per attempt; an error of type *ActionError is a failure of the
// action itself (retried up to the action's retries), any other error is an
// infrastructure failure.
type Work func(ctx context.Context, a *Action) (Outcome, error)

// ActionError is an action that ran and failed: non-zero exit, missing output, timeout.
type ActionError struct {
	Action   *Action
	ExitCode int    // -1 when killed by a signal or not started
	Reason   string // "exit status 3", "timed out after 1m", "did not write declared output x"
	Command  string // what ran, for the message
	Tail     string // the last lines of output
	Log      string // path of the full log
}

func (e *ActionError) Error() string {
	msg := e.Action.Pos.String() + ": " + e.Action.Owner.String() + ": " + e.Action.Mnemonic + " failed: " + e.Reason
	return msg
}

// Coordinator lets concurrent builds of a group share work: before an
// action that missed the cache runs, the Runner claims its key, so that of
// two builds needing the same key at once only one runs it and the other
// restores the result from the shared cache. Implementations must be safe
// for concurrent use.
type Coordinator interface {
	// Claim asks to run the action with key. When the action is this
	// build's to run, run is true and release must be called once when it
	// ended, with ok when its result is in the cache. When another build
	// ran it meanwhile, run is false: the caller looks in the cache again.
	// Claim blocks while another build holds the key (calling waiting
	// once, first, with who holds it: "user@host", or the build's id);
	// it returns ctx's error when ctx ends. A coordinator that cannot be
	// reached grants the claim: it never stops a build.
	Claim(ctx context.Context, a *Action, key string, waiting func(holder string)) (run bool, release func(ok bool), err error)
}
