// Package webdav reads and writes files on WebDAV storage (davs://,
// https://, http://): the HTTP interface of WLCG storage (XRootD's
// XrdHttp, dCache, EOS, StoRM) and plain WebDAV servers such as nginx.
// davs:// is https:// on the wire.
//
// Metadata comes from PROPFIND (one round trip for a whole folder),
// checksums from HEAD with "Want-Digest: adler32" (RFC 3230), content
// from GET, and writes go to a temporary name that MOVE then puts in
// place, so a failed write never leaves a partial file under its name.
package webdav

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/httpcache"
	"github.com/hepbuild/hepbuild/storage"
)

// Client speaks WebDAV to one server. It is safe for concurrent use;
// connections are bounded by Options.MaxConnections (the transport's
// per-server limit).
type Client struct {
	scheme  string // as the user wrote it (davs, https, http): entries' URLs keep it
	wire    string // https or http
	host    string // host:port, lower case
	name    string // scheme://host
	headers []remote.Header
	timeout time.Duration
	http    *http.Client

	// oldXrdHttp is set once the server shows it is an XrdHttp with the
	// quirks measured on XRootD 5.5 (see isOldXrdHttp).
	oldXrdHttp atomic.Bool
	// identified is set once any answer came, so the server is known.
	identified atomic.Bool
	// noMove is set once the server refused MOVE: Put then writes in place.
	noMove atomic.Bool
	// folders that exist (made or found by MKCOL), so a Put into a known
	// folder costs no MKCOL.
	folders sync.Map
}

var _ storage.Client = (*Client)(nil)

// maxRedirects bounds a chain of redirects.
const maxRedirects = 10

// Open prepares a Client for u's server; it does not contact it.
// Credentials come from opts (headers such as "authorization: Bearer
// <token>", a TLS client certificate or X.509 proxy); user information
// in the URL is refused rather than sent.
func Open(u *url.URL, opts storage.Options) (storage.Client, error) {
	name := remote.Redact(u)
	scheme := strings.ToLower(u.Scheme)
	wire, ok := wireScheme(scheme)
	if !ok {
		return nil, fmt.Errorf("%s: WebDAV storage speaks davs://, https:// and http://, not %s://", name, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: no host", name)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the URL are not sent; give a token header or a certificate instead", name)
	}
	opts = opts.WithDefaults()
	tr, err := httpcache.Transport(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Client{
		scheme:  scheme,
		wire:    wire,
		host:    strings.ToLower(u.Host),
		name:    scheme + "://" + strings.ToLower(u.Host),
		headers: opts.Headers,
		timeout: opts.Timeout,
	}
	// No Client.Timeout: it would cut a long transfer that still
	// progresses. The transport bounds connecting and waiting for
	// headers; watchdogs bound each stretch of a body without progress.
	c.http = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c, nil
}

func wireScheme(scheme string) (string, bool) {
	switch scheme {
	case "davs", "https":
		return "https", true
	case "http":
		return "http", true
	}
	return "", false
}

// checkRedirect follows a redirect only with the same method (net/http
// would turn a PROPFIND into a GET), and sends the credential headers
// only back to the same server over the same or a safer scheme: a
// storage that redirects a transfer to another host (a dCache pool, say)
// hands out its own authorization in the new URL.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	first := via[0]
	if req.Method != first.Method {
		return http.ErrUseLastResponse
	}
	if !sameServer(first.URL, req.URL) {
		for _, h := range c.headers {
			req.Header.Del(h.Name)
		}
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
		req.Host = ""
	}
	return nil
}

// sameServer reports whether a redirect from one URL to another stays
// with the server that was given the credentials: same host and port, and
// no step down from https to http.
func sameServer(from, to *url.URL) bool {
	return strings.EqualFold(from.Host, to.Host) && (from.Scheme == to.Scheme || to.Scheme == "https")
}

// Name is the server's URL without credentials.
func (c *Client) Name() string { return c.name }

// Close releases idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// target parses rawURL, checks that it names a file on this server, and
// returns it as sent on the wire (https for davs). Its query stays: some
// storage takes a token there (it is redacted in messages).
func (c *Client) target(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the whole URL, query included.
		return nil, fmt.Errorf("%s: %q is not a URL", c.name, storage.Redact(rawURL))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the URL are not sent; give a token header or a certificate instead", remote.Redact(u))
	}
	wire, ok := wireScheme(strings.ToLower(u.Scheme))
	if !ok || wire != c.wire || !strings.EqualFold(u.Host, c.host) {
		return nil, fmt.Errorf("%s is not on %s", remote.Redact(u), c.name)
	}
	w := *u
	w.Scheme, w.Host, w.Fragment = wire, c.host, ""
	if w.Path == "" {
		w.Path = "/"
	}
	return &w, nil
}

// drainWait bounds reading the rest of a body nobody wants, for the
// connection's reuse.
const drainWait = 100 * time.Millisecond

// exchange is one HTTP request and its response.
type exchange struct {
	c      *Client
	method string
	what   string // the URL, redacted, for messages
	ctx    context.Context
	parent context.Context
	cancel context.CancelCauseFunc
	dog    *httpcache.StallTimer
	resp   *http.Response
}

