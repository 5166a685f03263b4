// Package folder is a remote cache in a shared folder (file://): the disk
// cache's own layout on a file system the group shares (NFS, CephFS, AFS,
// EOS through FUSE). It is a remote tier like the others, so a personal
// disk cache keeps hard links and speed while the shared folder collects
// everyone's results.
package folder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/cache/remote"
)

// Cache is a shared folder used as a remote cache. It is safe for
// concurrent use, by many processes of many users.
type Cache struct {
	*disk.Cache
	name  string
	limit int // transfers at once
}

var _ remote.Remote = (*Cache)(nil)

// Open opens file:///path as a remote cache. The folder is made a disk
// cache if it is empty; one holding other files is refused.
func Open(raw string, opts remote.Options) (*Cache, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
		return nil, fmt.Errorf("remote cache %q: want file:///absolute/folder", remote.RedactString(raw))
	}
	opts = opts.WithDefaults()
	d, err := disk.Open(u.Path)
	if err != nil {
		return nil, fmt.Errorf("remote cache %s: %w", remote.Redact(u), err)
	}
	return &Cache{Cache: d, name: remote.Redact(u), limit: opts.MaxConnections}, nil
}

// Name returns the folder's URL.
func (c *Cache) Name() string { return c.name }

// BatchLimit: a folder has no batch calls; every blob is a file.
func (c *Cache) BatchLimit() int64 { return 1 << 20 }

// Check says whether the folder can be written.
func (c *Cache) Check(ctx context.Context) (string, error) {
	if c.ReadOnly() {
		return "shared folder, read-only", nil
	}
	return "shared folder", nil
}

// Close does nothing: files need no connection.
func (c *Cache) Close() error { return nil }

// Put stores the blob; a folder this user cannot write refuses it.
func (c *Cache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	return denied(c.Cache.Put(ctx, d, r))
}

// PutActionResult stores the result; a folder this user cannot write refuses it.
func (c *Cache) PutActionResult(ctx context.Context, action cache.Digest, r *repb.ActionResult) error {
	return denied(c.Cache.PutActionResult(ctx, action, r))
}

func denied(err error) error {
	if errors.Is(err, disk.ErrReadOnly) {
		return fmt.Errorf("%w: %v", remote.ErrDenied, err)
	}
	return err
}

// perBlob does the batch calls one blob at a time: a folder has files, no batch calls.
func (c *Cache) perBlob() remote.PerBlob {
	return remote.PerBlob{Limit: c.limit, Contains: c.Contains, Get: c.Get, Put: c.Put}
}

// FindMissing checks each blob, at most the connection limit at once.
func (c *Cache) FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error) {
	return c.perBlob().FindMissing(ctx, ds)
}

// GetBatch reads each blob, at most the connection limit at once.
func (c *Cache) GetBatch(ctx context.Context, ds []cache.Digest) (map[cache.Digest][]byte, error) {
	return c.perBlob().GetBatch(ctx, ds)
}

// PutBatch stores each blob, at most the connection limit at once.
func (c *Cache) PutBatch(ctx context.Context, blobs map[cache.Digest][]byte) error {
	return c.perBlob().PutBatch(ctx, blobs)
}
