// Package tiered puts a remote cache behind the disk cache: reads try the
// disk, then the remote, and write what the remote had back to the disk;
// writes go to the disk at once and to the remote in the background, an
// action result only after every blob it references is there. A remote
// that fails, stalls, refuses or lies only turns itself off, with one
// warning: the build goes on with the disk cache and never uses a wrong
// blob.
package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
)

// Local is the fast tier: the disk cache. Its errors are the build's own
// (the runner disables it when it fails); the remote's never are.
type Local interface {
	cache.Cache
	// BlobPath returns the path of the blob's file, for hard links.
	BlobPath(d cache.Digest) (string, error)
	// PutFile stores the file, by hard link where it can.
	PutFile(ctx context.Context, path string) (cache.Digest, error)
}

// Options configure a Cache. The zero value is usable.
type Options struct {
	// Warn receives the one warning per kind of remote trouble. It may be
	// replaced later with SetWarn.
	Warn func(string)
	// QueueSize bounds the uploads waiting to be done; a full queue makes
	// the writer wait. 0 means 10,000.
	QueueSize int
	// Timeout is the remote's own per-call bound (remote.Options.Timeout):
	// a call that failed after taking half of it is not retried, so a
	// stalled server costs one timeout, not three.
	Timeout time.Duration
	// PendingFile, when set, records the action results whose upload was
	// not done when the Cache closed (an interrupted build, or
	// --remote-upload=async-exit); the next Cache opened with the same
	// file uploads them first.
	PendingFile string
	// Off starts the Cache with the remote turned off (it did not answer
	// at the start): pending results are kept for a later build, not
	// uploaded to a remote already known not to answer.
	Off bool
}

// Cache is a disk cache with a remote behind it. It implements cache.Cache,
// BlobPath and PutFile as the disk cache does, and is safe for concurrent
// use. Close (after Flush, unless the uploads are to be abandoned) ends it.
type Cache struct {
	local  Local
	remote remote.Remote
	opts   Options

	warn      atomic.Pointer[func(string)]
	readsOff  atomic.Bool
	writesOff atomic.Bool
	// refused: writes are off for good (refused, or not wanted), so the
	// results made meanwhile are not kept for the next build, as they are
	// while a remote that failed is off.
	refused atomic.Bool
	warned  sync.Map // kind → struct{}

	fetchMu  sync.Mutex
	fetching map[cache.Digest]*fetchCall

	fromRemote sync.Map // action digest → struct{}: results read from the remote
	uploaded   sync.Map // digest → struct{}: blobs the remote is known to hold

	queue    chan unit
	active   sync.WaitGroup // units queued or being uploaded
	stopOnce sync.Once
	// closeMu orders enqueue before Close: a sender holds it shared from
	// its check of closed to its send, Close holds it to close the queue.
	closeMu sync.RWMutex
	closed  atomic.Bool
	workers sync.WaitGroup
	pendMu  sync.Mutex
	pending map[cache.Digest]bool // action results queued, not yet uploaded

	stats Stats

	// uploadCtx ends uploads under way when the Cache closes.
	uploadCtx    context.Context
	cancelUpload context.CancelFunc
}

// Stats counts what the remote tier did. Read it with Cache.Stats.
type Stats struct {
	Hits, Misses          int64 // action results found and not found on the remote
	Downloaded, DownBytes int64 // blobs and bytes read from the remote
	Uploaded, UpBytes     int64 // blobs and bytes written to the remote
	Results               int64 // action results written to the remote
	Calls                 int64 // calls to the remote (a batch is one)
	Corrupt               int64 // blobs from the remote that did not match their digest
	Dropped               int64 // uploads given up (remote off, or abandoned)
}

type unit struct {
	blob   cache.Digest // a blob to upload, or
	action cache.Digest // an action result to upload after its blobs
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// New returns a Cache over local and r, and starts its uploaders.
func New(local Local, r remote.Remote, opts Options) *Cache {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = remote.DefaultTimeout
	}
	c := &Cache{local: local, remote: r, opts: opts,
		fetching: map[cache.Digest]*fetchCall{},
		queue:    make(chan unit, opts.QueueSize),
		pending:  map[cache.Digest]bool{},
	}
	c.SetWarn(opts.Warn)
	if opts.Off {
		c.Disable()
	}
	c.uploadCtx, c.cancelUpload = context.WithCancel(context.Background())
	for i := 0; i < uploaders; i++ {
		c.workers.Add(1)
		go c.uploader()
	}
	c.resumePending()
	return c
}

