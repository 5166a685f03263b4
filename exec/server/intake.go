package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// decode reads a JSON body into v, answering the client itself when it
// cannot: 413 for a body over api.MaxBody, 400 for anything else.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(r.Body)
	if err := d.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", api.MaxBody))
			return false
		}
		httpError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// answer reports err: 400 for a bad request, 500 otherwise (logged).
func (s *Server) answer(w http.ResponseWriter, err error) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		httpError(w, http.StatusBadRequest, br.msg)
	case errors.Is(err, api.ErrNotFound):
		httpError(w, http.StatusNotFound, "no such build")
	default:
		s.log.Print(err)
		httpError(w, http.StatusInternalServerError, "internal error")
	}
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	var st api.BuildStart
	if !decode(w, r, &st) {
		return
	}
	if err := validateStart(&st); err != nil {
		s.answer(w, err)
		return
	}
	now := s.now()
	if st.Started.IsZero() {
		st.Started = now
	}
	st.Started = st.Started.UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.live[st.ID]; b != nil {
		s.repeatedStart(w, &b.start, &st)
		return
	}
	var user, host string
	var started int64
	err := s.db.QueryRowContext(r.Context(), "SELECT user, host, started FROM builds WHERE id = ?", st.ID).Scan(&user, &host, &started)
	if err == nil {
		s.repeatedStart(w, &api.BuildStart{User: user, Host: host, Started: time.Unix(0, started).UTC()}, &st)
		return
	}
	if !errors.Is(err, sql.ErrNoRows) {
		s.answer(w, err)
		return
	}
	targets, _ := json.Marshal(st.Targets)
	command, _ := json.Marshal(st.Command)
	s.writeMu.Lock()
	_, err = s.db.ExecContext(r.Context(), `INSERT INTO builds (id, user, host, workspace, targets, command, version, total, started, updated, outcome)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ID, st.User, st.Host, st.Workspace, string(targets), string(command), st.Version, st.Total, st.Started.UnixNano(), now.UnixNano(), api.OutcomeRunning)
	s.writeMu.Unlock()
	if err != nil {
		s.answer(w, fmt.Errorf("storing build %s: %w", st.ID, err))
		return
	}
	b := newBuild(st)
	b.lastSeen = now
	s.live[st.ID] = &liveBuild{build: b}
	w.WriteHeader(http.StatusCreated)
}

// repeatedStart answers a BuildStart for an id the server has: a retry of
// the same build is fine, another build with that id is not.
func (s *Server) repeatedStart(w http.ResponseWriter, have, got *api.BuildStart) {
	if have.User == got.User && have.Host == got.Host && have.Started.Equal(got.Started) {
		w.WriteHeader(http.StatusOK)
		return
	}
	httpError(w, http.StatusConflict, "another build has this id")
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := api.ListQuery{User: r.URL.Query().Get("user"), Target: r.URL.Query().Get("target")}
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil {
		q.Limit = n
	}
	if err := checkString("user", q.User); err != nil {
		s.answer(w, err)
		return
	}
	if err := checkString("target", q.Target); err != nil {
		s.answer(w, err)
		return
	}
	rows, err := s.ListBuilds(r.Context(), q)
	if err != nil {
		s.answer(w, err)
		return
	}
	writeJSON(w, rows)
}

// liveFor finds the running build of a request's {id}, answering 400, 404
// or 409 itself when there is none.
func (s *Server) liveFor(w http.ResponseWriter, r *http.Request) *liveBuild {
	id := r.PathValue("id")
	if !validID(id) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("build id must be %d lowercase hex digits", api.IDLen))
		return nil
	}
	s.mu.Lock()
	b := s.live[id]
	s.mu.Unlock()
	if b != nil {
		return b
	}
	var outcome string
	err := s.db.QueryRowContext(r.Context(), "SELECT outcome FROM builds WHERE id = ?", id).Scan(&outcome)
	if err == nil {
		httpError(w, http.StatusConflict, "build "+id+" has ended ("+outcome+")")
	} else {
		httpError(w, http.StatusNotFound, "no such build")
	}
	return nil
}

// lostFor finds the build of a request's {id} when it was marked lost: its
// client, cut off from the server for a while, may still say how it ended.
// ended says that the build has ended otherwise.
func (s *Server) lostFor(r *http.Request) (b *liveBuild, ended bool) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, false
	}
	var outcome string
	err := s.db.QueryRowContext(r.Context(), "SELECT outcome FROM builds WHERE id = ?", id).Scan(&outcome)
	if err != nil || outcome == api.OutcomeRunning {
		return nil, false
	}
	if outcome != api.OutcomeLost {
		return nil, true
	}
	l, err := s.get(r.Context(), id)
	if err != nil {
		return nil, false
	}
	return &liveBuild{build: l}, false
}

// batchWire is a Batch whose events and action details stay raw too: they
// are stored as they came (once decoded and checked), without encoding
// them again.
type batchWire struct {
	api.Batch
	Events  json.RawMessage   `json:"events,omitempty"`
	Actions []json.RawMessage `json:"actions,omitempty"`
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	b := s.liveFor(w, r)
	if b == nil {
		return
	}
	var wire batchWire
	if !decode(w, r, &wire) {
		return
	}
	if len(wire.Events) > 0 && string(wire.Events) != "null" {
		var err error
		if wire.Batch.Events, err = decodeEvents(wire.Events); err != nil {
			httpError(w, http.StatusBadRequest, "bad JSON: events: "+err.Error())
			return
		}
	}
	if len(wire.Actions) > api.MaxBatchActions {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("batch too large: more than %d actions", api.MaxBatchActions))
		return
	}
	wire.Batch.Actions = make([]api.ActionInfo, len(wire.Actions))
	for i, raw := range wire.Actions {
		if err := json.Unmarshal(raw, &wire.Batch.Actions[i]); err != nil {
			httpError(w, http.StatusBadRequest, "bad JSON: actions: "+err.Error())
			return
		}
	}
	if err := validateBatch(&wire.Batch, b.start.Total); err != nil {
		s.answer(w, err)
		return
	}
	if err := s.intake(r.Context(), b, &wire.Batch, wire.Events, wire.Actions); err != nil {
		if errors.Is(err, errEnded) {
			httpError(w, http.StatusConflict, "build has ended")
			return
		}
		if errors.Is(err, errFull) {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		s.answer(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errEnded = errors.New("build has ended")

// errFull refuses a batch that would take the running builds beyond
// Options.MaxLiveActions.
var errFull = errors.New("the server holds as many actions of running builds as it may: try again later")

// reserve counts the per-action room batch needs in b (its highest
// action id) against Options.MaxLiveActions, and returns what it added.
// b.intake is held, so that b's room grows by this batch only.
func (s *Server) reserve(b *liveBuild, batch *api.Batch) (int, error) {
	need := int32(-1)
	for i := range batch.Plan {
		need = max(need, batch.Plan[i].ID)
	}
	for i := range batch.Events {
		need = max(need, batch.Events[i].Action)
	}
	b.mu.Lock()
	grow := int(need) + 1 - len(b.state)
	b.mu.Unlock()
	if grow <= 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[b.start.ID] != b {
		return 0, nil // not among the running builds
	}
	if s.liveActions+grow > s.opts.MaxLiveActions {
		return 0, errFull
	}
	s.liveActions += grow
	return grow, nil
}

// intake stores one batch and applies it to the build in memory.
// rawEvents and rawActions are batch's events and actions as they came;
// rawActions may be nil, and they are encoded again.
func (s *Server) intake(ctx context.Context, b *liveBuild, batch *api.Batch, rawEvents []byte, rawActions []json.RawMessage) error {
	b.intake.Lock()
	defer b.intake.Unlock()
	b.mu.Lock()
	seen, ended := batch.Seq <= b.lastSeq, b.end != nil
	b.mu.Unlock()
	if ended {
		return errEnded
	}
	if seen {
		return nil // a retried request
	}
	grown, err := s.reserve(b, batch)
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.store(ctx, b.start.ID, batch, rawEvents, rawActions, now); err != nil {
		s.mu.Lock()
		s.liveActions -= grown
		s.mu.Unlock()
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.apply(batch)
	b.lastSeen = now
	if len(batch.Plan) > 0 && b.plan.planned == b.start.Total {
		// The plan is complete: sort its targets now rather than on the
		// first request for the graph (most of a second at a million).
		go b.prepareGraph()
	}
	return nil
}

// prepareGraph builds the graph index if it is missing or stale.
func (b *build) prepareGraph() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.graph == nil || b.graph.planned != b.plan.planned {
		b.graph = newGraphIndex(b.plan)
	}
}

// apply applies a stored batch. b.mu is held.
func (b *build) apply(batch *api.Batch) {
	b.addPlan(batch.Plan)
	for i := range batch.Events {
		b.addEvent(&batch.Events[i])
	}
	for i := range batch.Actions {
		b.addInfo(&batch.Actions[i])
	}
	b.lastSeq = batch.Seq
	b.dropped += batch.Dropped
}

// store writes one batch in one transaction.
func (s *Server) store(ctx context.Context, id string, batch *api.Batch, rawEvents []byte, rawActions []json.RawMessage, now time.Time) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing a batch of build %s: %w", id, err)
	}
	defer tx.Rollback()
	if len(batch.Plan) > 0 {
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO plan_chunks (build, seq, data) VALUES (?, ?, ?)", id, batch.Seq, encodePlan(batch.Plan)); err != nil {
			return fmt.Errorf("storing the plan of build %s: %w", id, err)
		}
	}
	if len(batch.Events) > 0 {
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO batches (build, seq, events) VALUES (?, ?, ?)", id, batch.Seq, rawEvents); err != nil {
			return fmt.Errorf("storing the events of build %s: %w", id, err)
		}
	}
	if len(batch.Actions) > 0 {
		st, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO action_info (build, id, info) VALUES (?, ?, ?)")
		if err != nil {
			return fmt.Errorf("storing the actions of build %s: %w", id, err)
		}
		defer st.Close()
		for i := range batch.Actions {
			var info []byte
			if rawActions != nil {
				info = rawActions[i]
			} else if info, err = json.Marshal(&batch.Actions[i]); err != nil {
				return err
			}
			if _, err := st.ExecContext(ctx, id, batch.Actions[i].ID, info); err != nil {
				return fmt.Errorf("storing the actions of build %s: %w", id, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE builds SET last_seq = ?, dropped = dropped + ?, updated = ? WHERE id = ?", batch.Seq, batch.Dropped, now.UnixNano(), id); err != nil {
		return fmt.Errorf("storing a batch of build %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing a batch of build %s: %w", id, err)
	}
	return nil
}

func (s *Server) handleEnd(w http.ResponseWriter, r *http.Request) {
	b, ended := s.lostFor(r)
	if ended {
		w.WriteHeader(http.StatusNoContent) // a retried end: the first one counts
		return
	}
	if b == nil {
		if b = s.liveFor(w, r); b == nil {
			return
		}
	}
	var end api.BuildEnd
	if !decode(w, r, &end) {
		return
	}
	if err := validateEnd(&end, s.now()); err != nil {
		s.answer(w, err)
		return
	}
	if err := s.finish(r.Context(), b, &end); err != nil {
		if errors.Is(err, errEnded) {
			w.WriteHeader(http.StatusNoContent) // a retried end
			return
		}
		s.answer(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// finish ends a build: stores its page, its state and its targets, drops
// its raw events, releases its claims and moves it to the loaded builds.
func (s *Server) finish(ctx context.Context, b *liveBuild, end *api.BuildEnd) error {
	b.intake.Lock()
	defer b.intake.Unlock()
	b.mu.Lock()
	if b.end != nil && (b.end.Outcome != api.OutcomeLost || end.Outcome == api.OutcomeLost) {
		b.mu.Unlock()
		return errEnded
	}
	previous := b.end
	b.end = end
	for id := range b.running {
		// Still running when the build ended (lost, or an end without the
		// last events): unknown, counted as skipped.
		b.setState(id, stSkipped)
	}
	view := b.view(s.now())
	snap, err := b.encodeSnapshot()
	targets := b.targetsText()
	b.mu.Unlock()
	var pageJSON []byte
	if err == nil {
		pageJSON, err = json.Marshal(view)
	}
	id := b.start.ID
	if err == nil {
		counts, _ := json.Marshal(view.Counts)
		err = s.storeEnd(ctx, id, end, view, string(counts), pageJSON, snap, targets)
	}
	if err != nil {
		// Not ended after all: a build ended in memory only would refuse
		// its batches and stay among the running builds for good.
		b.mu.Lock()
		b.end = previous
		b.mu.Unlock()
		return err
	}
	s.coord.ReleaseBuild(id)
	s.mu.Lock()
	if s.live[id] == b {
		b.mu.Lock()
		s.liveActions -= len(b.state)
		b.mu.Unlock()
	}
	delete(s.live, id)
	s.addLoaded(b.build)
	s.mu.Unlock()
	return nil
}

func (s *Server) storeEnd(ctx context.Context, id string, end *api.BuildEnd, view *api.BuildView, counts string, page, snap, targets []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing the end of build %s: %w", id, err)
	}
	defer tx.Rollback()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE builds SET finished = ?, outcome = ?, exit_code = ?, error = ?, counts = ?, elapsed = ?, view = ?, updated = ? WHERE id = ?`,
			[]any{end.Finished.UnixNano(), end.Outcome, end.ExitCode, end.Error, counts, view.Elapsed, page, s.now().UnixNano(), id}},
		{"INSERT OR REPLACE INTO snapshots (build, data) VALUES (?, ?)", []any{id, snap}},
		{"INSERT OR REPLACE INTO targets (build, data) VALUES (?, ?)", []any{id, targets}},
		{"DELETE FROM batches WHERE build = ?", []any{id}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("storing the end of build %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing the end of build %s: %w", id, err)
	}
	return nil
}

