// Package coord is the coordinator of `hepbuild serve`: builds of a group
// claim an action key before they run it, so that one key runs once at a
// time; the others wait and restore its result from the shared cache. The
// Server keeps the claims in memory (a crashed build's claim expires with
// its lease); the Client is the builds' side, an exec.Coordinator.
//
// The protocol, in api's types: a build POSTs a ClaimRequest for a key it
// missed in the cache. Nobody holds the key: ClaimGranted, the build runs
// the action, renews its claims (RenewRequest, every Lease/3) and releases
// the key when the action ended (ReleaseRequest, OK when the result is in
// the cache). Another build holds it: the request waits (long poll, up to
// Wait) for the release and answers ClaimDone when the holder stored its
// result (look in the cache), ClaimGranted to one waiter when the holder
// failed or its lease expired, ClaimHeld when the wait ended first.
package coord

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec/server/api"
)

// Defaults and bounds of a Server.
const (
	// DefaultLease is how long a claim lives without a renewal: long
	// enough for a client that renews every third of it to miss one.
	DefaultLease = 30 * time.Second
	// DefaultDoneMemory is how long a key released with its result stored
	// answers ClaimDone: a build that missed the cache just before the
	// release looks again instead of running the action a second time.
	DefaultDoneMemory = 2 * time.Minute
	// DefaultMaxClaimsPerBuild bounds the claims one build holds at once:
	// more than any -j, batch system or remote executor runs at once.
	DefaultMaxClaimsPerBuild = 50000
	// DefaultMaxClaims bounds the claims of all builds together, and the
	// remembered done keys.
	DefaultMaxClaims = 500000
	// DefaultMaxWaiters bounds the claim requests that wait at once, each
	// an open connection: beyond, a request is refused (429) and its build
	// runs the action itself.
	DefaultMaxWaiters = 20000
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Lease is how long a claim lives without a renewal (30s by default).
	Lease time.Duration
	// Holder describes a build for those who wait on it; nil leaves
	// User and Host empty.
	Holder func(build string) (user, host string)
	// Running says whether a build is running; claims and renewals of
	// any other build are refused (404), so that no claim outlives its
	// build's end or belongs to none. nil takes every build.
	Running func(build string) bool
	// DoneMemory is how long a key released OK answers ClaimDone
	// (DefaultDoneMemory when zero).
	DoneMemory time.Duration
	// MaxClaimsPerBuild, MaxClaims and MaxWaiters bound what the server
	// keeps (the Default constants when zero).
	MaxClaimsPerBuild, MaxClaims, MaxWaiters int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server answers api.PathClaim, api.PathRenew and api.PathRelease. It is
// safe for concurrent use. It does not authenticate: the server that
// mounts it does, and says which builds run (ServerOptions.Running).
type Server struct {
	opts ServerOptions

	mu       sync.Mutex
	claims   map[string]*claim // by key
	done     map[string]*done  // keys released OK, by key
	perBuild map[string]int    // claims held, by build
	waiters  int               // claim requests waiting
	swept    time.Time
	// closing ends every wait (Close): a server shutting down would
	// otherwise wait for each long poll to end by itself.
	closing   chan struct{}
	closeOnce sync.Once
}

// claim is a key held by a build.
type claim struct {
	build, target string
	expires       time.Time
	// over is closed when the claim ends (released, expired, dropped):
	// the requests that wait on it look again.
	over chan struct{}
}

// done is a key whose holder released it with its result in the cache.
type done struct {
	at time.Time
	// told are the builds that were answered ClaimDone (and the holder):
	// their next claim is granted, since the result did not reach them.
	told map[string]bool
}

// NewServer returns a coordinator with no claims.
func NewServer(opts ServerOptions) *Server {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.DoneMemory <= 0 {
		opts.DoneMemory = DefaultDoneMemory
	}
	if opts.MaxClaimsPerBuild <= 0 {
		opts.MaxClaimsPerBuild = DefaultMaxClaimsPerBuild
	}
	if opts.MaxClaims <= 0 {
		opts.MaxClaims = DefaultMaxClaims
	}
	if opts.MaxWaiters <= 0 {
		opts.MaxWaiters = DefaultMaxWaiters
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, claims: map[string]*claim{}, done: map[string]*done{}, perBuild: map[string]int{},
		closing: make(chan struct{})}
}

// ServeHTTP answers the claim paths of the API (the full paths, as
// api.PathClaim spells them).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case api.PathClaim, api.PathRenew, api.PathRelease:
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST a JSON body", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, api.MaxBody)
	switch r.URL.Path {
	case api.PathClaim:
		var req api.ClaimRequest
		if !decode(w, r, &req) {
			return
		}
		if err := validClaim(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !s.running(req.Build) {
			http.Error(w, errNotRunning.Error(), http.StatusNotFound)
			return
		}
		resp, code, err := s.claim(r, &req)
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	case api.PathRenew:
		var req api.RenewRequest
		if !decode(w, r, &req) {
			return
		}
		if err := s.validRenew(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !s.running(req.Build) {
			http.Error(w, errNotRunning.Error(), http.StatusNotFound)
			return
		}
		s.renew(&req)
		w.WriteHeader(http.StatusNoContent)
	case api.PathRelease:
		var req api.ReleaseRequest
		if !decode(w, r, &req) {
			return
		}
		if err := validBuild(req.Build); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := validKey(req.Key); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.release(req.Build, req.Key, req.OK)
		w.WriteHeader(http.StatusNoContent)
	}
}

// decode reads one JSON value, answering 400 or 413 when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", api.MaxBody), http.StatusRequestEntityTooLarge)
		return false
	}
	http.Error(w, "bad request body: "+err.Error(), http.StatusBadRequest)
	return false
}