// uploaders is how many batches upload at once; each bounds its own
// transfers by the remote's connection limit.
const uploaders = 2

// SetWarn replaces the function that receives warnings.
func (c *Cache) SetWarn(f func(string)) {
	if f == nil {
		f = func(string) {}
	}
	c.warn.Store(&f)
}

// Remote returns the remote tier.
func (c *Cache) Remote() remote.Remote { return c.remote }

// Local returns the disk tier.
func (c *Cache) Local() Local { return c.local }

// Stats returns what the remote tier did so far.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: atomic.LoadInt64(&c.stats.Hits), Misses: atomic.LoadInt64(&c.stats.Misses),
		Downloaded: atomic.LoadInt64(&c.stats.Downloaded), DownBytes: atomic.LoadInt64(&c.stats.DownBytes),
		Uploaded: atomic.LoadInt64(&c.stats.Uploaded), UpBytes: atomic.LoadInt64(&c.stats.UpBytes),
		Results: atomic.LoadInt64(&c.stats.Results), Calls: atomic.LoadInt64(&c.stats.Calls),
		Corrupt: atomic.LoadInt64(&c.stats.Corrupt), Dropped: atomic.LoadInt64(&c.stats.Dropped),
	}
}

// ReadsOff and WritesOff say whether trouble turned the remote off.
func (c *Cache) ReadsOff() bool  { return c.readsOff.Load() }
func (c *Cache) WritesOff() bool { return c.writesOff.Load() }

// Disable turns the remote off before any use, e.g. when it did not answer
// at start; the caller has said why.
func (c *Cache) Disable() {
	c.readsOff.Store(true)
	c.writesOff.Store(true)
}

// DisableWrites keeps the remote read-only for this Cache (a member who
// only reads the group's cache).
func (c *Cache) DisableWrites() {
	c.refused.Store(true)
	c.writesOff.Store(true)
}

func (c *Cache) warnOnce(kind, msg string) {
	if _, loaded := c.warned.LoadOrStore(kind, struct{}{}); !loaded {
		(*c.warn.Load())(msg)
	}
}

// trouble turns the remote off for what failed and warns once. A refused
// write stops writes only; anything else stops both, since a remote that
// does not answer would slow every later call.
func (c *Cache) trouble(ctx context.Context, op string, err error, write bool) {
	if ctx.Err() != nil || errors.Is(err, cache.ErrNotFound) {
		return
	}
	name := c.remote.Name()
	switch {
	case errors.Is(err, remote.ErrDenied) && write:
		c.DisableWrites()
		c.pendMu.Lock()
		clear(c.pending) // a refusal is for good: the next build need not try them again
		c.pendMu.Unlock()
		c.warnOnce("writes", fmt.Sprintf("remote cache %s refuses writes (%s: %v); results stay in the disk cache only", name, op, err))
	case errors.Is(err, remote.ErrDenied):
		c.Disable()
		c.warnOnce("off", fmt.Sprintf("remote cache %s refused access (%s: %v); check its credentials; building with the disk cache only", name, op, err))
	default:
		c.Disable()
		c.warnOnce("off", fmt.Sprintf("remote cache %s failed (%s: %v); building with the disk cache only", name, op, err))
	}
}

// readFailed reports a failed read from the remote (see trouble) and
// makes it a miss, or the interrupt it was.
func (c *Cache) readFailed(ctx context.Context, op string, err error) error {
	c.trouble(ctx, op, err, false)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: %v: %w", op, err, cache.ErrNotFound)
}

// call runs op against the remote, retrying a transient failure twice
// with backoff unless it took half the timeout (a stalled server).
func (c *Cache) call(ctx context.Context, op func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		atomic.AddInt64(&c.stats.Calls, 1)
		start := time.Now()
		err := op(ctx)
		if err == nil || !errors.Is(err, remote.ErrTransient) || attempt == 3 ||
			time.Since(start) > c.opts.Timeout/2 || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay *= 4
	}
}

