package webdav

// Servers that misbehave in ways no real server here can be made to: Go
// httptest servers, for these cases only.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/storage"
)

// server starts the handler h makes; a handler that blocks waits on
// release or its request's context, both of which end before the server
// closes.
func server(t *testing.T, h func(release <-chan struct{}) http.HandlerFunc) string {
	t.Helper()
	release := make(chan struct{})
	s := httptest.NewServer(h(release))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return s.URL
}

// always is for handlers that never block.
func always(h http.HandlerFunc) func(<-chan struct{}) http.HandlerFunc {
	return func(<-chan struct{}) http.HandlerFunc { return h }
}

func quick() storage.Options { return storage.Options{Timeout: 300 * time.Millisecond} }

// within fails when f takes longer than d.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if took := time.Since(start); took > d {
		t.Errorf("took %v, more than %v", took, d)
	}
}

func TestStalledServer(t *testing.T) {
	base := server(t, func(release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	c := open(t, base, quick())
	within(t, 3*time.Second, func() {
		_, err := c.Stat(context.Background(), base+"/x")
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Stat of a server that never answers: %v, want ErrUnavailable", err)
		}
	})
}

func TestStallMidBody(t *testing.T) {
	base := server(t, func(release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("0123456789"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	c := open(t, base, quick())
	rc, err := c.Open(context.Background(), base+"/x")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	within(t, 3*time.Second, func() {
		_, err = io.ReadAll(rc)
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("reading a body that stalls: %v, want ErrUnavailable", err)
		}
	})
}

func TestStalledUpload(t *testing.T) {
	// The server reads nothing of the body and never answers: the upload
	// blocks once the socket buffers are full.
	base := server(t, func(release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				w.WriteHeader(http.StatusCreated)
				return
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	c := open(t, base, quick())
	within(t, 5*time.Second, func() {
		err := c.Put(context.Background(), base+"/d/x", io.LimitReader(zeros{}, 64<<20), 64<<20)
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Put to a server that takes nothing: %v, want ErrUnavailable", err)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestShortBody(t *testing.T) {
	base := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("0123456789"))
		// Returning with fewer bytes than promised closes the connection.
	}))
	c := open(t, base, quick())
	rc, err := c.Open(context.Background(), base+"/x")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("a body of %d of 100 bytes: %v, want ErrUnavailable", len(b), err)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close()
	c := open(t, base, quick())
	if _, err := c.Stat(context.Background(), base+"/x"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Stat with nobody listening: %v, want ErrUnavailable", err)
	}
}

func TestHugeListing(t *testing.T) {
	old := maxListing
	maxListing = 1 << 20
	t.Cleanup(func() { maxListing = old })
	base := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMultiStatus)
		io.WriteString(w, `<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">`)
		// Endless: only the client's bound ends it.
		for i := 0; r.Context().Err() == nil; i++ {
			_, err := fmt.Fprintf(w, `<D:response><D:href>/d/f%d</D:href><D:propstat><D:prop><D:getcontentlength>1</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`, i)
			if err != nil {
				return
			}
		}
	}))
	c := open(t, base, quick())
	within(t, 5*time.Second, func() {
		_, err := c.List(context.Background(), base+"/d")
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("List of an endless answer: %v, want a size error", err)
		}
	})
}

const token = "s3cr3t-t0ken-value"

