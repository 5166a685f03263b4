// Package reporttest is a stand-in for `hepbuild serve` that records what
// a build reports, for the tests of the reporter and of the commands that
// report. It answers the reporting paths of the API only.
package reporttest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// Request is one request the Recorder took, in order of arrival.
type Request struct {
	Kind  string // "start", "batch", "end"
	ID    string // the build's id, from the path or the BuildStart
	Auth  string // the Authorization header
	Start *api.BuildStart
	Batch *api.Batch
	End   *api.BuildEnd
}

// Recorder records the requests of builds; serve it with httptest or a
// net/http server on 127.0.0.1. It is safe for concurrent use.
type Recorder struct {
	// Status, when set, answers each request in place of the usual 2xx
	// (and records nothing): a server that fails or refuses.
	Status func(kind string) int
	// Stall, when set, holds every request until it is closed: a server
	// that hangs.
	Stall chan struct{}

	mu     sync.Mutex
	reqs   []Request
	claims int
}

// ServeHTTP records a BuildStart, a Batch or a BuildEnd.
func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rec.Stall != nil {
		select {
		case <-rec.Stall:
		case <-r.Context().Done():
			return
		}
	}
	if r.Method != http.MethodPost {
		http.Error(w, "want POST", http.StatusMethodNotAllowed)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/v1/claims/") {
		rec.claim(w, r)
		return
	}
	q := Request{Auth: r.Header.Get("Authorization")}
	var v any
	switch p := r.URL.Path; {
	case p == api.PathBuilds:
		q.Kind, q.Start = "start", &api.BuildStart{}
		v = q.Start
	case strings.HasPrefix(p, "/api/v1/builds/") && strings.HasSuffix(p, "/batch"):
		q.Kind, q.Batch, q.ID = "batch", &api.Batch{}, strings.Split(p, "/")[4]
		v = q.Batch
	case strings.HasPrefix(p, "/api/v1/builds/") && strings.HasSuffix(p, "/end"):
		q.Kind, q.End, q.ID = "end", &api.BuildEnd{}, strings.Split(p, "/")[4]
		v = q.End
	default:
		http.NotFound(w, r)
		return
	}
	if rec.Status != nil {
		if code := rec.Status(q.Kind); code != 0 {
			http.Error(w, "refused by the test", code)
			return
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if q.Start != nil {
		q.ID = q.Start.ID
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, q)
	rec.mu.Unlock()
	if q.Kind == "start" {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Requests returns what was recorded so far.
func (rec *Recorder) Requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Request(nil), rec.reqs...)
}

// Build gathers what one build reported: its start, plan, events and
// action details in the order received (batches in Seq order, each once),
// and its end.
type Build struct {
	Start   *api.BuildStart
	Plan    []api.PlannedAction
	Events  []api.Event
	Actions []api.ActionInfo
	Dropped int64
	End     *api.BuildEnd
	Seqs    []int64
}

// Build returns what the build with the given id reported ("" for the
// first build).
func (rec *Recorder) Build(id string) *Build {
	b := &Build{}
	seen := map[int64]bool{}
	for _, q := range rec.Requests() {
		switch {
		case q.Start != nil && b.Start == nil && (id == "" || q.ID == id):
			b.Start = q.Start
			id = q.Start.ID
		case q.ID != id:
		case q.Batch != nil && b.Start != nil && !seen[q.Batch.Seq]:
			seen[q.Batch.Seq] = true
			b.Seqs = append(b.Seqs, q.Batch.Seq)
			b.Plan = append(b.Plan, q.Batch.Plan...)
			b.Events = append(b.Events, q.Batch.Events...)
			b.Actions = append(b.Actions, q.Batch.Actions...)
			b.Dropped += q.Batch.Dropped
		case q.End != nil && b.Start != nil:
			b.End = q.End
		}
	}
	return b
}

// claim grants every claim (no other build runs anything) and takes
// every renewal and release; it counts them in Claims.
func (rec *Recorder) claim(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.claims++
	rec.mu.Unlock()
	if r.URL.Path == api.PathClaim {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.ClaimResponse{State: api.ClaimGranted, Lease: int64(30 * time.Second)})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Claims counts the coordinator's requests.
func (rec *Recorder) Claims() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.claims
}
