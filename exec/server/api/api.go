// Package api is the wire format between builds and `hepbuild serve`, and
// the read model the server's pages are made from. Builds send a BuildStart,
// then Batches (the action plan, events, and the details of each action
// once it ends), then a BuildEnd; the coordinator speaks ClaimRequest,
// RenewRequest and ReleaseRequest. Every value is plain JSON; the server
// validates each field (Validate methods) before it stores anything.
package api

import (
	"context"
	"errors"
	"time"
)

// Paths of the server's JSON API. Every request carries
// "Authorization: Bearer TOKEN" when the server has a token.
const (
	PathBuilds  = "/api/v1/builds"          // POST BuildStart; GET: []BuildRow
	PathBatch   = "/api/v1/builds/%s/batch" // POST Batch
	PathEnd     = "/api/v1/builds/%s/end"   // POST BuildEnd
	PathClaim   = "/api/v1/claims/claim"    // POST ClaimRequest -> ClaimResponse (long poll)
	PathRenew   = "/api/v1/claims/renew"    // POST RenewRequest
	PathRelease = "/api/v1/claims/release"  // POST ReleaseRequest
	PathPing    = "/api/v1/ping"            // GET: 204 when the token is right
)

// Bounds the server enforces; a client keeps below them.
const (
	MaxBody          = 16 << 20 // bytes of one request body
	MaxBatchEvents   = 20000
	MaxBatchPlan     = 100000 // planned actions in one batch
	MaxBatchActions  = 5000   // ActionInfos in one batch
	MaxLog           = 64 << 10
	MaxCommand       = 64 << 10
	MaxListed        = 2000 // inputs, outputs, env entries of an ActionInfo
	MaxString        = 4096 // labels, messages, user names, ...
	MaxClaimWait     = 60 * time.Second
	DefaultClaimWait = 30 * time.Second
	// Heartbeat is how often a build that has nothing to report sends an
	// empty Batch, so that the server, which takes a build silent for
	// several minutes for lost, knows it is alive.
	Heartbeat = time.Minute
)

// BuildStart announces a build. ID is chosen by the client (IDLen hex
// characters) so that the build can print its page's address at once.
type BuildStart struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Host      string    `json:"host"`
	Workspace string    `json:"workspace"` // absolute path on Host
	Targets   []string  `json:"targets"`   // as typed: labels and patterns
	Command   []string  `json:"command"`   // the command line, argv[1:]
	Started   time.Time `json:"started"`
	Version   string    `json:"version"` // hepbuild's
	Total     int       `json:"total"`   // actions in the build
}

// IDLen is the length of a build id: 16 random bytes in hex.
const IDLen = 32

// PlannedAction is one action of the build's graph. IDs are the action's
// index in the build, 0..Total-1; Deps are the IDs of the actions that make
// its inputs. The server aggregates the graph by package and target.
type PlannedAction struct {
	ID       int32   `json:"id"`
	Target   string  `json:"t"` // label of the owning target, "//pkg:name"
	Mnemonic string  `json:"m"`
	Deps     []int32 `json:"d,omitempty"`
}

// Event is a state change of the build or of one action (exec.Event on
// the wire). Action is -1 for build-wide events.
type Event struct {
	Type      string    `json:"type"` // exec.EventType
	Time      time.Time `json:"time"`
	Action    int32     `json:"action"`
	Message   string    `json:"message,omitempty"`
	Key       string    `json:"key,omitempty"`
	Duration  int64     `json:"duration_ns,omitempty"`
	ExitCode  int       `json:"exit_code,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Executor  string    `json:"executor,omitempty"`
	JobID     string    `json:"job_id,omitempty"`
	JobState  string    `json:"job_state,omitempty"`
	JobReason string    `json:"job_reason,omitempty"`
	// Slot is the local slot (1..-j) an action started in; 0 elsewhere.
	Slot int `json:"slot,omitempty"`
}

// ActionInfo is what the action page shows of one action; the client sends
// it once, when the action has ended (ran, restored, up to date or failed).
// Lists longer than MaxListed are cut, with the full count beside them.
type ActionInfo struct {
	ID          int32             `json:"id"`
	Key         string            `json:"key,omitempty"`
	Command     string            `json:"command"` // shell command or quoted argv
	Env         map[string]string `json:"env,omitempty"`
	Environment string            `json:"environment,omitempty"` // software environment
	Inputs      []string          `json:"inputs,omitempty"`
	InputCount  int               `json:"input_count"`
	Outputs     []string          `json:"outputs,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	// Reasons says why it ran: what changed since its last run in this
	// output base (explain's answer); empty when it did not run.
	Reasons []string `json:"reasons,omitempty"`
	// Where it ran: "local slot 3", "slurm job 5599680_3", "remote".
	Where string `json:"where,omitempty"`
	// Log is the end of the action's output (at most MaxLog bytes).
	Log          string `json:"log,omitempty"`
	LogTruncated bool   `json:"log_truncated,omitempty"`
}

