// Package httpcache speaks the Bazel HTTP cache protocol (http://,
// https://): GET, PUT and HEAD of {base}/cas/{sha256} for blobs and
// {base}/ac/{action hash} for serialized REAPI ActionResults. bazel-remote
// serves it, and so does any WebDAV server that accepts PUT (nginx with
// dav_methods PUT), which is why hepbuild supports it next to REAPI.
//
// The protocol has no batch calls: FindMissing is one HEAD per digest and
// the batch calls one request per blob, all run concurrently up to
// Options.MaxConnections.
package httpcache

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
)

// batchLimit is the size up to which Put reads a blob whole and verifies it
// before sending a byte; larger blobs are hashed while they stream.
const batchLimit = 1 << 20

// maxActionResult bounds an action result read whole into memory: a
// server answering with gigabytes for an /ac/ key is broken.
const maxActionResult = 64 << 20

// Cache is a remote cache reached over the Bazel HTTP cache protocol. It is
// safe for concurrent use.
type Cache struct {
	base    string // scheme://host/prefix, without user information or trailing slash
	name    string
	user    *url.Userinfo
	headers []remote.Header
	opts    remote.Options
	client  *http.Client
}

var _ remote.Remote = (*Cache)(nil)

// Open prepares a Cache for rawURL; it does not contact the server (Check
// does). User information in the URL becomes HTTP basic authentication.
func Open(rawURL string, opts remote.Options) (*Cache, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the whole URL, credentials included.
		return nil, errors.New("remote cache: not a valid http:// or https:// URL")
	}
	name := remote.Redact(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("remote cache %s: httpcache speaks http:// and https://, not %s://", name, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("remote cache %s: no host", name)
	}
	opts = opts.WithDefaults()
	tr, err := Transport(opts)
	if err != nil {
		return nil, fmt.Errorf("remote cache %s: %w", name, err)
	}
	base := *u
	base.User, base.RawQuery, base.ForceQuery, base.Fragment = nil, "", false, ""
	return &Cache{
		base:    strings.TrimSuffix(base.String(), "/"),
		name:    name,
		user:    u.User,
		headers: opts.Headers,
		opts:    opts,
		// No Client.Timeout: it would cut a long transfer that is still
		// progressing. Stalls are caught by StallTimer instead.
		client: &http.Client{Transport: tr},
	}, nil
}

// Transport is the HTTP transport of a client that follows opts: TLS from
// opts.TLSConfig (CA, client certificate or X.509 proxy), connecting,
// the TLS handshake and waiting for response headers each bounded by
// opts.Timeout, at most opts.MaxConnections connections per server. It
// sets no bound on a whole exchange: a long transfer that keeps moving
// must not be cut, so callers catch stalled bodies themselves (as Cache
// does with StallTimer). The WebDAV storage client shares it.
func Transport(opts remote.Options) (*http.Transport, error) {
	opts = opts.WithDefaults()
	tlsCfg, err := opts.TLSConfig()
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxConnsPerHost:       opts.MaxConnections,
		MaxIdleConnsPerHost:   opts.MaxConnections,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}, nil
}

// Name is the URL without credentials.
func (c *Cache) Name() string { return c.name }

// BatchLimit is the size up to which Put verifies a blob before sending it.
func (c *Cache) BatchLimit() int64 { return batchLimit }

// Close releases idle connections.
func (c *Cache) Close() error {
	c.client.CloseIdleConnections()
	return nil
}

// ErrStall is the cause a request is cancelled with when a transfer makes
// no progress for Options.Timeout.
var ErrStall = errors.New("no progress")

// StallTimer cancels a request when one blocking step (a read of the
// response body, or the transport sending what the last read of the request
// body gave it) lasts longer than the timeout. Only blocking time counts, so
// a long transfer that keeps moving is never cut.
type StallTimer struct {
	d time.Duration
	t *time.Timer
}

func NewStallTimer(d time.Duration, cancel context.CancelCauseFunc) *StallTimer {
	s := &StallTimer{d: d, t: time.AfterFunc(time.Hour, func() { cancel(ErrStall) })}
	s.t.Stop()
	return s
}

