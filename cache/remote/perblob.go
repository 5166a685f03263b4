package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/hepbuild/hepbuild/cache"
)

// PerBlob gives a protocol without batch calls (HTTP, XRootD, a shared
// folder) the batch methods of Remote, one call per blob, at most Limit at
// once. The first error stops the rest.
type PerBlob struct {
	Limit    int
	Contains func(ctx context.Context, d cache.Digest) (bool, error)
	Get      func(ctx context.Context, d cache.Digest) (io.ReadCloser, error)
	Put      func(ctx context.Context, d cache.Digest, r io.Reader) error
}

func (p PerBlob) each(ctx context.Context, ds []cache.Digest, f func(context.Context, int, cache.Digest) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(p.Limit, 1))
	for i, d := range ds {
		g.Go(func() error { return f(gctx, i, d) })
	}
	return g.Wait()
}

// FindMissing asks Contains of each digest.
func (p PerBlob) FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error) {
	present := make([]bool, len(ds))
	err := p.each(ctx, ds, func(ctx context.Context, i int, d cache.Digest) (err error) {
		present[i], err = p.Contains(ctx, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	var missing []cache.Digest
	for i, d := range ds {
		if !present[i] {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// GetBatch reads each blob whole; absent ones are left out.
func (p PerBlob) GetBatch(ctx context.Context, ds []cache.Digest) (map[cache.Digest][]byte, error) {
	var mu sync.Mutex
	got := make(map[cache.Digest][]byte, len(ds))
	err := p.each(ctx, ds, func(ctx context.Context, _ int, d cache.Digest) error {
		rc, err := p.Get(ctx, d)
		if errors.Is(err, cache.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
		if err != nil {
			return err
		}
		mu.Lock()
		got[d] = b
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return got, nil
}

// PutBatch stores each blob.
func (p PerBlob) PutBatch(ctx context.Context, blobs map[cache.Digest][]byte) error {
	ds := make([]cache.Digest, 0, len(blobs))
	for d := range blobs {
		ds = append(ds, d)
	}
	return p.each(ctx, ds, func(ctx context.Context, _ int, d cache.Digest) error {
		return p.Put(ctx, d, bytes.NewReader(blobs[d]))
	})
}
