// Package report streams a build to `hepbuild serve`: a BuildStart, the
// action plan, the events as they happen and the details of every action
// once it ended, then a BuildEnd. The Reporter is an exec.EventSink that
// never slows the build: Event appends to a bounded buffer, and one
// background goroutine batches and sends. A server that is slow, down or
// refuses the build costs one warning and whatever events did not fit the
// buffer (counted, so that the build's page says its record is
// incomplete); the build goes on.
package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
)

// Defaults of Options.
const (
	DefaultInterval = 250 * time.Millisecond
	DefaultFlushAt  = 5000
	DefaultBuffer   = 200000
	DefaultTimeout  = 5 * time.Second
	// LogTail is how much of the log of an action that did not fail is
	// sent; a failed action's log gets api.MaxLog.
	LogTail = 8 << 10
	// eventChunk is how many events one chunk of the buffer holds.
	eventChunk = 1024
	// maxBackoff bounds the wait before trying a server that failed again.
	maxBackoff = 30 * time.Second
	// budget keeps one request body well below api.MaxBody.
	budget = api.MaxBody / 2
)

// Options configure a Reporter.
type Options struct {
	// URL is the base of the server, "https://host:port" (a path prefix
	// is kept).
	URL string
	// Client sends the requests; nil means a client of its own. Each
	// request is bounded by Timeout whatever the client's own bound.
	Client *http.Client
	// Token is sent as "Authorization: Bearer TOKEN"; never printed.
	Token string
	// Start announces the build; an empty ID gets a new one (NewID).
	Start api.BuildStart
	// Actions are the build's actions: an action's index is its id on
	// the wire. Start.Total is set to their number.
	Actions []*exec.Action
	// Graph says which action makes each input (PlannedAction.Deps); nil
	// sends no edges.
	Graph *exec.Graph
	// LogPath says where an action's log is (exec.Runner.LogPath); nil
	// sends no logs.
	LogPath func(*exec.Action) string
	// Offloaded says which actions run away from this machine
	// (exec.Runner.Offloaded): they take no local slot. It is asked when
	// an action starts, so it may be set up after New.
	Offloaded func(*exec.Action) bool
	// Warn receives the one warning about a server that fails; nil
	// means stderr.
	Warn func(string)
	// Interval between batches (DefaultInterval); FlushAt events send
	// one at once (DefaultFlushAt); Buffer bounds the events held while
	// the server is slow (DefaultBuffer); Timeout bounds each request
	// (DefaultTimeout).
	Interval time.Duration
	FlushAt  int
	Buffer   int
	Timeout  time.Duration
	// Heartbeat is how long the reporter stays silent before it sends an
	// empty batch (api.Heartbeat).
	Heartbeat time.Duration
}

// Reporter streams one build to a server. Event and Reasons are safe for
// concurrent use and never block on the network.
type Reporter struct {
	opts   Options
	base   string // URL without a trailing slash
	shown  string // URL as it may be printed: no user information
	client *http.Client
	index  map[*exec.Action]int32

	mu sync.Mutex
	// events are held in chunks of fixed capacity: appending never
	// copies what is held already, so Event costs the same at any size.
	events  [][]api.Event
	nEvents int
	ended   []ended // actions whose details are due
	dropped int64   // events and details that did not fit, not yet reported
	total   int64   // all dropped, for Dropped
	slots   []bool  // slots[k]: local slot k+1 is taken
	slotOf  []int32 // the local slot of a running action, 0 when none
	where   []string
	reasons map[int32]reasonsKey
	closed  bool
	kick    chan struct{} // a full buffer asks for a batch at once
	// begun is closed once the server answered the BuildStart, or the
	// first try failed (see Started).
	begun     chan struct{}
	beginOnce sync.Once
	closing   chan closeRequest
	done      chan struct{}
	endErr    error

	// Owned by the sending goroutine.
	started  bool
	planLeft [][]api.PlannedAction // plan batches not yet taken
	evLeft   []api.Event           // events taken from the buffer, not yet sent
	infoLeft []api.ActionInfo      // details made, not yet sent
	pending  *api.Batch            // a batch that failed and is tried again
	seq      int64                 // the last batch the server took
	lastPost time.Time             // when the server last took a batch
	failing  bool                  // the last request failed: waiting until retry
	warned   bool
	denied   bool // 401/403: the server will not take this build
	retry    time.Time
	backoff  time.Duration
}

