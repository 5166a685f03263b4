// Package xrootd reads and writes files on XRootD storage (root:// URLs:
// a plain XRootD export, EOS, dCache) for remote data.
//
// It speaks XRootD through go-hep's pure-Go client, by way of
// cache/remote/xrootd/xrdconn, which bounds every call by
// Options.Timeout and keeps go-hep from crashing the process when a
// connection ends or the server answers asynchronously (as it does for a
// checksum it has not stored yet). go-hep authenticates with the unix,
// krb5 and host protocols only: an X.509 proxy (GSI) or a bearer token
// (ztn; an "authorization: Bearer" header in Options.Headers) cannot be
// used over root://; such a token is ignored, never sent nor printed. A
// server that demands either refuses the login, and the error suggests
// its HTTPS interface (davs://), where the token or proxy works. go-hep
// has no TLS either, so roots:// is refused the same way.
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
	"time"

	"go-hep.org/x/hep/xrootd"
	"go-hep.org/x/hep/xrootd/xrdfs"
	"go-hep.org/x/hep/xrootd/xrdproto"
	"go-hep.org/x/hep/xrootd/xrdproto/query"

	"github.com/hepbuild/hepbuild/cache/remote/xrootd/xrdconn"
	"github.com/hepbuild/hepbuild/storage"
)

// chunk is the size of each read and write request, and readAhead how
// many reads one Open keeps in flight: on one TCP connection a single
// outstanding read leaves the link idle for a round trip per chunk, while
// several keep the server streaming (go-hep spreads them over up to eight
// data connections it binds to the session).
const (
	chunk     = 4 << 20
	readAhead = 6
)

// checksumsInFlight bounds the checksum queries one Client has in flight.
// XRootD computes a checksum it has not stored as a job: "xrootd.chksum
// max" of them (4 by default) at once, up to twice as many more waiting in
// its job table, for all its clients together (XrdXrootdJob). A query that
// finds the table full is answered kXR_wait, "retry in 30 s" (xrdconn asks
// again sooner, within the timeout); and a job that had to wait is, now
// and then, never run nor answered by XRootD 5.5 (measured: about one run
// in three of 3,000 unstored files at 8 in flight lost one answer, which
// then cost the whole timeout; at 4, none in 23 runs). So a client keeps no
// more in flight than the server computes at once: no faster with more, as
// the server computes 4 at a time, and checksums it has stored are answered
// at once anyway.
const checksumsInFlight = 4

// errUnsupported is kXR_Unsupported: a server without checksums.
const errUnsupported = 3013

// Client is one XRootD server. It is safe for concurrent use; at most
// Options.MaxConnections transfers (Open readers and Puts) run at once.
type Client struct {
	scheme, host, name string
	opts               storage.Options
	sem                chan struct{}
	sums               chan struct{} // checksum queries in flight (checksumsInFlight)
	conn               *xrdconn.Conn
}

// Open returns the client for u's server, root://[user@]host[:port]/
// (default port 1094). It does not connect: the first call does. Register
// it for "roots" too, so that such URLs get a clear error.
func Open(u *url.URL, opts storage.Options) (storage.Client, error) {
	return open(u, opts)
}

func open(u *url.URL, opts storage.Options) (*Client, error) {
	name := storage.Redact(u.String())
	switch strings.ToLower(u.Scheme) {
	case "root":
	case "roots":
		return nil, fmt.Errorf("%s: roots:// (XRootD over TLS) is not supported by hepbuild's XRootD client; use the same server's HTTPS interface, davs://%s/...", name, u.Hostname())
	default:
		return nil, fmt.Errorf("%s: scheme %q is not root://", name, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: no host", name)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "1094")
	}
	username := u.User.Username()
	if username == "" {
		if cur, err := user.Current(); err == nil {
			username = cur.Username
		} else {
			username = "hepbuild"
		}
	}
	opts = opts.WithDefaults()
	c := &Client{scheme: "root", host: u.Host, name: "root://" + u.Host, opts: opts,
		sem: make(chan struct{}, opts.MaxConnections), sums: make(chan struct{}, checksumsInFlight)}
	c.conn = xrdconn.New(xrdconn.Config{Addr: addr, User: username, NotFound: storage.ErrNotExist, Timeout: opts.Timeout})
	return c, nil
}

// Name is root://host[:port], without credentials.
func (c *Client) Name() string { return c.name }

// Close drops the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Answers counts the server's answers so far: one per round trip (for
// tests).
func (c *Client) Answers() int64 { return c.conn.Answers() }

// path returns the absolute path rawURL names on this server.
func (c *Client) path(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL", storage.Redact(rawURL))
	}
	if !strings.EqualFold(u.Scheme, c.scheme) || !strings.EqualFold(u.Host, c.host) {
		return "", fmt.Errorf("%s is not on %s", storage.Redact(rawURL), c.name)
	}
	p := path.Clean("/" + strings.TrimLeft(u.Path, "/"))
	if strings.ContainsRune(p, '?') {
		// The protocol reads "?" as the start of the request's opaque
		// data: the server would act on the name before it.
		return "", fmt.Errorf("%s: XRootD cannot name a file whose path holds '?' (it starts the request's opaque data); use the server's davs:// door", storage.Redact(rawURL))
	}
	return p, nil
}

