package batch

import (
	"context"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// staleAC is a cache whose action cache keeps results whose blobs are
// gone, as the Bazel HTTP protocol (WebDAV) does.
type staleAC struct {
	*disk.Cache
	mu    sync.Mutex
	stale map[cache.Digest]*repb.ActionResult
}

func (c *staleAC) GetActionResult(ctx context.Context, d cache.Digest) (*repb.ActionResult, error) {
	c.mu.Lock()
	r, ok := c.stale[d]
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	return c.Cache.GetActionResult(ctx, d)
}

// The action was sent away because its cached result could not be
// restored (its blobs evicted). A job that vanished without running must
// not be taken as done because that same result is still there: the
// build would fail with "its result is not in the cache" instead of the
// job being resubmitted.
func TestVanishedJobStaleResultIsResubmitted(t *testing.T) {
	r := newRig(t, Config{})
	a, k := r.action(0, 0)
	sc := &staleAC{Cache: r.cache, stale: map[cache.Digest]*repb.ActionResult{
		k.Digest: {OutputFiles: []*repb.OutputFile{{Path: "hepbuild-out/h0", Digest: cache.FromBytes([]byte("evicted")).ToProto()}}},
	}}
	r.e.Close(context.Background(), true)
	cfg := Config{Backend: r.be, Results: sc, Upload: r.cache, Dir: r.dir, Worker: []string{"hepbuild", "worker"},
		PollInterval: 20 * time.Millisecond, Window: 20 * time.Millisecond, Retries: 1}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	t.Cleanup(func() { e.Close(context.Background(), false) })
	answers := r.run(context.Background(), []*exec.Action{a}, []*exec.Key{k})
	r.waitJobs(1)
	r.be.vanish("1_0")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case ans := <-answers[0]:
			t.Fatalf("the vanished job's action was answered %+v, %v; want it resubmitted", ans.resp, ans.err)
		default:
		}
		if len(r.be.jobs()) >= 2 {
			return
		}
	}
	t.Errorf("not resubmitted")
}
