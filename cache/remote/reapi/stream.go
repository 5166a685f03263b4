package reapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/genproto/googleapis/bytestream"

	"github.com/hepbuild/hepbuild/cache"
)

// chunkSize is the payload of one ByteStream message: large enough that
// per-message cost vanishes, small enough to stay far below message limits.
const chunkSize = 1 << 20

// watchdog cancels a stream that makes no progress for a timeout: a
// per-call deadline would cut off large transfers that are merely long.
type watchdog struct {
	timer   *time.Timer
	timeout time.Duration
	fired   atomic.Bool
}

func newWatchdog(timeout time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{timeout: timeout}
	w.timer = time.AfterFunc(timeout, func() { w.fired.Store(true); cancel() })
	return w
}

// progress restarts the countdown.
func (w *watchdog) progress() { w.timer.Reset(w.timeout) }

// pause stops the countdown while the client, not the server, is busy.
func (w *watchdog) pause() { w.timer.Stop() }

func (w *watchdog) stop() { w.timer.Stop() }

func (c *Cache) resource(d cache.Digest, compressed bool) string {
	kind := "blobs/"
	if compressed {
		kind = "compressed-blobs/zstd/"
	}
	if c.instance == "" {
		return kind + d.String()
	}
	return c.instance + "/" + kind + d.String()
}

// Get opens a blob. Blobs up to BatchLimit come whole through
// BatchReadBlobs; larger ones stream through ByteStream Read (zstd-compressed
// when the server supports it), never held whole in memory. The reader
// verifies the digest at the end: a mismatch or a short blob is an error
// from Read, never io.EOF.
func (c *Cache) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	if d.Size == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	c.learn(ctx)
	if d.Size <= c.BatchLimit() {
		b, err := c.getSmall(ctx, d)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	zstdOK := c.useZstd()
	what := "reading blob " + d.String()
	if err := c.acquire(ctx); err != nil {
		return nil, c.errorf(ctx, what, err, false)
	}
	sctx, cancel := context.WithCancel(ctx)
	wd := newWatchdog(c.opts.Timeout, cancel)
	br := &blobReader{c: c, ctx: ctx, what: what, want: d, wd: wd, hash: cache.NewHasher()}
	br.done = func() { wd.stop(); cancel(); c.release() }
	stream, err := c.bs.Read(sctx, &bytestream.ReadRequest{ResourceName: c.resource(d, zstdOK)})
	if err != nil {
		err = c.errorf(ctx, what, err, wd.fired.Load())
		br.finish()
		return nil, err
	}
	cr := &chunkReader{stream: stream, wd: wd}
	// The first message tells absence (NOT_FOUND) from presence: Get
	// must report absence itself, not from the first Read.
	if err := cr.fill(); err != nil && err != io.EOF {
		err = c.errorf(ctx, what, err, wd.fired.Load())
		br.finish()
		return nil, err
	}
	br.src = cr
	if zstdOK {
		dec, err := zstd.NewReader(cr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			br.finish()
			return nil, fmt.Errorf("%s: %s: %v", c.label(), what, err)
		}
		br.src = dec
		br.dec = dec
	}
	return br, nil
}

// chunkReader reads the data of a ByteStream Read stream.
type chunkReader struct {
	stream bytestream.ByteStream_ReadClient
	wd     *watchdog
	buf    []byte
	err    error
}

