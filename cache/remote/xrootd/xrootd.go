// Package xrootd is a remote cache tier on an XRootD server (root://):
// a plain XRootD export, EOS or dCache. Blobs and action results live in
// the disk cache's own layout below a base folder, cas/<hash[:2]>/<hash>
// and ac/<hash[:2]>/<hash>, so a site can also fill or inspect the cache
// with xrdcp and xrdfs.
//
// It speaks XRootD through go-hep's pure-Go client, so hepbuild needs no
// C++ XRootD libraries. That client authenticates with the unix, krb5 and
// host protocols only: not with GSI (X.509 proxies) and not with tokens
// (ztn). A server that demands either refuses the login, and the error says
// so. The cache hashes every blob itself, while writing and while
// reading, and never asks the server for checksums. It connects through
// xrdconn, which keeps go-hep from crashing the process when a connection
// ends or a server answers asynchronously, and bounds every call.
package xrootd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/user"
	"path"
	"strings"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"go-hep.org/x/hep/xrootd"
	"go-hep.org/x/hep/xrootd/xrdfs"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/xrootd/xrdconn"
)

// chunk is the size of each read and write request: large enough that a
// blob costs few round trips, small enough that one request finishes well
// within a timeout on a slow link.
const chunk = 1 << 20

// maxActionResult bounds what GetActionResult reads: an action result is a
// small message, and a huge file under ac/ is not one.
const maxActionResult = 64 << 20

// Cache is a remote cache on an XRootD server. It is safe for concurrent
// use: one client (one TCP connection, on which XRootD multiplexes
// requests) serves every call, and at most Options.MaxConnections
// transfers run at once.
type Cache struct {
	addr, user, base, name string
	opts                   remote.Options
	sem                    chan struct{}
	conn                   *xrdconn.Conn
}

// Open returns the cache at rawURL, root://[user@]host:port//base/folder
// (the single-slash form root://host:port/base/folder names the same
// folder). It does not connect: the first call does, so a server that is
// down is a miss, not a failure to start.
func Open(rawURL string, opts remote.Options) (*Cache, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("remote cache %q is not a URL", rawURL)
	}
	name := remote.Redact(u)
	if s := strings.ToLower(u.Scheme); s != "root" {
		return nil, fmt.Errorf("remote cache %s: scheme %q is not root:// (roots:// is not supported by hepbuild's XRootD client)", name, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("remote cache %s: no host", name)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "1094")
	}
	base := path.Clean("/" + strings.TrimLeft(u.Path, "/"))
	username := u.User.Username()
	if username == "" {
		if cur, err := user.Current(); err == nil {
			username = cur.Username
		} else {
			username = "hepbuild"
		}
	}
	opts = opts.WithDefaults()
	return &Cache{addr: addr, user: username, base: base, name: name, opts: opts,
		sem: make(chan struct{}, opts.MaxConnections),
		conn: xrdconn.New(xrdconn.Config{Addr: addr, User: username, Prefix: "remote cache " + name,
			NotFound: cache.ErrNotFound, Timeout: opts.Timeout})}, nil
}

// Name is the URL without credentials.
func (c *Cache) Name() string { return c.name }

// BatchLimit is the size up to which blobs go through GetBatch and
// PutBatch. XRootD has no batch calls, so this only decides which blobs
// are read whole into memory.
func (c *Cache) BatchLimit() int64 { return chunk }

// Close drops the connection, in the background.
func (c *Cache) Close() error { return c.conn.Close() }

// call runs op on the connection's file system: see xrdconn.Conn.Call.
func (c *Cache) call(ctx context.Context, what string, op func(ctx context.Context, fs xrdfs.FileSystem) error) error {
	return c.conn.Call(ctx, what, func(ctx context.Context, cl *xrootd.Client) error { return op(ctx, cl.FS()) })
}

// file is a file open on one connection (client) of the cache.
type file struct {
	f  xrdfs.File
	cl *xrootd.Client
}

// callOn runs op on the connection f is open on: see xrdconn.Conn.CallOn.
func (c *Cache) callOn(ctx context.Context, what string, f file, op func(ctx context.Context, f xrdfs.File) error) error {
	return c.conn.CallOn(ctx, what, f.cl, func(ctx context.Context, _ *xrootd.Client) error { return op(ctx, f.f) })
}

func (c *Cache) path(kind string, d cache.Digest) string {
	return path.Join(c.base, kind, d.Hash[:2], d.Hash)
}

func validDigest(d cache.Digest) error {
	if len(d.Hash) != 64 || d.Size < 0 {
		return fmt.Errorf("invalid digest %v", d)
	}
	if _, err := hex.DecodeString(d.Hash); err != nil {
		return fmt.Errorf("invalid digest %v", d)
	}
	return nil
}

func (c *Cache) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cache) release() { <-c.sem }

// Contains stats the blob.
func (c *Cache) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	if err := validDigest(d); err != nil {
		return false, err
	}
	if err := c.acquire(ctx); err != nil {
		return false, err
	}
	defer c.release()
	return c.contains(ctx, d)
}