// Batch is one report of a running build. Seq counts a build's batches
// from 1; the server ignores a batch it has seen (a retried request).
type Batch struct {
	Seq     int64           `json:"seq"`
	Plan    []PlannedAction `json:"plan,omitempty"`
	Events  []Event         `json:"events,omitempty"`
	Actions []ActionInfo    `json:"actions,omitempty"`
	// Dropped counts events the client could not send (server slow or
	// down): the page says the record is incomplete.
	Dropped int64 `json:"dropped,omitempty"`
}

// Counts are a build's actions by outcome.
type Counts struct {
	Total    int `json:"total"`
	Executed int `json:"executed"`
	Cached   int `json:"cached"`
	UpToDate int `json:"uptodate"`
	Failed   int `json:"failed"`
	Skipped  int `json:"skipped"`
	Running  int `json:"running"`
	Waiting  int `json:"waiting"` // on another build's claim (coordinator)
}

// Step is one action on the critical path.
type Step struct {
	Action   int32  `json:"action"`
	Target   string `json:"target"`
	Mnemonic string `json:"mnemonic"`
	Duration int64  `json:"duration_ns"`
}

// Outcomes of a build.
const (
	OutcomeRunning     = "running"
	OutcomeSuccess     = "success"
	OutcomeFailed      = "failed"      // actions failed
	OutcomeInterrupted = "interrupted" // Ctrl-C
	OutcomeError       = "error"       // could not build: bad input, infrastructure
	OutcomeLost        = "lost"        // the client stopped reporting without an end
)

// BuildEnd closes a build.
type BuildEnd struct {
	Finished     time.Time `json:"finished"`
	Outcome      string    `json:"outcome"`
	ExitCode     int       `json:"exit_code"`
	Error        string    `json:"error,omitempty"`
	Counts       Counts    `json:"counts"`
	CriticalPath []Step    `json:"critical_path,omitempty"`
	Elapsed      int64     `json:"elapsed_ns"`
}

// Claim states.
const (
	ClaimGranted = "granted" // run it; renew the claim until released
	ClaimDone    = "done"    // the holder stored a result: look in the cache
	ClaimHeld    = "held"    // still held after the wait: ask again
)

// ClaimRequest asks to run the action with Key. When another build holds
// it, the server waits up to Wait for its release before answering.
type ClaimRequest struct {
	Build  string `json:"build"`
	Key    string `json:"key"` // action digest "hash/size"
	Target string `json:"target"`
	Wait   int64  `json:"wait_ns"`
}

// ClaimResponse answers a ClaimRequest. Lease is how long a granted claim
// lives without a renewal.
type ClaimResponse struct {
	State  string  `json:"state"`
	Lease  int64   `json:"lease_ns,omitempty"`
	Holder *Holder `json:"holder,omitempty"`
}

// Holder is the build that holds a claim.
type Holder struct {
	Build  string `json:"build"`
	User   string `json:"user"`
	Host   string `json:"host"`
	Target string `json:"target"`
}

// RenewRequest extends the leases of a build's claims.
type RenewRequest struct {
	Build string   `json:"build"`
	Keys  []string `json:"keys"`
}

// ReleaseRequest ends a claim: OK says the result is in the cache.
type ReleaseRequest struct {
	Build string `json:"build"`
	Key   string `json:"key"`
	OK    bool   `json:"ok"`
}

// The read model: what the pages show. Store implementations must be safe
// for concurrent use.

// BuildRow is one line of the build list.
type BuildRow struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Host      string    `json:"host"`
	Workspace string    `json:"workspace"`
	Targets   []string  `json:"targets"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"` // zero while running
	Outcome   string    `json:"outcome"`
	ExitCode  int       `json:"exit_code"`
	Counts    Counts    `json:"counts"`
	Elapsed   int64     `json:"elapsed_ns"` // so far, while running
}

// RunningAction is an action in progress.
type RunningAction struct {
	ID       int32     `json:"id"`
	Target   string    `json:"target"`
	Mnemonic string    `json:"mnemonic"`
	Started  time.Time `json:"started"`
	Where    string    `json:"where,omitempty"`
	Waiting  bool      `json:"waiting,omitempty"` // on another build's claim
}

