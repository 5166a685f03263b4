package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec"
)

// Execute runs the action on the service. See exec.RemoteExecutor: a run
// that failed is an unsuccessful Result with its log at req.LogPath; an
// error means the service could not run it (or ctx was cancelled, then
// the error is ctx.Err()).
func (e *Executor) Execute(ctx context.Context, req *exec.ExecRequest) (*exec.ExecResponse, error) {
	a := req.Action
	if err := Remotable(a); err != nil {
		return nil, err
	}
	if req.Key == nil {
		return nil, fmt.Errorf("%s: no key to execute remotely", a.Describe())
	}
	select {
	case e.jobs <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.jobs }()

	// Servers need not answer Execute from their action cache (Buildbarn
	// never does: it expects clients to ask first, as Bazel does), so ask.
	// A result is served only while its blobs are there (REAPI asks
	// servers to check), so it can be restored as it is.
	if res, err := e.cachedResult(ctx, req.Key.Digest); err != nil {
		return nil, err
	} else if res != nil {
		return &exec.ExecResponse{ActionResult: res, Result: exec.ExecResult{Strategy: Name}, Where: Name + " action cache"}, nil
	}

	if _, err := exec.UploadInputs(ctx, e.cas, a, req.Key, req.ExecRoot, req.Inputs); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: uploading inputs to %s: %w", a.Describe(), e.conn.Name(), err)
	}
	for attempt := 1; ; attempt++ {
		op, err := e.run(ctx, req)
		var resp *exec.ExecResponse
		if err == nil {
			resp, err = e.finish(ctx, req, op)
		}
		if err == nil {
			e.progress(req, exec.JobFinished, op.name, "")
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var rerun *rerunError
		if attempt < maxRuns && (missingInputs(err) || errors.As(err, &rerun)) {
			// The CAS lost blobs between the upload and the run (evicted,
			// restarted), or the worker could not run the action (it
			// could not fetch inputs, it went away): upload what is
			// missing and execute again.
			e.progress(req, exec.JobQueued, "", "executing again: "+err.Error())
			if _, err := exec.UploadInputs(ctx, e.cas, a, req.Key, req.ExecRoot, req.Inputs); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%s: uploading inputs to %s again: %w", a.Describe(), e.conn.Name(), err)
			}
			continue
		}
		e.progress(req, exec.JobFailed, op.name, err.Error())
		return nil, fmt.Errorf("%s: %w", a.Describe(), err)
	}
}

// maxRuns bounds how often one Execute asks the service to run the
// action: again only when the service lost its inputs or its worker.
const maxRuns = 3

// rerunError is an operation that ended without running the action to
// its end for a reason that may pass (UNAVAILABLE: the worker could not
// fetch inputs or went away): worth executing again.
type rerunError struct{ error }

func (e *rerunError) Unwrap() error { return e.error }

func (e *Executor) cachedResult(ctx context.Context, key cache.Digest) (*repb.ActionResult, error) {
	cctx, cancel := context.WithTimeout(ctx, e.conn.Options().Timeout)
	defer cancel()
	res, err := e.ac.GetActionResult(cctx, &repb.GetActionResultRequest{
		InstanceName: e.conn.Instance(), ActionDigest: key.ToProto(), DigestFunction: repb.DigestFunction_SHA256,
	})
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		// Absent, or an action cache that fails: Execute decides.
		return nil, nil
	case res.GetExitCode() != 0:
		return nil, nil
	}
	return res, nil
}

// operation is what the executor knows about one remote operation.
type operation struct {
	name   string
	stage  repb.ExecutionStage_Value
	result *repb.ExecuteResponse
}

// run executes the action and follows its operation to its end. A broken
// or silent stream is re-attached with WaitExecution, with backoff; only
// when the server no longer knows the operation (it restarted) is the
// action executed again, which the server de-duplicates by key.
func (e *Executor) run(ctx context.Context, req *exec.ExecRequest) (*operation, error) {
	op := &operation{stage: repb.ExecutionStage_UNKNOWN}
	e.progress(req, exec.JobQueued, "", "")
	wait := e.backoff
	var last error
	for try := 0; ; try++ {
		if try > e.reattachments {
			// last names the server, the call and the operation.
			return op, fmt.Errorf("%w (given up after %d attempts)", last, try)
		}
		if try > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				e.cancel(op.name)
				return op, ctx.Err()
			}
			wait *= 2
		}
		err := e.follow(ctx, req, op)
		switch {
		case err == nil:
			return op, nil
		case ctx.Err() != nil:
			e.cancel(op.name)
			return op, ctx.Err()
		case missingInputs(err):
			return op, err
		case status.Code(err) == codes.NotFound && op.name != "":
			// The server forgot the operation (restarted, or dropped it):
			// nothing to re-attach to, so execute again.
			op.name = ""
		case !retryable(err):
			return op, err
		}
		last = err
	}
}

