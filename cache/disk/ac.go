package disk

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
)

// An action cache entry is acMagic, a checksum, the length of a signature
// (one byte: 0, or sha256.Size when signed) and the signature, then the
// payload: the deterministically serialized repb.ActionResult. Checksum and
// signature cover acMagic, the action's hash (the entry's name) and the
// payload: the checksum makes the entry self-verifying and binds it to its
// action, so an entry copied over another action's file is a miss, never
// that action's result; the signature, an HMAC-SHA256 with the cache's
// signing key, shows that a holder of the key wrote it. Version 1 entries
// (not bound to their action) are misses.
const acMagic = "hepac.v2"

const acHeaderSize = len(acMagic) + sha256.Size + 1

// acMessage feeds what an entry's checksum and signature cover to h.
func acMessage(h hash.Hash, action string, payload []byte) {
	h.Write([]byte(acMagic))
	h.Write([]byte(action))
	h.Write(payload)
}

// acChecker computes entries' checksums (what acMessage feeds, hashed)
// without the allocations of a new hash, of the action's bytes and of the
// sum for each entry read: one is read per restored action.
type acChecker struct {
	h    hash.Hash
	head []byte
	sum  [sha256.Size]byte
}

var acCheckers = sync.Pool{New: func() any { return &acChecker{h: sha256.New()} }}

// checksum returns the checksum of the entry of action with the payload,
// valid until c is used again.
func (c *acChecker) checksum(action string, payload []byte) []byte {
	c.h.Reset()
	c.head = append(append(c.head[:0], acMagic...), action...)
	c.h.Write(c.head)
	c.h.Write(payload)
	return c.h.Sum(c.sum[:0])
}

func encodeAC(action string, r *repb.ActionResult, key []byte) ([]byte, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, acHeaderSize+sha256.Size+len(payload))
	b = append(b, acMagic...)
	h := sha256.New()
	acMessage(h, action, payload)
	b = h.Sum(b)
	if key == nil {
		b = append(b, 0)
	} else {
		b = append(b, sha256.Size)
		m := hmac.New(sha256.New, key)
		acMessage(m, action, payload)
		b = m.Sum(b)
	}
	return append(b, payload...), nil
}

// errUnsigned says that an entry is intact and bound to its action but not
// signed with the cache's signing key.
var errUnsigned = errors.New("not signed with the cache signing key")

