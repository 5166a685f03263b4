package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/folder"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
)

// faulty wraps a real remote (a shared folder) and records or breaks its
// calls. It is a stand-in on purpose: no real server can be told to lie,
// stall or refuse on demand, call by call. The protocols' own tests run
// against real servers.
type faulty struct {
	remote.Remote
	mu    sync.Mutex
	calls []string
	// fail, when set, answers a call instead of the remote.
	fail func(op string) error
	// corrupt replaces every blob read with other bytes.
	corrupt bool
}

func (f *faulty) record(op string) error {
	f.mu.Lock()
	f.calls = append(f.calls, op)
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return fail(op)
	}
	return nil
}

func (f *faulty) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == op {
			n++
		}
	}
	return n
}

func (f *faulty) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	if err := f.record("Contains"); err != nil {
		return false, err
	}
	return f.Remote.Contains(ctx, d)
}

func (f *faulty) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	if err := f.record("Get"); err != nil {
		return nil, err
	}
	if f.corrupt {
		return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("x"), int(d.Size)))), nil
	}
	return f.Remote.Get(ctx, d)
}

func (f *faulty) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	if err := f.record("Put"); err != nil {
		return err
	}
	return f.Remote.Put(ctx, d, r)
}

func (f *faulty) GetActionResult(ctx context.Context, a cache.Digest) (*repb.ActionResult, error) {
	if err := f.record("GetActionResult"); err != nil {
		return nil, err
	}
	return f.Remote.GetActionResult(ctx, a)
}

func (f *faulty) PutActionResult(ctx context.Context, a cache.Digest, r *repb.ActionResult) error {
	if err := f.record("PutActionResult"); err != nil {
		return err
	}
	return f.Remote.PutActionResult(ctx, a, r)
}

func (f *faulty) FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error) {
	if err := f.record("FindMissing"); err != nil {
		return nil, err
	}
	return f.Remote.FindMissing(ctx, ds)
}

func (f *faulty) GetBatch(ctx context.Context, ds []cache.Digest) (map[cache.Digest][]byte, error) {
	if err := f.record("GetBatch"); err != nil {
		return nil, err
	}
	got, err := f.Remote.GetBatch(ctx, ds)
	if f.corrupt {
		for d, b := range got {
			got[d] = bytes.Repeat([]byte("x"), len(b))
		}
	}
	return got, err
}

func (f *faulty) PutBatch(ctx context.Context, blobs map[cache.Digest][]byte) error {
	if err := f.record("PutBatch"); err != nil {
		return err
	}
	return f.Remote.PutBatch(ctx, blobs)
}

type fixture struct {
	shared *folder.Cache
	remote *faulty
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	shared, err := folder.Open("file://"+filepath.Join(t.TempDir(), "shared"), remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{shared: shared, remote: &faulty{Remote: shared}}
}

type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) add(m string) { w.mu.Lock(); w.msgs = append(w.msgs, m); w.mu.Unlock() }
func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// member is one user of the group: a disk cache of their own, the shared remote.
func (f *fixture) member(t *testing.T, opts Options) (*Cache, *disk.Cache, *warnings) {
	t.Helper()
	local, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	opts.Warn = w.add
	c := New(local, f.remote, opts)
	t.Cleanup(func() { c.Close() })
	return c, local, w
}

// result stores n blobs (one of them large) and a result naming them in c.
func result(t *testing.T, c *Cache, n int) (cache.Digest, *repb.ActionResult, map[cache.Digest][]byte) {
	t.Helper()
	ctx := context.Background()
	blobs := map[cache.Digest][]byte{}
	res := &repb.ActionResult{}
	for i := 0; i < n; i++ {
		size := 100 + i
		if i == 0 {
			size = 3 << 20 // streamed, not batched
		}
		b, d := remotetest.Blob(t, size)
		blobs[d] = b
		if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		res.OutputFiles = append(res.OutputFiles, &repb.OutputFile{Path: fmt.Sprintf("out/%d", i), Digest: d.ToProto()})
	}
	_, key := remotetest.Blob(t, 32)
	if err := c.PutActionResult(ctx, key, res); err != nil {
		t.Fatal(err)
	}
	return key, res, blobs
}

