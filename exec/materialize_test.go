package exec_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
)

// memCache is an in-memory cache.Cache that counts its reads. Like a broken
// backend, its Get returns what it holds without verifying it, so tests can
// corrupt a blob and see the runner catch it.
type memCache struct {
	mu      sync.Mutex
	blobs   map[cache.Digest][]byte
	ac      map[cache.Digest][]byte
	reads   int
	served  map[cache.Digest]int // blobs returned by Get
	failAll error                // when set, every call fails with it
}

func newMemCache() *memCache {
	return &memCache{blobs: map[cache.Digest][]byte{}, ac: map[cache.Digest][]byte{}, served: map[cache.Digest]int{}}
}

func (m *memCache) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAll != nil {
		return false, m.failAll
	}
	_, ok := m.blobs[d]
	return ok, nil
}

func (m *memCache) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.failAll != nil {
		return nil, m.failAll
	}
	b, ok := m.blobs[d]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}
	m.served[d]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memCache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAll != nil {
		return m.failAll
	}
	if cache.FromBytes(b) != d {
		return fmt.Errorf("blob does not match %s", d)
	}
	m.blobs[d] = b
	return nil
}

func (m *memCache) GetActionResult(ctx context.Context, d cache.Digest) (*repb.ActionResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.failAll != nil {
		return nil, m.failAll
	}
	b, ok := m.ac[d]
	if !ok {
		return nil, fmt.Errorf("action %s: %w", d, cache.ErrNotFound)
	}
	res := &repb.ActionResult{}
	if err := proto.Unmarshal(b, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (m *memCache) PutActionResult(ctx context.Context, d cache.Digest, r *repb.ActionResult) error {
	b, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAll != nil {
		return m.failAll
	}
	m.ac[d] = b
	return nil
}

func (m *memCache) corrupt(d cache.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := append([]byte(nil), m.blobs[d]...)
	b[0] ^= 0xff
	m.blobs[d] = b
}

func (m *memCache) readCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads
}

func (m *memCache) blobCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blobs)
}

// servedCount says how often Get returned the blob.
func (m *memCache) servedCount(d cache.Digest) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.served[d]
}

func (m *memCache) remove(d cache.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blobs, d)
}