// follow opens a stream (Execute without an operation name, WaitExecution
// with one) and reads it until the operation is done or the stream ends.
func (e *Executor) follow(ctx context.Context, req *exec.ExecRequest, op *operation) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A flag, not a closed channel: Reset may re-arm a timer that fired
	// while a last message was arriving.
	var stalled atomic.Bool
	timer := time.AfterFunc(e.stall, func() { stalled.Store(true); cancel() })
	defer timer.Stop()

	type receiver interface {
		Recv() (*longrunningpb.Operation, error)
	}
	var (
		stream receiver
		err    error
		what   string
	)
	if op.name == "" {
		what = "executing action " + req.Key.Digest.String()
		stream, err = e.exec.Execute(sctx, &repb.ExecuteRequest{
			InstanceName:   e.conn.Instance(),
			ActionDigest:   req.Key.Digest.ToProto(),
			DigestFunction: repb.DigestFunction_SHA256,
		})
	} else {
		what = "waiting for operation " + op.name
		stream, err = e.exec.WaitExecution(sctx, &repb.WaitExecutionRequest{Name: op.name})
	}
	for err == nil {
		var msg *longrunningpb.Operation
		if msg, err = stream.Recv(); err != nil {
			break
		}
		timer.Reset(e.stall)
		if msg.GetName() != "" {
			op.name = msg.GetName()
		}
		var md repb.ExecuteOperationMetadata
		if msg.GetMetadata().MessageIs(&md) && msg.GetMetadata().UnmarshalTo(&md) == nil && md.GetStage() != op.stage {
			op.stage = md.GetStage()
			switch op.stage {
			case repb.ExecutionStage_CACHE_CHECK, repb.ExecutionStage_QUEUED:
				e.progress(req, exec.JobQueued, op.name, "")
			case repb.ExecutionStage_EXECUTING:
				e.progress(req, exec.JobRunning, op.name, "")
			}
		}
		if !msg.GetDone() {
			continue
		}
		if st := msg.GetError(); st != nil {
			return e.statusError(what, status.FromProto(st).Err())
		}
		var resp repb.ExecuteResponse
		if err := msg.GetResponse().UnmarshalTo(&resp); err != nil {
			return fmt.Errorf("remote executor %s: %s: the operation ended without an ExecuteResponse: %v", e.conn.Name(), what, err)
		}
		op.result = &resp
		return nil
	}
	if stalled.Load() {
		return &transientError{fmt.Errorf("remote executor %s: %s: no word from the server for %v", e.conn.Name(), what, e.stall)}
	}
	if err == io.EOF {
		return &transientError{fmt.Errorf("remote executor %s: %s: the server ended the stream before the operation was done", e.conn.Name(), what)}
	}
	return e.statusError(what, err)
}

// transientError is a failure worth re-attaching for.
type transientError struct{ error }

func (e *transientError) Unwrap() error { return e.error }

// statusError translates a gRPC error once and marks those worth a retry.
func (e *Executor) statusError(what string, err error) error {
	msg := e.conn.Error(context.Background(), what, err)
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.DeadlineExceeded:
		return &transientError{&codeError{msg, status.Code(err)}}
	}
	return &codeError{msg, status.Code(err)}
}

// codeError is a translated error that keeps its gRPC code for decisions.
type codeError struct {
	err  error
	code codes.Code
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// GRPCStatus lets status.Code see the code through the translation.
func (e *codeError) GRPCStatus() *status.Status { return status.New(e.code, e.err.Error()) }

func retryable(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// missingInputs says whether the server refused the action for blobs its
// CAS lacks: FAILED_PRECONDITION (with MISSING violations), as REAPI
// specifies. INVALID_ARGUMENT is not that: Buildbarn says so of a command
// it cannot start (see finish).
func missingInputs(err error) bool {
	var ce *codeError
	return errors.As(err, &ce) && ce.code == codes.FailedPrecondition
}

// cancel asks the server to cancel the operation, in the background: the
// caller (interrupted) does not wait for the answer, and the request gives
// up after a few seconds on a server that does not answer. Buildbarn
// offers no google.longrunning.Operations service (UNIMPLEMENTED); it
// drops an operation nobody waits for after a minute
// (OperationWithNoWaitersTimeout) and then stops the worker's run, so
// closing the stream is all a client can do there.
func (e *Executor) cancel(name string) {
	if name == "" {
		return
	}
	e.mu.Lock()
	skip := e.noCancel
	e.mu.Unlock()
	if skip {
		return
	}
	e.cancels.Add(1)
	go func() {
		defer e.cancels.Done()
		ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_, err := e.ops.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name})
		if status.Code(err) == codes.Unimplemented {
			e.mu.Lock()
			e.noCancel = true
			e.mu.Unlock()
		}
	}()
}