func validBuild(id string) error {
	if len(id) != api.IDLen {
		return fmt.Errorf("build id must be %d lowercase hex digits", api.IDLen)
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("build id must be %d lowercase hex digits", api.IDLen)
		}
	}
	return nil
}

func validKey(key string) error {
	if len(key) > 100 {
		return errors.New("key must be an action digest hash/size")
	}
	d, err := cache.ParseDigest(key)
	if err != nil || d.String() != key {
		return errors.New("key must be an action digest hash/size (lowercase hex)")
	}
	return nil
}

func validClaim(req *api.ClaimRequest) error {
	if err := validBuild(req.Build); err != nil {
		return err
	}
	if err := validKey(req.Key); err != nil {
		return err
	}
	if len(req.Target) > api.MaxString {
		return fmt.Errorf("target longer than %d bytes", api.MaxString)
	}
	if req.Wait < 0 {
		return errors.New("wait must not be negative")
	}
	return nil
}

func (s *Server) validRenew(req *api.RenewRequest) error {
	if err := validBuild(req.Build); err != nil {
		return err
	}
	if len(req.Keys) > s.opts.MaxClaimsPerBuild {
		return fmt.Errorf("more than %d keys", s.opts.MaxClaimsPerBuild)
	}
	for _, k := range req.Keys {
		if err := validKey(k); err != nil {
			return err
		}
	}
	return nil
}

