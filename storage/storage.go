// Package storage reads and writes files on grid storage by URL: XRootD
// (root://), WebDAV (davs://, https://, http://) and local folders
// (file://). It is what remote data (remote_files, remote_glob, hepbuild
// fetch, hepbuild export) is built on: a file on storage is identified by
// its URL, its size and the checksum the storage keeps, so deciding what
// changed costs a metadata query, never a download.
//
// One sub-package per protocol implements Client; Pool hands out one
// Client per server.
package storage

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/cache/remote"
)

// File is what storage says about one file or folder.
type File struct {
	// URL names the file, without credentials.
	URL  string
	Size int64
	// ModTime is the last modification, to the second; zero when the
	// storage does not say.
	ModTime time.Time
	Dir     bool
}

// Checksum is a checksum the storage keeps for a file, e.g. adler32.
type Checksum struct {
	// Algo is the algorithm's lower-case name: "adler32".
	Algo string
	// Value is lower-case hex, zero-padded (8 digits for adler32).
	Value string
}

// String is "algo:value", as the lock file records it.
func (c Checksum) String() string {
	if c.Algo == "" {
		return ""
	}
	return c.Algo + ":" + c.Value
}

// IsZero reports whether no checksum is known.
func (c Checksum) IsZero() bool { return c.Algo == "" }

// ParseChecksum parses "algo:value".
func ParseChecksum(s string) (Checksum, error) {
	algo, value, ok := strings.Cut(s, ":")
	if !ok || algo == "" || value == "" {
		return Checksum{}, fmt.Errorf("checksum %q is not algo:value", s)
	}
	c := Checksum{Algo: strings.ToLower(algo), Value: strings.ToLower(value)}
	if _, err := c.Hash(); err != nil {
		return Checksum{}, err
	}
	if len(c.Value) != 8 || strings.Trim(c.Value, "0123456789abcdef") != "" {
		return Checksum{}, fmt.Errorf("checksum %q: an adler32 is 8 hex digits", s)
	}
	return c, nil
}

// Hash returns a new hash computing the checksum's algorithm.
func (c Checksum) Hash() (hash.Hash, error) {
	switch c.Algo {
	case "adler32":
		return adler32.New(), nil
	}
	return nil, fmt.Errorf("checksum algorithm %q is not supported (hepbuild verifies adler32)", c.Algo)
}

// Adler32 returns the adler32 checksum of what h (from adler32.New) has seen.
func Adler32(h hash.Hash) Checksum {
	return Checksum{Algo: "adler32", Value: fmt.Sprintf("%08x", h.Sum(nil))}
}

// Errors a Client returns, possibly wrapped.
var (
	// ErrNotExist: no file at the URL.
	ErrNotExist = errors.New("no such file on storage")
	// ErrNoChecksum: the storage keeps no checksum of the kinds hepbuild
	// verifies (plain nginx WebDAV, for example).
	ErrNoChecksum = errors.New("the storage offers no checksum")
	// ErrChecksumMismatch: the bytes read do not match the checksum.
	ErrChecksumMismatch = errors.New("content does not match its checksum")
	// ErrUnavailable: the server is down, stalls or failed; retrying may help.
	ErrUnavailable = remote.ErrTransient
	// ErrDenied: a credential or permission was refused.
	ErrDenied = remote.ErrDenied
)

// Client speaks one protocol to one server (scheme, host and port).
// Implementations are safe for concurrent use, bound their own
// concurrency by Options.MaxConnections, bound every call by
// Options.Timeout (a stalled server is ErrUnavailable, never a hang), and
// never put a credential in an error message.
//
// Every url argument is a full URL on the Client's server.
type Client interface {
	// Stat returns one file's metadata: one round trip.
	Stat(ctx context.Context, url string) (File, error)
	// List returns the entries of a folder with their metadata (size,
	// modification time), in one round trip where the protocol allows
	// (XRootD dirlist with stat, WebDAV PROPFIND Depth 1). Entries' URLs
	// are full URLs; the folder itself is not among them.
	List(ctx context.Context, url string) ([]File, error)
	// Checksum returns the checksum the storage keeps for the file
	// (adler32), or an error wrapping ErrNoChecksum.
	Checksum(ctx context.Context, url string) (Checksum, error)
	// Open streams the file's content. The reader returns an error, not
	// io.EOF, when fewer or more bytes than the file's size arrive.
	Open(ctx context.Context, url string) (io.ReadCloser, error)
	// Put writes size bytes from r to url, creating the parent folders.
	// A failed Put never leaves a partial file under url where the
	// protocol allows (temporary name, then rename).
	Put(ctx context.Context, url string, r io.Reader, size int64) error
	// Name is the server's URL without credentials, for messages.
	Name() string
	Close() error
}

// Options are the credentials and limits every protocol shares: bearer
// token headers, TLS (CA, client certificate or X.509 proxy), timeout,
// connections.
type Options = remote.Options

// Opener makes a Client for the server of u.
type Opener func(u *url.URL, opts Options) (Client, error)

// Pool hands out one Client per server, made by the Opener registered for
// the URL's scheme. Safe for concurrent use.
type Pool struct {
	opts    Options
	openers map[string]Opener

	mu          sync.Mutex
	clients     map[string]Client
	credentials func(*Options) error // see WithCredentials; nil once applied
	credErr     error
}

// NewPool returns a pool with openers by scheme ("root", "davs", "https",
// "http", "file").
func NewPool(opts Options, openers map[string]Opener) *Pool {
	return &Pool{opts: opts, openers: openers, clients: map[string]Client{}}
}

// WithCredentials makes the pool add credentials to its options when it
// opens its first client, not before: finding a token or proxy (and
// failing to read one) is then the business of builds that use storage
// only. Call it before the pool is used.
func (p *Pool) WithCredentials(add func(*Options) error) *Pool {
	p.credentials = add
	return p
}

// Client returns the client for rawURL's server.
func (p *Pool) Client(rawURL string) (Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", Redact(rawURL))
	}
	scheme := strings.ToLower(u.Scheme)
	open, ok := p.openers[scheme]
	if !ok {
		return nil, fmt.Errorf("%s: scheme %q is not supported (root://, davs://, https://, http://, file://)", Redact(rawURL), u.Scheme)
	}
	key := scheme + "://" + u.Host
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c, nil
	}
	if p.credentials != nil {
		p.credErr = p.credentials(&p.opts)
		p.credentials = nil
	}
	if p.credErr != nil {
		return nil, p.credErr
	}
	c, err := open(u, p.opts)
	if err != nil {
		return nil, err
	}
	p.clients[key] = c
	return c, nil
}

// Close closes every client.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for k, c := range p.clients {
		errs = append(errs, c.Close())
		delete(p.clients, k)
	}
	return errors.Join(errs...)
}

// Redact returns rawURL without user information or query (which may
// hold a credential, e.g. a token in authz=...), for messages.
func Redact(rawURL string) string { return remote.RedactString(rawURL) }
