package cache

import (
	"context"
	"errors"
	"fmt"
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

// References lists the blobs an action result needs: output files, stdout
// and stderr, and for output folders their Tree blobs and every file in
// them, read through readTree. A Tree that cannot be read is an error.
func References(r *repb.ActionResult, readTree func(Digest) (*repb.Tree, error)) ([]Digest, error) {
	var refs []Digest
	addRef := func(p *repb.Digest) {
		if p != nil && p.Hash != "" {
			refs = append(refs, FromProto(p))
		}
	}
	for _, f := range r.GetOutputFiles() {
		addRef(f.Digest)
	}
	addRef(r.GetStdoutDigest())
	addRef(r.GetStderrDigest())
	for _, d := range r.GetOutputDirectories() {
		addRef(d.RootDirectoryDigest)
		if d.TreeDigest == nil {
			continue
		}
		tree, err := readTree(FromProto(d.TreeDigest))
		if err != nil {
			return nil, fmt.Errorf("output folder %s: %w", d.Path, err)
		}
		addRef(d.TreeDigest)
		for _, dir := range append([]*repb.Directory{tree.GetRoot()}, tree.GetChildren()...) {
			for _, f := range dir.GetFiles() {
				addRef(f.Digest)
			}
		}
	}
	return refs, nil
}

type localOnlyKey struct{}

// WithLocalOnly marks calls made with the returned context as those of an
// action whose results stay on this machine (tags no-remote-cache and
// no-remote): a cache with a remote tier neither reads the action's result
// from the remote nor writes anything to it. Blobs may still be read from
// the remote: they are named by their content, and an input kept only in
// the remote is the same bytes wherever it comes from.
func WithLocalOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, localOnlyKey{}, true)
}

// LocalOnly reports whether ctx was marked by WithLocalOnly.
func LocalOnly(ctx context.Context) bool {
	v, _ := ctx.Value(localOnlyKey{}).(bool)
	return v
}