type ended struct {
	id     int32
	failed bool
	key    string
}

type reasonsKey struct {
	key string
	why []string
}

// NewID returns a new build id: 16 random bytes in hex.
func NewID() string {
	var b [api.IDLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// New starts reporting: the background goroutine sends the BuildStart and
// the plan at once. Close ends it.
func New(opts Options) *Reporter {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = api.Heartbeat
	}
	if opts.FlushAt <= 0 {
		opts.FlushAt = DefaultFlushAt
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Start.ID == "" {
		opts.Start.ID = NewID()
	}
	opts.Start.Total = len(opts.Actions)
	r := &Reporter{
		opts:    opts,
		base:    strings.TrimRight(opts.URL, "/"),
		client:  opts.Client,
		index:   make(map[*exec.Action]int32, len(opts.Actions)),
		slotOf:  make([]int32, len(opts.Actions)),
		where:   make([]string, len(opts.Actions)),
		reasons: map[int32]reasonsKey{},
		kick:    make(chan struct{}, 1),
		begun:   make(chan struct{}),
		closing: make(chan closeRequest, 1),
		done:    make(chan struct{}),
	}
	r.shown = redact(r.base)
	if r.client == nil {
		r.client = &http.Client{}
	}
	// A redirect is answered as it is, a failure: net/http would repeat
	// the report, token included, to another port of the same host or
	// wherever the answer says.
	c := *r.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r.client = &c
	for i, a := range opts.Actions {
		r.index[a] = int32(i)
	}
	// The BuildStart goes at once, not after a first Interval: claims
	// wait for it (Started).
	r.kick <- struct{}{}
	go r.loop()
	return r
}

// Started is closed once the server took the BuildStart, or the first
// try to send it failed (the build goes on without the server), or the
// reporter closed. The coordinator's claims wait for it: the server
// refuses claims of a build it does not have.
func (r *Reporter) Started() <-chan struct{} { return r.begun }

func (r *Reporter) begin() { r.beginOnce.Do(func() { close(r.begun) }) }

// ID is the build's id on the server.
func (r *Reporter) ID() string { return r.opts.Start.ID }

// PageURL is the address of the build's page.
func (r *Reporter) PageURL() string { return r.shown + "/builds/" + r.opts.Start.ID }

// Dropped counts the events and action details that were not sent.
func (r *Reporter) Dropped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// ActionID is the action's id on the wire, false for an action not of
// this build.
func (r *Reporter) ActionID(a *exec.Action) (int32, bool) {
	i, ok := r.index[a]
	return i, ok
}

// Steps is a critical path on the wire.
func (r *Reporter) Steps(path []exec.Step) []api.Step {
	var out []api.Step
	for _, s := range path {
		id, ok := r.index[s.Action]
		if !ok {
			continue
		}
		out = append(out, api.Step{Action: id, Target: s.Action.Owner.String(), Mnemonic: s.Action.Mnemonic, Duration: int64(s.Duration)})
	}
	return out
}

// Counts are a summary's counts on the wire; nil counts nothing.
func Counts(s *exec.Summary) api.Counts {
	if s == nil {
		return api.Counts{}
	}
	return api.Counts{Total: s.Total, Executed: s.Executed, Cached: s.Cached, UpToDate: s.UpToDate, Failed: s.Failed, Skipped: s.Skipped}
}

// redact removes the user information (a password) from a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// Reasons records why an action runs (exec.Runner.Reasons); they go with
// its details when it ends.
func (r *Reporter) Reasons(a *exec.Action, key string, why []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.index[a]; ok && !r.closed {
		r.reasons[i] = reasonsKey{key, why}
	}
}

// Event records one state change. It takes a lock and appends: it never
// waits for the network.
func (r *Reporter) Event(e exec.Event) {
	id := int32(-1)
	if e.Action != nil {
		i, ok := r.index[e.Action]
		if !ok {
			return // not one of this build's actions
		}
		id = i
	}
	ev := api.Event{
		Type: string(e.Type), Time: e.Time, Action: id,
		Message: e.Message, Key: e.Key, Duration: int64(e.Duration),
		ExitCode: e.ExitCode, Attempt: e.Attempt,
		Executor: e.Executor, JobID: e.JobID, JobState: e.JobState, JobReason: e.JobReason,
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	away := e.Type == exec.EventActionStarted && r.opts.Offloaded != nil && r.opts.Offloaded(e.Action)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if id >= 0 {
		switch e.Type {
		case exec.EventActionStarted:
			if !away {
				r.freeSlot(id)
				ev.Slot = r.takeSlot(id)
				r.where[id] = "local slot " + strconv.Itoa(ev.Slot)
			}
		case exec.EventJobSubmitted, exec.EventJobRunning, exec.EventJobQueued, exec.EventJobFinished:
			if e.JobID != "" {
				r.where[id] = e.Executor + " job " + e.JobID
			} else if e.Executor != "" && r.where[id] == "" {
				r.where[id] = e.Executor
			}
			r.freeSlot(id)
		case exec.EventActionRetry, exec.EventActionInterrupted:
			r.freeSlot(id)
		case exec.EventActionFinished, exec.EventActionCached, exec.EventActionUpToDate, exec.EventActionFailed:
			r.freeSlot(id)
			if len(r.ended) < r.opts.Buffer {
				r.ended = append(r.ended, ended{id: id, failed: e.Type == exec.EventActionFailed, key: e.Key})
			} else {
				r.dropped++
				r.total++
			}
		}
	}
	if r.nEvents >= r.opts.Buffer {
		r.dropped++
		r.total++
		return
	}
	last := len(r.events) - 1
	if last < 0 || len(r.events[last]) == cap(r.events[last]) {
		r.events = append(r.events, make([]api.Event, 0, eventChunk))
		last++
	}
	r.events[last] = append(r.events[last], ev)
	r.nEvents++
	if r.nEvents%r.opts.FlushAt == 0 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// takeSlot gives the action the lowest free local slot (1-based). Called
// with mu held; -j is small, so a scan is cheap.
func (r *Reporter) takeSlot(id int32) int {
	k := 0
	for k < len(r.slots) && r.slots[k] {
		k++
	}
	if k == len(r.slots) {
		r.slots = append(r.slots, false)
	}
	r.slots[k] = true
	r.slotOf[id] = int32(k + 1)
	return k + 1
}

func (r *Reporter) freeSlot(id int32) {
	if s := r.slotOf[id]; s > 0 {
		r.slots[s-1] = false
		r.slotOf[id] = 0
	}
}

// Close sends what remains and the BuildEnd within ctx (give it a
// deadline: a server that hangs must not hold the build's exit; a server
// that already failed gets at most 2 s). Events after Close are ignored.
// It returns the first error of the final requests; the warning, if any,
// was given.
func (r *Reporter) Close(ctx context.Context, end api.BuildEnd) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("report: closed twice")
	}
	r.closed = true
	r.mu.Unlock()
	r.closing <- closeRequest{ctx, end}
	select {
	case <-r.done:
		return r.endErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

type closeRequest struct {
	ctx context.Context
	end api.BuildEnd
}

// loop is the sending goroutine: a batch every Interval, or at once when
// FlushAt events wait, unless a failed server is being left alone.
func (r *Reporter) loop() {
	defer close(r.done)
	defer r.begin()
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.kick:
		case c := <-r.closing:
			r.endErr = r.finish(c.ctx, c.end)
			return
		}
		if r.denied || (r.failing && time.Now().Before(r.retry)) {
			continue
		}
		r.send(context.Background(), false)
	}
}

// finish sends the last events and details and ends the build.
func (r *Reporter) finish(ctx context.Context, end api.BuildEnd) error {
	if r.denied {
		return errDenied
	}
	if r.failing {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	if err := r.send(ctx, true); err != nil {
		return err
	}
	if end.Finished.IsZero() {
		end.Finished = time.Now()
	}
	end.Finished = end.Finished.UTC()
	end.Error = cut(end.Error, api.MaxString)
	if len(end.CriticalPath) > api.MaxListed {
		end.CriticalPath = end.CriticalPath[:api.MaxListed]
	}
	for i := range end.CriticalPath {
		end.CriticalPath[i].Target = cut(end.CriticalPath[i].Target, api.MaxString)
		end.CriticalPath[i].Mnemonic = cut(end.CriticalPath[i].Mnemonic, api.MaxString)
	}
	if err := r.post(ctx, fmt.Sprintf(api.PathEnd, r.opts.Start.ID), end); err != nil {
		r.fail(err)
		return err
	}
	return nil
}

var errDenied = errors.New("the server refused the build")

// send delivers, in order, the BuildStart, the plan, a batch that failed
// before, and batches of what the buffer holds: while FlushAt events
// wait, or everything when final. It stops at the first failure.
func (r *Reporter) send(ctx context.Context, final bool) error {
	if !r.started {
		err := r.post(ctx, api.PathBuilds, r.start())
		r.begin()
		if err != nil {
			r.fail(err)
			if permanent(err) {
				// The server will not have this build: no batch could go.
				r.denied = true
			}
			return err
		}
		r.started = true
		r.lastPost = time.Now()
		r.planLeft = r.plan()
	}
	for len(r.planLeft) > 0 {
		b := &api.Batch{Seq: r.seq + 1, Plan: r.planLeft[0]}
		if err := r.post(ctx, fmt.Sprintf(api.PathBatch, r.opts.Start.ID), b); err != nil {
			if permanent(err) {
				r.seq++
				r.planLeft = r.planLeft[1:]
			}
			r.fail(err)
			return err
		}
		r.seq++
		r.planLeft = r.planLeft[1:]
	}
	for {
		if r.pending == nil {
			if r.pending = r.next(); r.pending == nil && !final && time.Since(r.lastPost) > r.opts.Heartbeat {
				// Actions that run for hours send nothing: an empty
				// batch says the build is alive, so that the server
				// does not take it for lost.
				r.pending = &api.Batch{Seq: r.seq + 1}
			}
			if r.pending == nil {
				r.ok()
				return nil
			}
		}
		b := r.pending
		if err := r.post(ctx, fmt.Sprintf(api.PathBatch, r.opts.Start.ID), b); err != nil {
			if permanent(err) {
				// The server will never take this batch: what it held
				// is lost; the rest may go.
				r.mu.Lock()
				n := b.Dropped + int64(len(b.Events)+len(b.Actions))
				r.dropped += n
				r.total += n - b.Dropped
				r.mu.Unlock()
				r.pending = nil
				r.seq++
			}
			r.fail(err)
			return err
		}
		r.pending = nil
		r.seq++
		r.lastPost = time.Now()
		if !final && r.buffered() < r.opts.FlushAt {
			r.ok()
			return nil
		}
	}
}

func (r *Reporter) buffered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nEvents + len(r.evLeft)
}

// ok notes a server that answers again.
func (r *Reporter) ok() {
	r.failing = false
	r.backoff = 0
}

// fail notes a failed request: one warning for the whole build, and a
// growing wait before the next try.
func (r *Reporter) fail(err error) {
	var se *statusError
	if errors.As(err, &se) && (se.code == http.StatusUnauthorized || se.code == http.StatusForbidden) {
		r.denied = true
	}
	r.failing = true
	r.backoff = min(max(2*r.backoff, time.Second), maxBackoff)
	r.retry = time.Now().Add(r.backoff)
	if r.warned {
		return
	}
	r.warned = true
	msg := fmt.Sprintf("the build server %s did not take this build's report (%v); the build goes on, and its record there may be incomplete", r.shown, err)
	if r.denied {
		msg = fmt.Sprintf("the build server %s refused this build's report (%v: check --server-token-file); the build goes on without it", r.shown, err)
	}
	if r.opts.Warn != nil {
		r.opts.Warn(msg)
	} else {
		fmt.Fprintln(os.Stderr, "WARNING: "+msg)
	}
}

// statusError is an answer other than 2xx.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string {
	if e.msg != "" {
		return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.msg)
	}
	return fmt.Sprintf("%d %s", e.code, http.StatusText(e.code))
}