// decodeAC verifies the entry named action and returns its result. With a
// key, an entry without a valid signature fails with errUnsigned; without
// one, a signature is not checked (only a key holder could).
func decodeAC(action string, b []byte, key []byte) (*repb.ActionResult, error) {
	if len(b) < acHeaderSize || string(b[:len(acMagic)]) != acMagic {
		return nil, errors.New("bad header")
	}
	sum := b[len(acMagic) : len(acMagic)+sha256.Size]
	sigLen := int(b[acHeaderSize-1])
	if sigLen != 0 && sigLen != sha256.Size || len(b) < acHeaderSize+sigLen {
		return nil, errors.New("bad header")
	}
	sig, payload := b[acHeaderSize:acHeaderSize+sigLen], b[acHeaderSize+sigLen:]
	c := acCheckers.Get().(*acChecker)
	ok := bytes.Equal(c.checksum(action, payload), sum)
	acCheckers.Put(c)
	if !ok {
		return nil, errors.New("checksum mismatch: damaged, or the entry of another action")
	}
	var buf [sha256.Size]byte
	if key != nil {
		m := hmac.New(sha256.New, key)
		acMessage(m, action, payload)
		if sigLen == 0 || !hmac.Equal(m.Sum(buf[:0]), sig) {
			return nil, errUnsigned
		}
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
	r, err := c.readAC(action, true, true)
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

// GetActionResultEntry is GetActionResult without the check that the
// blobs the result references are present, for a caller that reads every
// one of them next (BlobFile) and treats one that is gone as a miss: it
// saves a stat per blob.
func (c *Cache) GetActionResultEntry(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	return c.readAC(action, true, true)
}

// readAC reads and verifies the entry, without checking its references.
// refresh marks it used; Prune reads without refreshing. signed checks the
// signature when the cache has a signing key; Prune does not, since an
// entry signed with another key is not damaged, only not ours to use.
func (c *Cache) readAC(action cache.Digest, refresh, signed bool) (*repb.ActionResult, error) {
	r, _, err := c.readACIn(acDir, action, refresh, signed)
	if errors.Is(err, errNoEntry) && c.hasV1 {
		// Perhaps written by an older hepbuild. A result used is copied
		// into a pack (signed, with a key), where the next lookups find
		// it at a pack's cost; an older hepbuild still finds it in ac.v1.
		r, _, err = c.readACIn(acDirV1, action, refresh, signed)
		if err == nil && refresh && !c.readOnly {
			_ = c.PutActionResult(context.Background(), action, r)
		}
	}
	return r, err
}

// testHookOpenEntry runs before an entry's name is opened.
var testHookOpenEntry func()

// errNoEntry (wrapping cache.ErrNotFound) says that there is no entry file.
var errNoEntry = fmt.Errorf("no entry: %w", cache.ErrNotFound)

// readACIn reads the entry in the folder kind, and returns its size too:
// its file's, or its record's in a pack.
func (c *Cache) readACIn(kind string, action cache.Digest, refresh, signed bool) (*repb.ActionResult, int64, error) {
	if err := checkDigest(action); err != nil {
		return nil, 0, err
	}
	var hash [32]byte
	if _, err := hex.Decode(hash[:], []byte(action.Hash)); err != nil {
		return nil, 0, err
	}
	p := c.path(kind, action.Hash)
	key := c.signingKey
	if !signed {
		key = nil
	}
	var r *repb.ActionResult
	decode := func(b []byte) (err error) {
		r, err = decodeAC(action.Hash, b, key)
		return err
	}
	// A name of a pack this process reads already is read without being
	// opened (see fromKeptPack).
	lfi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("action %s: %w", action, errNoEntry)
	}
	if err == nil {
		if b, ok := c.fromKeptPack(lfi, hash, decode); ok {
			if r == nil {
				err = decode(b) // unsigned: decoded says so
			}
			return c.decoded(p, lfi, action, r, b, err, refresh)
		}
		r = nil
	}
	if testHookOpenEntry != nil {
		testHookOpenEntry()
	}
	// Not through a symbolic link (which a member of a shared cache's
	// group can put there): what it points to is outside the cache, and
	// a hit would mark it used (touch).
	f, err := cache.OpenRawNoFollow(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("action %s: %w", action, errNoEntry)
	}
	if errors.Is(err, syscall.ELOOP) {
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			removeEntry(p) // the link, not what it points to
		}
		return nil, 0, fmt.Errorf("action result %s is a symbolic link, removed: %w", action, cache.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading action result %s: %w", action, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("reading action result %s: %w", action, err)
	}
	if !fi.Mode().IsRegular() {
		removeIfSame(p, fi)
		return nil, 0, fmt.Errorf("action result %s is not a regular file, removed: %w", action, cache.ErrNotFound)
	}
	b, ok, err := c.readEntryFile(f, fi, hash, decode)
	if err != nil {
		return nil, 0, fmt.Errorf("reading action result %s: %w", action, err)
	}
	if !ok {
		removeIfSame(p, fi)
		return nil, 0, fmt.Errorf("action result %s is damaged (its pack holds no whole entry of it), removed: %w", action, cache.ErrNotFound)
	}
	if r == nil {
		err = decode(b)
	}
	return c.decoded(p, fi, action, r, b, err, refresh)
}

// decoded ends a read of the entry b of action at p, whose stat is fi: r is
// what decoding it gave, with err.
func (c *Cache) decoded(p string, fi fs.FileInfo, action cache.Digest, r *repb.ActionResult, b []byte, err error, refresh bool) (*repb.ActionResult, int64, error) {
	if errors.Is(err, errUnsigned) {
		// Left in place: it may be a good entry for another key's holders,
		// and only a key holder's result replaces it.
		return nil, 0, fmt.Errorf("action result %s: %v: %w", action, err, cache.ErrNotFound)
	}
	if err != nil {
		removeIfSame(p, fi)
		return nil, 0, fmt.Errorf("action result %s is corrupt (%v), removed: %w", action, err, cache.ErrNotFound)
	}
	if refresh {
		touch(p, fi)
	}
	return r, int64(len(b)), nil
}

// references lists the blobs a result needs (see cache.References).
func (c *Cache) references(r *repb.ActionResult, refresh bool) ([]cache.Digest, error) {
	return cache.References(r, func(d cache.Digest) (*repb.Tree, error) { return c.readTree(d, refresh) })
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
	b, err := encodeAC(action.Hash, r, c.signingKey)
	if err != nil {
		return fmt.Errorf("storing action result %s: %w", action, err)
	}
	err = c.putPacked(action.Hash, b)
	if err == nil {
		return nil
	}
	if !errors.Is(err, errNoPacks) {
		return fmt.Errorf("storing action result %s: %w", action, err)
	}
	if _, err := c.write(ctx, acDir, &action, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("storing action result %s: %w", action, err)
	}
	return nil
}

// readEntry reads an entry of the given size (its stat's) to its end. An
// entry is renamed into place whole and never written again: a read that
// brings it to that size and returns less than asked for is its end, and
// saves the read that would return nothing. Anything else reads on to the
// end (a longer entry then fails its checksum), or to just past maxEntryFile.
func readEntry(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > maxEntryRead {
		size = 0
	}
	b := make([]byte, 0, size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		want := cap(b) - len(b)
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if int64(len(b)) == size && n < want || int64(len(b)) > maxEntryFile {
			// Past maxEntryFile: a file growing as it is read (its
			// caller takes one that long for no entry).
			return b, nil
		}
	}
}

// maxEntryRead bounds the buffer readEntry takes from a stat's size.
const maxEntryRead = 64 << 20
