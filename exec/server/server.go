// Package server is `hepbuild serve`: one process that keeps the history of
// a group's builds in SQLite, takes their reports (api.BuildStart, Batch,
// BuildEnd), shows them through the pages of package web, and coordinates
// their claims (package coord). It executes nothing a client sends.
//
// Speed: a running build lives in memory with every aggregate its pages
// need (counts per target, running actions, failures, jobs), updated as
// batches arrive; a batch is one SQLite transaction (the events as one
// blob, the plan as a compact blob, one row per ended action's details).
// An ended build is stored as its page (JSON), a snapshot of the per-action
// state, and its plan; its graph and action pages load it into a small LRU.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/exec/server/coord"
	"github.com/hepbuild/hepbuild/exec/server/web"
)

// Options configure a Server.
type Options struct {
	// Addr is where ListenAndServe listens, HOST:PORT. Without a token it
	// must be a loopback address.
	Addr string
	// DB is the history database's file; it is created when missing.
	DB string
	// Token, or the first line of TokenFile, is what every request must
	// carry; empty for none (loopback only).
	Token     string
	TokenFile string
	// TLSCert and TLSKey are PEM files; with them the server speaks HTTPS.
	TLSCert, TLSKey string
	// LostAfter is how long a running build may stay silent before it is
	// marked lost (10 minutes by default).
	LostAfter time.Duration
	// Loaded is how many ended builds stay in memory for their graph and
	// action pages (3 by default).
	Loaded int
	// MaxLiveActions bounds the actions of the running builds together,
	// which the server holds in memory (DefaultMaxLiveActions by
	// default): a batch that would go beyond is refused (503) until
	// builds end, and its build sends it again later.
	MaxLiveActions int
	// Log receives the server's messages (standard error by default).
	Log io.Writer
}

// Server is the handler of `hepbuild serve`, and its api.Store. It is safe
// for concurrent use.
type Server struct {
	opts   Options
	db     *sql.DB
	token  []byte // nil without a token
	cookie string // the login cookie's value: an HMAC of the token
	tls    *tls.Config
	coord  *coord.Server
	pages  http.Handler
	mux    *http.ServeMux
	log    *log.Logger
	now    func() time.Time
	// sameOrigin refuses what a browser posts from another origin.
	sameOrigin *http.CrossOriginProtection

	// writeMu serialises writes to the database: one writer at a time
	// never meets SQLITE_BUSY within this process.
	writeMu sync.Mutex

	// mu guards live, loaded and loading. Lock order: a build's intake,
	// then mu, then writeMu or a build's mu; never the other way round.
	mu   sync.Mutex
	live map[string]*liveBuild // running builds
	// liveActions is the per-action room of the running builds
	// together (their len(state)), within Options.MaxLiveActions.
	liveActions int
	loaded      []*build                 // ended builds in memory, most recent last
	loading     map[string]chan struct{} // ended builds being loaded

	stop chan struct{}
	done chan struct{}
}

// liveBuild is a running build and the lock that orders its batches.
type liveBuild struct {
	intake sync.Mutex // held while one batch is stored and applied
	*build
}

// OptionsError is a bad Option: a command line to correct, not a failure
// of the server.
type OptionsError struct{ msg string }

func (e *OptionsError) Error() string { return e.msg }

// DefaultMaxLiveActions is Options.MaxLiveActions's default: about
// 100 bytes an action, a gigabyte and a half; sixteen builds of a million
// actions at once.
const DefaultMaxLiveActions = 1 << 24

// cookieName is the login cookie's.
const cookieName = "hepbuild_session"

// New opens or creates the history database and returns the server. Builds
// that were running when a previous server stopped are restored, and
// marked lost if they do not report again.
func New(opts Options) (*Server, error) {
	if opts.LostAfter <= 0 {
		opts.LostAfter = 10 * time.Minute
	}
	if opts.Loaded <= 0 {
		opts.Loaded = 3
	}
	if opts.MaxLiveActions <= 0 {
		opts.MaxLiveActions = DefaultMaxLiveActions
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.DB == "" {
		return nil, &OptionsError{"hepbuild serve: no history database given"}
	}
	s := &Server{opts: opts, log: log.New(opts.Log, "hepbuild serve: ", 0), now: func() time.Time { return time.Now().UTC() },
		live: map[string]*liveBuild{}, loading: map[string]chan struct{}{}, stop: make(chan struct{}), done: make(chan struct{}),
		sameOrigin: http.NewCrossOriginProtection()}
	token := opts.Token
	if opts.TokenFile != "" {
		data, err := os.ReadFile(opts.TokenFile)
		if err != nil {
			return nil, &OptionsError{fmt.Sprintf("reading the token file: %v", err)}
		}
		if fi, err := os.Stat(opts.TokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(opts.Log, "hepbuild serve: warning: others can read the token file %s (chmod 600 it)\n", opts.TokenFile)
		}
		token, _, _ = strings.Cut(string(data), "\n")
		token = strings.TrimSpace(token)
		if token == "" {
			return nil, &OptionsError{fmt.Sprintf("the token file %s is empty", opts.TokenFile)}
		}
	}
	if token != "" {
		s.token = []byte(token)
		// The cookie holds a value derived from the token, never the token:
		// a stolen cookie does not give the token for the API's clients.
		mac := hmac.New(sha256.New, s.token)
		mac.Write([]byte("hepbuild serve login v1"))
		s.cookie = hex.EncodeToString(mac.Sum(nil))
	} else if opts.Addr != "" && !loopback(opts.Addr) {
		return nil, &OptionsError{fmt.Sprintf("hepbuild serve: %s is not a loopback address: without --token-file the server listens on loopback only (127.0.0.1, ::1, localhost)", opts.Addr)}
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, &OptionsError{"hepbuild serve: give both a TLS certificate and its key, or neither"}
	}
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, &OptionsError{fmt.Sprintf("hepbuild serve: loading the TLS certificate: %v", err)}
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ctx := context.Background()
	db, err := openDB(ctx, opts.DB)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(opts.DB); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(opts.Log, "hepbuild serve: warning: others can read the history %s, which holds the builds' commands, environments and logs (chmod 600 it)\n", opts.DB)
	}
	s.db = db
	if err := s.restore(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.coord = coord.NewServer(coord.ServerOptions{Holder: s.holder, Running: s.running})
	s.pages = web.New(s, web.Options{})
	s.routes()
	go s.watchLost()
	return s, nil
}

// Close stops the server's background work and closes the database.
func (s *Server) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
	}
	return s.db.Close()
}