func (r *chunkReader) fill() error {
	for len(r.buf) == 0 && r.err == nil {
		r.wd.progress()
		msg, err := r.stream.Recv()
		r.wd.pause()
		if err != nil {
			r.err = err
			break
		}
		r.buf = msg.GetData()
	}
	if len(r.buf) > 0 {
		return nil
	}
	return r.err
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// blobReader hashes what it yields and turns io.EOF into an error unless
// the blob matched its digest. It holds a connection slot until the end
// or Close. It is not safe for concurrent use.
type blobReader struct {
	c    *Cache
	ctx  context.Context
	what string
	want cache.Digest
	wd   *watchdog
	src  io.Reader
	dec  *zstd.Decoder
	hash *cache.Hasher
	n    int64
	err  error
	once sync.Once
	done func()
}

func (r *blobReader) finish() {
	r.once.Do(func() {
		if r.dec != nil {
			r.dec.Close()
		}
		r.done()
	})
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if rest := r.want.Size - r.n + 1; int64(len(p)) > rest {
		p = p[:rest] // one byte more than expected is enough to tell a long blob
	}
	n, err := r.src.Read(p)
	r.hash.Write(p[:n])
	r.n += int64(n)
	switch {
	case r.n > r.want.Size:
		r.c.corrupt.Add(1)
		r.err = fmt.Errorf("%s: %s: the server sent more than %d bytes", r.c.label(), r.what, r.want.Size)
		n = 0
	case err == io.EOF:
		if got := r.hash.Digest(); got != r.want {
			r.c.corrupt.Add(1)
			r.err = fmt.Errorf("%s: %s: the server sent content of digest %v", r.c.label(), r.what, got)
		} else {
			r.err = io.EOF
		}
	case err != nil:
		if errors.Is(err, zstd.ErrMagicMismatch) || errors.Is(err, zstd.ErrReservedBlockType) {
			r.c.corrupt.Add(1)
		}
		r.err = r.c.errorf(r.ctx, r.what, err, r.wd.fired.Load())
	}
	if r.err != nil {
		r.finish()
		if r.err != io.EOF {
			// Nothing of a blob that failed its check may be used.
			return 0, r.err
		}
	}
	return n, r.err
}

// Close ends the stream and frees the connection slot.
func (r *blobReader) Close() error {
	r.finish()
	return nil
}

// Put stores a blob, checking it against d on the way. Blobs up to
// BatchLimit are read whole, checked, and sent with BatchUpdateBlobs;
// larger ones stream through ByteStream Write (zstd-compressed when the
// server supports it), hashed while sent. The final message, the one that
// lets the server commit, goes only once the content matched d, so a
// server never stores a wrong blob under d.
func (c *Cache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	what := "storing blob " + d.String()
	c.learn(ctx)
	if d.Size <= c.BatchLimit() {
		b, err := io.ReadAll(io.LimitReader(r, d.Size+1))
		if err != nil {
			return fmt.Errorf("%s: %s: %w", c.label(), what, err)
		}
		if cache.FromBytes(b) != d {
			return fmt.Errorf("%s: %s: the content does not match the digest", c.label(), what)
		}
		if d.Size == 0 {
			return nil
		}
		return c.PutBatch(ctx, map[cache.Digest][]byte{d: b})
	}
	zstdOK := c.useZstd()
	if err := c.acquire(ctx); err != nil {
		return c.errorf(ctx, what, err, false)
	}
	defer c.release()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wd := newWatchdog(c.opts.Timeout, cancel)
	defer wd.stop()
	stream, err := c.bs.Write(sctx)
	if err != nil {
		return c.errorf(ctx, what, err, wd.fired.Load())
	}
	wd.pause() // reading the content is not the server's delay; send restarts it
	w := &chunkWriter{stream: stream, wd: wd, resource: c.uploadResource(d, zstdOK)}
	var sink io.Writer = w
	var enc *zstd.Encoder
	if zstdOK {
		enc, _ = zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
		sink = enc
	}
	h := cache.NewHasher()
	n, err := cache.Copy(io.MultiWriter(h, sink), io.LimitReader(r, d.Size+1))
	if w.alreadyPresent {
		return c.finishEarly(ctx, what, stream, wd, d)
	}
	if err != nil {
		if w.err != nil {
			return c.errorf(ctx, what, w.err, wd.fired.Load())
		}
		return fmt.Errorf("%s: %s: reading the content: %w", c.label(), what, err)
	}
	if got := h.Digest(); got != d {
		// Cancel without the final message: the server discards the upload.
		return fmt.Errorf("%s: %s: the content does not match the digest (%d bytes read)", c.label(), what, n)
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			if w.alreadyPresent {
				return c.finishEarly(ctx, what, stream, wd, d)
			}
			return c.errorf(ctx, what, err, wd.fired.Load())
		}
	}
	if err := w.finish(); err != nil {
		if w.alreadyPresent {
			return c.finishEarly(ctx, what, stream, wd, d)
		}
		return c.errorf(ctx, what, err, wd.fired.Load())
	}
	wd.progress()
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return c.errorf(ctx, what, err, wd.fired.Load())
	}
	if cs := resp.GetCommittedSize(); cs != d.Size && cs != w.offset && cs != -1 {
		return fmt.Errorf("%s: %s: the server committed %d bytes of %d", c.label(), what, cs, d.Size)
	}
	return nil
}

// finishEarly handles a server that ended the upload before the last
// message: it already has the blob (committed_size is its size, or -1 for
// a compressed upload), or it failed.
func (c *Cache) finishEarly(ctx context.Context, what string, stream bytestream.ByteStream_WriteClient, wd *watchdog, d cache.Digest) error {
	wd.progress()
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return c.errorf(ctx, what, err, wd.fired.Load())
	}
	if cs := resp.GetCommittedSize(); cs != d.Size && cs != -1 {
		return fmt.Errorf("%s: %s: the server ended the upload at %d bytes of %d", c.label(), what, cs, d.Size)
	}
	return nil
}

func (c *Cache) uploadResource(d cache.Digest, compressed bool) string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	kind := "blobs/"
	if compressed {
		kind = "compressed-blobs/zstd/"
	}
	name := "uploads/" + id + "/" + kind + d.String()
	if c.instance != "" {
		name = c.instance + "/" + name
	}
	return name
}

// chunkWriter sends what is written to it as ByteStream Write messages,
// always holding back the last bytes: only finish sends them, with
// finish_write, so a cancelled upload never completes.
type chunkWriter struct {
	stream         bytestream.ByteStream_WriteClient
	wd             *watchdog
	resource       string
	buf            []byte
	offset         int64
	err            error
	alreadyPresent bool
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	for len(w.buf) > chunkSize {
		if err := w.send(w.buf[:chunkSize], false); err != nil {
			return 0, err
		}
		w.buf = w.buf[chunkSize:]
	}
	// Keep the buffer from growing: move the held-back tail to the front.
	if cap(w.buf) > 4*chunkSize {
		w.buf = append([]byte(nil), w.buf...)
	}
	return len(p), nil
}

func (w *chunkWriter) send(data []byte, last bool) error {
	req := &bytestream.WriteRequest{WriteOffset: w.offset, Data: data, FinishWrite: last}
	if w.offset == 0 {
		req.ResourceName = w.resource
	}
	w.wd.progress()
	err := w.stream.Send(req)
	w.wd.pause()
	if err == io.EOF {
		// The server closed the stream: it already has the blob, or
		// failed; CloseAndRecv tells which.
		w.alreadyPresent = true
	}
	if err != nil {
		w.err = err
		return err
	}
	w.offset += int64(len(data))
	return nil
}

func (w *chunkWriter) finish() error {
	if w.err != nil {
		return w.err
	}
	return w.send(w.buf, true)
}
