// Package web renders the pages of `hepbuild serve`: the build list, one
// build, its graph, one action, search. It reads an api.Store and nothing
// else; authentication is the server's.
//
// Routes (GET; anything else is a 404 page):
//
//	/                          build list, running builds first; ?user=&target=&before=
//	/builds/ID                 one build, live while it runs
//	/builds/ID.json            its api.BuildView
//	/builds/ID/graph?path=P    one level of its graph (P="" is the packages);
//	                           &up=... is the trail back, for the breadcrumbs
//	/builds/ID/graph.json?path=P  its api.GraphView
//	/builds/ID/actions/N       one action
//	/search?q=LABEL            targets whose label contains LABEL
//	/static/...                style sheet, scripts, icon (embedded)
//
// An ID that is not api.IDLen lowercase hex digits, and api.ErrNotFound
// from the store, are 404s; any other store error is a 500 page that shows
// the error's text.
//
// Pages are rendered on the server with html/template, which escapes
// everything a build reported; the graph is laid out here too, as SVG.
// The little JavaScript there is lives in /static (embedded), never
// inline, so that the server's Content-Security-Policy "default-src
// 'self'" holds. While a build runs, build.js fetches /builds/ID.json
// every second (after the previous answer, backing off when requests
// fail) and redraws what changed, and graph.js fetches
// /builds/ID/graph.json?path=P every second and recolours its boxes
// (checking /builds/ID.json every fifth time to stop when the build has
// ended). Both stop polling once the outcome is no longer "running".
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// Options configure the pages.
type Options struct {
	// Title names the server in page titles ("hepbuild" by default).
	Title string
	// Now is the clock (time.Now by default); tests fix it.
	Now func() time.Time
	// Logf records store errors and template failures for the server's
	// operator (log.Printf by default).
	Logf func(format string, args ...any)
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Limits of the lists the pages show.
const (
	listLimit   = 100
	searchLimit = 200
)

type handler struct {
	store  api.Store
	title  string
	now    func() time.Time
	logf   func(format string, args ...any)
	pages  map[string]*template.Template
	static http.Handler
	// version is a digest of the static files, put in their URLs so that
	// browsers may cache them for long and still see a new release at once.
	version string
}

// New returns the handler of every page and static file. It is safe for
// concurrent use.
func New(store api.Store, opts Options) http.Handler {
	h := &handler{store: store, title: opts.Title, now: opts.Now, pages: map[string]*template.Template{}}
	if h.title == "" {
		h.title = "hepbuild"
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.logf = opts.Logf
	if h.logf == nil {
		h.logf = log.Printf
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	h.version = digestFS(sub)
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	for _, page := range []string{"list", "build", "graph", "action", "search", "error"} {
		h.pages[page] = template.Must(template.New("base.html").Funcs(funcs).
			ParseFS(templateFiles, "templates/base.html", "templates/"+page+".html"))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.list)
	mux.HandleFunc("GET /builds/{id}", h.build) // also /builds/ID.json
	mux.HandleFunc("GET /builds/{id}/graph", h.graph)
	mux.HandleFunc("GET /builds/{id}/graph.json", h.graphJSON)
	mux.HandleFunc("GET /builds/{id}/actions/{n}", h.action)
	mux.HandleFunc("GET /search", h.search)
	mux.HandleFunc("GET /static/", h.serveStatic)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, api.ErrNotFound)
	})
	return securityHeaders(mux)
}

// securityHeaders sets the policy the pages are written for: scripts and
// styles only from /static, no framing, no sniffing. A server that set a
// stricter one before (package server does) keeps it.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		for k, v := range map[string]string{
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		} {
			if hd.Get(k) == "" {
				hd.Set(k, v)
			}
		}
		next.ServeHTTP(w, r)
	})
}

