// Package remote runs actions on a Remote Execution API v2 service
// (Buildbarn, BuildBuddy, Buildfarm, ...): it uploads an action's inputs
// to the service's CAS, asks the Execution service to run the action by
// its key, follows the operation until it ends (re-attaching with
// WaitExecution when the stream breaks) and returns the action result,
// whose outputs are then in that CAS. Only actions the far side can run as
// they are keyed go there: processes in the host environment. Writes,
// links and software environments stay local (ErrNotRemotable).
package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	cacheremote "github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/reapi"
	"github.com/hepbuild/hepbuild/exec"
)

// Name is the executor's name, as --executor and progress spell it.
const Name = "reapi"

// Defaults of the executor's settings.
const (
	// DefaultJobs bounds the actions in flight on the service: each holds
	// one Execute stream and its uploads.
	DefaultJobs = 64
	// DefaultStallTimeout is how long a stream may stay silent before it
	// is taken for dead and the operation re-attached. Servers send an
	// update at least every minute (Buildbarn: exactly every minute), so
	// this must be well above that.
	DefaultStallTimeout = 3 * time.Minute
	// DefaultReattachments bounds how often a broken stream is re-attached
	// (WaitExecution) before the operation counts as lost.
	DefaultReattachments = 5
	// DefaultBackoff is the first wait before re-attaching; it doubles.
	DefaultBackoff = 500 * time.Millisecond
	// MaxLogBytes bounds what of a failed action's stdout and stderr is
	// written to its log, each: the runner shows the log's last lines.
	MaxLogBytes = 4 << 20
)

// ErrNotRemotable marks an action the service cannot run as hepbuild keyed
// it: the router runs it locally.
var ErrNotRemotable = errors.New("runs only locally")

// Executor runs actions on a REAPI Execution service. It implements
// exec.RemoteExecutor and is safe for concurrent use: at most Jobs actions
// are in flight at once, the others wait for a slot.
type Executor struct {
	conn *reapi.Conn
	cas  *reapi.Cache
	exec repb.ExecutionClient
	ops  longrunningpb.OperationsClient
	ac   repb.ActionCacheClient

	jobs          chan struct{}
	stall         time.Duration
	reattachments int
	backoff       time.Duration

	// mu guards noCancel: the service said it has no Operations service
	// (Buildbarn), so a cancelled action is only abandoned.
	mu       sync.Mutex
	noCancel bool
	// cancels are the CancelOperation requests in flight; Close waits
	// for them (each gives up after a few seconds).
	cancels sync.WaitGroup
}

// Option configures an Executor.
type Option func(*Executor)

// WithJobs bounds the actions in flight on the service.
func WithJobs(n int) Option {
	return func(e *Executor) {
		if n > 0 {
			e.jobs = make(chan struct{}, n)
		}
	}
}

// WithStallTimeout sets how long an operation's stream may stay silent
// before it is re-attached.
func WithStallTimeout(d time.Duration) Option { return func(e *Executor) { e.stall = d } }

// WithReattachments sets how often a broken stream is re-attached, with
// a first backoff that doubles each time.
func WithReattachments(n int, backoff time.Duration) Option {
	return func(e *Executor) { e.reattachments, e.backoff = n, backoff }
}

// New connects to the Execution service at a grpc:// or grpcs:// URL
// (its path is the instance name; opts give headers, TLS and the per-call
// timeout, as for a remote cache) and checks that it offers remote
// execution with SHA-256 digests.
func New(ctx context.Context, url string, opts cacheremote.Options, more ...Option) (*Executor, error) {
	conn, err := reapi.Dial(url, opts, "remote executor")
	if err != nil {
		return nil, err
	}
	cc := conn.ClientConn()
	e := &Executor{
		conn:          conn,
		cas:           reapi.NewCache(conn),
		exec:          repb.NewExecutionClient(cc),
		ops:           longrunningpb.NewOperationsClient(cc),
		ac:            repb.NewActionCacheClient(cc),
		jobs:          make(chan struct{}, DefaultJobs),
		stall:         DefaultStallTimeout,
		reattachments: DefaultReattachments,
		backoff:       DefaultBackoff,
	}
	for _, o := range more {
		o(e)
	}
	if err := e.check(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return e, nil
}

func (e *Executor) check(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, e.conn.Options().Timeout)
	defer cancel()
	caps, err := repb.NewCapabilitiesClient(e.conn.ClientConn()).GetCapabilities(cctx,
		&repb.GetCapabilitiesRequest{InstanceName: e.conn.Instance()})
	if err != nil {
		return e.conn.Error(ctx, "asking capabilities", err)
	}
	ec := caps.GetExecutionCapabilities()
	if !ec.GetExecEnabled() {
		return fmt.Errorf("remote executor %s: the server does not offer remote execution (execution_capabilities.exec_enabled is false): it may be a cache only; give it as --remote-cache", e.conn.Name())
	}
	if ec.GetDigestFunction() != repb.DigestFunction_SHA256 && !slices.Contains(ec.GetDigestFunctions(), repb.DigestFunction_SHA256) {
		return fmt.Errorf("remote executor %s: the server does not execute with SHA-256 digests", e.conn.Name())
	}
	if cc := caps.GetCacheCapabilities(); cc == nil {
		return fmt.Errorf("remote executor %s: the server offers no CAS to upload inputs to", e.conn.Name())
	}
	return nil
}

// Name is "reapi".
func (e *Executor) Name() string { return Name }

// URL is the service's URL without credentials.
func (e *Executor) URL() string { return e.conn.Name() }

// CAS is the service's cache, where inputs go and outputs come from. A
// build that names no --remote-cache uses it as its remote cache; one that
// does must name the same CAS, or results would not be found.
func (e *Executor) CAS() *reapi.Cache { return e.cas }

// Close closes the connection (and the CAS's, which is the same), once
// the cancellations asked for were sent.
func (e *Executor) Close() error {
	e.cancels.Wait()
	return e.conn.Close()
}

// Remotable says why the action cannot run on a REAPI service, or nil. A
// service runs a command in an input root; it cannot set up a hepbuild
// software environment, write a file from the action's content or make a
// link, and actions tagged to stay local stay local.
func Remotable(a *exec.Action) error {
	switch {
	case a.Kind != exec.KindRun:
		return fmt.Errorf("%s is a %s action: %w", a.Describe(), a.Kind, ErrNotRemotable)
	case a.Environment != nil && (a.Environment.Kind != "" && a.Environment.Kind != "host" || len(a.Environment.Files) > 0 || len(a.Environment.Params) > 0):
		return fmt.Errorf("%s runs in the %s environment %s, which a remote executor cannot set up: %w", a.Describe(), a.Environment.Kind, a.Environment.Label, ErrNotRemotable)
	}
	for _, set := range [][]exec.Artifact{a.Inputs, a.Extras().Tools} {
		for _, in := range set {
			if in.Symlink {
				// The key holds a link by its target; REAPI would need it
				// as a symlink node, which the input tree does not have.
				return fmt.Errorf("%s reads the declared link %s, which a remote executor cannot be given: %w", a.Describe(), in.Path, ErrNotRemotable)
			}
		}
	}
	for _, t := range []string{"local", "no-remote", "no-remote-exec"} {
		if a.HasTag(t) {
			return fmt.Errorf("%s is tagged %s: %w", a.Describe(), t, ErrNotRemotable)
		}
	}
	return nil
}

var _ exec.RemoteExecutor = (*Executor)(nil)
