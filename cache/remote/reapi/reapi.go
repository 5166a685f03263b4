// Package reapi is the remote cache tier for servers that speak the Remote
// Execution API v2 cache services over gRPC (grpc://, grpcs://): the
// content-addressable storage, the action cache, ByteStream for large
// blobs and Capabilities to learn batch sizes and compressors. It is what
// lets hepbuild share results with bazel-remote, Buildbarn and any other
// REAPI cache. Its Conn (dialling, TLS, headers, error translation) is
// shared with the remote executor, which talks to the same kind of server.
package reapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
)

const (
	// maxMessageSize bounds what the client accepts and sends in one gRPC
	// message: batch responses may be as large as the server's batch
	// limit, well over gRPC's 4 MiB default.
	maxMessageSize = 64 << 20
	// defaultMaxBatch is used when the server announces no batch limit
	// (max_batch_total_size_bytes 0): gRPC's default message size.
	defaultMaxBatch = 4 << 20
	// batchOverhead is kept free in every batch for the message framing
	// and the instance name; blobOverhead per blob for its digest.
	batchOverhead = 16 << 10
	blobOverhead  = 128
)

// Cache is a REAPI cache server. It is safe for concurrent use: at most
// Options.MaxConnections calls (and open streams) run at once.
type Cache struct {
	*Conn
	sem chan struct{}

	cas  repb.ContentAddressableStorageClient
	ac   repb.ActionCacheClient
	caps repb.CapabilitiesClient
	bs   bytestream.ByteStreamClient

	// mu guards the capabilities learned by the first successful Check;
	// until then the defaults apply (no compression, 4 MiB batches).
	mu       sync.Mutex
	checked  bool
	lastTry  time.Time
	maxBatch int64
	zstd     bool

	corrupt atomic.Int64
}

// Open connects (lazily: the first call dials) to the server named by a
// grpc:// or grpcs:// URL, as Dial does, and returns its cache.
func Open(rawURL string, opts remote.Options) (*Cache, error) {
	conn, err := Dial(rawURL, opts, "remote cache")
	if err != nil {
		return nil, err
	}
	return NewCache(conn), nil
}

// NewCache returns the cache services of the server conn is connected to,
// for a client that uses other services on the same endpoint too (the
// remote executor uploads inputs to its own CAS). Closing the cache
// closes conn.
func NewCache(conn *Conn) *Cache {
	return &Cache{
		Conn:     conn,
		sem:      make(chan struct{}, conn.opts.MaxConnections),
		maxBatch: defaultMaxBatch,
		cas:      repb.NewContentAddressableStorageClient(conn.conn),
		ac:       repb.NewActionCacheClient(conn.conn),
		caps:     repb.NewCapabilitiesClient(conn.conn),
		bs:       bytestream.NewByteStreamClient(conn.conn),
	}
}

// Conn is a connection to a REAPI server, shared by the services a client
// uses on it. It is safe for concurrent use.
type Conn struct {
	role     string   // "remote cache", "remote executor": what the messages call the server
	name     string   // URL without credentials, for messages
	secrets  []string // header values and the URL's password, never shown
	instance string
	opts     remote.Options
	conn     *grpc.ClientConn
}

// Dial connects (lazily: the first call dials) to the server named by a
// grpc:// or grpcs:// URL. The URL's path, if any, is the REAPI instance
// name. grpcs:// uses TLS configured from opts. opts.Headers go as gRPC
// metadata with every call; user:password@ in the URL goes in the
// :authority, where bazel-remote looks for basic-auth credentials. role
// names the server in messages: "remote cache", "remote executor".
func Dial(rawURL string, opts remote.Options, role string) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's error quotes the URL, credentials and all.
		return nil, fmt.Errorf("a %s URL does not parse: give grpc://host:port or grpcs://host:port", role)
	}
	name := remote.Redact(u)
	var creds credentials.TransportCredentials
	switch strings.ToLower(u.Scheme) {
	case "grpc":
		creds = insecure.NewCredentials()
	case "grpcs":
		var cfg *tls.Config
		if cfg, err = opts.TLSConfig(); err != nil {
			return nil, fmt.Errorf("%s %s: %w", role, name, err)
		}
		// Name the server explicitly: the authority may carry user:password@.
		cfg.ServerName = u.Hostname()
		creds = credentials.NewTLS(cfg)
	default:
		return nil, fmt.Errorf("%s %s: not a grpc:// or grpcs:// URL", role, name)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("%s %s: the URL needs a host and a port", role, name)
	}
	opts = opts.WithDefaults()
	c := &Conn{
		role:     role,
		name:     name,
		instance: strings.Trim(u.Path, "/"),
		opts:     opts,
	}
	md := metadata.MD{}
	for _, h := range opts.Headers {
		md.Append(strings.ToLower(h.Name), h.Value)
	}
	withMD := func(ctx context.Context) context.Context {
		if len(md) == 0 {
			return ctx
		}
		// Copy: the outgoing metadata must not alias ours across calls.
		return metadata.NewOutgoingContext(ctx, metadata.Join(md, outgoing(ctx)))
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if u.User != nil {
		// bazel-remote (--htpasswd_file) reads basic-auth credentials
		// from the :authority pseudo-header, as Bazel sends them for
		// grpc://user:password@host:port.
		dialOpts = append(dialOpts, grpc.WithAuthority(u.User.String()+"@"+u.Host))
		if pw, ok := u.User.Password(); ok && pw != "" {
			c.secrets = append(c.secrets, pw)
		}
	}
	for _, h := range opts.Headers {
		c.secrets = append(c.secrets, h.Value)
	}
	c.conn, err = grpc.NewClient(u.Host, append(dialOpts,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(withMD(ctx), method, req, reply, cc, o...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(withMD(ctx), desc, cc, method, o...)
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", role, name, err)
	}
	return c, nil
}

// ClientConn is the connection, for services the server offers besides
// the cache (Execution, Operations). Calls on it carry Options.Headers.
func (c *Conn) ClientConn() grpc.ClientConnInterface { return c.conn }

// Instance is the REAPI instance name: the URL's path.
func (c *Conn) Instance() string { return c.instance }

// Options are the options the connection was dialled with, defaults filled.
func (c *Conn) Options() remote.Options { return c.opts }

// label names the server in messages: "remote cache grpc://host:port".
func (c *Conn) label() string { return c.role + " " + c.name }

func outgoing(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	return md
}

// Name is the URL without credentials.
func (c *Conn) Name() string { return c.name }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// CorruptBlobs counts the blobs the server returned whose content did not
// match their digest (each treated as absent): a non-zero count means a
// broken server or network, worth a warning.
func (c *Cache) CorruptBlobs() int64 { return c.corrupt.Load() }

// BatchLimit is the largest blob sent through the batch calls: what fits
// in one batch under the server's announced limit.
func (c *Cache) BatchLimit() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxBatch - batchOverhead - blobOverhead
}

func (c *Cache) batchMax() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxBatch - batchOverhead
}