// permanent says that sending the same request again cannot help: the
// server judged it (bad request, too large, unknown build).
func permanent(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	return se.code >= 400 && se.code < 500 && se.code != http.StatusRequestTimeout && se.code != http.StatusTooManyRequests &&
		se.code != http.StatusUnauthorized && se.code != http.StatusForbidden
}

// post sends v as JSON to path, bounded by Timeout. Its errors name
// neither the URL (it may hold a password) nor the token.
func (r *Reporter) post(ctx context.Context, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad server URL")
	}
	req.Header.Set("Content-Type", "application/json")
	if r.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.opts.Token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("no answer within %s", r.opts.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	text := strings.TrimSpace(string(msg))
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !utf8.ValidString(text) {
		text = ""
	}
	return &statusError{code: resp.StatusCode, msg: cut(text, 200)}
}

// start is the BuildStart as sent: strings within the server's bounds.
func (r *Reporter) start() api.BuildStart {
	s := r.opts.Start
	s.Started = s.Started.UTC()
	if s.Started.IsZero() {
		s.Started = time.Now().UTC()
	}
	s.User, s.Host = cut(s.User, api.MaxString), cut(s.Host, api.MaxString)
	s.Workspace, s.Version = cut(s.Workspace, api.MaxString), cut(s.Version, api.MaxString)
	s.Targets = cutList(s.Targets)
	s.Command = cutList(s.Command)
	return s
}

