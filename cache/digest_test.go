package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
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