// Arm starts a blocking step; Disarm ends it. The WebDAV storage client
// shares the timer.
func (s *StallTimer) Arm()    { s.t.Reset(s.d) }
func (s *StallTimer) Disarm() { s.t.Stop() }

// request is one HTTP exchange with its cancellation and stall timer.
type request struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	stall  *StallTimer
	resp   *http.Response
}

func (r *request) close() {
	r.stall.Disarm()
	if r.resp != nil {
		r.resp.Body.Close()
	}
	r.cancel(context.Canceled)
}

// do sends one request; body, if not nil, has exactly size bytes. The
// caller closes the returned request.
func (c *Cache) do(ctx context.Context, method, key string, body io.Reader, size int64) (*request, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	r := &request{ctx: rctx, cancel: cancel, stall: NewStallTimer(c.opts.Timeout, cancel)}
	if body != nil {
		body = &UploadReader{R: body, Stall: r.stall}
	}
	req, err := http.NewRequestWithContext(rctx, method, c.base+"/"+key, body)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("%s: %s %s: %w", c.name, method, key, err)
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for _, h := range c.headers {
		if strings.EqualFold(h.Name, "host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	if c.user != nil {
		pass, _ := c.user.Password()
		req.SetBasicAuth(c.user.Username(), pass)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		err = c.transportError(ctx, rctx, method, key, err)
		r.close()
		return nil, err
	}
	r.resp = resp
	return r, nil
}

// UploadReader arms the stall timer while the transport sends what the last
// Read returned, so a server that stops accepting bytes aborts the upload.
// The WebDAV storage client shares it.
type UploadReader struct {
	R     io.Reader
	Stall *StallTimer
}

func (u *UploadReader) Read(p []byte) (int, error) {
	u.Stall.Disarm()
	n, err := u.R.Read(p)
	if err == nil {
		u.Stall.Arm()
	}
	return n, err
}

// transportError translates a failure to get a response. The error text
// of net/http names the URL, which holds no credential (they travel in
// headers), and never the headers.
func (c *Cache) transportError(ctx, rctx context.Context, method, key string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s %s: %w", c.name, method, key, ctx.Err())
	}
	if errors.Is(context.Cause(rctx), ErrStall) {
		return fmt.Errorf("%s: %s %s: %w: no progress for %v", c.name, method, key, remote.ErrTransient, c.opts.Timeout)
	}
	var bad *contentError
	if errors.As(err, &bad) {
		return fmt.Errorf("%s: %s %s: %w", c.name, method, key, bad)
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
		return fmt.Errorf("%s: %s %s: %w: %w", c.name, method, key, remote.ErrDenied, err)
	}
	// Refused or reset connections, timeouts, servers that hang up: all
	// may pass.
	return fmt.Errorf("%s: %s %s: %w: %w", c.name, method, key, remote.ErrTransient, err)
}

// statusError translates a response status other than success.
func (c *Cache) statusError(method, key string, code int) error {
	what := fmt.Sprintf("%s: %s %s: HTTP %d %s", c.name, method, key, code, http.StatusText(code))
	switch {
	case code == http.StatusNotFound:
		return fmt.Errorf("%s: %w", what, cache.ErrNotFound)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%s: %w: credential or permission refused", what, remote.ErrDenied)
	case code == http.StatusMethodNotAllowed && method == http.MethodPut:
		return fmt.Errorf("%s: %w: the server refuses writes", what, remote.ErrDenied)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%s: %w", what, remote.ErrTransient)
	}
	return errors.New(what)
}

func ok(code int) bool { return code >= 200 && code < 300 }

// Contains sends a HEAD.
func (c *Cache) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	key := "cas/" + d.Hash
	r, err := c.do(ctx, http.MethodHead, key, nil, 0)
	if err != nil {
		return false, err
	}
	defer r.close()
	switch code := r.resp.StatusCode; {
	case ok(code):
		return true, nil
	case code == http.StatusNotFound:
		return false, nil
	default:
		return false, c.statusError(http.MethodHead, key, code)
	}
}