func TestSharedThroughRemote(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, _, aw := f.member(t, Options{})
	key, _, blobs := result(t, alice, 300)
	if err := alice.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.remote.count("FindMissing"); n > 10 {
		t.Errorf("uploading 300 blobs asked the remote %d times which it lacks; want batches", n)
	}
	if n := f.remote.count("PutBatch"); n > 10 {
		t.Errorf("uploading 299 small blobs took %d batch calls", n)
	}
	bob, bobDisk, bw := f.member(t, Options{})
	res, err := bob.GetActionResult(ctx, key)
	if err != nil {
		t.Fatalf("bob does not find alice's result: %v", err)
	}
	if _, err := bobDisk.GetActionResult(ctx, key); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("the result is in bob's disk cache before its blobs: %v", err)
	}
	before := f.remote.count("GetBatch")
	if err := bob.Prefetch(ctx, key, res); err != nil {
		t.Fatal(err)
	}
	if n := f.remote.count("GetBatch") - before; n > 2 {
		t.Errorf("fetching 299 small blobs took %d batch calls", n)
	}
	for d, b := range blobs {
		rc, err := bobDisk.Get(ctx, d)
		if err != nil {
			t.Fatalf("blob %v not in bob's disk cache: %v", d, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, b) {
			t.Fatalf("blob %v differs", d)
		}
	}
	if _, err := bobDisk.GetActionResult(ctx, key); err != nil {
		t.Errorf("the result did not reach bob's disk cache: %v", err)
	}
	if w := append(aw.all(), bw.all()...); len(w) > 0 {
		t.Errorf("warnings: %q", w)
	}
}

// TestResultAfterItsBlobs: a result reaches the remote only after every
// blob it names, so no member ever sees a result whose blobs are missing.
func TestResultAfterItsBlobs(t *testing.T) {
	f := newFixture(t)
	alice, _, _ := f.member(t, Options{})
	_, _, _ = result(t, alice, 20)
	if err := alice.Flush(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f.remote.mu.Lock()
	calls := strings.Join(f.remote.calls, " ")
	f.remote.mu.Unlock()
	i := strings.Index(calls, "PutActionResult")
	if i < 0 || strings.Contains(calls[i:], "Put ") || strings.Contains(calls[i:], "PutBatch") {
		t.Errorf("the result was not written after its blobs: %s", calls)
	}
}

func TestRefusedWritesKeepReads(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, _, _ := f.member(t, Options{})
	key, _, _ := result(t, alice, 3)
	alice.Flush(ctx, nil)

	f.remote.fail = func(op string) error {
		if strings.HasPrefix(op, "Put") {
			return fmt.Errorf("%w: 403 Forbidden", remote.ErrDenied)
		}
		return nil
	}
	bob, bobDisk, w := f.member(t, Options{})
	k2, _, _ := result(t, bob, 3)
	bob.Flush(ctx, nil)
	if !bob.WritesOff() || bob.ReadsOff() {
		t.Errorf("after a refused write: writes off %v, reads off %v; want true, false", bob.WritesOff(), bob.ReadsOff())
	}
	if _, err := bobDisk.GetActionResult(ctx, k2); err != nil {
		t.Errorf("bob's own result is not in his disk cache: %v", err)
	}
	res, err := bob.GetActionResult(ctx, key)
	if err != nil {
		t.Fatalf("reads stopped with writes: %v", err)
	}
	if err := bob.Prefetch(ctx, key, res); err != nil {
		t.Fatal(err)
	}
	if msgs := w.all(); len(msgs) != 1 || !strings.Contains(msgs[0], "refuses writes") || !strings.Contains(msgs[0], f.shared.Name()) {
		t.Errorf("want one warning naming the remote and saying it refuses writes, got %q", msgs)
	}
}

func TestRemoteDownIsAMiss(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.remote.fail = func(string) error { return fmt.Errorf("%w: connection refused", remote.ErrTransient) }
	c, local, w := f.member(t, Options{})
	_, d := remotetest.Blob(t, 10)
	if _, err := c.GetActionResult(ctx, d); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("GetActionResult with the remote down: %v, want a miss", err)
	}
	if _, err := c.Get(ctx, d); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get with the remote down: %v, want a miss", err)
	}
	key, _, _ := result(t, c, 3)
	if err := c.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := local.GetActionResult(ctx, key); err != nil {
		t.Errorf("the disk tier stopped with the remote: %v", err)
	}
	if n := f.remote.count("GetActionResult"); n != 3 {
		t.Errorf("a transient failure was tried %d times, want 3 (two retries)", n)
	}
	calls := len(f.remote.calls)
	c.GetActionResult(ctx, d)
	if len(f.remote.calls) != calls {
		t.Error("the remote is still asked after it failed")
	}
	if msgs := w.all(); len(msgs) != 1 || !strings.Contains(msgs[0], "connection refused") {
		t.Errorf("want one warning saying what happened, got %q", msgs)
	}
}

