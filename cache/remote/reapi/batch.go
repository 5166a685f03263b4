package reapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hepbuild/hepbuild/cache"
)

const (
	// findMissingBatch digests per FindMissingBlobs call: about 1 MiB of
	// request, far below any server's message limit, and 10,000 digests
	// cost one round trip instead of 10,000.
	findMissingBatch = 10000
	// parallelBatches bounds the batches of one call in flight; the
	// connection bound (MaxConnections) applies on top.
	parallelBatches = 4
)

// Contains reports whether the server has the blob.
func (c *Cache) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	missing, err := c.FindMissing(ctx, []cache.Digest{d})
	return len(missing) == 0, err
}

// FindMissing asks FindMissingBlobs in batches of up to 10,000 digests.
// The empty blob is never missing: REAPI servers behave as if they had it.
func (c *Cache) FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error) {
	ds = unique(ds)
	var mu sync.Mutex
	var missing []cache.Digest
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelBatches)
	for start := 0; start < len(ds); start += findMissingBatch {
		part := ds[start:min(start+findMissingBatch, len(ds))]
		g.Go(func() error {
			req := &repb.FindMissingBlobsRequest{InstanceName: c.instance, DigestFunction: repb.DigestFunction_SHA256}
			for _, d := range part {
				req.BlobDigests = append(req.BlobDigests, d.ToProto())
			}
			var resp *repb.FindMissingBlobsResponse
			err := c.unary(gctx, fmt.Sprintf("finding missing blobs among %d", len(part)), func(ctx context.Context) (err error) {
				resp, err = c.cas.FindMissingBlobs(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range resp.GetMissingBlobDigests() {
				missing = append(missing, cache.FromProto(p))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return missing, nil
}

// unique drops duplicates and the empty blob, which servers need not be asked about.
func unique(ds []cache.Digest) []cache.Digest {
	seen := make(map[cache.Digest]bool, len(ds))
	out := make([]cache.Digest, 0, len(ds))
	for _, d := range ds {
		if d.Size == 0 || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, d)
	}
	return out
}

// pack splits digests into batches whose blobs together fit in one
// message under the server's batch limit.
func (c *Cache) pack(ds []cache.Digest) [][]cache.Digest {
	limit := c.batchMax()
	var batches [][]cache.Digest
	var cur []cache.Digest
	var size int64
	for _, d := range ds {
		n := d.Size + blobOverhead
		if len(cur) > 0 && size+n > limit {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		cur = append(cur, d)
		size += n
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// GetBatch reads blobs with BatchReadBlobs, as many per call as the
// server's batch limit allows. A blob the server lacks, or returns with
// content that does not match its digest, is absent from the result (the
// latter counted in CorruptBlobs).
func (c *Cache) GetBatch(ctx context.Context, ds []cache.Digest) (map[cache.Digest][]byte, error) {
	got := map[cache.Digest][]byte{}
	for _, d := range ds {
		if d.Size == 0 {
			got[d] = []byte{}
		}
	}
	c.learn(ctx)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelBatches)
	for _, part := range c.pack(unique(ds)) {
		g.Go(func() error {
			req := &repb.BatchReadBlobsRequest{InstanceName: c.instance, DigestFunction: repb.DigestFunction_SHA256}
			for _, d := range part {
				req.Digests = append(req.Digests, d.ToProto())
			}
			var resp *repb.BatchReadBlobsResponse
			err := c.unary(gctx, fmt.Sprintf("reading a batch of %d blobs", len(part)), func(ctx context.Context) (err error) {
				resp, err = c.cas.BatchReadBlobs(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			asked := map[cache.Digest]bool{}
			for _, d := range part {
				asked[d] = true
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range resp.GetResponses() {
				d := cache.FromProto(r.GetDigest())
				switch code := codes.Code(r.GetStatus().GetCode()); code {
				case codes.OK:
				case codes.NotFound:
					continue
				default:
					return c.errorf(gctx, "reading blob "+d.String(), statusErr(r.GetStatus()), false)
				}
				if !asked[d] {
					continue // an answer to a question not asked is no answer
				}
				data := r.GetData()
				if r.GetCompressor() == repb.Compressor_ZSTD {
					var err error
					if data, err = decodeAll(data, d.Size); err != nil {
						data = nil
					}
				}
				if data == nil || cache.FromBytes(data) != d {
					c.corrupt.Add(1)
					continue
				}
				got[d] = data
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return got, nil
}

// decodeAll decompresses a zstd blob that should be size bytes long,
// refusing to grow beyond it: it streams through a limit, since a server's
// few KiB of zstd can expand to gigabytes (DecodeAll would hold them all).
func decodeAll(b []byte, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("zstd blob of %d bytes", size)
	}
	dec, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("zstd blob does not decompress to %d bytes", size)
	}
	defer dec.Close()
	out := bytes.NewBuffer(make([]byte, 0, size))
	n, err := out.ReadFrom(io.LimitReader(dec, size+1))
	if err != nil || n != size {
		return nil, fmt.Errorf("zstd blob does not decompress to %d bytes", size)
	}
	return out.Bytes(), nil
}

// PutBatch stores blobs with BatchUpdateBlobs, as many per call as the
// server's batch limit allows, after checking each against its digest.
func (c *Cache) PutBatch(ctx context.Context, blobs map[cache.Digest][]byte) error {
	var ds []cache.Digest
	for d, b := range blobs {
		if cache.FromBytes(b) != d {
			return fmt.Errorf("%s: storing blob %v: the content does not match the digest", c.label(), d)
		}
		ds = append(ds, d)
	}
	c.learn(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelBatches)
	for _, part := range c.pack(unique(ds)) {
		g.Go(func() error {
			req := &repb.BatchUpdateBlobsRequest{InstanceName: c.instance, DigestFunction: repb.DigestFunction_SHA256}
			for _, d := range part {
				req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: d.ToProto(), Data: blobs[d]})
			}
			var resp *repb.BatchUpdateBlobsResponse
			err := c.unary(gctx, fmt.Sprintf("storing a batch of %d blobs", len(part)), func(ctx context.Context) (err error) {
				resp, err = c.cas.BatchUpdateBlobs(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			for _, r := range resp.GetResponses() {
				if codes.Code(r.GetStatus().GetCode()) != codes.OK {
					return c.errorf(gctx, "storing blob "+cache.FromProto(r.GetDigest()).String(), statusErr(r.GetStatus()), false)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// getSmall reads one blob through BatchReadBlobs.
func (c *Cache) getSmall(ctx context.Context, d cache.Digest) ([]byte, error) {
	got, err := c.GetBatch(ctx, []cache.Digest{d})
	if err != nil {
		return nil, err
	}
	b, ok := got[d]
	if !ok {
		return nil, fmt.Errorf("%s: reading blob %v: %w", c.label(), d, cache.ErrNotFound)
	}
	return b, nil
}

func statusErr(s *rpcstatus.Status) error { return status.ErrorProto(s) }