// Get streams the blob through a reader that verifies its size and hash:
// the server is not trusted to return what the key names.
func (c *Cache) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	key := "cas/" + d.Hash
	r, err := c.do(ctx, http.MethodGet, key, nil, 0)
	if err != nil {
		return nil, err
	}
	if !ok(r.resp.StatusCode) {
		r.close()
		return nil, c.statusError(http.MethodGet, key, r.resp.StatusCode)
	}
	if n := r.resp.ContentLength; n >= 0 && n != d.Size {
		r.close()
		return nil, fmt.Errorf("%s: GET %s: the server sends %d bytes for a blob of %d", c.name, key, n, d.Size)
	}
	return &verifyingReader{c: c, req: r, key: key, want: d, h: cache.NewHasher()}, nil
}

// verifyingReader returns io.EOF only after the body has the size and hash
// of the digest; otherwise the end of the body is an error.
type verifyingReader struct {
	c    *Cache
	req  *request
	key  string
	want cache.Digest
	h    *cache.Hasher
	n    int64
	err  error // sticky
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	v.req.stall.Arm()
	n, err := v.req.resp.Body.Read(p)
	v.req.stall.Disarm()
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case v.n > v.want.Size:
		v.err = fmt.Errorf("%s: GET %s: the body is longer than the blob's %d bytes", v.c.name, v.key, v.want.Size)
		return 0, v.err
	case err == io.EOF:
		if got := v.h.Digest(); got != v.want {
			v.err = fmt.Errorf("%s: GET %s: the body (%v) does not match the digest %v", v.c.name, v.key, got, v.want)
			return n, v.err
		}
		v.err = io.EOF
	case err != nil:
		if errors.Is(context.Cause(v.req.ctx), ErrStall) {
			v.err = fmt.Errorf("%s: GET %s: %w: no progress for %v", v.c.name, v.key, remote.ErrTransient, v.c.opts.Timeout)
		} else if v.req.ctx.Err() != nil && errors.Is(context.Cause(v.req.ctx), context.Canceled) {
			v.err = fmt.Errorf("%s: GET %s: %w", v.c.name, v.key, context.Cause(v.req.ctx))
		} else {
			v.err = fmt.Errorf("%s: GET %s: %w: %w", v.c.name, v.key, remote.ErrTransient, err)
		}
		return n, v.err
	}
	return n, v.err
}

func (v *verifyingReader) Close() error {
	v.req.close()
	return nil
}

// contentError says the content given to Put does not match its digest.
type contentError struct{ got, want cache.Digest }

func (e *contentError) Error() string {
	return fmt.Sprintf("the content (%v) does not match the digest %v", e.got, e.want)
}

// Put stores the blob. A blob up to BatchLimit is read whole and verified
// before any byte is sent. A larger one is hashed as it streams, and the
// last byte is held back until the hash is known: on a mismatch the body
// ends early with an error, so the server never receives a complete body
// it could store under the wrong key.
func (c *Cache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	key := "cas/" + d.Hash
	if d.Size <= batchLimit {
		b, err := io.ReadAll(io.LimitReader(r, d.Size+1))
		if err != nil {
			return fmt.Errorf("%s: PUT %s: reading the blob: %w", c.name, key, err)
		}
		if got := cache.FromBytes(b); got != d {
			return fmt.Errorf("%s: PUT %s: %w", c.name, key, &contentError{got, d})
		}
		return c.put(ctx, key, bytes.NewReader(b), d.Size)
	}
	vr := &verifyingUpload{r: r, want: d, h: cache.NewHasher()}
	err := c.put(ctx, key, vr, d.Size)
	if vr.err != nil && vr.err != io.EOF {
		return fmt.Errorf("%s: PUT %s: %w", c.name, key, vr.err)
	}
	return err
}

func (c *Cache) put(ctx context.Context, key string, body io.Reader, size int64) error {
	r, err := c.do(ctx, http.MethodPut, key, body, size)
	if err != nil {
		return err
	}
	defer r.close()
	io.Copy(io.Discard, io.LimitReader(r.resp.Body, 4096))
	if !ok(r.resp.StatusCode) {
		return c.statusError(http.MethodPut, key, r.resp.StatusCode)
	}
	return nil
}

// verifyingUpload passes all but the last byte of the blob through while
// hashing, then reads the last byte, checks that nothing follows and that
// the hash matches, and only then releases it.
type verifyingUpload struct {
	r    io.Reader
	want cache.Digest
	h    *cache.Hasher
	n    int64
	err  error // sticky; io.EOF once the whole verified blob was sent
}

