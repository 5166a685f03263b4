package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/hepbuild/hepbuild/storage"
)

// Open sends GET and streams the body. Its length is checked against
// Content-Length, or against the size PROPFIND reports when the server
// sends none, so a cut transfer is an error, never a short file.
func (c *Client) Open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	u, err := c.target(rawURL)
	if err != nil {
		return nil, err
	}
	// Identity: net/http would otherwise ask for gzip, decompress it
	// silently and drop Content-Length.
	x, err := c.do(ctx, request{method: http.MethodGet, u: u, header: http.Header{"Accept-Encoding": {"identity"}}})
	if err != nil {
		return nil, err
	}
	if x.resp.StatusCode != http.StatusOK {
		defer x.close()
		if ok(x.resp.StatusCode) {
			return nil, fmt.Errorf("GET %s: HTTP %d instead of the whole file", x.what, x.resp.StatusCode)
		}
		return nil, x.statusError()
	}
	size := x.resp.ContentLength
	if size < 0 {
		f, err := c.Stat(ctx, rawURL)
		if err != nil {
			x.close()
			return nil, err
		}
		size = f.Size
	}
	return &sizedReader{x: x, size: size}, nil
}

// sizedReader returns io.EOF only once exactly size bytes arrived.
type sizedReader struct {
	x    *exchange
	size int64
	n    int64
	err  error // sticky
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.x.Read(p)
	s.n += int64(n)
	switch {
	case s.n > s.size:
		s.err = fmt.Errorf("GET %s: more than the file's %d bytes arrived", s.x.what, s.size)
		return 0, s.err
	case err == io.EOF && s.n < s.size:
		s.err = fmt.Errorf("GET %s: %w: the body ended after %d of %d bytes", s.x.what, storage.ErrUnavailable, s.n, s.size)
	case err != nil:
		// A body shorter than its Content-Length is net/http's
		// io.ErrUnexpectedEOF, already ErrUnavailable (exchange.Read).
		s.err = err
	}
	return n, s.err
}

func (s *sizedReader) Close() error {
	s.x.close()
	return nil
}

// Put writes to a temporary name in the same folder (storage.TempName)
// and MOVEs it onto url (Overwrite: T), so readers never
// see a partial file; the temporary is deleted when anything fails. The
// parent folders are made with MKCOL the first time this client writes
// into them. A server that refuses MOVE gets the file written in place
// (and deleted again if that fails).
func (c *Client) Put(ctx context.Context, rawURL string, r io.Reader, size int64) error {
	u, err := c.target(rawURL)
	if err != nil {
		return err
	}
	if err := c.putVia(ctx, u, r, size); err != nil {
		// The steps name the temporary; say which file it was for.
		return fmt.Errorf("writing %s: %w", storage.Redact(rawURL), err)
	}
	return nil
}

func (c *Client) putVia(ctx context.Context, u *url.URL, r io.Reader, size int64) error {
	if strings.HasSuffix(u.Path, "/") || u.Path == "/" {
		return fmt.Errorf("PUT %s: names a folder, not a file", storage.Redact(u.String()))
	}
	dir, base := path.Split(u.Path)
	if err := c.mkcolAll(ctx, u, dir); err != nil {
		return err
	}
	body := &exactReader{r: r, left: size}
	if c.noMove.Load() {
		return c.putInPlace(ctx, u, body, size)
	}
	tmp := *u
	tmp.Path, tmp.RawPath = dir+storage.TempName(base), ""
	if err := c.put(ctx, &tmp, body, size); err != nil {
		c.remove(ctx, &tmp)
		return err
	}
	err := c.move(ctx, &tmp, u)
	var refused *methodRefused
	if errors.As(err, &refused) {
		c.noMove.Store(true)
		err = c.copyInPlace(ctx, &tmp, u, size)
	}
	if err != nil || c.noMove.Load() {
		// After a MOVE the temporary is gone; otherwise it is not wanted.
		c.remove(ctx, &tmp)
	}
	return err
}

// exactReader passes on exactly left bytes of r and fails when r has
// fewer or more.
type exactReader struct {
	r    io.Reader
	left int64
	err  error // sticky: a size mismatch or a failure to read r
}

var errSize = errors.New("the content does not have the size given")

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(e.r, one[:])
		switch {
		case n > 0:
			e.err = fmt.Errorf("%w: it is longer", errSize)
		case err == io.EOF:
			return 0, io.EOF
		default:
			e.err = fmt.Errorf("reading the content: %w", err)
		}
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("%w: it is %d bytes shorter", errSize, e.left)
		return n, e.err
	case err == io.EOF:
		return n, nil
	case err != nil:
		e.err = fmt.Errorf("reading the content: %w", err)
		return n, e.err
	}
	return n, nil
}