func (x *exchange) close() {
	x.dog.Disarm()
	if x.resp != nil {
		// Drain a little so the connection can be reused, but never wait
		// for it: a server that sends no more would hold close forever.
		t := time.AfterFunc(drainWait, func() { x.cancel(httpcache.ErrStall) })
		io.Copy(io.Discard, io.LimitReader(x.resp.Body, 4096))
		t.Stop()
		x.resp.Body.Close()
	}
	x.cancel(context.Canceled)
}

// read reads from the response body under the watchdog.
func (x *exchange) Read(p []byte) (int, error) {
	x.dog.Arm()
	n, err := x.resp.Body.Read(p)
	x.dog.Disarm()
	if err != nil && err != io.EOF {
		err = x.failure(err)
	}
	return n, err
}

// request describes what to send.
type request struct {
	method string
	u      *url.URL
	header http.Header
	body   io.Reader // exactly size bytes, or nil
	size   int64
	// foreign: u is on a server a redirect named, which gets no
	// credential header.
	foreign bool
	// close: the connection is not used again after this exchange.
	close bool
}

// do sends a request; the caller closes the exchange. A failure to get
// an answer is translated (ErrUnavailable, ErrDenied for a refused
// certificate); a status is left to the caller.
func (c *Client) do(ctx context.Context, r request) (*exchange, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	x := &exchange{c: c, method: r.method, what: remote.Redact(r.u), ctx: rctx, parent: ctx, cancel: cancel}
	x.dog = httpcache.NewStallTimer(c.timeout, cancel)
	var body io.Reader
	if r.body != nil {
		body = &httpcache.UploadReader{R: r.body, Stall: x.dog}
	}
	req, err := http.NewRequestWithContext(rctx, r.method, r.u.String(), body)
	if err != nil {
		x.close()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL and its query
		}
		return nil, fmt.Errorf("%s %s: %w", r.method, x.what, err)
	}
	if r.body != nil {
		req.ContentLength = r.size
		if r.size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Close = r.close
	for _, h := range c.headers {
		if r.foreign {
			break
		}
		if strings.EqualFold(h.Name, "host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		err = x.failure(err)
		x.close()
		return nil, err
	}
	x.dog.Disarm() // armed by the last piece of the request body
	x.resp = resp
	if isOldXrdHttp(resp.Header.Get("Server")) {
		c.oldXrdHttp.Store(true)
	}
	c.identified.Store(true)
	return x, nil
}

// failure translates an error of the transport or of reading a body.
// The text of net/http's *url.Error quotes the URL with its query (which
// may hold a token): only its cause is kept. Header values never appear
// in net/http's errors.
func (x *exchange) failure(err error) error {
	what := fmt.Sprintf("%s %s", x.method, x.what)
	if x.parent.Err() != nil {
		return fmt.Errorf("%s: %w", what, x.parent.Err())
	}
	if errors.Is(context.Cause(x.ctx), httpcache.ErrStall) {
		return fmt.Errorf("%s: %w: no progress for %v", what, storage.ErrUnavailable, x.c.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
		return fmt.Errorf("%s: %w: %w", what, storage.ErrDenied, err)
	}
	// Refused or reset connections, timeouts, servers that hang up: all
	// may pass.
	return fmt.Errorf("%s: %w: %w", what, storage.ErrUnavailable, err)
}

// statusError translates an answer other than success. The body of the
// answer is not quoted: a server may echo what it was sent.
func (x *exchange) statusError() error {
	code := x.resp.StatusCode
	what := fmt.Sprintf("%s %s: HTTP %d %s", x.method, x.what, code, http.StatusText(code))
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("%s: %w", what, storage.ErrNotExist)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%s: %w: credential or permission refused", what, storage.ErrDenied)
	case code == http.StatusMethodNotAllowed && x.method == http.MethodPut:
		return fmt.Errorf("%s: %w: the server refuses writes", what, storage.ErrDenied)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%s: %w", what, storage.ErrUnavailable)
	case code >= 300 && code < 400:
		if loc, err := x.resp.Location(); err == nil {
			return fmt.Errorf("%s: redirected to %s, not followed", what, remote.Redact(loc))
		}
	}
	return errors.New(what)
}

func ok(code int) bool { return code >= 200 && code < 300 }

// isOldXrdHttp reports whether a Server header names an XrdHttp with the
// quirks measured on XRootD 5.5.3 (and assumed of older versions):
//   - PROPFIND hrefs are not percent-encoded, and MOVE's Destination is
//     taken literally ("a%20b" names a file called that);
//   - a HEAD with Want-Digest for a file whose checksum is not stored yet
//     is answered twice (once when the checksum job is scheduled, once
//     when it ends), so the next request on the connection gets the
//     second answer and its own is lost.
//
// Newer versions are taken to follow RFC 4918 until measured: if they do
// not, decoding a raw href still goes wrong only for a name holding a
// valid "%XX", whereas taking encoded hrefs literally would break every
// name with a space.
func isOldXrdHttp(server string) bool {
	v, ok := strings.CutPrefix(server, "XrootD/v")
	if !ok {
		return false
	}
	f := strings.SplitN(v, ".", 3)
	if len(f) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	return err1 == nil && err2 == nil && (major < 5 || major == 5 && minor <= 5)
}