func TestDeniedHidesToken(t *testing.T) {
	base := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		// A careless server echoes what it got.
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "bad token: "+r.Header.Get("Authorization"))
	}))
	c := open(t, base, storage.Options{Headers: []remote.Header{{Name: "Authorization", Value: "Bearer " + token}}})
	ctx := context.Background()
	calls := map[string]func() error{
		"Stat":     func() error { _, err := c.Stat(ctx, base+"/x"); return err },
		"List":     func() error { _, err := c.List(ctx, base+"/x"); return err },
		"Checksum": func() error { _, err := c.Checksum(ctx, base+"/x"); return err },
		"Open":     func() error { _, err := c.Open(ctx, base+"/x"); return err },
		"Put":      func() error { return c.Put(ctx, base+"/x", strings.NewReader("x"), 1) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, storage.ErrDenied) {
			t.Errorf("%s: %v, want ErrDenied", name, err)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
}

func TestQueryTokenNotInErrors(t *testing.T) {
	base := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	c := open(t, base, quick())
	_, err := c.Stat(context.Background(), base+"/x?authz="+token)
	if !errors.Is(err, storage.ErrUnavailable) || strings.Contains(err.Error(), token) {
		t.Errorf("Stat: %v; want ErrUnavailable without the token", err)
	}
}

// TestRedirectDropsCredentials: the token goes back to the same server,
// never to the host a redirect names.
func TestRedirectDropsCredentials(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{}
	record := func(who string, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen[who] = append(seen[who], r.Header.Get("Authorization")+"|"+r.Header.Get("X-Token"))
	}
	other := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		record("other", r)
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	var base string
	base = server(t, always(func(w http.ResponseWriter, r *http.Request) {
		record("origin", r)
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other+"/file", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/file", http.StatusTemporaryRedirect)
		default:
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "ok")
		}
	}))
	c := open(t, base, storage.Options{Timeout: 5 * time.Second, Headers: []remote.Header{
		{Name: "Authorization", Value: "Bearer " + token}, {Name: "X-Token", Value: token}}})
	for _, p := range []string{"/away", "/here"} {
		if got := read(t, c, base+p); string(got) != "ok" {
			t.Errorf("GET %s read %q", p, got)
		}
	}
	both := "Bearer " + token + "|" + token
	want := map[string][]string{"origin": {both, both, both}, "other": {"|"}}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("credentials seen (-want +got):\n%s", diff)
	}
}

func TestParseDigest(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string // "" with found false; "error" for an error
	}{
		{"adler32=0a1b2c3d", "adler32:0a1b2c3d"},
		{"ADLER32=0A1B2C3D", "adler32:0a1b2c3d"},
		{"md5=HUXZLQLMuI/KZ5KDcJPcOA==, adler32=08740248", "adler32:08740248"},
		{"Adler32=a1b2c3", "adler32:00a1b2c3"},
		{"adler32=CHQCSA==", "adler32:08740248"},
		{"md5=HUXZLQLMuI/KZ5KDcJPcOA==", ""},
		{"", ""},
		{"adler32=not a sum", "error"},
	} {
		sum, found, err := ParseDigest(tc.header)
		got := sum.String()
		switch {
		case err != nil:
			got = "error"
		case !found:
			got = ""
		}
		if got != tc.want {
			t.Errorf("ParseDigest(%q) = %q, %v, %v; want %q", tc.header, sum, found, err, tc.want)
		}
	}
}

func TestHrefPath(t *testing.T) {
	for _, tc := range []struct {
		href string
		raw  bool
		want string
	}{
		{"/a/b%20c%25.root", false, "/a/b c%.root"},
		{"https://door.example.org:2880/a/b%2Bc", false, "/a/b+c"},
		{"/a/b c%.root", true, "/a/b c%.root"},
		{"/a/m%20v", true, "/a/m%20v"},
		{"/a/100%", false, "/a/100%"}, // not encoded after all
	} {
		got, err := hrefPath(tc.href, tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("hrefPath(%q, %v) = %q, %v; want %q", tc.href, tc.raw, got, err, tc.want)
		}
	}
	if _, err := hrefPath("relative/x", false); err == nil {
		t.Error("a relative href was taken")
	}
}

func TestIsOldXrdHttp(t *testing.T) {
	for server, want := range map[string]bool{
		"XrootD/v5.5.3":  true,
		"XrootD/v4.12.8": true,
		"XrootD/v5.6.0":  false,
		"XrootD/v6.0.0":  false,
		"XrootD":         false,
		"nginx/1.22.1":   false,
		"":               false,
	} {
		if got := isOldXrdHttp(server); got != want {
			t.Errorf("isOldXrdHttp(%q) = %v, want %v", server, got, want)
		}
	}
}