func (c *Cache) contains(ctx context.Context, d cache.Digest) (bool, error) {
	var st xrdfs.EntryStat
	err := c.call(ctx, "stat "+d.String(), func(ctx context.Context, fs xrdfs.FileSystem) error {
		var err error
		st, err = fs.Stat(ctx, c.path("cas", d))
		return err
	})
	if errors.Is(err, cache.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A file of the wrong size is not the blob; Get would refuse it.
	return !st.IsDir() && st.Size() == d.Size, nil
}

// Get opens the blob for streaming. The reader hashes what it reads and
// returns an error, not io.EOF, when the content does not match d.
func (c *Cache) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	if err := validDigest(d); err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	var st xrdfs.EntryStat
	err := c.call(ctx, "stat "+d.String(), func(ctx context.Context, fs xrdfs.FileSystem) error {
		var err error
		st, err = fs.Stat(ctx, c.path("cas", d))
		return err
	})
	if err == nil && st.Size() != d.Size {
		err = fmt.Errorf("remote cache %s: blob %v: the file on the server has %d bytes", c.name, d, st.Size())
	}
	if err != nil {
		c.release()
		return nil, err
	}
	f, err := c.open(ctx, "cas", d)
	if err != nil {
		c.release()
		return nil, err
	}
	return &reader{c: c, ctx: ctx, f: f, d: d, h: cache.NewHasher()}, nil
}

func (c *Cache) open(ctx context.Context, kind string, d cache.Digest) (file, error) {
	var f file
	err := c.conn.Call(ctx, "open "+kind+" "+d.String(), func(ctx context.Context, cl *xrootd.Client) error {
		var err error
		f.cl = cl
		f.f, err = cl.FS().Open(ctx, c.path(kind, d), 0, xrdfs.OpenOptionsOpenRead)
		return err
	})
	return f, err
}

// reader streams a blob, chunk by chunk, each read bounded by Timeout. It
// holds one of the cache's transfer slots until closed.
type reader struct {
	c    *Cache
	ctx  context.Context
	f    file
	d    cache.Digest
	h    *cache.Hasher
	off  int64
	buf  []byte
	err  error
	once sync.Once
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.buf) == 0 {
		if err := r.fill(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// fill reads the next chunk; at the blob's end it verifies the digest and
// that the file holds nothing more.
func (r *reader) fill() error {
	want := r.d.Size - r.off
	if want <= 0 {
		// Get checked the file's size; no read past the end, which
		// stalls go-hep's client on an XRootD 5.5 server.
		if r.h.Digest() != r.d {
			return fmt.Errorf("remote cache %s: blob %v: the content on the server does not match its digest", r.c.name, r.d)
		}
		return io.EOF
	}
	if want > chunk {
		want = chunk
	}
	b := make([]byte, want)
	n, err := r.readAt(b, r.off)
	if n == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return fmt.Errorf("remote cache %s: blob %v: the file on the server is shorter than the blob (%d bytes)", r.c.name, r.d, r.off)
		}
		return err
	}
	r.h.Write(b[:n])
	r.off += int64(n)
	r.buf = b[:n]
	return nil
}

func (r *reader) readAt(b []byte, off int64) (int, error) {
	var n int
	err := r.c.callOn(r.ctx, "read "+r.d.String(), r.f, func(ctx context.Context, f xrdfs.File) error {
		var err error
		n, err = f.ReadAtContext(ctx, b, off)
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	})
	return n, err
}

func (r *reader) Close() error {
	r.once.Do(func() {
		// A fresh deadline: the caller's may have passed.
		r.c.callOn(context.Background(), "close "+r.d.String(), r.f, func(ctx context.Context, f xrdfs.File) error {
			return f.Close(ctx)
		})
		r.c.release()
	})
	return nil
}