// url names p on this server: root://host//abs/path.
func (c *Client) url(p string) string { return c.name + "/" + p }

func (c *Client) call(ctx context.Context, what string, op func(ctx context.Context, cl *xrootd.Client) error) error {
	return c.conn.Call(ctx, what, op)
}

func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) release() { <-c.sem }

func (c *Client) file(p string, st xrdfs.EntryStat) storage.File {
	f := storage.File{URL: c.url(p), Size: st.Size(), Dir: st.IsDir()}
	if st.Mtime > 0 {
		f.ModTime = time.Unix(st.Mtime, 0)
	}
	return f
}

// Stat is one kXR_stat.
func (c *Client) Stat(ctx context.Context, rawURL string) (storage.File, error) {
	p, err := c.path(rawURL)
	if err != nil {
		return storage.File{}, err
	}
	var st xrdfs.EntryStat
	err = c.call(ctx, "stat "+c.url(p), func(ctx context.Context, cl *xrootd.Client) error {
		var err error
		st, err = cl.FS().Stat(ctx, p)
		return err
	})
	if err != nil {
		return storage.File{}, err
	}
	return c.file(p, st), nil
}

// List is one kXR_dirlist asking for each entry's stat (kXR_dstat).
func (c *Client) List(ctx context.Context, rawURL string) ([]storage.File, error) {
	p, err := c.path(rawURL)
	if err != nil {
		return nil, err
	}
	var es []xrdfs.EntryStat
	err = c.call(ctx, "list "+c.url(p), func(ctx context.Context, cl *xrootd.Client) error {
		var err error
		es, err = cl.FS().Dirlist(ctx, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	files := make([]storage.File, 0, len(es))
	for _, e := range es {
		if e.EntryName == "" || e.EntryName == "." || e.EntryName == ".." {
			continue
		}
		if !e.HasStatInfo {
			return nil, fmt.Errorf("list %s: the server sent no stat information with the entries", c.url(p))
		}
		files = append(files, c.file(path.Join(p, e.EntryName), e))
	}
	return files, nil
}

// Checksum is one kXR_query of the file's checksum. The server answers
// "adler32 <hex>"; when it has not stored the checksum yet it computes it
// first and answers asynchronously, which xrdconn turns into an ordinary
// answer (within Options.Timeout). At most checksumsInFlight run at once;
// a server whose job table is full all the same (other clients) is asked
// again by xrdconn within the timeout.
func (c *Client) Checksum(ctx context.Context, rawURL string) (storage.Checksum, error) {
	p, err := c.path(rawURL)
	if err != nil {
		return storage.Checksum{}, err
	}
	select {
	case c.sums <- struct{}{}:
	case <-ctx.Done():
		return storage.Checksum{}, fmt.Errorf("checksum %s: %w", c.url(p), ctx.Err())
	}
	defer func() { <-c.sums }()
	what := "checksum " + c.url(p)
	var resp query.Response
	unsupported := ""
	err = c.call(ctx, what, func(ctx context.Context, cl *xrootd.Client) error {
		_, err := cl.Send(ctx, &resp, &query.Request{Query: query.Checksum, Args: []byte(p)})
		var se xrdproto.ServerError
		if errors.As(err, &se) && se.Code == errUnsupported {
			unsupported = se.Message
			return nil
		}
		return err
	})
	if err != nil {
		return storage.Checksum{}, err
	}
	if unsupported != "" {
		return storage.Checksum{}, fmt.Errorf("%s: %w (%s)", what, storage.ErrNoChecksum, unsupported)
	}
	return parseChecksum(what, resp.Data)
}

// parseChecksum reads the server's "algo hex" answer.
func parseChecksum(what string, data []byte) (storage.Checksum, error) {
	fields := strings.Fields(string(bytes.TrimRight(data, "\x00")))
	if len(fields) != 2 {
		return storage.Checksum{}, fmt.Errorf("%s: the server answered %q, not \"algorithm value\"", what, data)
	}
	algo, value := strings.ToLower(fields[0]), strings.ToLower(fields[1])
	if strings.Trim(value, "0123456789abcdef") != "" {
		return storage.Checksum{}, fmt.Errorf("%s: the server answered %q, not \"algorithm value\"", what, data)
	}
	if algo != "adler32" {
		return storage.Checksum{}, fmt.Errorf("%s: the server keeps %s checksums, hepbuild verifies adler32: %w", what, algo, storage.ErrNoChecksum)
	}
	if len(value) > 8 {
		return storage.Checksum{}, fmt.Errorf("%s: adler32 %q is longer than 8 digits", what, value)
	}
	return storage.Checksum{Algo: algo, Value: strings.Repeat("0", 8-len(value)) + value}, nil
}

// Open opens the file (kXR_open, which also returns its size) and streams
// it with up to readAhead reads of chunk bytes in flight, reassembled in
// order. Each read is bounded by Options.Timeout. The reader holds one of
// the client's transfer slots until closed.
func (c *Client) Open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	p, err := c.path(rawURL)
	if err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	u := c.url(p)
	var f xrdfs.File
	var on *xrootd.Client
	err = c.call(ctx, "open "+u, func(ctx context.Context, cl *xrootd.Client) error {
		var err error
		f, err = cl.FS().Open(ctx, p, 0, xrdfs.OpenOptionsOpenRead|xrdfs.OpenOptionsReturnStatus)
		on = cl
		return err
	})
	if err != nil {
		c.release()
		return nil, err
	}
	var size int64
	if info := f.Info(); info != nil && info.HasStatInfo {
		size = info.Size()
	} else {
		var st xrdfs.EntryStat
		err = c.conn.CallOn(ctx, "stat "+u, on, func(ctx context.Context, _ *xrootd.Client) error {
			var err error
			st, err = f.Stat(ctx)
			return err
		})
		if err != nil {
			c.closeFile(on, f, u)
			c.release()
			return nil, err
		}
		size = st.Size()
	}
	return &reader{c: c, ctx: ctx, cl: on, f: f, url: u, size: size}, nil
}

func (c *Client) closeFile(cl *xrootd.Client, f xrdfs.File, u string) error {
	// A fresh deadline: the caller's may have passed.
	return c.conn.CallOn(context.Background(), "close "+u, cl, func(ctx context.Context, _ *xrootd.Client) error {
		return f.Close(ctx)
	})
}

// reader streams a file with several reads in flight. Not safe for
// concurrent use (like any io.Reader).
type reader struct {
	c    *Client
	ctx  context.Context
	cl   *xrootd.Client // the connection f is open on
	f    xrdfs.File
	url  string
	size int64

	next    int64 // offset of the next read to send
	pending []*pendingRead
	free    [][]byte // buffers of consumed chunks, for reuse
	cur     []byte   // rest of the chunk being consumed
	curBuf  []byte   // cur's whole buffer
	done    int64    // bytes delivered
	err     error
	closed  bool
}

type pendingRead struct {
	off, want int64 // want: the bytes expected; one more is asked for at the end
	buf       []byte
	n         int
	err       error
	ready     chan struct{}
}

// send keeps readAhead reads in flight. The last read asks for one byte
// more than the size, so that a file that grew shows (a read starting at
// the end itself would stall go-hep on XRootD 5.5).
func (r *reader) send() {
	for len(r.pending) < readAhead && r.next < r.size {
		want := min(int64(chunk), r.size-r.next)
		ask := want
		if r.next+want == r.size {
			ask++
		}
		var buf []byte
		if n := len(r.free); n > 0 && int64(cap(r.free[n-1])) >= ask {
			buf, r.free = r.free[n-1][:ask], r.free[:n-1]
		} else {
			buf = make([]byte, ask, chunk+1)
		}
		pr := &pendingRead{off: r.next, want: want, buf: buf, ready: make(chan struct{})}
		r.pending = append(r.pending, pr)
		r.next += want
		go func() {
			defer close(pr.ready)
			pr.err = r.c.conn.CallOn(r.ctx, "read "+r.url, r.cl, func(ctx context.Context, _ *xrootd.Client) error {
				var err error
				pr.n, err = r.f.ReadAtContext(ctx, pr.buf, pr.off)
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			})
		}()
	}
}

// fill makes cur the next chunk, in order.
func (r *reader) fill() error {
	if r.curBuf != nil {
		r.free = append(r.free, r.curBuf)
		r.curBuf = nil
	}
	r.send()
	if len(r.pending) == 0 {
		return io.EOF
	}
	pr := r.pending[0]
	select {
	case <-pr.ready:
	case <-r.ctx.Done():
		return fmt.Errorf("read %s: %w", r.url, r.ctx.Err())
	}
	r.pending = r.pending[1:]
	if pr.err != nil {
		return pr.err
	}
	switch {
	case int64(pr.n) < pr.want:
		return fmt.Errorf("read %s: the file ended after %d bytes, but has %d", r.url, pr.off+int64(pr.n), r.size)
	case int64(pr.n) > pr.want:
		return fmt.Errorf("read %s: the file is longer than its %d bytes (it changed while being read)", r.url, r.size)
	}
	r.cur, r.curBuf = pr.buf[:pr.n], pr.buf
	r.done += int64(pr.n)
	r.send()
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.err = r.fill(); r.err != nil {
			return 0, r.err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo hands whole chunks to w, so that io.Copy does not copy them
// through a small buffer.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.cur) > 0 {
			n, err := w.Write(r.cur)
			total += int64(n)
			r.cur = r.cur[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		r.err = r.fill()
	}
}

// Close closes the file once the reads in flight have ended, in the
// background: each is bounded by Timeout, and Close does not wait.
func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.err == nil {
		r.err = fmt.Errorf("read %s: reader closed", r.url)
	}
	pending := r.pending
	r.pending = nil
	go func() {
		for _, pr := range pending {
			<-pr.ready
		}
		r.c.closeFile(r.cl, r.f, r.url)
		r.c.release()
	}()
	return nil
}

// Put writes into a temporary file beside the target
// (.name.hepbuild-tmp-<random>), created with its parent folders, and
// renames it over the target (kXR_mv) once all size bytes are written: a
// failed Put leaves no partial file under url, and removes the temporary
// one where the server still answers.
func (c *Client) Put(ctx context.Context, rawURL string, r io.Reader, size int64) error {
	p, err := c.path(rawURL)
	if err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("put %s: not a file name", c.url(p))
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	u := c.url(p)
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(p), "."+path.Base(p)+".hepbuild-tmp-"+hex.EncodeToString(rnd[:]))
	var f xrdfs.File
	var on *xrootd.Client
	err = c.call(ctx, "put "+u, func(ctx context.Context, cl *xrootd.Client) error {
		var err error
		on = cl
		f, err = cl.FS().Open(ctx, tmp, xrdfs.OpenModeOwnerRead|xrdfs.OpenModeOwnerWrite|xrdfs.OpenModeGroupRead|xrdfs.OpenModeOtherRead,
			xrdfs.OpenOptionsNew|xrdfs.OpenOptionsMkPath)
		return err
	})
	if err != nil {
		return err
	}
	ok, open := false, true
	defer func() {
		if ok {
			return
		}
		// Best effort, with a fresh deadline: the caller's may have passed.
		cctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		defer cancel()
		if open {
			c.conn.CallOn(cctx, "close "+u, on, func(ctx context.Context, _ *xrootd.Client) error { return f.Close(ctx) })
		}
		c.call(cctx, "remove "+c.url(tmp), func(ctx context.Context, cl *xrootd.Client) error { return cl.FS().RemoveFile(ctx, tmp) })
	}()
	buf := make([]byte, chunk)
	var off int64
	for off < size {
		n, rerr := io.ReadFull(r, buf[:min(int64(chunk), size-off)])
		if n > 0 {
			b, o := buf[:n], off
			if err := c.conn.CallOn(ctx, "write "+u, on, func(ctx context.Context, _ *xrootd.Client) error {
				return f.WriteAtContext(ctx, b, o)
			}); err != nil {
				return err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return fmt.Errorf("put %s: the content ended after %d of %d bytes", u, off, size)
		}
		if rerr != nil {
			return fmt.Errorf("put %s: reading: %w", u, rerr)
		}
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return fmt.Errorf("put %s: the content is longer than %d bytes", u, size)
	}
	open = false
	if err := c.conn.CallOn(ctx, "close "+u, on, func(ctx context.Context, _ *xrootd.Client) error { return f.Close(ctx) }); err != nil {
		return err
	}
	if err := c.call(ctx, "rename "+u, func(ctx context.Context, cl *xrootd.Client) error {
		return cl.FS().Rename(ctx, tmp, p)
	}); err != nil {
		return err
	}
	ok = true
	return nil
}

var _ storage.Client = (*Client)(nil)
