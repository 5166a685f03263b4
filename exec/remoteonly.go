package exec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
)

// Outputs kept only in the cache ("build without the bytes", see
// DownloadMode): a result restored without its bytes is recorded in the
// journal as remote-only; its dependents take its digest from there, and
// an action that runs fetches the remote-only inputs it reads first.

// availabler is a cache that can say, without downloading, whether every
// blob a result references is still there (cache/tiered: the disk, then
// one batched question to the remote).
type availabler interface {
	Available(ctx context.Context, action cache.Digest, res *repb.ActionResult) error
}

// available reports whether the result's blobs can still be had, so that
// keeping them only in the cache is safe; an error means they cannot.
func (r *Runner) available(ctx context.Context, action cache.Digest, res *repb.ActionResult) error {
	if av, ok := r.cache.c.(availabler); ok {
		return av.Available(ctx, action, res)
	}
	refs, err := cache.References(res, func(d cache.Digest) (*repb.Tree, error) {
		return nil, fmt.Errorf("tree %s: %w", d, cache.ErrNotFound)
	})
	if err != nil {
		return err
	}
	for _, d := range refs {
		ok, err := r.cache.c.Contains(ctx, d)
		if err != nil {
			r.cache.fail(ctx, "checking blob "+d.String(), err)
			return err
		}
		if !ok {
			return fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
		}
	}
	return nil
}

// rememberRemote restores a result without its bytes: whatever is at the
// outputs' paths goes (nothing stale stays in the output tree), and the
// journal records each output as kept only in the cache. The log stays in
// the cache too.
func (r *Runner) rememberRemote(a *Action, key *Key, in *inputDigests, res *repb.ActionResult) error {
	r.forget(a)
	if err := r.removeOutputs(a); err != nil {
		return err
	}
	files := map[string]*repb.OutputFile{}
	for _, f := range res.GetOutputFiles() {
		files[f.GetPath()] = f
	}
	for _, o := range a.Outputs {
		f := files[o.Path]
		r.Journal.recordRemote(o.Path, key.Digest, key.fingerprint, cache.FromProto(f.GetDigest()), f.GetIsExecutable())
	}
	r.Journal.explain(newActionRecord(a, key, in.seen()))
	if err := os.Remove(r.logPath(a)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// absent reports whether nothing, not even a dangling link, is at p.
func absent(p string) bool {
	_, err := os.Lstat(p)
	return errors.Is(err, fs.ErrNotExist)
}

// fetchInputs brings the action's inputs that are kept only in the cache
// into the output tree before it runs. One the cache no longer has fails
// the action, and its producer's records go from the journal, so that the
// next build makes it again.
func (r *Runner) fetchInputs(ctx context.Context, a *Action, in *inputDigests) error {
	for _, p := range sortedKeys(in.remote) {
		rec := in.remote[p]
		err := r.fetchInput(ctx, p, rec)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Journal.forgetKey(rec.Key)
		reason := fmt.Sprintf("input %s was kept only in the cache, which no longer has it (%v); the action that makes it will run again: build again (or with --remote-download-outputs=all)", p, err)
		r.fetchMu.Lock()
		if r.lost == nil {
			r.lost = map[string]string{}
		}
		r.lost[p] = reason // a retry of this build finds no record: say the same
		r.fetchMu.Unlock()
		return &ActionError{Action: a, ExitCode: -1, Reason: reason}
	}
	return nil
}

// fetchInput writes the remote-only output at p from the cache, verified,
// and records it in the journal as an output in the tree. Actions that
// need it at once fetch it once.
func (r *Runner) fetchInput(ctx context.Context, p string, rec outputRecord) error {
	r.fetchMu.Lock()
	if r.fetching == nil {
		r.fetching = map[string]*sync.Mutex{}
	}
	m := r.fetching[p]
	if m == nil {
		m = &sync.Mutex{}
		r.fetching[p] = m
	}
	r.fetchMu.Unlock()
	m.Lock()
	defer m.Unlock()

	dst := r.abs(p)
	if cur, ok := r.Journal.output(p); ok && !cur.Remote && cur.Digest == rec.Digest {
		if fi, err := os.Stat(dst); err == nil && cur.sameStat(fi) {
			return nil // another action fetched it meanwhile
		}
	}
	if !r.cache.usable() {
		return fmt.Errorf("blob %s: no usable cache: %w", rec.Digest, cache.ErrNotFound)
	}
	if err := r.outputParents(p); err != nil {
		return err
	}
	if err := r.fetchFile(ctx, rec.Digest, rec.Executable, dst); err != nil {
		return err
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return err
	}
	r.Journal.record(p, rec.Key, rec.Fingerprint, rec.Digest, fi)
	return nil
}

// lostInput returns why the input at p is missing when the cache lost it
// during this build (see fetchInputs).
func (r *Runner) lostInput(p string) (string, bool) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	reason, ok := r.lost[p]
	return reason, ok
}
