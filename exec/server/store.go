package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

var _ api.Store = (*Server)(nil)

// addLoaded keeps b among the ended builds in memory, dropping the least
// recently used beyond Options.Loaded. s.mu is held.
func (s *Server) addLoaded(b *build) {
	for i, l := range s.loaded {
		if l == b || l.start.ID == b.start.ID {
			s.loaded = append(s.loaded[:i], s.loaded[i+1:]...)
			break
		}
	}
	s.loaded = append(s.loaded, b)
	if len(s.loaded) > s.opts.Loaded {
		s.loaded = s.loaded[len(s.loaded)-s.opts.Loaded:]
	}
}

// inMemory returns build id when it is running or loaded.
func (s *Server) inMemory(id string) *build {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.live[id]; b != nil {
		return b.build
	}
	for _, b := range s.loaded {
		if b.start.ID == id {
			s.addLoaded(b)
			return b
		}
	}
	return nil
}

// get returns build id in memory, loading an ended build from the
// database; api.ErrNotFound when there is no such build. Concurrent
// requests for a build being loaded wait for that load.
func (s *Server) get(ctx context.Context, id string) (*build, error) {
	if !validID(id) {
		return nil, api.ErrNotFound
	}
	for {
		if b := s.inMemory(id); b != nil {
			return b, nil
		}
		s.mu.Lock()
		if ch, ok := s.loading[id]; ok {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.loading[id] = ch
		s.mu.Unlock()
		b, err := s.load(ctx, id)
		s.mu.Lock()
		delete(s.loading, id)
		close(ch)
		if err == nil {
			if l := s.live[id]; l != nil {
				b = l.build
			} else {
				s.addLoaded(b)
			}
		}
		s.mu.Unlock()
		return b, err
	}
}

const buildColumns = "id, user, host, workspace, targets, command, version, total, started, finished, updated, outcome, exit_code, error, counts, elapsed, last_seq, dropped"

type buildRecord struct {
	start                     api.BuildStart
	finished, updated         int64
	outcome, errText          string
	exitCode                  int
	counts                    api.Counts
	elapsed, lastSeq, dropped int64
}

func scanBuild(sc interface{ Scan(...any) error }) (*buildRecord, error) {
	var r buildRecord
	var targets, command, counts string
	var started int64
	err := sc.Scan(&r.start.ID, &r.start.User, &r.start.Host, &r.start.Workspace, &targets, &command, &r.start.Version, &r.start.Total,
		&started, &r.finished, &r.updated, &r.outcome, &r.exitCode, &r.errText, &counts, &r.elapsed, &r.lastSeq, &r.dropped)
	if err != nil {
		return nil, err
	}
	r.start.Started = time.Unix(0, started).UTC()
	_ = json.Unmarshal([]byte(targets), &r.start.Targets)
	_ = json.Unmarshal([]byte(command), &r.start.Command)
	_ = json.Unmarshal([]byte(counts), &r.counts)
	return &r, nil
}

func (r *buildRecord) row() api.BuildRow {
	row := api.BuildRow{ID: r.start.ID, User: r.start.User, Host: r.start.Host, Workspace: r.start.Workspace, Targets: r.start.Targets,
		Started: r.start.Started, Outcome: r.outcome, ExitCode: r.exitCode, Counts: r.counts, Elapsed: r.elapsed}
	if r.finished != 0 {
		row.Finished = time.Unix(0, r.finished).UTC()
	}
	if row.Targets == nil {
		row.Targets = []string{}
	}
	return row
}

// load reads build id from the database: its plan, and its state from the
// snapshot of an ended build or, for a running one (restore), by
// replaying its events.
func (s *Server) load(ctx context.Context, id string) (*build, error) {
	rec, err := scanBuild(s.db.QueryRowContext(ctx, "SELECT "+buildColumns+" FROM builds WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, api.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading build %s: %w", id, err)
	}
	b := newBuild(rec.start)
	b.lastSeq, b.dropped = rec.lastSeq, rec.dropped
	b.lastSeen = time.Unix(0, rec.updated).UTC()
	if err := s.loadPlan(ctx, b); err != nil {
		return nil, err
	}
	if rec.outcome == api.OutcomeRunning {
		if err := s.replay(ctx, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	var page []byte
	if err := s.db.QueryRowContext(ctx, "SELECT view FROM builds WHERE id = ?", id).Scan(&page); err != nil {
		return nil, fmt.Errorf("reading build %s: %w", id, err)
	}
	var view api.BuildView
	_ = json.Unmarshal(page, &view)
	b.end = &api.BuildEnd{Finished: time.Unix(0, rec.finished).UTC(), Outcome: rec.outcome, ExitCode: rec.exitCode, Error: rec.errText,
		Counts: rec.counts, CriticalPath: view.CriticalPath, Elapsed: rec.elapsed}
	var snap []byte
	err = s.db.QueryRowContext(ctx, "SELECT data FROM snapshots WHERE build = ?", id).Scan(&snap)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading build %s: %w", id, err)
	}
	if err == nil {
		if err := b.restoreSnapshot(snap); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (s *Server) loadPlan(ctx context.Context, b *build) error {
	rows, err := s.db.QueryContext(ctx, "SELECT data FROM plan_chunks WHERE build = ? ORDER BY seq", b.start.ID)
	if err != nil {
		return fmt.Errorf("reading the plan of build %s: %w", b.start.ID, err)
	}
	var chunks [][]byte
	strs := 0
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			return fmt.Errorf("reading the plan of build %s: %w", b.start.ID, err)
		}
		chunks = append(chunks, data)
		n, _ := binary.Uvarint(data)
		strs += int(min(n, uint64(len(data))))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the plan of build %s: %w", b.start.ID, err)
	}
	// Each chunk's string table holds its targets: sizing the map for
	// them all at once saves rehashing a million labels as it grows.
	b.plan.targetIdx = make(map[string]int32, strs)
	one := make([]api.PlannedAction, 1)
	for _, data := range chunks {
		err := decodePlan(data, func(a *api.PlannedAction) {
			one[0] = *a
			b.addPlan(one)
		})
		if err != nil {
			return fmt.Errorf("reading the plan of build %s: %w", b.start.ID, err)
		}
	}
	return nil
}

// replay applies the stored events of a running build, and the logs of its
// failures.
func (s *Server) replay(ctx context.Context, b *build) error {
	rows, err := s.db.QueryContext(ctx, "SELECT events FROM batches WHERE build = ? ORDER BY seq", b.start.ID)
	if err != nil {
		return fmt.Errorf("reading the events of build %s: %w", b.start.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return fmt.Errorf("reading the events of build %s: %w", b.start.ID, err)
		}
		events, err := decodeEvents(data)
		if err != nil {
			return fmt.Errorf("reading the events of build %s: %w", b.start.ID, err)
		}
		for i := range events {
			if a := events[i].Action; a >= -1 && a < maxActions {
				b.addEvent(&events[i])
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range b.failures {
		if info, err := s.actionInfo(ctx, b.start.ID, b.failures[i].ID); err == nil && info != nil {
			b.failures[i].Log = info.Log
		}
	}
	return nil
}

// restore brings back the builds that were running when the server
// stopped; watchLost ends those that do not report again.
func (s *Server) restore(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, "SELECT id FROM builds WHERE outcome = ?", api.OutcomeRunning)
	if err != nil {
		return fmt.Errorf("reading the running builds: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		b, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		// Lost is final (later batches are refused), and the client may
		// have waited for this server all along: it gets a whole
		// LostAfter from now to report again.
		b.lastSeen = s.now()
		s.live[id] = &liveBuild{build: b}
		s.liveActions += len(b.state)
	}
	return nil
}

func (s *Server) actionInfo(ctx context.Context, id string, action int32) (*api.ActionInfo, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, "SELECT info FROM action_info WHERE build = ? AND id = ?", id, action).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading action %d of build %s: %w", action, id, err)
	}
	var info api.ActionInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("reading action %d of build %s: %w", action, id, err)
	}
	return &info, nil
}

// ListBuilds lists builds newest first; running builds with their live counts.
func (s *Server) ListBuilds(ctx context.Context, q api.ListQuery) ([]api.BuildRow, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 500
	}
	before := int64(1<<63 - 1)
	if !q.Before.IsZero() {
		before = q.Before.UnixNano()
	}
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q.Target) + "%"
	rows, err := s.db.QueryContext(ctx, "SELECT "+buildColumns+` FROM builds
		WHERE (? = '' OR user = ?) AND (? = '' OR targets LIKE ? ESCAPE '\') AND started < ?
		ORDER BY started DESC, id LIMIT ?`, q.User, q.User, q.Target, like, before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing builds: %w", err)
	}
	defer rows.Close()
	out := []api.BuildRow{}
	now := s.now()
	for rows.Next() {
		rec, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("listing builds: %w", err)
		}
		row := rec.row()
		if rec.outcome == api.OutcomeRunning {
			s.mu.Lock()
			b := s.live[rec.start.ID]
			s.mu.Unlock()
			if b != nil {
				b.mu.Lock()
				row = b.row(now)
				b.mu.Unlock()
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// Build is one build's page: from memory while it runs, from its stored
// page once it has ended.
func (s *Server) Build(ctx context.Context, id string) (*api.BuildView, error) {
	if !validID(id) {
		return nil, api.ErrNotFound
	}
	if b := s.inMemory(id); b != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.view(s.now()), nil
	}
	var page []byte
	var outcome string
	err := s.db.QueryRowContext(ctx, "SELECT outcome, view FROM builds WHERE id = ?", id).Scan(&outcome, &page)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, api.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading build %s: %w", id, err)
	}
	if page == nil {
		// Running in the database but not in memory: it began while this
		// server was being restored.
		b, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.view(s.now()), nil
	}
	var v api.BuildView
	if err := json.Unmarshal(page, &v); err != nil {
		return nil, fmt.Errorf("reading build %s: %w", id, err)
	}
	return &v, nil
}

// Graph is one level of a build's graph (see graph.go for paths).
func (s *Server) Graph(ctx context.Context, id, path string) (*api.GraphView, error) {
	if len(path) > 2*api.MaxString {
		return nil, api.ErrNotFound
	}
	b, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.graphView(path)
}

// Action is one action's page.
func (s *Server) Action(ctx context.Context, id string, action int32) (*api.ActionView, error) {
	b, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	info, err := s.actionInfo(ctx, id, action)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.plan
	if action < 0 || int(action) >= len(p.target) || p.target[action] < 0 {
		return nil, api.ErrNotFound
	}
	v := &api.ActionView{Build: id, Target: p.targetOf(action), Mnemonic: p.mnemonicOf(action), State: b.stateName(action),
		Deps: []api.ActionRef{}, Rdeps: []api.ActionRef{}}
	if info != nil {
		v.ActionInfo = *info
	}
	v.ActionInfo.ID = action
	if int(action) < len(b.state) {
		v.ExitCode = int(b.exit[action])
		v.Message = b.message[action]
		v.Attempts = int(b.attempts[action])
		v.Queued, v.Started, v.Finished = unixTime(b.queued[action]), unixTime(b.started[action]), unixTime(b.finished[action])
		v.Duration = b.duration[action]
		if k, ok := b.jobOf[action]; ok && b.jobs[k] != nil {
			v.JobID = b.jobs[k].ID
		}
		if v.Where == "" {
			v.Where = b.where(action)
		}
	}
	ref := func(a int32) api.ActionRef {
		return api.ActionRef{ID: a, Target: p.targetOf(a), Mnemonic: p.mnemonicOf(a), State: b.stateName(a)}
	}
	for _, d := range p.depsOf(action) {
		v.Deps = append(v.Deps, ref(d))
	}
	// Reverse deps are not indexed: one pass over the flat deps array is a
	// few milliseconds at a million actions, and the page is rare.
	for a, t := range p.target {
		if t < 0 {
			continue
		}
		for _, d := range p.depsOf(int32(a)) {
			if d == action {
				v.Rdeps = append(v.Rdeps, ref(int32(a)))
				break
			}
		}
		if len(v.Rdeps) >= api.MaxListed {
			break
		}
	}
	return v, nil
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// searchBuilds bounds how many of the newest builds Search looks through.
const searchBuilds = 200

// Search finds targets whose label contains label, newest builds first.
func (s *Server) Search(ctx context.Context, label string, limit int) ([]api.SearchHit, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	hits := []api.SearchHit{}
	if label == "" || len(label) > api.MaxString {
		return hits, nil
	}
	rows, err := s.db.QueryContext(ctx, "SELECT id, user, started, outcome FROM builds ORDER BY started DESC, id LIMIT ?", searchBuilds)
	if err != nil {
		return nil, fmt.Errorf("searching: %w", err)
	}
	type cand struct {
		id, user, outcome string
		started           int64
	}
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.id, &c.user, &c.started, &c.outcome); err != nil {
			rows.Close()
			return nil, fmt.Errorf("searching: %w", err)
		}
		cands = append(cands, c)
	}
	rows.Close()
	for _, c := range cands {
		started := time.Unix(0, c.started).UTC()
		add := func(target string, action int32, state string) bool {
			hits = append(hits, api.SearchHit{Build: c.id, User: c.user, Started: started, Target: target, Action: action, State: state})
			return len(hits) >= limit
		}
		if b := s.inMemory(c.id); b != nil {
			b.mu.Lock()
			var found []int
			for t, l := range b.plan.targets {
				if strings.Contains(l, label) {
					found = append(found, t)
				}
			}
			sort.Slice(found, func(i, j int) bool { return b.plan.targets[found[i]] < b.plan.targets[found[j]] })
			full := false
			for _, t := range found {
				if full = add(b.plan.targets[t], b.plan.first[t], nodeState(b.tcounts[t].apiCounts(b.ended()))); full {
					break
				}
			}
			b.mu.Unlock()
			if full {
				return hits, nil
			}
			continue
		}
		var data []byte
		// instr looks inside SQLite: a build without a match costs no copy.
		err := s.db.QueryRowContext(ctx, "SELECT data FROM targets WHERE build = ? AND instr(data, ?) > 0", c.id, []byte(label)).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("searching: %w", err)
		}
		var found [][]string
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			if len(line) == 0 || !bytes.Contains(line, []byte(label)) {
				continue
			}
			f := strings.Split(string(line), "\t")
			if len(f) == 3 && strings.Contains(f[0], label) {
				found = append(found, f)
			}
		}
		sort.Slice(found, func(i, j int) bool { return found[i][0] < found[j][0] })
		for _, f := range found {
			a, _ := strconv.Atoi(f[1])
			if add(f[0], int32(a), f[2]) {
				return hits, nil
			}
		}
	}
	return hits, nil
}