// learn asks the server's capabilities before the first transfer, so that
// batches are sized by its limit and ByteStream compresses where it can.
// A failed attempt leaves the defaults (4 MiB batches, no compression) and
// is repeated at most once a minute: the transfer itself reports the error.
func (c *Cache) learn(ctx context.Context) {
	c.mu.Lock()
	due := !c.checked && time.Since(c.lastTry) > time.Minute
	if due {
		c.lastTry = time.Now()
	}
	c.mu.Unlock()
	if due {
		c.Check(ctx)
	}
}

func (c *Cache) useZstd() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.zstd
}

// acquire takes one of the MaxConnections slots.
func (c *Cache) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cache) release() { <-c.sem }

// unary runs one call under the connection bound and the per-call timeout.
func (c *Cache) unary(ctx context.Context, what string, call func(ctx context.Context) error) error {
	if err := c.acquire(ctx); err != nil {
		return c.errorf(ctx, what, err, false)
	}
	defer c.release()
	cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	return c.errorf(ctx, what, call(cctx), false)
}

// callError is an error from the server translated once: its message names
// the remote and the operation, and it wraps the kind (ErrTransient,
// ErrDenied, cache.ErrNotFound) and the gRPC status.
type callError struct {
	msg   string
	kinds []error
}

func (e *callError) Error() string   { return e.msg }
func (e *callError) Unwrap() []error { return e.kinds }

// Error translates err from a call made on ClientConn under ctx, once: its
// message names the server and what was being done (what), never holds a
// credential, and it wraps the kind of failure (remote.ErrTransient,
// remote.ErrDenied, cache.ErrNotFound) and the gRPC status.
func (c *Conn) Error(ctx context.Context, what string, err error) error {
	return c.errorf(ctx, what, err, false)
}

// errorf is Error; stalled says that a stream was aborted because the
// server sent nothing for Timeout.
func (c *Conn) errorf(ctx context.Context, what string, err error, stalled bool) error {
	if err == nil {
		return nil
	}
	var ce *callError
	if errors.As(err, &ce) {
		return err
	}
	if stalled {
		return &callError{fmt.Sprintf("%s: %s: no answer for %v", c.label(), what, c.opts.Timeout), []error{remote.ErrTransient, err}}
	}
	if ctx.Err() != nil {
		// The caller gave up: not the server's fault, not worth a retry.
		return fmt.Errorf("%s: %s: %w", c.label(), what, ctx.Err())
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return &callError{fmt.Sprintf("%s: %s: no answer within %v", c.label(), what, c.opts.Timeout), []error{remote.ErrTransient, err}}
		}
		return fmt.Errorf("%s: %s: %s", c.label(), what, c.hide(err.Error()))
	}
	msg := fmt.Sprintf("%s: %s: %s: %s", c.label(), what, codeName(st.Code()), c.hide(st.Message()))
	var kind error
	switch st.Code() {
	case codes.NotFound:
		kind = cache.ErrNotFound
	case codes.Unauthenticated, codes.PermissionDenied:
		kind = remote.ErrDenied
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		kind = remote.ErrTransient
	case codes.Internal:
		// gRPC reports a broken connection (RST_STREAM, GOAWAY) as
		// Internal; a server's own internal error is not worth a retry.
		m := strings.ToLower(st.Message())
		if strings.Contains(m, "connection") || strings.Contains(m, "transport") || strings.Contains(m, "stream terminated") || strings.Contains(m, "rst_stream") {
			kind = remote.ErrTransient
		}
	}
	kinds := []error{err}
	if kind != nil {
		kinds = append(kinds, kind)
	}
	return &callError{msg, kinds}
}

// hide removes credentials from a server's message: a server may quote
// the credential it refused.
func (c *Conn) hide(s string) string {
	for _, v := range c.secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "<hidden>")
		}
		// The token alone, without its scheme ("Bearer ", "Basic ").
		if _, tok, ok := strings.Cut(v, " "); ok && len(tok) >= 4 {
			s = strings.ReplaceAll(s, tok, "<hidden>")
		}
	}
	return s
}

func codeName(c codes.Code) string {
	// "Unauthenticated" reads better than "code = Unauthenticated".
	return strings.ToLower(c.String())
}

var _ remote.Remote = (*Cache)(nil)