// Contains reports whether either tier has the blob.
func (c *Cache) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	ok, err := c.local.Contains(ctx, d)
	if ok || err != nil || c.readsOff.Load() {
		return ok, err
	}
	var found bool
	err = c.call(ctx, func(ctx context.Context) (err error) {
		found, err = c.remote.Contains(ctx, d)
		return err
	})
	if err != nil {
		c.trouble(ctx, "checking "+d.String(), err, false)
		return false, nil
	}
	return found, nil
}

// Get opens the blob from the disk, fetching it from the remote first
// when only the remote has it.
func (c *Cache) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	rc, err := c.local.Get(ctx, d)
	if !errors.Is(err, cache.ErrNotFound) || c.readsOff.Load() {
		return rc, err
	}
	if err := c.fetch(ctx, d); err != nil {
		return nil, err
	}
	return c.local.Get(ctx, d)
}

// BlobPath returns the blob's file in the disk cache, fetching it from the
// remote first when only the remote has it.
func (c *Cache) BlobPath(d cache.Digest) (string, error) {
	p, err := c.local.BlobPath(d)
	if !errors.Is(err, cache.ErrNotFound) || c.readsOff.Load() {
		return p, err
	}
	if err := c.fetch(context.Background(), d); err != nil {
		return "", err
	}
	return c.local.BlobPath(d)
}

// errCorrupt marks a blob from the remote whose content is not its digest.
var errCorrupt = errors.New("blob does not match its digest")

// fetch copies one blob from the remote into the disk cache, once however
// many callers want it at the same time. What the remote does not have, or
// has wrong, is cache.ErrNotFound.
func (c *Cache) fetch(ctx context.Context, d cache.Digest) error {
	c.fetchMu.Lock()
	for {
		f, ok := c.fetching[d]
		if !ok {
			break
		}
		c.fetchMu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
			return f.err
		}
		// The caller whose download it was gave up, not the remote:
		// this one, still wanting the blob, asks again.
		c.fetchMu.Lock()
	}
	f := &fetchCall{done: make(chan struct{})}
	c.fetching[d] = f
	c.fetchMu.Unlock()
	f.err = c.fetchOnce(ctx, d)
	c.fetchMu.Lock()
	delete(c.fetching, d)
	c.fetchMu.Unlock()
	close(f.done)
	return f.err
}

func (c *Cache) fetchOnce(ctx context.Context, d cache.Digest) error {
	if c.readsOff.Load() {
		return fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}
	var localErr error
	err := c.call(ctx, func(ctx context.Context) error {
		rc, err := c.remote.Get(ctx, d)
		if err != nil {
			return err
		}
		defer rc.Close()
		vr := &verifying{r: rc, want: d, h: cache.NewHasher()}
		if err := c.local.Put(ctx, d, vr); err != nil {
			if vr.err != nil {
				return vr.err // the remote's: transient, corrupt, ...
			}
			localErr = err
			return nil
		}
		return nil
	})
	switch {
	case localErr != nil:
		return localErr
	case err == nil:
		atomic.AddInt64(&c.stats.Downloaded, 1)
		atomic.AddInt64(&c.stats.DownBytes, d.Size)
		return nil
	case errors.Is(err, cache.ErrNotFound):
		return err
	case errors.Is(err, errCorrupt) || errors.Is(err, remote.ErrCorrupt):
		c.corrupt(d, err)
		return fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}
	return c.readFailed(ctx, "reading "+d.String(), err)
}

func (c *Cache) corrupt(d cache.Digest, err error) {
	atomic.AddInt64(&c.stats.Corrupt, 1)
	c.warnOnce("corrupt", fmt.Sprintf("remote cache %s returned blob %s with other content (%v); it was not used, and the action runs instead", c.remote.Name(), d, err))
}