// put sends one PUT of all of body. It asks the server to confirm
// before the body goes (Expect: 100-continue), so a storage that
// redirects writes to another node (dCache sends its doors' PUTs to a
// pool with 307) gets the body there; net/http cannot follow such a
// redirect itself without rewinding the body. The credential headers go
// to that node only when it is the same server.
func (c *Client) put(ctx context.Context, u *url.URL, body *exactReader, size int64) error {
	if size == 0 {
		// The transport sends no body and reads none: check it is empty.
		if _, err := body.Read(nil); err != io.EOF {
			return fmt.Errorf("PUT %s: %w", storage.Redact(u.String()), err)
		}
	}
	r := request{method: http.MethodPut, u: u, body: body, size: size}
	if size > 0 {
		r.header = http.Header{"Expect": {"100-continue"}}
	}
	for redirects := 0; ; redirects++ {
		x, err := c.do(ctx, r)
		if body.err != nil {
			// The transport's complaint would be about the body it got.
			if x != nil {
				x.close()
			}
			return fmt.Errorf("PUT %s: %w", storage.Redact(r.u.String()), body.err)
		}
		if err != nil {
			return err
		}
		code := x.resp.StatusCode
		if (code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect) && body.left == size && redirects < maxRedirects {
			loc, err := x.resp.Location()
			x.close()
			if err != nil {
				return fmt.Errorf("PUT %s: HTTP %d without a usable Location", storage.Redact(r.u.String()), code)
			}
			r.foreign = r.foreign || !sameServer(r.u, loc)
			r.u = loc
			continue
		}
		defer x.close()
		if !ok(code) {
			return x.statusError()
		}
		if body.left > 0 {
			return fmt.Errorf("PUT %s: the server answered before taking %d of the bytes", x.what, body.left)
		}
		return nil
	}
}

// move renames from onto to.
func (c *Client) move(ctx context.Context, from, to *url.URL) error {
	d := *to
	d.RawQuery, d.ForceQuery = "", false // a token in the query is for the request, not a name
	dest := d.String()
	if c.oldXrdHttp.Load() {
		// XrdHttp does not decode Destination: it would name the file
		// "a%20b". It takes the path as it is.
		dest = to.Scheme + "://" + to.Host + to.Path
	}
	x, err := c.do(ctx, request{method: "MOVE", u: from, header: http.Header{"Destination": {dest}, "Overwrite": {"T"}}})
	if err != nil {
		return err
	}
	defer x.close()
	switch code := x.resp.StatusCode; {
	case ok(code):
		return nil
	case code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented:
		return &methodRefused{x.statusError()}
	}
	return x.statusError()
}

// copyInPlace writes what was put under from to to, through this client
// (for the one Put that found MOVE refused).
func (c *Client) copyInPlace(ctx context.Context, from, to *url.URL, size int64) error {
	rc, err := c.Open(ctx, from.String())
	if err != nil {
		return err
	}
	defer rc.Close()
	return c.putInPlace(ctx, to, &exactReader{r: rc, left: size}, size)
}

// putInPlace is PUT onto the name itself, for servers without MOVE. A
// failed write is deleted, so at least no partial file stays.
func (c *Client) putInPlace(ctx context.Context, u *url.URL, body *exactReader, size int64) error {
	if err := c.put(ctx, u, body, size); err != nil {
		c.remove(ctx, u)
		return err
	}
	return nil
}

// remove deletes u, best effort: it runs even when ctx was cancelled
// (that may be why it is needed), within one timeout.
func (c *Client) remove(ctx context.Context, u *url.URL) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	x, err := c.do(ctx, request{method: http.MethodDelete, u: u})
	if err != nil {
		return err
	}
	defer x.close()
	if !ok(x.resp.StatusCode) && x.resp.StatusCode != http.StatusNotFound {
		return x.statusError()
	}
	return nil
}

// mkcolAll makes folder dir (a path ending in "/") and its missing
// parents, starting at dir and going up only while MKCOL answers 409 (a
// parent is missing), so folders that exist cost one MKCOL at most and
// folders above the writable area are never touched. nginx wants the
// trailing slash. A refusal other than 409 is left to the PUT that
// follows to report: the folder may exist where MKCOL is not allowed.
func (c *Client) mkcolAll(ctx context.Context, u *url.URL, dir string) error {
	if dir == "/" || dir == "" {
		return nil
	}
	if _, known := c.folders.Load(dir); known {
		return nil
	}
	d := *u
	d.Path, d.RawPath, d.RawQuery = dir, "", u.RawQuery
	for attempt := 0; attempt < 2; attempt++ {
		x, err := c.do(ctx, request{method: "MKCOL", u: &d})
		if err != nil {
			return err
		}
		code := x.resp.StatusCode
		x.close()
		switch {
		case ok(code) || code == http.StatusMethodNotAllowed:
			// 405: it exists already.
			c.folders.Store(dir, true)
			return nil
		case code == http.StatusConflict && attempt == 0:
			parent := path.Dir(strings.TrimSuffix(dir, "/"))
			if parent == "/" || parent == "." {
				return nil
			}
			if err := c.mkcolAll(ctx, u, parent+"/"); err != nil {
				return err
			}
			continue
		case code == http.StatusServiceUnavailable || code >= 500 && code != http.StatusNotImplemented:
			return fmt.Errorf("MKCOL %s: HTTP %d: %w", storage.Redact(d.String()), code, storage.ErrUnavailable)
		}
		return nil
	}
	return nil
}
