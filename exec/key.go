package exec

import (
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
)

// Key is an action's identity, and the REAPI messages it was computed from.
type Key struct {
	// Digest is the digest of the serialized Action message: the action cache key.
	Digest  cache.Digest
	Action  *repb.Action
	Command *repb.Command
	// Blobs holds every serialized message (Action, Command, input Directories)
	// by digest, for upload to a remote cache or executor.
	Blobs map[cache.Digest][]byte
}

// Inputs gives the digest and executable bit of an input artifact.
type Inputs interface {
	Digest(a Artifact) (d cache.Digest, executable bool, err error)
}

// ComputeKey returns the key of an action whose inputs all exist.
//
// PLACEHOLDER: replaced by the REAPI Merkle-tree implementation.
func ComputeKey(a *Action, in Inputs) (*Key, error) {
	return &Key{Digest: cache.FromBytes([]byte(a.Owner.String() + a.Describe()))}, nil
}
