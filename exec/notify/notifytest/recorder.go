// Package notifytest is a real HTTP server on loopback that records the
// notifications it receives, for the tests of exec/notify and of the
// commands that send notifications (hepbuild build --notify). The
// notifiers accept plain http to loopback, so a destination such as
// "slack+" + r.URL + "/services/T/B/X" reaches it.
package notifytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Request is one request the Recorder received.
type Request struct {
	Method string
	Path   string // the escaped path, e.g. "/bot123:ABC/sendMessage"
	Query  string
	Header http.Header
	Body   []byte
}

// Recorder records requests and answers each with a status and body the
// test sets. It is safe for concurrent use.
type Recorder struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string

	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []Request
	status int
	body   string
	stall  bool
	stop   chan struct{}
}

// New starts a Recorder on 127.0.0.1 that answers 200 "ok" (what Slack and
// Mattermost answer) until told otherwise; t.Cleanup stops it.
func New(t testing.TB) *Recorder {
	r := &Recorder{status: http.StatusOK, body: "ok", stop: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.Close)
	return r
}

func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.reqs = append(r.reqs, Request{Method: req.Method, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery,
		Header: req.Header.Clone(), Body: body})
	status, answer, stall := r.status, r.body, r.stall
	r.mu.Unlock()
	if stall {
		// Hold the request until the client gives up or the test ends:
		// a destination that accepted the connection and never answers.
		select {
		case <-req.Context().Done():
		case <-r.stop:
		}
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

// Answer sets the status and body of the answers to come.
func (r *Recorder) Answer(status int, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.body = status, body
}

// Stall makes the answers to come never arrive.
func (r *Recorder) Stall() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stall = true
}

// Requests returns what was received so far, in order.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Close releases stalled requests and stops the server. It may be called
// more than once.
func (r *Recorder) Close() {
	r.mu.Lock()
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.mu.Unlock()
	r.srv.Close()
}