// verifying passes a remote blob through and fails instead of ending when
// what came is not the blob: the disk cache's Put then stores nothing.
type verifying struct {
	r    io.Reader
	want cache.Digest
	h    *cache.Hasher
	n    int64
	err  error
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, remote.ErrTransient) && !errors.Is(err, remote.ErrDenied) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// A reader that refuses to go on for any other reason found the
		// content wrong (each protocol verifies as it streams).
		err = fmt.Errorf("%w: %v", errCorrupt, err)
	}
	v.n += int64(n)
	v.h.Write(p[:n])
	switch {
	case v.n > v.want.Size:
		err = fmt.Errorf("%w: more than %d bytes", errCorrupt, v.want.Size)
	case err == io.EOF && v.h.Digest() != v.want:
		err = fmt.Errorf("%w: got %s", errCorrupt, v.h.Digest())
	}
	if err != nil && err != io.EOF {
		v.err = err
	}
	return n, err
}

// GetActionResult looks on the disk, then on the remote. A result from the
// remote is returned as it is; Prefetch brings its blobs to the disk.
func (c *Cache) GetActionResult(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	return c.getActionResult(ctx, action, nil)
}

// GetActionResultFor is GetActionResult for an action that is about to be
// restored, whose output files are at paths: a remote that can sends the
// small ones with the result, and they go straight to the disk cache.
func (c *Cache) GetActionResultFor(ctx context.Context, action cache.Digest, paths []string) (*repb.ActionResult, error) {
	if paths == nil {
		paths = []string{}
	}
	return c.getActionResult(ctx, action, paths)
}

func (c *Cache) getActionResult(ctx context.Context, action cache.Digest, paths []string) (*repb.ActionResult, error) {
	res, err := c.local.GetActionResult(ctx, action)
	if !errors.Is(err, cache.ErrNotFound) || c.readsOff.Load() || cache.LocalOnly(ctx) {
		return res, err
	}
	in, inline := c.remote.(remote.Inliner)
	err = c.call(ctx, func(ctx context.Context) (err error) {
		if inline && paths != nil {
			res, err = in.GetActionResultInline(ctx, action, paths)
		} else {
			res, err = c.remote.GetActionResult(ctx, action)
		}
		return err
	})
	switch {
	case err == nil:
		atomic.AddInt64(&c.stats.Hits, 1)
		c.takeInlined(ctx, res)
		c.fromRemote.Store(action, struct{}{})
		return res, nil
	case errors.Is(err, cache.ErrNotFound):
		atomic.AddInt64(&c.stats.Misses, 1)
		return nil, err
	}
	return nil, c.readFailed(ctx, "reading action result "+action.String(), err)
}

// takeInlined moves contents the remote sent with a result into the disk
// cache, each verified against its digest, and leaves the result with
// digests only. Contents that do not match are dropped: Prefetch then asks
// for the blob like any other.
func (c *Cache) takeInlined(ctx context.Context, res *repb.ActionResult) {
	keep := func(b []byte, p *repb.Digest) {
		d := cache.FromProto(p)
		if d.IsZero() || len(b) == 0 && d.Size != 0 {
			return
		}
		if cache.FromBytes(b) != d {
			c.corrupt(d, errCorrupt)
			return
		}
		if c.local.Put(ctx, d, bytes.NewReader(b)) == nil {
			atomic.AddInt64(&c.stats.Downloaded, 1)
			atomic.AddInt64(&c.stats.DownBytes, d.Size)
		}
	}
	for _, f := range res.GetOutputFiles() {
		if f.Contents != nil {
			keep(f.Contents, f.Digest)
			f.Contents = nil
		}
	}
	if res.StdoutRaw != nil {
		keep(res.StdoutRaw, res.StdoutDigest)
		res.StdoutRaw = nil
	}
}

// Prefetch brings every blob the result references to the disk cache, the
// small ones in batches, and then records the result in the disk cache's
// action cache when it came from the remote. Anything the remote lacks or
// has wrong is cache.ErrNotFound: the action runs instead.
func (c *Cache) Prefetch(ctx context.Context, action cache.Digest, res *repb.ActionResult) error {
	refs, err := c.references(ctx, res)
	if err != nil {
		return err
	}
	if err := c.FetchAll(ctx, refs); err != nil {
		return err
	}
	if _, ok := c.fromRemote.LoadAndDelete(action); ok {
		// A disk cache that cannot take it only means the next build asks
		// the remote again.
		_ = c.local.PutActionResult(ctx, action, res)
	}
	return nil
}

