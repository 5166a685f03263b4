package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
)

// An action cache entry is acMagic, the SHA-256 of the payload, and the
// payload: the deterministically serialized repb.ActionResult. The checksum
// makes the entry self-verifying, as a blob is by its name.
const acMagic = "hepac.v1"

const acHeaderSize = len(acMagic) + sha256.Size

func encodeAC(r *repb.ActionResult) ([]byte, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	b := make([]byte, 0, acHeaderSize+len(payload))
	b = append(b, acMagic...)
	b = append(b, sum[:]...)
	return append(b, payload...), nil
}

func decodeAC(b []byte) (*repb.ActionResult, error) {
	if len(b) < acHeaderSize || string(b[:len(acMagic)]) != acMagic {
		return nil, errors.New("bad header")
	}
	payload := b[acHeaderSize:]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[len(acMagic):acHeaderSize]) {
		return nil, errors.New("checksum mismatch")
	}
	r := &repb.ActionResult{}
	if err := proto.Unmarshal(payload, r); err != nil {
		return nil, err
	}
	return r, nil
}

// GetActionResult returns the result stored for the action. It is a miss
// (cache.ErrNotFound) when there is none, when the entry is corrupt (it is
// then removed), and when any blob the result references is missing from
// the CAS, so that a hit can always be materialised, as far as this process
// can tell (a concurrent prune may still remove a blob later: callers treat
// a blob missing at materialisation as a miss too).
func (c *Cache) GetActionResult(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	r, err := c.readAC(action, true)
	if err != nil {
		return nil, err
	}
	refs, err := c.references(r, true)
	if err != nil {
		return nil, err
	}
	for _, d := range refs {
		ok, err := c.Contains(ctx, d)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("action %s: result references blob %s, which is gone: %w", action, d, cache.ErrNotFound)
		}
	}
	return r, nil
}

// readAC reads and verifies the entry, without checking its references.
// refresh marks it used; Prune reads without refreshing.
func (c *Cache) readAC(action cache.Digest, refresh bool) (*repb.ActionResult, error) {
	if err := checkDigest(action); err != nil {
		return nil, err
	}
	p := c.path(acDir, action.Hash)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("action %s: %w", action, cache.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading action result %s: %w", action, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading action result %s: %w", action, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading action result %s: %w", action, err)
	}
	r, err := decodeAC(b)
	if err != nil {
		removeIfSame(p, fi)
		return nil, fmt.Errorf("action result %s is corrupt (%v), removed: %w", action, err, cache.ErrNotFound)
	}
	if refresh {
		touch(p, fi)
	}
	return r, nil
}

// references lists the blobs a result needs: output files, stdout and
// stderr, and for output folders their Tree blobs and every file in them.
// A Tree blob that cannot be read makes the result a miss.
func (c *Cache) references(r *repb.ActionResult, refresh bool) ([]cache.Digest, error) {
	var refs []cache.Digest
	addRef := func(p *repb.Digest) {
		if p != nil && p.Hash != "" {
			refs = append(refs, cache.FromProto(p))
		}
	}
	for _, f := range r.OutputFiles {
		addRef(f.Digest)
	}
	addRef(r.StdoutDigest)
	addRef(r.StderrDigest)
	for _, d := range r.OutputDirectories {
		addRef(d.RootDirectoryDigest)
		if d.TreeDigest == nil {
			continue
		}
		tree, err := c.readTree(cache.FromProto(d.TreeDigest), refresh)
		if err != nil {
			return nil, fmt.Errorf("output folder %s: %w", d.Path, err)
		}
		addRef(d.TreeDigest)
		for _, dir := range append([]*repb.Directory{tree.Root}, tree.Children...) {
			for _, f := range dir.GetFiles() {
				addRef(f.Digest)
			}
		}
	}
	return refs, nil
}

func (c *Cache) readTree(d cache.Digest, refresh bool) (*repb.Tree, error) {
	b, err := c.readBlob(d, refresh)
	if err != nil {
		return nil, err
	}
	tree := &repb.Tree{}
	if err := proto.Unmarshal(b, tree); err != nil {
		return nil, fmt.Errorf("tree %s: %v: %w", d, err, cache.ErrNotFound)
	}
	return tree, nil
}

// PutActionResult stores the result of the action. It does not check that
// the referenced blobs are present: GetActionResult does, on every lookup.
func (c *Cache) PutActionResult(ctx context.Context, action cache.Digest, r *repb.ActionResult) error {
	if err := checkDigest(action); err != nil {
		return err
	}
	if c.readOnly {
		return fmt.Errorf("storing action result %s: %w", action, ErrReadOnly)
	}
	b, err := encodeAC(r)
	if err != nil {
		return fmt.Errorf("storing action result %s: %w", action, err)
	}
	if _, err := c.write(ctx, acDir, &action, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("storing action result %s: %w", action, err)
	}
	return nil
}