// TestPutRedirectedToPool: a dCache door answers a PUT with 307 to a
// pool node (no dCache here, so a stand-in written after its
// documentation). The body goes to the pool, without the credential.
func TestPutRedirectedToPool(t *testing.T) {
	var mu sync.Mutex
	stored := map[string]string{}
	poolAuth := []string{}
	pool := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		poolAuth = append(poolAuth, r.Header.Get("Authorization")+r.Header.Get("X-Token"))
		stored[r.URL.Path] = string(b)
		w.WriteHeader(http.StatusCreated)
	}))
	door := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case "MKCOL":
			w.WriteHeader(http.StatusMethodNotAllowed)
		case http.MethodPut:
			// Before reading the body, as dCache does after Expect: 100-continue.
			http.Redirect(w, r, pool+r.URL.Path, http.StatusTemporaryRedirect)
		case "MOVE":
			dest, _ := url.Parse(r.Header.Get("Destination"))
			mu.Lock()
			stored[dest.Path] = stored[r.URL.Path]
			delete(stored, r.URL.Path)
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	c := open(t, door, storage.Options{Timeout: 5 * time.Second, Headers: []remote.Header{
		{Name: "Authorization", Value: "Bearer " + token}, {Name: "X-Token", Value: token}}})
	content := strings.Repeat("event ", 100_000)
	if err := c.Put(context.Background(), door+"/data/x.root", strings.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 1 || stored["/data/x.root"] != content {
		t.Errorf("the pool holds %d files; /data/x.root has %d bytes, want %d", len(stored), len(stored["/data/x.root"]), len(content))
	}
	if diff := cmp.Diff([]string{""}, poolAuth); diff != "" {
		t.Errorf("credentials the pool saw (-want +got):\n%s", diff)
	}
}

// TestErrorBodyStalls: an answer whose body never ends is not waited for
// when the caller does not want it (reading the rest for the
// connection's reuse is bounded). XrdHttp 5.5 sends such an answer to the
// request after a Want-Digest whose checksum was not stored yet: the
// second answer to the HEAD, with no body.
func TestErrorBodyStalls(t *testing.T) {
	base := server(t, func(release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK) // a PROPFIND wants 207
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	c := open(t, base, storage.Options{Timeout: 30 * time.Second})
	within(t, 3*time.Second, func() {
		if _, err := c.Stat(context.Background(), base+"/x"); err == nil {
			t.Error("Stat of a server answering 200 to PROPFIND succeeded")
		}
	})
}

// TestListKeepsToTheFolder: a listing that names entries outside the
// folder (another folder's file, "..", ".", a sub-folder's file, a path
// climbing out) lists only the folder's own files. Before, each was
// returned, and remote_glob took its last segment as a file of the
// folder: /elsewhere/b.root became ds/b.root with b.root's metadata, and
// ".." matched "*".
func TestListKeepsToTheFolder(t *testing.T) {
	hrefs := []string{"/d/", "/d/a.root", "/d/..", "/d/.", "/d/../../etc/passwd", "/elsewhere/b.root", "/d/sub/c.root", "/d/%2e%2e", "/d/b%2Fc.root"}
	base := server(t, always(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMultiStatus)
		io.WriteString(w, `<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">`)
		for _, h := range hrefs {
			fmt.Fprintf(w, `<D:response><D:href>%s</D:href><D:propstat><D:prop><D:getcontentlength>1</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`, h)
		}
		io.WriteString(w, `</D:multistatus>`)
	}))
	c := open(t, base, quick())
	files, err := c.List(context.Background(), base+"/d")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimPrefix(f.URL, base))
	}
	if diff := cmp.Diff([]string{"/d/a.root"}, got); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}
}