func TestCorruptBlobIsNeverUsed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, _, _ := f.member(t, Options{})
	key, _, blobs := result(t, alice, 5)
	alice.Flush(ctx, nil)
	f.remote.corrupt = true
	bob, bobDisk, w := f.member(t, Options{})
	res, err := bob.GetActionResult(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Prefetch(ctx, key, res); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Prefetch of corrupt blobs: %v, want a miss", err)
	}
	for d := range blobs {
		if ok, _ := bobDisk.Contains(ctx, d); ok {
			t.Errorf("corrupt blob %v reached the disk cache", d)
		}
	}
	if _, err := bobDisk.GetActionResult(ctx, key); err == nil {
		t.Error("a result whose blobs were corrupt reached the disk cache")
	}
	if bob.ReadsOff() {
		t.Error("a corrupt blob turned the remote off; it is a miss")
	}
	if msgs := w.all(); len(msgs) != 1 || !strings.Contains(msgs[0], "other content") {
		t.Errorf("want one warning about the corrupt blob, got %q", msgs)
	}
}

func TestResultWithMissingBlobIsAMiss(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, gone := remotetest.Blob(t, 50)
	_, key := remotetest.Blob(t, 32)
	res := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out/a", Digest: gone.ToProto()}}}
	if err := f.shared.PutActionResult(ctx, key, res); err != nil {
		t.Fatal(err)
	}
	c, local, _ := f.member(t, Options{})
	// A server that checks completeness itself (as this one, bazel-remote
	// and Buildbarn do) answers a miss; else Prefetch finds it.
	got, err := c.GetActionResult(ctx, key)
	if err == nil {
		err = c.Prefetch(ctx, key, got)
	}
	if !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Prefetch of a result whose blob is gone: %v, want a miss", err)
	}
	if _, err := local.GetActionResult(ctx, key); err == nil {
		t.Error("an incomplete result reached the disk cache")
	}
}

// TestPendingUploadsResume: results not uploaded when a build ends without
// waiting are uploaded by the next one.
func TestPendingUploadsResume(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pending := filepath.Join(t.TempDir(), "remote-pending")
	block := make(chan struct{})
	f.remote.fail = func(op string) error {
		if op == "FindMissing" {
			<-block
			return context.Canceled
		}
		return nil
	}
	local, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	c := New(local, f.remote, Options{PendingFile: pending})
	key, _, _ := result(t, c, 3)
	time.Sleep(50 * time.Millisecond)
	go func() { time.Sleep(100 * time.Millisecond); close(block) }()
	left, _ := c.Close()
	if left != 1 {
		t.Fatalf("Close left %d results, want 1", left)
	}
	f.remote.fail = nil
	c2 := New(local, f.remote, Options{PendingFile: pending})
	if err := c2.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if _, err := f.shared.GetActionResult(ctx, key); err != nil {
		t.Errorf("the pending result was not uploaded by the next build: %v", err)
	}
}

