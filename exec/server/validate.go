package server

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// maxActions bounds the actions of one build (ids and BuildStart.Total):
// the per-action arrays of a build this size take about 200 MB.
const maxActions = 1 << 22

// badRequest is a request the server refuses with 400 and this message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// validID says whether id is a build id: api.IDLen lowercase hex digits.
func validID(id string) bool {
	if len(id) != api.IDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func checkString(what, s string) error {
	if len(s) > api.MaxString {
		return bad("%s is longer than %d bytes", what, api.MaxString)
	}
	if !utf8.ValidString(s) {
		return bad("%s is not UTF-8", what)
	}
	return nil
}

func checkStrings(what string, ss []string, max int) error {
	if len(ss) > max {
		return bad("%s has %d entries, more than %d", what, len(ss), max)
	}
	for _, s := range ss {
		if err := checkString(what, s); err != nil {
			return err
		}
	}
	return nil
}

// checkLabel also refuses control characters: labels become graph paths
// and sort keys (which use bytes below 32).
func checkLabel(what, s string) error {
	if s == "" {
		return bad("%s is empty", what)
	}
	if err := checkString(what, s); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return bad("%s holds a control character", what)
		}
	}
	return nil
}

// Times a build may report: Unix nanoseconds hold them (the history's
// unit), and JSON can encode them (a year of five digits it cannot: a
// page holding one failed, and so did the build's end).
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkTime refuses a time out of range; zero means "not given".
func checkTime(what string, t time.Time) error {
	if t.IsZero() || !t.Before(minTime) && t.Before(maxTime) {
		return nil
	}
	return bad("%s %s is not between %d and %d", what, t.UTC().Format(time.RFC3339), minTime.Year(), maxTime.Year())
}

func validateStart(s *api.BuildStart) error {
	if !validID(s.ID) {
		return bad("build id must be %d lowercase hex digits", api.IDLen)
	}
	if err := checkTime("start", s.Started); err != nil {
		return err
	}
	for what, v := range map[string]string{"user": s.User, "host": s.Host, "workspace": s.Workspace, "version": s.Version} {
		if err := checkString(what, v); err != nil {
			return err
		}
	}
	if err := checkStrings("targets", s.Targets, api.MaxListed); err != nil {
		return err
	}
	if err := checkStrings("command", s.Command, api.MaxListed); err != nil {
		return err
	}
	if s.Total < 0 || s.Total > maxActions {
		return bad("total must be between 0 and %d", maxActions)
	}
	// The pages get lists, never null.
	if s.Targets == nil {
		s.Targets = []string{}
	}
	if s.Command == nil {
		s.Command = []string{}
	}
	return nil
}

// validateBatch checks a batch of a build with total actions (0: not said).
func validateBatch(b *api.Batch, total int) error {
	limit := int32(maxActions)
	if total > 0 {
		limit = int32(total)
	}
	checkAction := func(what string, id int32) error {
		if id < 0 || id >= limit {
			return bad("%s %d is not an action of the build (0..%d)", what, id, limit-1)
		}
		return nil
	}
	if b.Seq < 1 {
		return bad("seq must be at least 1")
	}
	if b.Dropped < 0 {
		return bad("dropped must not be negative")
	}
	if len(b.Plan) > api.MaxBatchPlan || len(b.Events) > api.MaxBatchEvents || len(b.Actions) > api.MaxBatchActions {
		return bad("batch too large: at most %d planned actions, %d events, %d actions", api.MaxBatchPlan, api.MaxBatchEvents, api.MaxBatchActions)
	}
	for i := range b.Plan {
		a := &b.Plan[i]
		if err := checkAction("planned action", a.ID); err != nil {
			return err
		}
		if err := checkLabel("target", a.Target); err != nil {
			return err
		}
		if err := checkString("mnemonic", a.Mnemonic); err != nil {
			return err
		}
		if len(a.Deps) > api.MaxBatchPlan {
			return bad("action %d has too many deps", a.ID)
		}
		for _, d := range a.Deps {
			if err := checkAction("dep", d); err != nil {
				return err
			}
			if d == a.ID {
				return bad("action %d depends on itself", a.ID)
			}
		}
	}
	for i := range b.Events {
		e := &b.Events[i]
		if e.Action != -1 {
			if err := checkAction("event's action", e.Action); err != nil {
				return err
			}
		}
		for what, v := range map[string]string{"event type": e.Type, "message": e.Message, "key": e.Key, "executor": e.Executor, "job id": e.JobID, "job state": e.JobState, "job reason": e.JobReason} {
			if err := checkString(what, v); err != nil {
				return err
			}
		}
		if err := checkTime("event time", e.Time); err != nil {
			return err
		}
		if e.Attempt < 0 || e.Slot < 0 || e.Duration < 0 {
			return bad("event of action %d: negative attempt, slot or duration", e.Action)
		}
	}
	for i := range b.Actions {
		a := &b.Actions[i]
		if err := checkAction("action", a.ID); err != nil {
			return err
		}
		if len(a.Command) > api.MaxCommand || !utf8.ValidString(a.Command) {
			return bad("command of action %d is longer than %d bytes or not UTF-8", a.ID, api.MaxCommand)
		}
		if len(a.Log) > api.MaxLog || !utf8.ValidString(a.Log) {
			return bad("log of action %d is longer than %d bytes or not UTF-8", a.ID, api.MaxLog)
		}
		for what, v := range map[string]string{"key": a.Key, "environment": a.Environment, "where": a.Where} {
			if err := checkString(what, v); err != nil {
				return err
			}
		}
		for what, v := range map[string][]string{"inputs": a.Inputs, "outputs": a.Outputs, "tags": a.Tags, "reasons": a.Reasons} {
			if err := checkStrings(what, v, api.MaxListed); err != nil {
				return err
			}
		}
		if len(a.Env) > api.MaxListed {
			return bad("env of action %d has more than %d entries", a.ID, api.MaxListed)
		}
		for k, v := range a.Env {
			if err := checkString("env name", k); err != nil {
				return err
			}
			if err := checkString("env value", v); err != nil {
				return err
			}
		}
	}
	return nil
}

var outcomes = map[string]bool{api.OutcomeSuccess: true, api.OutcomeFailed: true, api.OutcomeInterrupted: true, api.OutcomeError: true}

func validateEnd(e *api.BuildEnd, now time.Time) error {
	if !outcomes[e.Outcome] {
		return bad("outcome %q is not one of success, failed, interrupted, error", e.Outcome)
	}
	if len(e.Error) > api.MaxLog || !utf8.ValidString(e.Error) {
		return bad("error is longer than %d bytes or not UTF-8", api.MaxLog)
	}
	if len(e.CriticalPath) > api.MaxListed {
		return bad("critical path has more than %d steps", api.MaxListed)
	}
	for _, s := range e.CriticalPath {
		if err := checkString("critical path target", s.Target); err != nil {
			return err
		}
		if err := checkString("critical path mnemonic", s.Mnemonic); err != nil {
			return err
		}
	}
	c := e.Counts
	for _, n := range []int{c.Total, c.Executed, c.Cached, c.UpToDate, c.Failed, c.Skipped, c.Running, c.Waiting} {
		if n < 0 || n > maxActions {
			return bad("counts must be between 0 and %d", maxActions)
		}
	}
	if err := checkTime("end", e.Finished); err != nil {
		return err
	}
	if e.Finished.IsZero() {
		e.Finished = now
	}
	e.Finished = e.Finished.UTC()
	return nil
}
