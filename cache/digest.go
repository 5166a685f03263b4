package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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

// FromReader hashes everything r yields.
func FromReader(r io.Reader) (Digest, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Digest{}, err
	}
	return Digest{Hash: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// FromFile hashes the file at path.
func FromFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	return FromReader(f)
}