// TestAvailableAsksOnce: whether a result's blobs can still be had is one
// batched question to the remote for those the disk lacks, downloading
// nothing; a blob that is nowhere, or a remote that cannot answer, is a miss.
func TestAvailableAsksOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, _, _ := f.member(t, Options{})
	key, _, blobs := result(t, alice, 50)
	if err := alice.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bob, bobDisk, bw := f.member(t, Options{})
	res, err := bob.GetActionResult(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	finds, gets, batches := f.remote.count("FindMissing"), f.remote.count("Get"), f.remote.count("GetBatch")
	if err := bob.Available(ctx, cache.Digest{}, res); err != nil {
		t.Fatalf("Available: %v, want every blob found", err)
	}
	if n := f.remote.count("FindMissing") - finds; n != 1 {
		t.Errorf("Available asked the remote %d times, want once", n)
	}
	if f.remote.count("Get") != gets || f.remote.count("GetBatch") != batches {
		t.Errorf("Available downloaded blobs")
	}
	for d := range blobs {
		if ok, _ := bobDisk.Contains(ctx, d); ok {
			t.Fatalf("blob %v reached bob's disk cache", d)
		}
	}
	if st := bob.Stats(); st.Downloaded != 0 {
		t.Errorf("Stats.Downloaded = %d, want 0", st.Downloaded)
	}

	_, gone := remotetest.Blob(t, 70)
	withGone := &repb.ActionResult{OutputFiles: append(res.GetOutputFiles(), &repb.OutputFile{Path: "out/gone", Digest: gone.ToProto()})}
	if err := bob.Available(ctx, cache.Digest{}, withGone); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Available with a blob nowhere: %v, want cache.ErrNotFound", err)
	}

	f.remote.fail = func(op string) error {
		if op == "FindMissing" {
			return fmt.Errorf("%w: connection reset", remote.ErrTransient)
		}
		return nil
	}
	if err := bob.Available(ctx, cache.Digest{}, res); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Available with a failing remote: %v, want cache.ErrNotFound", err)
	}
	if len(bw.all()) != 1 {
		t.Errorf("a failing remote gave warnings %q, want one", bw.all())
	}
}

// TestPendingResultGoneIsForgotten: a pending result that the disk cache
// no longer has (pruned by `hepbuild clean --cache` between builds) can
// never be uploaded; the build that finds it gone forgets it, rather than
// carrying it from build to build, each saying it is still to upload.
func TestPendingResultGoneIsForgotten(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pending := filepath.Join(t.TempDir(), "remote-pending")
	_, gone := remotetest.Blob(t, 32)
	if err := os.WriteFile(pending, []byte(gone.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	local, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	c := New(local, f.remote, Options{PendingFile: pending})
	if err := c.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := c.PendingResults(); n != 0 {
		t.Errorf("after Flush, %d results are still to upload, want 0", n)
	}
	if left, _ := c.Close(); left != 0 {
		t.Errorf("Close left %d results for the next build, want 0", left)
	}
	if _, err := os.Stat(pending); err == nil {
		t.Errorf("the pending file is still there")
	}
}

// TestPutWhileClosing: a write that races with Close (an action storing
// its outputs as an interrupted build ends) neither panics nor is lost
// from the disk cache.
func TestPutWhileClosing(t *testing.T) {
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		f := newFixture(t)
		local, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
		if err != nil {
			t.Fatal(err)
		}
		c := New(local, f.remote, Options{})
		b, d := remotetest.Blob(t, 64)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 200; j++ {
					if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
						t.Error(err)
						return
					}
					c.uploaded.Delete(d)
				}
			}()
		}
		time.Sleep(time.Millisecond)
		c.Close()
		wg.Wait()
	}
}