// Available reports whether every blob the result references can still
// be had, downloading none (but the Trees of output folders): those the
// disk lacks are asked of the remote in one batched existence check. A
// build that keeps outputs only in the cache (--remote-download-outputs)
// asks before it does; anything missing, or a remote that cannot answer,
// is cache.ErrNotFound.
func (c *Cache) Available(ctx context.Context, action cache.Digest, res *repb.ActionResult) error {
	refs, err := c.references(ctx, res)
	if err != nil {
		return err
	}
	var ask []cache.Digest
	seen := map[cache.Digest]bool{}
	for _, d := range refs {
		if seen[d] {
			continue
		}
		seen[d] = true
		if ok, err := c.local.Contains(ctx, d); err != nil {
			return err
		} else if !ok {
			ask = append(ask, d)
		}
	}
	if len(ask) == 0 {
		return nil
	}
	if c.readsOff.Load() {
		return fmt.Errorf("blob %s: %w", ask[0], cache.ErrNotFound)
	}
	if cc, ok := c.remote.(remote.CompletenessChecker); ok && cc.ChecksCompleteness() {
		if _, ok := c.fromRemote.Load(action); ok {
			// The server answered this result only because every blob it
			// names is stored: asking again would be a second round trip
			// that tells nothing new.
			return nil
		}
	}
	var missing []cache.Digest
	err = c.call(ctx, func(ctx context.Context) (err error) {
		missing, err = c.remote.FindMissing(ctx, ask)
		return err
	})
	if err != nil {
		return c.readFailed(ctx, fmt.Sprintf("checking %d blobs", len(ask)), err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("blob %s: %w", missing[0], cache.ErrNotFound)
	}
	return nil
}

// references lists the blobs of a result, which may come from the remote:
// a digest that is not one (a hash that is not lowercase hex, a path, a
// negative size) is the remote's lie, so a miss, never an error of the
// disk cache, which refuses it (the runner would turn the disk off).
func (c *Cache) references(ctx context.Context, res *repb.ActionResult) ([]cache.Digest, error) {
	refs, err := cache.References(res, func(d cache.Digest) (*repb.Tree, error) {
		if err := c.wellFormed(d); err != nil {
			return nil, err
		}
		if d.Size > maxTreeBytes {
			c.warnOnce("corrupt", fmt.Sprintf("remote cache %s returned an action result whose output folder's Tree is %d bytes; it was not used, and the action runs instead", c.remote.Name(), d.Size))
			atomic.AddInt64(&c.stats.Corrupt, 1)
			return nil, fmt.Errorf("tree %s is too large: %w", d, cache.ErrNotFound)
		}
		return c.tree(ctx, d)
	})
	if err != nil {
		return nil, err
	}
	for _, d := range refs {
		if err := c.wellFormed(d); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// maxTreeBytes bounds the Tree of an output folder, which is read into
// memory whole: 1 GiB describes millions of files (a variable for tests).
var maxTreeBytes int64 = 1 << 30

func (c *Cache) wellFormed(d cache.Digest) error {
	if p, err := cache.ParseDigest(d.String()); err != nil || p != d {
		err := fmt.Errorf("%w: malformed digest %q", errCorrupt, d.String())
		c.warnOnce("corrupt", fmt.Sprintf("remote cache %s returned an action result naming %v; it was not used, and the action runs instead", c.remote.Name(), err))
		atomic.AddInt64(&c.stats.Corrupt, 1)
		return fmt.Errorf("%v: %w", err, cache.ErrNotFound)
	}
	return nil
}

// tree reads a Tree from either tier; localTree from the disk alone.
func (c *Cache) tree(ctx context.Context, d cache.Digest) (*repb.Tree, error) {
	return readTree(ctx, c.Get, d)
}

func (c *Cache) localTree(ctx context.Context, d cache.Digest) (*repb.Tree, error) {
	return readTree(ctx, c.local.Get, d)
}

// readTree reads the Tree d through get; one that does not parse is a miss.
func readTree(ctx context.Context, get func(context.Context, cache.Digest) (io.ReadCloser, error), d cache.Digest) (*repb.Tree, error) {
	rc, err := get(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	t := &repb.Tree{}
	if err := proto.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("tree %s: %v: %w", d, err, cache.ErrNotFound)
	}
	return t, nil
}

// FetchAll brings the blobs to the disk cache: the ones the disk lacks, the
// small ones in batches and the large ones streamed, at most the remote's
// connection limit at once.
func (c *Cache) FetchAll(ctx context.Context, ds []cache.Digest) error {
	var small, large []cache.Digest
	seen := map[cache.Digest]bool{}
	for _, d := range ds {
		if seen[d] {
			continue
		}
		seen[d] = true
		if ok, err := c.local.Contains(ctx, d); err != nil {
			return err
		} else if ok {
			continue
		}
		if c.readsOff.Load() {
			return fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
		}
		if d.Size <= c.remote.BatchLimit() {
			small = append(small, d)
		} else {
			large = append(large, d)
		}
	}
	var firstErr error
	var mu sync.Mutex
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, d := range large {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.fetch(ctx, d); err != nil {
				setErr(err)
			}
		}()
	}
	if len(small) > 0 {
		if err := c.fetchBatch(ctx, small); err != nil {
			setErr(err)
		}
	}
	wg.Wait()
	return firstErr
}

// batchBytes bounds the bytes asked for in one batch call.
const batchBytes = 4 << 20

func (c *Cache) fetchBatch(ctx context.Context, ds []cache.Digest) error {
	for len(ds) > 0 {
		n, size := 0, int64(0)
		for n < len(ds) && (n == 0 || size+ds[n].Size <= batchBytes) {
			size += ds[n].Size
			n++
		}
		chunk := ds[:n]
		ds = ds[n:]
		var got map[cache.Digest][]byte
		err := c.call(ctx, func(ctx context.Context) (err error) {
			got, err = c.remote.GetBatch(ctx, chunk)
			return err
		})
		if err != nil {
			return c.readFailed(ctx, fmt.Sprintf("reading %d blobs", len(chunk)), err)
		}
		for _, d := range chunk {
			b, ok := got[d]
			if !ok {
				return fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
			}
			if cache.FromBytes(b) != d {
				c.corrupt(d, errCorrupt)
				return fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
			}
			if err := c.local.Put(ctx, d, bytes.NewReader(b)); err != nil {
				return err
			}
			atomic.AddInt64(&c.stats.Downloaded, 1)
			atomic.AddInt64(&c.stats.DownBytes, d.Size)
		}
	}
	return nil
}

// Put stores the blob on the disk and queues it for the remote.
func (c *Cache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	if err := c.local.Put(ctx, d, r); err != nil {
		return err
	}
	c.enqueue(ctx, unit{blob: d})
	return nil
}

// PutFile stores the file on the disk and queues it for the remote.
func (c *Cache) PutFile(ctx context.Context, path string) (cache.Digest, error) {
	d, err := c.local.PutFile(ctx, path)
	if err != nil {
		return d, err
	}
	c.enqueue(ctx, unit{blob: d})
	return d, nil
}

// PutActionResult stores the result on the disk and queues it for the
// remote, where it goes only after every blob it references.
func (c *Cache) PutActionResult(ctx context.Context, action cache.Digest, res *repb.ActionResult) error {
	if err := c.local.PutActionResult(ctx, action, res); err != nil {
		return err
	}
	c.enqueue(ctx, unit{action: action})
	return nil
}

func (c *Cache) enqueue(ctx context.Context, u unit) {
	if cache.LocalOnly(ctx) {
		return // an action whose results stay here (no-remote-cache)
	}
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed.Load() {
		return
	}
	if c.writesOff.Load() {
		if u.action.Hash != "" && !c.refused.Load() {
			// The remote failed: the next build uploads what it missed.
			c.pendMu.Lock()
			c.pending[u.action] = true
			c.pendMu.Unlock()
		}
		return
	}
	if u.blob.Hash != "" {
		if _, ok := c.uploaded.Load(u.blob); ok {
			return
		}
	} else {
		c.pendMu.Lock()
		c.pending[u.action] = true
		c.pendMu.Unlock()
	}
	c.active.Add(1)
	select {
	case c.queue <- u:
	case <-ctx.Done():
		c.active.Done()
	}
}

// uploader takes what is queued in batches: one existence check for the
// whole batch, then the missing blobs, then the action results whose blobs
// all arrived.
func (c *Cache) uploader() {
	defer c.workers.Done()
	for u := range c.queue {
		// Outputs arrive an action at a time: wait a moment for more, so
		// that one existence check and one batch serve many actions.
		batch := []unit{u}
		window := time.NewTimer(uploadWindow)
	gather:
		for len(batch) < maxUploadBatch {
			select {
			case u, ok := <-c.queue:
				if !ok {
					break gather
				}
				batch = append(batch, u)
			case <-window.C:
				break gather
			}
		}
		window.Stop()
		c.upload(c.uploadCtx, batch)
		for range batch {
			c.active.Done()
		}
	}
}

const (
	maxUploadBatch = 2000
	uploadWindow   = 200 * time.Millisecond
)

func (c *Cache) upload(ctx context.Context, batch []unit) {
	if c.writesOff.Load() {
		c.drop(batch)
		return
	}
	var blobs []cache.Digest
	refs := map[cache.Digest][]cache.Digest{}
	results := map[cache.Digest]*repb.ActionResult{}
	for _, u := range batch {
		if u.blob.Hash != "" {
			blobs = append(blobs, u.blob)
			continue
		}
		res, err := c.local.GetActionResult(ctx, u.action)
		if err == nil {
			var r []cache.Digest
			if r, err = cache.References(res, func(d cache.Digest) (*repb.Tree, error) { return c.localTree(ctx, d) }); err == nil {
				results[u.action] = res
				refs[u.action] = r
				blobs = append(blobs, r...)
				continue
			}
		}
		c.dropResult(u.action)
		if errors.Is(err, cache.ErrNotFound) {
			// Pruned meanwhile (or before this build, for a pending
			// one): no later build can upload it either.
			c.pendMu.Lock()
			delete(c.pending, u.action)
			c.pendMu.Unlock()
		}
	}
	failed := c.uploadBlobs(ctx, blobs)
	for action, res := range results {
		ok := !c.writesOff.Load()
		for _, d := range refs[action] {
			if failed[d] {
				ok = false
			}
		}
		if !ok {
			c.dropResult(action)
			continue
		}
		err := c.call(ctx, func(ctx context.Context) error { return c.remote.PutActionResult(ctx, action, res) })
		if err != nil {
			c.trouble(ctx, "writing action result "+action.String(), err, true)
			c.dropResult(action)
			continue
		}
		atomic.AddInt64(&c.stats.Results, 1)
		c.pendMu.Lock()
		delete(c.pending, action)
		c.pendMu.Unlock()
	}
}

// uploadBlobs puts on the remote those of ds it lacks and returns the ones
// that did not get there.
func (c *Cache) uploadBlobs(ctx context.Context, ds []cache.Digest) map[cache.Digest]bool {
	failed := map[cache.Digest]bool{}
	var ask []cache.Digest
	seen := map[cache.Digest]bool{}
	for _, d := range ds {
		if seen[d] {
			continue
		}
		seen[d] = true
		if _, ok := c.uploaded.Load(d); !ok {
			ask = append(ask, d)
		}
	}
	if len(ask) == 0 {
		return failed
	}
	fail := func(ds []cache.Digest) {
		for _, d := range ds {
			failed[d] = true
		}
	}
	var missing []cache.Digest
	err := c.call(ctx, func(ctx context.Context) (err error) {
		missing, err = c.remote.FindMissing(ctx, ask)
		return err
	})
	if err != nil {
		c.trouble(ctx, fmt.Sprintf("checking %d blobs", len(ask)), err, true)
		fail(ask)
		return failed
	}
	isMissing := map[cache.Digest]bool{}
	for _, d := range missing {
		isMissing[d] = true
	}
	for _, d := range ask {
		if !isMissing[d] {
			c.uploaded.Store(d, struct{}{})
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Size < missing[j].Size })
	var small, large []cache.Digest
	for _, d := range missing {
		if d.Size <= c.remote.BatchLimit() {
			small = append(small, d)
		} else {
			large = append(large, d)
		}
	}
	var mu sync.Mutex
	// Small blobs: read from the disk and sent in batches.
	for len(small) > 0 && !c.writesOff.Load() {
		chunk := map[cache.Digest][]byte{}
		var names []cache.Digest
		size := int64(0)
		for len(small) > 0 && (len(names) == 0 || size+small[0].Size <= batchBytes) {
			d := small[0]
			small = small[1:]
			b, err := c.readLocal(ctx, d)
			if err != nil {
				failed[d] = true
				continue
			}
			chunk[d] = b
			names = append(names, d)
			size += d.Size
		}
		err := c.call(ctx, func(ctx context.Context) error { return c.remote.PutBatch(ctx, chunk) })
		if err != nil {
			c.trouble(ctx, fmt.Sprintf("writing %d blobs", len(names)), err, true)
			fail(names)
			continue
		}
		c.sent(names)
	}
	fail(small)
	// Large blobs: streamed from the disk, a bounded number at once.
	sem := make(chan struct{}, maxConcurrentStreams)
	var wg sync.WaitGroup
	for _, d := range large {
		if c.writesOff.Load() {
			mu.Lock()
			failed[d] = true
			mu.Unlock()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := c.call(ctx, func(ctx context.Context) error {
				rc, err := c.local.Get(ctx, d)
				if err != nil {
					return err
				}
				defer rc.Close()
				return c.remote.Put(ctx, d, rc)
			})
			if err != nil {
				c.trouble(ctx, "writing "+d.String(), err, true)
				mu.Lock()
				failed[d] = true
				mu.Unlock()
				return
			}
			c.sent([]cache.Digest{d})
		}()
	}
	wg.Wait()
	return failed
}

// maxConcurrentStreams bounds large uploads at once per batch; the remote
// bounds its connections further.
const maxConcurrentStreams = 8

func (c *Cache) sent(ds []cache.Digest) {
	for _, d := range ds {
		c.uploaded.Store(d, struct{}{})
		atomic.AddInt64(&c.stats.Uploaded, 1)
		atomic.AddInt64(&c.stats.UpBytes, d.Size)
	}
}

func (c *Cache) readLocal(ctx context.Context, d cache.Digest) ([]byte, error) {
	rc, err := c.local.Get(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (c *Cache) drop(batch []unit) {
	for _, u := range batch {
		if u.action.Hash != "" {
			c.dropResult(u.action)
		}
	}
}

func (c *Cache) dropResult(action cache.Digest) {
	atomic.AddInt64(&c.stats.Dropped, 1)
}

// Flush waits until every queued upload is done or given up, calling
// progress now and then with the action results still to upload.
func (c *Cache) Flush(ctx context.Context, progress func(left int)) error {
	done := make(chan struct{})
	go func() { c.active.Wait(); close(done) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if progress != nil {
				progress(c.PendingResults())
			}
		}
	}
}

// PendingResults returns how many action results are not on the remote yet.
func (c *Cache) PendingResults() int {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	return len(c.pending)
}

// Close stops the uploaders without waiting for what is queued; results
// not uploaded are recorded in Options.PendingFile for the next build.
// It returns how many were left.
func (c *Cache) Close() (int, error) {
	c.closed.Store(true)
	c.writesOffForClose()
	c.cancelUpload()
	// A sender blocked on a full queue holds closeMu until the uploaders,
	// now dropping what they take, make room.
	c.closeMu.Lock()
	c.stopOnce.Do(func() { close(c.queue) })
	c.closeMu.Unlock()
	c.workers.Wait()
	left := c.savePending()
	return left, c.remote.Close()
}

// writesOffForClose makes the uploaders skip what is still queued.
func (c *Cache) writesOffForClose() {
	if c.PendingResults() == 0 && len(c.queue) == 0 {
		return
	}
	c.writesOff.Store(true)
}