// Failure is a failed action with the end of its log.
type Failure struct {
	ID       int32  `json:"id"`
	Target   string `json:"target"`
	Mnemonic string `json:"mnemonic"`
	ExitCode int    `json:"exit_code"`
	Message  string `json:"message"`
	Log      string `json:"log"`
}

// JobCount is how many batch jobs are in one state.
type JobCount struct {
	Executor string `json:"executor"`
	State    string `json:"state"`
	Count    int    `json:"count"`
}

// Job is one batch job.
type Job struct {
	Executor string    `json:"executor"`
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Updated  time.Time `json:"updated"`
	Actions  int       `json:"actions"`
}

// BuildView is one build's page.
type BuildView struct {
	BuildRow
	Command      []string        `json:"command"`
	Version      string          `json:"version"`
	Error        string          `json:"error,omitempty"`
	Running      []RunningAction `json:"running"`
	Failures     []Failure       `json:"failures"`
	CriticalPath []Step          `json:"critical_path"`
	JobCounts    []JobCount      `json:"job_counts"`
	Jobs         []Job           `json:"jobs"` // the most recently updated, at most 200
	Warnings     []string        `json:"warnings"`
	Dropped      int64           `json:"dropped"`
}

// GraphNode is one box of the graph: a package, a group of targets, or a
// target. Path names it for Graph (to expand it); Children is how many
// nodes expanding it shows (0 for a target, which links to its actions).
type GraphNode struct {
	Path     string `json:"path"`
	Label    string `json:"label"`
	Kind     string `json:"kind"` // "package", "group", "target"
	Counts   Counts `json:"counts"`
	State    string `json:"state"` // "failed", "running", "waiting", "done", "pending", "skipped"
	Children int    `json:"children"`
	// Action is the first action of a target, for its link; -1 otherwise.
	Action int32 `json:"action"`
}

// GraphEdge says that Count actions under From read outputs of actions
// under To.
type GraphEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// GraphView is one level of a build's graph: the children of Path ("" is
// the top: packages) and the edges among them. Never more than MaxNodes
// nodes: beyond that, targets are grouped by name.
type GraphView struct {
	Build string      `json:"build"`
	Path  string      `json:"path"`
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// MaxNodes bounds the nodes of one GraphView.
const MaxNodes = 200

// ActionView is one action's page.
type ActionView struct {
	ActionInfo
	Build    string      `json:"build"`
	Target   string      `json:"target"`
	Mnemonic string      `json:"mnemonic"`
	State    string      `json:"state"` // exec.EventType of its last event, or "pending"
	ExitCode int         `json:"exit_code"`
	Message  string      `json:"message,omitempty"`
	Attempts int         `json:"attempts"`
	Queued   time.Time   `json:"queued"`
	Started  time.Time   `json:"started"`
	Finished time.Time   `json:"finished"`
	Duration int64       `json:"duration_ns"`
	JobID    string      `json:"job_id,omitempty"`
	Deps     []ActionRef `json:"deps"`
	Rdeps    []ActionRef `json:"rdeps"` // at most MaxListed
}

// ActionRef links to another action of the same build.
type ActionRef struct {
	ID       int32  `json:"id"`
	Target   string `json:"target"`
	Mnemonic string `json:"mnemonic"`
	State    string `json:"state"`
}

// SearchHit is a target found by label in a build.
type SearchHit struct {
	Build   string    `json:"build"`
	User    string    `json:"user"`
	Started time.Time `json:"started"`
	Target  string    `json:"target"`
	Action  int32     `json:"action"` // its first action
	State   string    `json:"state"`
}

// ListQuery selects builds for the list: newest first.
type ListQuery struct {
	User   string    // exact, "" for all
	Target string    // substring of a requested target, "" for all
	Before time.Time // started before, zero for now
	Limit  int       // at most 500
}

// Store is what the pages read. Implementations are safe for concurrent use.
type Store interface {
	ListBuilds(ctx context.Context, q ListQuery) ([]BuildRow, error)
	Build(ctx context.Context, id string) (*BuildView, error)
	Graph(ctx context.Context, id, path string) (*GraphView, error)
	Action(ctx context.Context, id string, action int32) (*ActionView, error)
	// Search finds targets whose label contains label, newest builds first.
	Search(ctx context.Context, label string, limit int) ([]SearchHit, error)
}

// ErrNotFound is a build or action the store does not have.
var ErrNotFound = errors.New("not found")
