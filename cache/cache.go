package cache

import (
	"context"
	"errors"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
)

// ErrNotFound is returned (possibly wrapped) when a blob or action result is not in the cache.
var ErrNotFound = errors.New("not found in cache")

// CAS is a content-addressed store of blobs. Implementations are safe for concurrent use.
type CAS interface {
	// Contains reports whether the blob is present.
	Contains(ctx context.Context, d Digest) (bool, error)
	// Get opens the blob; ErrNotFound if absent. A blob whose content does not
	// match its digest is never returned.
	Get(ctx context.Context, d Digest) (io.ReadCloser, error)
	// Put stores the blob read from r, verifying that it matches d.
	Put(ctx context.Context, d Digest, r io.Reader) error
}

// ActionCache maps action digests to their results. Implementations are safe for concurrent use.
type ActionCache interface {
	// GetActionResult returns the result stored for the action; ErrNotFound if absent.
	GetActionResult(ctx context.Context, action Digest) (*repb.ActionResult, error)
	// PutActionResult stores the result of the action.
	PutActionResult(ctx context.Context, action Digest, r *repb.ActionResult) error
}

// Cache is a CAS and an action cache together, as every backend offers both.
type Cache interface {
	CAS
	ActionCache
}

// ToProto converts a digest to its REAPI message.
func (d Digest) ToProto() *repb.Digest { return &repb.Digest{Hash: d.Hash, SizeBytes: d.Size} }

// FromProto converts a REAPI digest message.
func FromProto(p *repb.Digest) Digest {
	if p == nil {
		return Digest{}
	}
	return Digest{Hash: p.GetHash(), Size: p.GetSizeBytes()}
}