// targetsText is the build's targets for search: one line per target,
// "label TAB first-action TAB state". b.mu is held.
func (b *build) targetsText() []byte {
	var sb strings.Builder
	for t, label := range b.plan.targets {
		c := b.tcounts[t].apiCounts(b.ended())
		sb.WriteString(label)
		sb.WriteByte('\t')
		sb.WriteString(strconv.Itoa(int(b.plan.first[t])))
		sb.WriteByte('\t')
		sb.WriteString(nodeState(c))
		sb.WriteByte('\n')
	}
	return []byte(sb.String())
}

// watchLost marks running builds that stopped reporting as lost.
func (s *Server) watchLost() {
	defer close(s.done)
	every := min(s.opts.LostAfter/4, 30*time.Second)
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.markLost(s.now())
		}
	}
}

// markLost ends, as lost, every running build silent since before
// now-LostAfter.
func (s *Server) markLost(now time.Time) {
	var lost []*liveBuild
	s.mu.Lock()
	for _, b := range s.live {
		b.mu.Lock()
		if now.Sub(b.lastSeen) > s.opts.LostAfter {
			lost = append(lost, b)
		}
		b.mu.Unlock()
	}
	s.mu.Unlock()
	for _, b := range lost {
		b.mu.Lock()
		seen := b.lastSeen
		end := &api.BuildEnd{Finished: seen, Outcome: api.OutcomeLost, ExitCode: -1,
			Error: "the build stopped reporting without an end", Elapsed: int64(seen.Sub(b.start.Started))}
		b.mu.Unlock()
		if err := s.finish(context.Background(), b, end); err != nil && !errors.Is(err, errEnded) {
			s.log.Printf("marking build %s lost: %v", b.start.ID, err)
		}
	}
}