func digestFS(fsys fs.FS) string {
	sum := sha256.New()
	fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(fsys, path)
			sum.Write([]byte(path))
			sum.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(sum.Sum(nil))[:12]
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") == h.version {
		w.Header().Set("Cache-Control", "public, max-age=604800, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	h.static.ServeHTTP(w, r)
}

// validID reports whether id looks like a build id, so that junk never
// reaches the store.
func validID(id string) bool {
	if len(id) != api.IDLen {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// page is what every template gets: the layout's fields and the page's data.
type page struct {
	Title   string // of this page
	Site    string
	Version string // of the static files
	Now     time.Time
	Query   string // the search box's
	Data    any
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	var buf bytes.Buffer
	p := page{Title: title, Site: h.title, Version: h.version, Now: h.now().UTC(), Data: data}
	if name == "search" {
		p.Query = r.URL.Query().Get("q")
	}
	if err := h.pages[name].Execute(&buf, p); err != nil {
		// A template that fails on some data is a bug of this package:
		// log it whole, show the person only that the page failed.
		h.logf("web: rendering %s for %s: %v", name, r.URL.Path, err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorData struct {
	Status  int
	Heading string
	Message string
}

// fail answers an error: 404 for what the store does not have, 500 with the
// error's text otherwise. JSON routes get JSON.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, heading, msg := http.StatusInternalServerError, "Something went wrong", err.Error()
	switch {
	case errors.Is(err, api.ErrNotFound):
		status, heading, msg = http.StatusNotFound, "Not found", "There is no such page, build or action here."
	case errors.Is(err, context.Canceled):
		return // the browser went away
	}
	if status == http.StatusInternalServerError {
		h.logf("web: %s: %v", r.URL.Path, err)
	}
	if strings.HasSuffix(r.URL.Path, ".json") {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	h.render(w, r, status, "error", heading, errorData{Status: status, Heading: heading, Message: msg})
}

func (h *handler) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// listData is the build list's page.
type listData struct {
	User, Target string
	Rows         []api.BuildRow
	Running      int
	Older        string // the next page's URL, "" at the end
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq := api.ListQuery{User: q.Get("user"), Target: q.Get("target"), Limit: listLimit}
	if s := q.Get("before"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			h.fail(w, r, api.ErrNotFound)
			return
		}
		lq.Before = t
	}
	rows, err := h.store.ListBuilds(r.Context(), lq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := listData{User: lq.User, Target: lq.Target}
	if len(rows) == listLimit {
		v := url.Values{}
		if lq.User != "" {
			v.Set("user", lq.User)
		}
		if lq.Target != "" {
			v.Set("target", lq.Target)
		}
		v.Set("before", rows[len(rows)-1].Started.UTC().Format(time.RFC3339Nano))
		d.Older = "/?" + v.Encode()
	}
	// Running builds first: they are what people come to watch.
	slices.SortStableFunc(rows, func(a, b api.BuildRow) int {
		ra, rb := a.Outcome == api.OutcomeRunning, b.Outcome == api.OutcomeRunning
		switch {
		case ra && !rb:
			return -1
		case rb && !ra:
			return 1
		}
		return 0
	})
	for _, row := range rows {
		if row.Outcome == api.OutcomeRunning {
			d.Running++
		}
	}
	d.Rows = rows
	title := "Builds"
	if lq.User != "" || lq.Target != "" {
		title = "Builds: " + strings.TrimSpace(lq.User+" "+lq.Target)
	}
	h.render(w, r, http.StatusOK, "list", title, d)
}

func (h *handler) build(w http.ResponseWriter, r *http.Request) {
	id, isJSON := strings.CutSuffix(r.PathValue("id"), ".json")
	if !validID(id) {
		h.fail(w, r, api.ErrNotFound)
		return
	}
	v, err := h.store.Build(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if isJSON {
		h.writeJSON(w, v)
		return
	}
	h.render(w, r, http.StatusOK, "build", "Build "+strings.Join(v.Targets, " "), v)
}

// graphData is the graph page's.
type graphData struct {
	Build  *api.BuildView
	View   *api.GraphView
	Layout *graphLayout
	Crumbs []crumb
	Up     []string // the trail to pass on to children
}

// crumb is one step of the way back up the graph.
type crumb struct {
	Label string
	URL   string
}

// graphURL is the URL of the graph at path, reached through the trail up
// (Paths are opaque here: the trail is how the page knows the way back).
func graphURL(build, path string, up []string) string {
	v := url.Values{}
	if path != "" {
		v.Set("path", path)
	}
	for _, u := range up {
		v.Add("up", u)
	}
	s := "/builds/" + build + "/graph"
	if len(v) > 0 {
		s += "?" + v.Encode()
	}
	return s
}

func (h *handler) graph(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		h.fail(w, r, api.ErrNotFound)
		return
	}
	q := r.URL.Query()
	path := q.Get("path")
	up := q["up"]
	if len(up) > 32 {
		up = up[len(up)-32:]
	}
	b, err := h.store.Build(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	g, err := h.store.Graph(r.Context(), id, path)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := graphData{Build: b, View: g}
	if path != "" {
		d.Crumbs = append(d.Crumbs, crumb{Label: "all packages", URL: graphURL(id, "", nil)})
		for i, u := range up {
			if u == "" {
				continue
			}
			d.Crumbs = append(d.Crumbs, crumb{Label: u, URL: graphURL(id, u, up[:i])})
		}
		d.Up = append(slices.Clone(up), path)
	}
	d.Layout = layoutGraph(g, func(n *api.GraphNode) string {
		if n.Children > 0 {
			return graphURL(id, n.Path, d.Up)
		}
		if n.Action >= 0 {
			return "/builds/" + id + "/actions/" + strconv.Itoa(int(n.Action))
		}
		return ""
	})
	title := "Graph of " + strings.Join(b.Targets, " ")
	if path != "" {
		title = path + " · " + title
	}
	h.render(w, r, http.StatusOK, "graph", title, d)
}

func (h *handler) graphJSON(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		h.fail(w, r, api.ErrNotFound)
		return
	}
	g, err := h.store.Graph(r.Context(), id, r.URL.Query().Get("path"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, g)
}

func (h *handler) action(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 32)
	if !validID(id) || err != nil || n < 0 {
		h.fail(w, r, api.ErrNotFound)
		return
	}
	v, err := h.store.Action(r.Context(), id, int32(n))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "action", v.Target+" "+v.Mnemonic, v)
}

// searchData is the search page's.
type searchData struct {
	Query string
	Hits  []api.SearchHit
	More  bool // the limit cut the hits
}

func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := searchData{Query: q}
	if len(q) > api.MaxString {
		q = q[:api.MaxString]
	}
	if q != "" {
		hits, err := h.store.Search(r.Context(), q, searchLimit)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		d.Hits, d.More = hits, len(hits) >= searchLimit
	}
	title := "Search"
	if q != "" {
		title = "Search: " + q
	}
	h.render(w, r, http.StatusOK, "search", title, d)
}