func (v *verifyingUpload) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rest := v.want.Size - 1 - v.n; rest > 0 {
		if int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := v.r.Read(p)
		v.h.Write(p[:n])
		v.n += int64(n)
		if err == io.EOF {
			v.err = &contentError{v.h.Digest(), v.want}
			return n, v.err
		}
		if err != nil {
			v.err = fmt.Errorf("reading the blob: %w", err)
		}
		return n, v.err
	}
	// The last byte: read it and one more, to tell a long source.
	var last [2]byte
	n, err := io.ReadFull(v.r, last[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		v.err = fmt.Errorf("reading the blob: %w", err)
		return 0, v.err
	}
	v.h.Write(last[:n])
	if got := v.h.Digest(); n != 1 || got != v.want {
		if n == 2 {
			got.Size = -1 // longer; the exact size is unknown
		}
		v.err = &contentError{got, v.want}
		return 0, v.err
	}
	p[0] = last[0]
	v.n++
	v.err = io.EOF
	return 1, io.EOF
}

// GetActionResult reads {base}/ac/{hash}.
func (c *Cache) GetActionResult(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	key := "ac/" + action.Hash
	r, err := c.do(ctx, http.MethodGet, key, nil, 0)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if !ok(r.resp.StatusCode) {
		return nil, c.statusError(http.MethodGet, key, r.resp.StatusCode)
	}
	// The action result is small; read it under the stall timer as a
	// whole, as Get's reader does per read.
	r.stall.Arm()
	b, err := io.ReadAll(io.LimitReader(r.resp.Body, maxActionResult+1))
	r.stall.Disarm()
	if err != nil {
		return nil, c.transportError(ctx, r.ctx, http.MethodGet, key, err)
	}
	if len(b) > maxActionResult {
		return nil, fmt.Errorf("%s: GET %s: an action result larger than %d bytes", c.name, key, maxActionResult)
	}
	ar := &repb.ActionResult{}
	if err := proto.Unmarshal(b, ar); err != nil {
		return nil, fmt.Errorf("%s: GET %s: not an ActionResult: %v", c.name, key, err)
	}
	return ar, nil
}

// PutActionResult writes {base}/ac/{hash}.
func (c *Cache) PutActionResult(ctx context.Context, action cache.Digest, ar *repb.ActionResult) error {
	b, err := proto.Marshal(ar)
	if err != nil {
		return fmt.Errorf("%s: encoding the action result: %w", c.name, err)
	}
	return c.put(ctx, "ac/"+action.Hash, bytes.NewReader(b), int64(len(b)))
}

// Check sends one HEAD for the empty blob: any answer but a refusal
// (present or absent) shows that the server speaks and accepts the
// credential.
func (c *Cache) Check(ctx context.Context) (string, error) {
	key := "cas/" + cache.Empty.Hash
	r, err := c.do(ctx, http.MethodHead, key, nil, 0)
	if err != nil {
		return "", err
	}
	defer r.close()
	if code := r.resp.StatusCode; !ok(code) && code != http.StatusNotFound {
		return "", c.statusError(http.MethodHead, key, code)
	}
	return "HTTP cache", nil
}

// perBlob does the batch calls one blob at a time: the HTTP cache protocol has no batch call.
func (c *Cache) perBlob() remote.PerBlob {
	return remote.PerBlob{Limit: c.opts.MaxConnections, Contains: c.Contains, Get: c.Get, Put: c.Put}
}

// FindMissing checks each blob, at most the connection limit at once.
func (c *Cache) FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error) {
	return c.perBlob().FindMissing(ctx, ds)
}

// GetBatch reads each blob, at most the connection limit at once.
func (c *Cache) GetBatch(ctx context.Context, ds []cache.Digest) (map[cache.Digest][]byte, error) {
	return c.perBlob().GetBatch(ctx, ds)
}

// PutBatch stores each blob, at most the connection limit at once.
func (c *Cache) PutBatch(ctx context.Context, blobs map[cache.Digest][]byte) error {
	return c.perBlob().PutBatch(ctx, blobs)
}
