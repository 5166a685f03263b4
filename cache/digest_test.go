package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFromFileMatchesSHA256(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	// Sizes around the read buffer, where an off-by-one would show.
	for _, size := range []int{0, 1, 4095, bufferSize - 1, bufferSize, bufferSize + 1, 3*bufferSize + 17} {
		b := make([]byte, size)
		rng.Read(b)
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		want := Digest{Hash: hex.EncodeToString(sum[:]), Size: int64(size)}
		got, err := FromFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("size %d: FromFile = %v, want %v", size, got, want)
		}
		if got := FromBytes(b); got != want {
			t.Errorf("size %d: FromBytes = %v, want %v", size, got, want)
		}
		if got, _ := FromReader(bytes.NewReader(b)); got != want {
			t.Errorf("size %d: FromReader = %v, want %v", size, got, want)
		}
	}
}

func TestParseDigest(t *testing.T) {
	for _, s := range []string{Empty.String(), FromBytes([]byte("x")).String()} {
		d, err := ParseDigest(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDigest(%q) = %v, %v", s, d, err)
		}
	}
	for _, s := range []string{"", "abc/1", Empty.Hash, Empty.Hash + "/-1", Empty.Hash[:63] + "g/1"} {
		if _, err := ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) succeeded, want an error", s)
		}
	}
}

// BenchmarkFromFile hashes the file named by HEPBUILD_HASH_FILE (bench/hash.sh
// sets it to a 2 GB file), or a 256 MiB temporary file.
func BenchmarkFromFile(b *testing.B) {
	p := os.Getenv("HEPBUILD_HASH_FILE")
	if p == "" {
		p = filepath.Join(b.TempDir(), "blob")
		buf := make([]byte, 256<<20)
		rand.New(rand.NewSource(1)).Read(buf)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for b.Loop() {
		d, err := FromFile(p)
		if err != nil {
			b.Fatal(err)
		}
		if d.Size != fi.Size() {
			b.Fatalf("hashed %d bytes, file has %d", d.Size, fi.Size())
		}
	}
}

// countingReader counts the reads made of it.
type countingReader struct {
	r     *bytes.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestCopyFile: a file of the size its stat gave is copied without the
// read that returns nothing; one longer than that (it grew) is copied
// whole, so its digest is not the one the stat's size would suggest.
func TestCopyFile(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, size := range []int{0, 1, 10, bufferSize - 1, bufferSize, bufferSize + 1, 2*bufferSize + 3} {
		b := make([]byte, size+5)
		rng.Read(b)
		want := FromBytes(b[:size])

		exact := &countingReader{r: bytes.NewReader(b[:size])}
		h := NewHasher()
		if _, err := CopyFile(h, exact, int64(size)); err != nil {
			t.Fatal(err)
		}
		if !h.Matches(want) || h.Digest() != want {
			t.Errorf("size %d: CopyFile hashed %v, want %v", size, h.Digest(), want)
		}
		// Reads of the whole buffer, then one that returns less: the end.
		// An empty file needs the read that returns nothing.
		wantReads := size/bufferSize + 1
		if exact.reads != wantReads {
			t.Errorf("size %d: CopyFile made %d reads, want %d", size, exact.reads, wantReads)
		}

		longer := &countingReader{r: bytes.NewReader(b)}
		h = NewHasher()
		if _, err := CopyFile(h, longer, int64(size)); err != nil {
			t.Fatal(err)
		}
		if h.Matches(want) {
			t.Errorf("size %d: a file 5 bytes longer than its stat said matched the digest of its first %d bytes", size, size)
		}
		if got := FromBytes(b); h.Digest() != got {
			t.Errorf("size %d: a longer file hashed to %v, want %v (all of it)", size, h.Digest(), got)
		}
	}
}

func TestHasherMatches(t *testing.T) {
	h := NewHasher()
	h.Write([]byte("abc"))
	d := FromBytes([]byte("abc"))
	if !h.Matches(d) {
		t.Errorf("Matches(%v) = false for its own digest", d)
	}
	h.Reset()
	h.Write([]byte("ab"))
	if h.Matches(d) || h.Digest() != FromBytes([]byte("ab")) {
		t.Errorf("after Reset, the Hasher still counts what was written before")
	}
	h.Write([]byte("c"))
	for _, other := range []Digest{{Hash: d.Hash, Size: 4}, FromBytes([]byte("abd")), {Hash: d.Hash[:63], Size: 3}, {Hash: strings.ToUpper(d.Hash), Size: 3}} {
		if h.Matches(other) {
			t.Errorf("Matches(%v) = true, want false", other)
		}
	}
}