// claim answers one claim request, waiting while another build holds
// the key (up to the request's wait, the client's disconnection or the
// holder's lease). The code goes with an error.
func (s *Server) claim(r *http.Request, req *api.ClaimRequest) (*api.ClaimResponse, int, error) {
	wait := min(time.Duration(req.Wait), api.MaxClaimWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	counted := false
	defer func() {
		if counted {
			s.mu.Lock()
			s.waiters--
			s.mu.Unlock()
		}
	}()
	for {
		s.mu.Lock()
		now := s.opts.Now()
		s.sweep(now)
		c := s.claims[req.Key]
		if c != nil && !now.Before(c.expires) {
			s.drop(req.Key, c) // its build stopped renewing: crashed or cut off
			c = nil
		}
		switch {
		case c == nil:
			if d := s.done[req.Key]; d != nil && !d.told[req.Build] {
				d.told[req.Build] = true
				s.mu.Unlock()
				return &api.ClaimResponse{State: api.ClaimDone}, 0, nil
			}
			if s.perBuild[req.Build] >= s.opts.MaxClaimsPerBuild {
				s.mu.Unlock()
				return nil, http.StatusTooManyRequests, fmt.Errorf("build holds %d claims, the most one build may", s.opts.MaxClaimsPerBuild)
			}
			if len(s.claims) >= s.opts.MaxClaims {
				s.mu.Unlock()
				return nil, http.StatusServiceUnavailable, fmt.Errorf("the coordinator holds %d claims, the most it keeps", s.opts.MaxClaims)
			}
			delete(s.done, req.Key) // a new run: whoever claims later waits for it
			s.claims[req.Key] = &claim{build: req.Build, target: req.Target, expires: now.Add(s.opts.Lease), over: make(chan struct{})}
			s.perBuild[req.Build]++
			s.mu.Unlock()
			return &api.ClaimResponse{State: api.ClaimGranted, Lease: int64(s.opts.Lease)}, 0, nil
		case c.build == req.Build:
			// Asked again by its holder (a retried request): still its own.
			c.expires = now.Add(s.opts.Lease)
			s.mu.Unlock()
			return &api.ClaimResponse{State: api.ClaimGranted, Lease: int64(s.opts.Lease)}, 0, nil
		}
		holderBuild, holderTarget := c.build, c.target
		if wait <= 0 {
			s.mu.Unlock()
			return &api.ClaimResponse{State: api.ClaimHeld, Holder: s.holder(holderBuild, holderTarget)}, 0, nil
		}
		select {
		case <-s.closing:
			s.mu.Unlock()
			return nil, http.StatusServiceUnavailable, errShutdown
		default:
		}
		if !counted {
			if s.waiters >= s.opts.MaxWaiters {
				s.mu.Unlock()
				return nil, http.StatusTooManyRequests, fmt.Errorf("%d claims wait already, the most the coordinator keeps", s.opts.MaxWaiters)
			}
			s.waiters++
			counted = true
		}
		over, expires := c.over, c.expires.Sub(now)
		s.mu.Unlock()
		lease := time.NewTimer(expires)
		select {
		case <-over:
		case <-lease.C:
		case <-timer.C:
			lease.Stop()
			return &api.ClaimResponse{State: api.ClaimHeld, Holder: s.holder(holderBuild, holderTarget)}, 0, nil
		case <-r.Context().Done():
			lease.Stop()
			return &api.ClaimResponse{State: api.ClaimHeld, Holder: s.holder(holderBuild, holderTarget)}, 0, nil
		case <-s.closing:
			lease.Stop()
			return nil, http.StatusServiceUnavailable, errShutdown
		}
		lease.Stop()
	}
}

// holder describes the build holding a claim. Called without s.mu:
// Holder may look the build up in a store.
func (s *Server) holder(build, target string) *api.Holder {
	h := &api.Holder{Build: build, Target: target}
	if s.opts.Holder != nil {
		h.User, h.Host = s.opts.Holder(build)
	}
	return h
}

// drop ends a claim that was not released with a stored result: one of
// its waiters gets it. Called with s.mu held.
func (s *Server) drop(key string, c *claim) {
	delete(s.claims, key)
	if n := s.perBuild[c.build] - 1; n > 0 {
		s.perBuild[c.build] = n
	} else {
		delete(s.perBuild, c.build)
	}
	close(c.over)
}

// sweep drops expired claims and forgotten done keys, at most every few
// seconds: a crashed build's claims are not looked at again otherwise.
// Called with s.mu held.
func (s *Server) sweep(now time.Time) {
	if now.Sub(s.swept) < 5*time.Second {
		return
	}
	s.swept = now
	for k, c := range s.claims {
		if !now.Before(c.expires) {
			s.drop(k, c)
		}
	}
	for k, d := range s.done {
		if now.Sub(d.at) >= s.opts.DoneMemory {
			delete(s.done, k)
		}
	}
}

func (s *Server) renew(req *api.RenewRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, k := range req.Keys {
		// An expired claim is not revived: a waiter may have it already
		// or be about to; its build learns nothing, and runs the action
		// to its end as it would have.
		if c := s.claims[k]; c != nil && c.build == req.Build && now.Before(c.expires) {
			c.expires = now.Add(s.opts.Lease)
		}
	}
}

func (s *Server) release(build, key string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.claims[key]
	if c == nil || c.build != build {
		return // expired and gone, or someone else's by now
	}
	if ok && len(s.done) < s.opts.MaxClaims {
		s.done[key] = &done{at: s.opts.Now(), told: map[string]bool{build: true}}
	}
	s.drop(key, c)
}

// ReleaseBuild drops every claim of a build that ended: whoever waits on
// one gets it.
func (s *Server) ReleaseBuild(build string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perBuild[build] == 0 {
		return
	}
	for k, c := range s.claims {
		if c.build == build {
			s.drop(k, c)
		}
	}
}

// errNotRunning refuses a claim or renewal of a build the server does not
// have running: unknown, or ended (its claims were released then).
var errNotRunning = errors.New("no such running build: report the build before claiming")

func (s *Server) running(build string) bool {
	return s.opts.Running == nil || s.opts.Running(build)
}

// errShutdown answers the claims that would wait on a closed server: their
// builds run the actions themselves rather than ask again and again.
var errShutdown = errors.New("the coordinator is shutting down")

// Close answers every waiting claim request at once (503: its build runs
// the action itself), so that the server around it shuts down without
// waiting for the long polls; so are later claims that would wait.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// Claims returns how many claims are held, for the server's status.
func (s *Server) Claims() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.claims)
}

var _ http.Handler = (*Server)(nil)