// plan is the action graph in batches: each action's target, mnemonic
// and the actions that make its inputs.
func (r *Reporter) plan() [][]api.PlannedAction {
	var chunks [][]api.PlannedAction
	var cur []api.PlannedAction
	size := 0
	var stamp []int32
	if r.opts.Graph != nil {
		stamp = make([]int32, len(r.opts.Actions))
	}
	for i, a := range r.opts.Actions {
		p := api.PlannedAction{ID: int32(i), Target: cut(a.Owner.String(), api.MaxString), Mnemonic: cut(a.Mnemonic, api.MaxString)}
		if r.opts.Graph != nil {
			for _, in := range a.Inputs {
				if in.Source {
					continue
				}
				pa, ok := r.opts.Graph.Producer[in.Path]
				if !ok {
					continue
				}
				d, ok := r.index[pa]
				if !ok || d == int32(i) || stamp[d] == int32(i)+1 {
					continue
				}
				stamp[d] = int32(i) + 1
				p.Deps = append(p.Deps, d)
			}
		}
		n := 40 + len(p.Target) + len(p.Mnemonic) + 11*len(p.Deps)
		if len(cur) > 0 && (len(cur) == api.MaxBatchPlan || size+n > budget) {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, p)
		size += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// next takes a batch's worth of events and action details from the
// buffer, or returns nil when there is nothing to send. Its Dropped is
// what was dropped since the batch before: the server adds them up (a
// batch sent again has the same Seq, which the server ignores).
func (r *Reporter) next() *api.Batch {
	type due struct {
		ended
		where string
		why   reasonsKey
	}
	r.mu.Lock()
	var chunks [][]api.Event
	if len(r.evLeft) == 0 && r.nEvents > 0 {
		chunks, r.events, r.nEvents = r.events, nil, 0
	}
	var dues []due
	room := api.MaxBatchActions - len(r.infoLeft)
	for len(r.ended) > 0 && len(dues) < room {
		e := r.ended[0]
		r.ended = r.ended[1:]
		d := due{ended: e, where: r.where[e.id], why: r.reasons[e.id]}
		delete(r.reasons, e.id)
		dues = append(dues, d)
	}
	if len(r.ended) == 0 {
		r.ended = nil // let the backing array go
	}
	dropped := r.dropped
	r.dropped = 0
	r.mu.Unlock()

	if chunks != nil {
		n := 0
		for _, c := range chunks {
			n += len(c)
		}
		r.evLeft = make([]api.Event, 0, n)
		for _, c := range chunks {
			r.evLeft = append(r.evLeft, c...)
		}
	}

	for _, d := range dues {
		r.infoLeft = append(r.infoLeft, r.info(d.ended, d.where, d.why))
	}
	b := &api.Batch{Seq: r.seq + 1, Dropped: dropped}
	size := 0
	n := 0
	for n < len(r.evLeft) && n < api.MaxBatchEvents && size < budget/2 {
		e := &r.evLeft[n]
		e.Message = cut(e.Message, api.MaxString)
		e.Key, e.Executor, e.JobID = cut(e.Key, api.MaxString), cut(e.Executor, api.MaxString), cut(e.JobID, api.MaxString)
		e.JobState, e.JobReason = cut(e.JobState, api.MaxString), cut(e.JobReason, api.MaxString)
		size += 160 + len(e.Message) + len(e.Key) + len(e.Executor) + len(e.JobID) + len(e.JobState) + len(e.JobReason)
		n++
	}
	b.Events = r.evLeft[:n:n]
	if r.evLeft = r.evLeft[n:]; len(r.evLeft) == 0 {
		r.evLeft = nil
	}
	n = 0
	for n < len(r.infoLeft) && (n == 0 || size < budget) {
		size += infoSize(&r.infoLeft[n])
		n++
	}
	b.Actions = r.infoLeft[:n:n]
	if r.infoLeft = r.infoLeft[n:]; len(r.infoLeft) == 0 {
		r.infoLeft = nil
	}
	if len(b.Events) == 0 && len(b.Actions) == 0 && b.Dropped == 0 {
		return nil
	}
	return b
}

func infoSize(a *api.ActionInfo) int {
	n := 200 + len(a.Key) + len(a.Command) + len(a.Environment) + len(a.Where) + len(a.Log)
	for k, v := range a.Env {
		n += 8 + len(k) + len(v)
	}
	for _, l := range [][]string{a.Inputs, a.Outputs, a.Tags, a.Reasons} {
		for _, s := range l {
			n += 4 + len(s)
		}
	}
	return n
}

// info is what the action page shows of an action that ended. It runs on
// the sending goroutine: it reads the log.
func (r *Reporter) info(e ended, where string, why reasonsKey) api.ActionInfo {
	a := r.opts.Actions[e.id]
	info := api.ActionInfo{
		ID:         e.id,
		Key:        e.key,
		Command:    cut(exec.DescribeCommand(a), api.MaxCommand),
		InputCount: len(a.Inputs),
		Where:      cut(where, api.MaxString),
		Reasons:    cutList(why.why),
	}
	if info.Key == "" {
		info.Key = why.key
	}
	info.Key = cut(info.Key, api.MaxString)
	if len(a.Env) > 0 {
		names := make([]string, 0, len(a.Env))
		for k := range a.Env {
			names = append(names, k)
		}
		sort.Strings(names)
		if len(names) > api.MaxListed {
			names = names[:api.MaxListed]
		}
		info.Env = make(map[string]string, len(names))
		for _, k := range names {
			info.Env[cut(k, api.MaxString)] = cut(a.Env[k], api.MaxString)
		}
	}
	if env := a.Environment; env != nil {
		info.Environment = env.Kind
		if l := env.Label.String(); env.Label.Name != "" {
			info.Environment = l + " (" + env.Kind + ")"
		}
		info.Environment = cut(info.Environment, api.MaxString)
	}
	for i, in := range a.Inputs {
		if i == api.MaxListed {
			break
		}
		info.Inputs = append(info.Inputs, cut(in.Path, api.MaxString))
	}
	for i, o := range a.Outputs {
		if i == api.MaxListed {
			break
		}
		info.Outputs = append(info.Outputs, cut(o.Path, api.MaxString))
	}
	info.Tags = cutList(a.Extras().Tags)
	if r.opts.LogPath != nil {
		limit := int64(LogTail)
		if e.failed {
			limit = api.MaxLog
		}
		info.Log, info.LogTruncated = tail(r.opts.LogPath(a), limit)
	}
	return info
}

// tail reads at most limit bytes of the end of a file, from a line's
// start when it can; "" when the file is missing or empty.
func tail(path string, limit int64) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return "", false
	}
	truncated := fi.Size() > limit
	if truncated {
		if _, err := f.Seek(-limit, io.SeekEnd); err != nil {
			return "", false
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return "", false
	}
	if truncated {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 && i < 1024 {
			b = b[i+1:]
		}
	}
	// Invalid UTF-8 would grow by a third in JSON; the page shows text.
	return strings.ToValidUTF8(string(b), "\uFFFD"), truncated
}

// cut bounds s to n bytes, at a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	// A character cut in two leaves up to three bytes that are none.
	for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

// cutList bounds a list of strings to api.MaxListed strings of
// api.MaxString bytes.
func cutList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	l = l[:min(len(l), api.MaxListed)]
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = cut(s, api.MaxString)
	}
	return out
}
