package worker

import (
	"context"
	"sync"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
)

// httpLike is a cache whose action cache does not check that a result's
// blobs are still there, as the Bazel HTTP protocol (nginx WebDAV) and a
// plain file:// tree do not: an entry whose blobs were evicted stays.
type httpLike struct {
	*disk.Cache
	mu    sync.Mutex
	stale map[cache.Digest]*repb.ActionResult
}

func (c *httpLike) GetActionResult(ctx context.Context, d cache.Digest) (*repb.ActionResult, error) {
	c.mu.Lock()
	r, ok := c.stale[d]
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	return c.Cache.GetActionResult(ctx, d)
}

func (c *httpLike) PutActionResult(ctx context.Context, d cache.Digest, r *repb.ActionResult) error {
	c.mu.Lock()
	delete(c.stale, d)
	c.mu.Unlock()
	return c.Cache.PutActionResult(ctx, d, r)
}

// A result in the action cache whose output blobs are gone (evicted)
// restores nothing: the submitting build runs the action for that reason,
// and sends it to a worker. The worker must run it too, not answer
// "already in the cache" and leave the build, every time it tries, with a
// result it cannot restore.
func TestWorkerRunsWhenTheCachedResultLostItsBlobs(t *testing.T) {
	ctx := context.Background()
	dc, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &httpLike{Cache: dc, stale: map[cache.Digest]*repb.ActionResult{}}
	a := bashAction("echo made > hepbuild-out/x", nil, "hepbuild-out/x")
	ref := submit(t, c, t.TempDir(), a)
	lost := cache.FromBytes([]byte("evicted\n"))
	c.stale[ref.Action] = &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "hepbuild-out/x", Digest: lost.ToProto()}}}
	w, out := newWorker(t, c, "t")
	if st := w.Run(ctx, []Ref{ref}); st != AllSucceeded {
		t.Fatalf("status %v\n%s", st, out)
	}
	res, err := c.GetActionResult(ctx, ref.Action)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.OutputFiles {
		if ok, _ := c.Contains(ctx, cache.FromProto(f.Digest)); !ok {
			t.Errorf("the result in the cache still names the lost blob of %s; the worker said:\n%s", f.Path, out)
		}
	}
}