// loopback says whether addr (HOST:PORT) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// running tells the coordinator whether a build runs.
func (s *Server) running(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id] != nil
}

// holder tells the coordinator who a build is.
func (s *Server) holder(id string) (user, host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.live[id]; b != nil {
		return b.start.User, b.start.Host
	}
	return "", ""
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST "+api.PathBuilds, s.handleStart)
	m.HandleFunc("GET "+api.PathBuilds, s.handleList)
	m.HandleFunc("POST /api/v1/builds/{id}/batch", s.handleBatch)
	m.HandleFunc("POST /api/v1/builds/{id}/end", s.handleEnd)
	m.HandleFunc("GET "+api.PathPing, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m.Handle("/api/v1/claims/", s.coord)
	for path, allow := range map[string]string{api.PathBuilds: "GET, POST", "/api/v1/builds/{id}/batch": "POST", "/api/v1/builds/{id}/end": "POST", api.PathPing: "GET"} {
		m.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			httpError(w, http.StatusMethodNotAllowed, "use "+allow)
		})
	}
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { httpError(w, http.StatusNotFound, "no such API path") })
	m.Handle("/", s.pages)
	s.mux = m
}

// ServeHTTP checks the request's credentials and answers it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if s.tls != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	r.Body = http.MaxBytesReader(w, r.Body, api.MaxBody)
	if s.token == nil && !loopbackHost(r.Host) {
		// Without a token the server trusts whoever reaches loopback; a
		// page elsewhere must not reach it through a name that resolves
		// to 127.0.0.1 (DNS rebinding).
		httpError(w, http.StatusMisdirectedRequest, "this server answers only requests addressed to a loopback host")
		return
	}
	if !safeMethod(r.Method) {
		// A page on another site can make its visitor's browser post here
		// (a form needs no preflight), with the login cookie, or to a
		// server without a token on loopback. Builds send neither Origin
		// nor Sec-Fetch-Site, so they pass; browsers send them.
		if err := s.sameOrigin.Check(r); err != nil {
			httpError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
	}
	if r.URL.Path == "/login" {
		s.handleLogin(w, r)
		return
	}
	// The style sheet, scripts and icon are the same for everyone and
	// hold no data: the login page uses them.
	if !s.authorized(r) && !(strings.HasPrefix(r.URL.Path, "/static/") && (r.Method == http.MethodGet || r.Method == http.MethodHead)) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("WWW-Authenticate", `Bearer realm="hepbuild"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong token")
			return
		}
		s.loginPage(w, r, http.StatusUnauthorized, "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authorized checks the bearer token or the login cookie, in constant time.
// The cookie is a browser's, which reads pages: what writes through the API
// (reports, claims) needs the token itself.
func (s *Server) authorized(r *http.Request) bool {
	if s.token == nil {
		return true
	}
	if a := r.Header.Get("Authorization"); a != "" {
		got, ok := strings.CutPrefix(a, "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(got), s.token) == 1
	}
	if strings.HasPrefix(r.URL.Path, "/api/") && !safeMethod(r.Method) {
		return false
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.cookie)) == 1
	}
	return false
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// Serve answers requests on ln until ctx is done, then shuts down,
// letting requests under way finish for a few seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		// A claim waits up to api.MaxClaimWait before it answers.
		WriteTimeout:   api.MaxClaimWait + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       s.log,
	}
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// ListenAndServe listens on Options.Addr and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("hepbuild serve: %w", err)
	}
	return s.Serve(ctx, ln)
}

// URL is the address of the server's pages for addr, as it listens.
func (s *Server) URL(addr string) string {
	if s.tls != nil {
		return "https://" + addr + "/"
	}
	return "http://" + addr + "/"
}