func (e *Executor) progress(req *exec.ExecRequest, s exec.JobState, id, msg string) {
	if req.Progress != nil {
		req.Progress(exec.JobUpdate{State: s, Executor: Name, JobID: id, Message: msg})
	}
}

// finish turns the operation's ExecuteResponse into the executor's answer.
func (e *Executor) finish(ctx context.Context, req *exec.ExecRequest, op *operation) (*exec.ExecResponse, error) {
	resp := op.result
	res := resp.GetResult()
	out := &exec.ExecResponse{Where: Name + " " + op.name, Result: exec.ExecResult{Strategy: Name}}
	if resp.GetCachedResult() {
		out.Where += " (cached result)"
	}
	if md := res.GetExecutionMetadata(); md != nil {
		if q, s := md.GetQueuedTimestamp(), md.GetWorkerStartTimestamp(); q != nil && s != nil {
			out.Queued = max(s.AsTime().Sub(q.AsTime()), 0)
		}
		if s, c := md.GetExecutionStartTimestamp(), md.GetExecutionCompletedTimestamp(); s != nil && c != nil {
			out.Result.Duration = max(c.AsTime().Sub(s.AsTime()), 0)
		}
	}
	st := status.FromProto(resp.GetStatus())
	switch st.Code() {
	case codes.OK:
		if res == nil {
			return nil, fmt.Errorf("remote executor %s: operation %s ended without a result", e.conn.Name(), op.name)
		}
		if res.GetExitCode() == 0 {
			out.ActionResult = res
			return out, nil
		}
		out.Result.ExitCode = int(res.GetExitCode())
		e.writeLog(ctx, req.LogPath, res, resp.GetMessage())
		return out, nil
	case codes.DeadlineExceeded:
		// The action ran over Action.timeout: the action's failure.
		out.Result.ExitCode = -1
		out.Result.TimedOut = true
		out.Result.Timeout = req.Key.Action.GetTimeout().AsDuration()
		if out.Result.Timeout == 0 {
			out.Result.Timeout = req.Action.RunTimeout()
		}
		e.writeLog(ctx, req.LogPath, res, resp.GetMessage())
		return out, nil
	case codes.InvalidArgument:
		// The command could not be started (Buildbarn: "Failed to run
		// command: Cannot find executable ..."): the action's failure,
		// as a missing tool is in a local run.
		out.Result.ExitCode = -1
		out.Result.StartError = limitString(st.Message(), 4<<10)
		e.writeLog(ctx, req.LogPath, res, st.Message())
		return out, nil
	}
	err := e.statusError("operation "+op.name, st.Err())
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.ResourceExhausted:
		return nil, &rerunError{err}
	}
	return nil, err
}

// writeLog writes a failed action's stdout and stderr (each bounded by
// MaxLogBytes) and the server's message to logPath. What cannot be read
// is said in the log instead: the run's failure is the news, not the log.
func (e *Executor) writeLog(ctx context.Context, logPath string, res *repb.ActionResult, message string) {
	if logPath == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return
	}
	f, err := os.Create(logPath)
	if err != nil {
		return
	}
	defer f.Close()
	e.copyOutput(ctx, f, "stdout", res.GetStdoutRaw(), res.GetStdoutDigest())
	e.copyOutput(ctx, f, "stderr", res.GetStderrRaw(), res.GetStderrDigest())
	if message != "" {
		fmt.Fprintf(f, "\n[%s: %s]\n", e.conn.Name(), limitString(message, 64<<10))
	}
}

func (e *Executor) copyOutput(ctx context.Context, w io.Writer, what string, raw []byte, d *repb.Digest) {
	if len(raw) > 0 {
		w.Write(raw[:min(len(raw), MaxLogBytes)])
		if len(raw) > MaxLogBytes {
			fmt.Fprintf(w, "\n[%d more bytes of %s not shown]\n", len(raw)-MaxLogBytes, what)
		}
		return
	}
	dg := cache.FromProto(d)
	if d == nil || dg.Size == 0 {
		return
	}
	rc, err := e.cas.Get(ctx, dg)
	if err != nil {
		fmt.Fprintf(w, "[%s of the run could not be read: %v]\n", what, err)
		return
	}
	defer rc.Close()
	n, err := io.Copy(w, io.LimitReader(rc, MaxLogBytes))
	if err != nil {
		fmt.Fprintf(w, "\n[%s of the run could not be read: %v]\n", what, err)
		return
	}
	if dg.Size > n {
		fmt.Fprintf(w, "\n[%d more bytes of %s not shown]\n", dg.Size-n, what)
	}
}

func limitString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
