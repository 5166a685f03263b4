package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Digest identifies a blob by its SHA-256 hash (lower-case hex) and size.
// Digests are small comparable values, usable as map keys.
type Digest struct {
	Hash string
	Size int64
}

// Empty is the digest of the empty blob.
var Empty = FromBytes(nil)

// String returns "hash/size", the form REAPI resource names use.
func (d Digest) String() string { return d.Hash + "/" + strconv.FormatInt(d.Size, 10) }

// IsZero reports whether d is the zero digest (not the digest of the empty blob).
func (d Digest) IsZero() bool { return d.Hash == "" }

// ParseDigest parses "hash/size".
func ParseDigest(s string) (Digest, error) {
	h, sz, ok := strings.Cut(s, "/")
	if !ok {
		return Digest{}, fmt.Errorf("invalid digest %q: want hash/size", s)
	}
	n, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || n < 0 {
		return Digest{}, fmt.Errorf("invalid digest %q: bad size", s)
	}
	if len(h) != sha256.Size*2 {
		return Digest{}, fmt.Errorf("invalid digest %q: hash must be %d hex digits", s, sha256.Size*2)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return Digest{}, fmt.Errorf("invalid digest %q: %v", s, err)
	}
	return Digest{Hash: strings.ToLower(h), Size: n}, nil
}

// MustParseDigest is ParseDigest for tests; it panics on error.
func MustParseDigest(s string) Digest {
	d, err := ParseDigest(s)
	if err != nil {
		panic(err)
	}
	return d
}

// FromBytes returns the digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest{Hash: hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// bufferSize is the read size for hashing. Large reads keep the syscall
// count low, so hashing runs at the speed of SHA-256 itself (SHA-NI where
// the CPU has it) rather than of 32 KiB read calls.
const bufferSize = 1 << 20

var buffers = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

// Hasher computes a Digest of everything written to it. It is not safe for
// concurrent use.
type Hasher struct {
	h    hash.Hash
	size int64
	sum  [sha256.Size]byte // where Sum writes, without an allocation each
}

// NewHasher returns a Hasher for the digest function the cache uses (SHA-256).
func NewHasher() *Hasher { return &Hasher{h: sha256.New()} }

// Write adds p to the hashed content; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.size += int64(len(p))
	return len(p), nil
}

// Reset forgets what was written, for the Hasher to be used again.
func (h *Hasher) Reset() {
	h.h.Reset()
	h.size = 0
}

// Digest returns the digest of what was written so far.
func (h *Hasher) Digest() Digest {
	var sum [sha256.Size]byte
	return Digest{Hash: hex.EncodeToString(h.h.Sum(sum[:0])), Size: h.size}
}

// Matches reports whether what was written so far has the digest d: Digest
// without the string it makes.
func (h *Hasher) Matches(d Digest) bool {
	if h.size != d.Size || len(d.Hash) != 2*sha256.Size {
		return false
	}
	var x [2 * sha256.Size]byte
	hex.Encode(x[:], h.h.Sum(h.sum[:0]))
	return string(x[:]) == d.Hash
}

// CopyFile is Copy from a regular file whose stat says it holds size bytes
// and which is never written in place (a cache entry, renamed into place
// whole): a read that brings it to that size and returns less than it
// asked for is its end (a read of a regular file returns less only there),
// which saves the read that would return nothing. Anything else reads on to
// the end, so that a file longer than its stat said is copied whole and
// its digest shows it.
func CopyFile(w io.Writer, r io.Reader, size int64) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			wm, werr := w.Write(buf[:m])
			n += int64(wm)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m > 0 && n == size && m < len(buf) {
			return n, nil
		}
	}
}

// Copy writes everything r yields to w, through a large pooled buffer. Unlike
// io.Copy it never hands the work to r's WriteTo, which for an *os.File
// falls back to 32 KiB reads.
func Copy(w io.Writer, r io.Reader) (int64, error) {
	return CopyFile(w, r, -1) // no size: to the end
}

// FromReader hashes everything r yields.
func FromReader(r io.Reader) (Digest, error) {
	h := NewHasher()
	if _, err := Copy(h, r); err != nil {
		return Digest{}, err
	}
	return h.Digest(), nil
}

// FromFile hashes the file at path.
func FromFile(path string) (Digest, error) {
	f, err := OpenRaw(path)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	d, err := FromReader(f)
	if err != nil {
		return Digest{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return d, nil
}