// Put stores the blob: into a temporary file next to its final name,
// hashing while writing, then renamed into place only if it matches d. A
// write cut short leaves only a temporary file, which no read looks at.
func (c *Cache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	if err := validDigest(d); err != nil {
		return err
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	return c.write(ctx, "cas", d, r, true)
}

func (c *Cache) write(ctx context.Context, kind string, d cache.Digest, r io.Reader, verify bool) error {
	final := c.path(kind, d)
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := final + ".tmp-" + hex.EncodeToString(rnd[:])
	var f file
	err := c.conn.Call(ctx, "create "+kind+" "+d.String(), func(ctx context.Context, cl *xrootd.Client) error {
		var err error
		f.cl = cl
		// MkPath creates the shard folder with its parents; one that exists is fine.
		f.f, err = cl.FS().Open(ctx, tmp, xrdfs.OpenModeOwnerRead|xrdfs.OpenModeOwnerWrite|xrdfs.OpenModeGroupRead|xrdfs.OpenModeOtherRead,
			xrdfs.OpenOptionsNew|xrdfs.OpenOptionsMkPath)
		return err
	})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			// Best effort, with a fresh deadline: the caller's may have passed.
			cctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
			defer cancel()
			c.callOn(cctx, "close", f, func(ctx context.Context, f xrdfs.File) error { return f.Close(ctx) })
			c.call(cctx, "remove "+tmp, func(ctx context.Context, fs xrdfs.FileSystem) error { return fs.RemoveFile(ctx, tmp) })
		}
	}()
	h := cache.NewHasher()
	buf := make([]byte, chunk)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			if verify && h.Digest().Size > d.Size {
				return fmt.Errorf("remote cache %s: put %v: content is longer than its digest says", c.name, d)
			}
			p, o := buf[:n], off
			if err := c.callOn(ctx, "write "+d.String(), f, func(ctx context.Context, f xrdfs.File) error {
				return f.WriteAtContext(ctx, p, o)
			}); err != nil {
				return err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("remote cache %s: put %v: reading: %w", c.name, d, rerr)
		}
	}
	if verify {
		if got := h.Digest(); got != d {
			return fmt.Errorf("remote cache %s: put %v: content has digest %v", c.name, d, got)
		}
	}
	if err := c.callOn(ctx, "close "+d.String(), f, func(ctx context.Context, f xrdfs.File) error {
		return f.Close(ctx)
	}); err != nil {
		return err
	}
	err = c.call(ctx, "rename "+d.String(), func(ctx context.Context, fs xrdfs.FileSystem) error {
		return fs.Rename(ctx, tmp, final)
	})
	if err != nil {
		return err
	}
	ok = true
	return nil
}

// GetActionResult reads the serialized ActionResult under ac/.
func (c *Cache) GetActionResult(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	if err := validDigest(action); err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	f, err := c.open(ctx, "ac", action)
	if err != nil {
		return nil, err
	}
	defer c.callOn(context.Background(), "close ac "+action.String(), f, func(ctx context.Context, f xrdfs.File) error {
		return f.Close(ctx)
	})
	var data []byte
	buf := make([]byte, chunk)
	for {
		var n int
		off := int64(len(data))
		err := c.callOn(ctx, "read ac "+action.String(), f, func(ctx context.Context, f xrdfs.File) error {
			var err error
			n, err = f.ReadAtContext(ctx, buf, off)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		data = append(data, buf[:n]...)
		if n == 0 {
			break
		}
		if len(data) > maxActionResult {
			return nil, fmt.Errorf("remote cache %s: action result %v is larger than %d bytes", c.name, action, maxActionResult)
		}
	}
	ar := &repb.ActionResult{}
	if err := proto.Unmarshal(data, ar); err != nil {
		return nil, fmt.Errorf("remote cache %s: action result %v: %v", c.name, action, err)
	}
	return ar, nil
}

// PutActionResult stores the serialized ActionResult under ac/, through
// a temporary file and a rename like blobs.
func (c *Cache) PutActionResult(ctx context.Context, action cache.Digest, ar *repb.ActionResult) error {
	if err := validDigest(action); err != nil {
		return err
	}
	data, err := proto.Marshal(ar)
	if err != nil {
		return err
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	return c.write(ctx, "ac", action, bytes.NewReader(data), false)
}

// Check connects, logs in and stats the base folder, creating it when it
// is missing (and the server lets us).
func (c *Cache) Check(ctx context.Context) (string, error) {
	var st xrdfs.EntryStat
	err := c.call(ctx, "stat "+c.base, func(ctx context.Context, fs xrdfs.FileSystem) error {
		var err error
		st, err = fs.Stat(ctx, c.base)
		return err
	})
	if errors.Is(err, cache.ErrNotFound) {
		err = c.call(ctx, "mkdir "+c.base, func(ctx context.Context, fs xrdfs.FileSystem) error {
			return fs.MkdirAll(ctx, c.base, xrdfs.OpenModeOwnerRead|xrdfs.OpenModeOwnerWrite|xrdfs.OpenModeOwnerExecute|
				xrdfs.OpenModeGroupRead|xrdfs.OpenModeGroupExecute|xrdfs.OpenModeOtherRead|xrdfs.OpenModeOtherExecute)
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("XRootD, base %s (created)%s", c.base, c.proxyNote()), nil
	}
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("remote cache %s: %s is not a folder", c.name, c.base)
	}
	return fmt.Sprintf("XRootD, base %s%s", c.base, c.proxyNote()), nil
}

// proxyNote says that an X.509 proxy or a token is not used: the login
// succeeded without them, so the server did not need them.
func (c *Cache) proxyNote() string {
	var n []string
	if c.opts.ProxyFile != "" {
		n = append(n, "X.509 proxy not used (GSI is not supported by hepbuild's XRootD client)")
	}
	for _, h := range c.opts.Headers {
		if strings.EqualFold(h.Name, "authorization") {
			n = append(n, "token not used (ztn is not supported by hepbuild's XRootD client)")
			break
		}
	}
	if len(n) == 0 {
		return ""
	}
	return "; " + strings.Join(n, "; ")
}

var _ remote.Remote = (*Cache)(nil)

// perBlob does the batch calls one blob at a time: go-hep offers no batch existence call (kXR_statx answers
// flags only, not whether each path exists) nor a batch read.
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
