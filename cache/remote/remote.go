// Package remote defines what a remote cache tier offers (Remote), the
// options every protocol shares (Options: headers, TLS, timeout,
// connections) and the kinds of failure the tiered cache tells apart
// (ErrTransient, ErrDenied). One sub-package per protocol implements
// Remote: reapi (grpc://, grpcs://), httpcache (http://, https://),
// xrootd (root://), folder (file://).
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
)

// Remote is a cache that lives elsewhere: a server or a shared folder.
// Implementations are safe for concurrent use, bound their own
// concurrency by Options.MaxConnections, and never return a blob whose
// content does not match its digest (the tiered cache verifies again).
//
// Errors: a blob or action result that is absent is cache.ErrNotFound
// (possibly wrapped); a failure worth retrying wraps ErrTransient; a
// refused credential or permission wraps ErrDenied. Error messages name
// the remote by Name() and never contain a credential.
type Remote interface {
	cache.Cache
	// FindMissing returns those of ds that the remote lacks, in any order.
	// It costs one round trip per batch of many digests, never one per
	// digest, where the protocol allows.
	FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error)
	// GetBatch reads small blobs (each at most BatchLimit bytes) in as few
	// round trips as the protocol allows. Absent blobs are absent from the
	// map; it is not an error.
	GetBatch(ctx context.Context, ds []cache.Digest) (map[cache.Digest][]byte, error)
	// PutBatch stores small blobs (each at most BatchLimit bytes) in as
	// few round trips as the protocol allows.
	PutBatch(ctx context.Context, blobs map[cache.Digest][]byte) error
	// BatchLimit is the size up to which a blob goes through GetBatch and
	// PutBatch; larger blobs stream through Get and Put.
	BatchLimit() int64
	// Check contacts the remote once (capabilities, credentials) and says
	// what it found, e.g. "REAPI 2.0–2.1, zstd"; hepbuild info shows it.
	Check(ctx context.Context) (string, error)
	// Name is the remote's URL without credentials, for messages.
	Name() string
	// Close releases connections.
	Close() error
}

// Inliner is a Remote that can send the contents of small output files
// and the log with an action result (REAPI's inline_output_files): a
// restored action then costs one round trip.
type Inliner interface {
	GetActionResultInline(ctx context.Context, action cache.Digest, paths []string) (*repb.ActionResult, error)
}

// CompletenessChecker is a Remote that answers an action result only
// while every blob it references is stored, as REAPI asks of its servers
// (bazel-remote and Buildbarn check): a result it just returned needs no
// existence check of its blobs.
type CompletenessChecker interface {
	ChecksCompleteness() bool
}

// ErrTransient marks a failure that may pass: a server that is down,
// overloaded or slow. The tiered cache retries it with backoff.
var ErrTransient = errors.New("remote unavailable")

// ErrDenied marks a refused credential or a refused operation (a cache
// that refuses writes): retrying does not help.
var ErrDenied = errors.New("remote refused")

// ErrCorrupt marks a blob whose content did not match its digest: the
// remote holds a damaged or forged entry. It is a miss, never used.
var ErrCorrupt = errors.New("remote blob does not match its digest")

// Header is one header (HTTP) or metadata entry (gRPC) sent with every
// request, e.g. authorization: Bearer <token>. Its value is a credential:
// never printed, logged or hashed.
type Header struct {
	Name, Value string
}

// String hides the value.
func (h Header) String() string { return h.Name + "=<hidden>" }

// Options are what every protocol shares. The zero value is usable.
type Options struct {
	// Headers go with every request (HTTP headers, gRPC metadata).
	Headers []Header
	// TLS CA certificate file (PEM) that server certificates must chain
	// to; empty means the system's roots.
	CACert string
	// ClientCert and ClientKey (PEM files) authenticate hepbuild to the
	// server (mutual TLS); both or neither.
	ClientCert, ClientKey string
	// Timeout bounds each call, and each stretch without progress of a
	// streamed transfer; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxConnections bounds concurrent transfers; 0 means DefaultMaxConnections.
	MaxConnections int
	// ProxyFile is an X.509 proxy (from $X509_USER_PROXY): the client
	// certificate over TLS when ClientCert is not set, and what XRootD
	// authenticates with where it can.
	ProxyFile string
}

// Defaults of Options.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMaxConnections = 16
)

// WithDefaults fills unset fields.
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	return o
}

// TLSConfig builds the client TLS configuration from CACert, ClientCert
// and ClientKey.
func (o Options) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		b, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("reading the TLS CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("the TLS CA certificate %s holds no PEM certificate", o.CACert)
		}
		cfg.RootCAs = pool
	}
	if (o.ClientCert == "") != (o.ClientKey == "") {
		return nil, errors.New("a TLS client certificate needs its key, and a key its certificate")
	}
	certFile, keyFile := o.ClientCert, o.ClientKey
	if certFile == "" && o.ProxyFile != "" {
		// A grid proxy holds its certificate, its key and the chain in one
		// PEM file: it is the client certificate of WLCG storage and caches.
		certFile, keyFile = o.ProxyFile, o.ProxyFile
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			// The error may quote the key file's content: say which files only.
			if certFile == o.ProxyFile {
				return nil, fmt.Errorf("the X.509 proxy %s ($X509_USER_PROXY) does not hold a certificate and its key", o.ProxyFile)
			}
			return nil, fmt.Errorf("loading the TLS client certificate %s and key %s: not a matching PEM pair", certFile, keyFile)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Redact returns u without user information or query, the form in which a
// remote is named in messages.
func Redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	return c.String()
}

// RedactString is Redact for a URL as the user typed it, which may not
// parse or may lack its "//" (user:token@host:port parses as scheme
// "user" with the token in the opaque part). What cannot be told apart
// from user information is dropped: everything up to the last '@'.
func RedactString(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		return Redact(u)
	}
	s, _, _ := strings.Cut(raw, "?")
	s, _, _ = strings.Cut(s, "#")
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	if scheme == "" {
		return rest
	}
	return scheme + "://" + rest
}

// Scheme returns the scheme of a remote cache URL, lower case, or an error
// naming the schemes hepbuild knows.
func Scheme(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("remote cache %q is not a URL: give grpc://, grpcs://, http://, https://, root:// or file://", RedactString(raw))
	}
	s := strings.ToLower(u.Scheme)
	switch s {
	case "grpc", "grpcs", "http", "https", "root", "roots", "file":
		return s, nil
	}
	return "", fmt.Errorf("remote cache %s: unknown scheme %q: give grpc://, grpcs://, http://, https://, root:// or file://", RedactString(raw), u.Scheme)
}