// TestResultsMadeWhileRemoteIsDownArePending: the remote fails mid-build
// (or does not answer at the start); the results made afterwards go to the
// disk cache only, and are recorded as pending like those queued before
// the failure, so the next build, with the remote back, uploads them for
// the group. Results of a member the remote refuses writes to are not.
func TestResultsMadeWhileRemoteIsDownArePending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pending := filepath.Join(t.TempDir(), "remote-pending")
	local, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	c := New(local, f.remote, Options{PendingFile: pending})
	c.Disable() // as when the remote did not answer at the start
	key, _, _ := result(t, c, 2)
	if err := c.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if left, _ := c.Close(); left != 1 {
		t.Fatalf("Close left %d results for the next build, want 1", left)
	}
	c2 := New(local, f.remote, Options{PendingFile: pending})
	if err := c2.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if _, err := f.shared.GetActionResult(ctx, key); err != nil {
		t.Errorf("the result made while the remote was down was not uploaded by the next build: %v", err)
	}

	c3 := New(local, f.remote, Options{PendingFile: pending})
	c3.DisableWrites() // --remote-upload=off
	result(t, c3, 1)
	if left, _ := c3.Close(); left != 0 {
		t.Errorf("a build that does not upload left %d results for the next, want 0", left)
	}
}

// TestFetchOutlivesAnAbandonedCaller: two callers want the same blob; the
// one whose download is under way gives up (its context ends). The other,
// still wanting it, gets the blob, not the first caller's cancellation
// (which the runner would take for a failing cache).
func TestFetchOutlivesAnAbandonedCaller(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	b, d := remotetest.Blob(t, 3<<20)
	if err := f.shared.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var first sync.Once
	f.remote.fail = func(op string) error {
		if op == "Get" {
			blocked := false
			first.Do(func() { blocked = true })
			if blocked {
				<-release
				return context.Canceled
			}
		}
		return nil
	}
	c, _, _ := f.member(t, Options{})
	ctx1, cancel1 := context.WithCancel(ctx)
	done1 := make(chan error, 1)
	go func() { _, err := c.Get(ctx1, d); done1 <- err }()
	for f.remote.count("Get") == 0 {
		time.Sleep(time.Millisecond)
	}
	done2 := make(chan error, 1)
	go func() {
		rc, err := c.Get(ctx, d)
		if err == nil {
			rc.Close()
		}
		done2 <- err
	}()
	time.Sleep(50 * time.Millisecond) // the second caller waits for the first's download
	cancel1()
	close(release)
	<-done1
	if err := <-done2; err != nil {
		t.Errorf("the caller that still wanted the blob got %v", err)
	}
}

// TestHugeTreeIsNotFetched: a remote result's output folder whose Tree
// blob is beyond any honest Tree's size (lowered here) is a miss before
// it is downloaded: a Tree is read into memory whole.
func TestHugeTreeIsNotFetched(t *testing.T) {
	defer func(n int64) { maxTreeBytes = n }(maxTreeBytes)
	maxTreeBytes = 1000
	ctx := context.Background()
	f := newFixture(t)
	b, d := remotetest.Blob(t, 2000)
	if err := f.shared.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	c, local, _ := f.member(t, Options{})
	res := &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "out/tree", TreeDigest: d.ToProto()}}}
	_, key := remotetest.Blob(t, 32)
	if err := c.Prefetch(ctx, key, res); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Prefetch: %v, want cache.ErrNotFound", err)
	}
	if ok, _ := local.Contains(ctx, d); ok {
		t.Errorf("the huge Tree was downloaded")
	}
}
