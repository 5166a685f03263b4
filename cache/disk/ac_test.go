package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
)

func acPath(c *Cache, action cache.Digest) string {
	return filepath.Join(c.Dir(), acDir, action.Hash[:2], action.Hash)
}

// entryOf returns the entry of action as its file holds it: the whole
// file, or the action's record in a pack.
func entryOf(t *testing.T, c *Cache, action cache.Digest) []byte {
	t.Helper()
	b, _ := entryAt(t, c, acPath(c, action), action)
	return b
}

// entryAt returns the entry of action in the file p and its offset there.
func entryAt(t *testing.T, c *Cache, p string, action cache.Digest) ([]byte, int64) {
	t.Helper()
	whole, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(whole, []byte(packMagic)) {
		return whole, 0
	}
	idx := &packIndex{recs: map[[32]byte]packRecord{}}
	idx.parse(whole, 0)
	var h [32]byte
	hex.Decode(h[:], []byte(action.Hash))
	r, ok := idx.recs[h]
	if !ok {
		t.Fatalf("the pack %s holds no record of %s", p, action)
	}
	return whole[r.off : r.off+r.n], r.off
}

// plant replaces the entry file of action with one holding b.
func plant(t *testing.T, c *Cache, action cache.Digest, b []byte) {
	t.Helper()
	p := acPath(c, action)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.Remove(p)
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
}

// packOf returns a pack of the records: action hashes and entries.
func packOf(recs ...any) []byte {
	b := []byte(packMagic)
	for i := 0; i < len(recs); i += 2 {
		var h [32]byte
		hex.Decode(h[:], []byte(recs[i].(cache.Digest).Hash))
		e := recs[i+1].([]byte)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(append(b, h[:]...), e...)
	}
	return b
}

// copyEntry puts the entry of from, as a file of its own, in place of that
// of to.
func copyEntry(t *testing.T, c *Cache, from, to cache.Digest) {
	t.Helper()
	plant(t, c, to, entryOf(t, c, from))
}

func openSigned(t *testing.T, dir string, key string) *Cache {
	t.Helper()
	var opts []Option
	if key != "" {
		opts = append(opts, WithSigningKey([]byte(key)))
	}
	c, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An entry copied over another action's entry is a miss for that action,
// never the first action's result.
func TestSwappedActionResultIsAMiss(t *testing.T) {
	for _, key := range []string{"", "a signing key of 32 bytes......."} {
		t.Run("key="+key, func(t *testing.T) {
			c := openSigned(t, filepath.Join(t.TempDir(), "cache"), key)
			r, _ := actionResult(t, c)
			a1, a2 := cache.FromBytes([]byte("action 1")), cache.FromBytes([]byte("action 2"))
			other := &repb.ActionResult{StdoutDigest: put(t, c, []byte("the other one")).ToProto()}
			if err := c.PutActionResult(ctx, a1, r); err != nil {
				t.Fatal(err)
			}
			if err := c.PutActionResult(ctx, a2, other); err != nil {
				t.Fatal(err)
			}
			e1 := entryOf(t, c, a1)
			for what, b := range map[string][]byte{
				"a copied entry": e1,
				"a pack with a2's record holding a1's entry": packOf(a2, e1),
				"a pack of a1's record":                      packOf(a1, e1),
			} {
				plant(t, c, a2, b)
				got, err := c.GetActionResult(ctx, a2)
				if !errors.Is(err, cache.ErrNotFound) {
					t.Fatalf("GetActionResult of %s: %v, %v; want a miss", what, got, err)
				}
				if _, err := os.Stat(acPath(c, a2)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s is still there: %v", what, err)
				}
			}
			if _, err := c.GetActionResult(ctx, a1); err != nil {
				t.Errorf("the original entry: %v", err)
			}
		})
	}
}

// Entries of the first format, which were not bound to their action, are
// misses.
func TestVersion1ActionResultIsAMiss(t *testing.T) {
	c := open(t)
	r, _ := actionResult(t, c)
	action := cache.FromBytes([]byte("action"))
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	old := append(append([]byte("hepac.v1"), sum[:]...), payload...)
	p := acPath(c, action)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, old, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetActionResult(ctx, action); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("GetActionResult of a version 1 entry: %v, want a miss", err)
	}
}

// A cache with a signing key takes only entries signed with that key; it
// leaves the others in place. A cache without one checks only the binding.
func TestSignedActionResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	const key1, key2 = "first key, shared by the group", "second key, somebody else's...."
	plain, signed1, signed2 := openSigned(t, dir, ""), openSigned(t, dir, key1), openSigned(t, dir, key2)
	r, _ := actionResult(t, plain)
	unsignedAction := cache.FromBytes([]byte("written without a key"))
	otherKeyAction := cache.FromBytes([]byte("written with another key"))
	goodAction := cache.FromBytes([]byte("written with the key"))
	for _, w := range []struct {
		c      *Cache
		action cache.Digest
	}{{plain, unsignedAction}, {signed2, otherKeyAction}, {signed1, goodAction}} {
		if err := w.c.PutActionResult(ctx, w.action, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []cache.Digest{unsignedAction, otherKeyAction} {
		if _, err := signed1.GetActionResult(ctx, a); !errors.Is(err, cache.ErrNotFound) || !strings.Contains(err.Error(), "not signed with the cache signing key") {
			t.Errorf("signed cache, entry %s: %v; want a miss for want of a signature", a, err)
		}
		if _, err := os.Stat(acPath(plain, a)); err != nil {
			t.Errorf("the signed cache removed an entry it could not verify: %v", err)
		}
	}
	if _, err := signed1.GetActionResult(ctx, goodAction); err != nil {
		t.Errorf("signed cache, its own entry: %v", err)
	}
	for _, a := range []cache.Digest{unsignedAction, otherKeyAction, goodAction} {
		if _, err := plain.GetActionResult(ctx, a); err != nil {
			t.Errorf("cache without a key, entry %s: %v", a, err)
		}
	}
	// A flipped signature byte: a miss, and never anything else.
	_, at := entryAt(t, plain, acPath(plain, goodAction), goodAction)
	corrupt(t, acPath(plain, goodAction), int(at)+acHeaderSize+3)
	if _, err := signed1.GetActionResult(ctx, goodAction); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("signed cache, forged signature: %v; want a miss", err)
	}
	// The signed entry copied over another action's entry: a miss too.
	if err := signed1.PutActionResult(ctx, goodAction, r); err != nil {
		t.Fatal(err)
	}
	copyEntry(t, plain, goodAction, unsignedAction)
	if _, err := signed1.GetActionResult(ctx, unsignedAction); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("signed entry under another action's name: %v; want a miss", err)
	}
	// Signed entries in the folder do not stop a prune.
	if _, err := plain.Prune(ctx, PruneOptions{MaxSize: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestReadSigningKey(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-signing-key-material-0123456789"
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", secret+"\n", 0o600)
	if key, err := ReadSigningKey(good); err != nil || string(key) != secret {
		t.Errorf("ReadSigningKey(0600 file) = %d bytes, %v; want the secret", len(key), err)
	}
	if err := os.Symlink(good, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSigningKey(filepath.Join(dir, "link")); err != nil {
		t.Errorf("a link to a good key: %v", err)
	}
	for name, tc := range map[string]struct {
		path string
		want string
	}{
		"world readable": {write("open", secret, 0o644), "permissions 0644 are too open"},
		"group readable": {write("group", secret, 0o640), "permissions 0640 are too open"},
		"group writable": {write("gw", secret, 0o620), "permissions 0620 are too open"},
		"folder":         {dir, "not a regular file"},
		"fifo":           {fifo(t, filepath.Join(dir, "fifo")), "not a regular file"},
		"short":          {write("short", "abc\n", 0o600), "shorter than 16 bytes"},
		"missing":        {filepath.Join(dir, "none"), "no such file"},
		"someone else's": {chowned(t, write("theirs", secret, 0o600)), "owned by user"},
		"open folder":    {openFolderKey(t, secret), "writable by everyone"},
	} {
		_, err := ReadSigningKey(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) && name != "missing" {
			t.Errorf("%s: %v; want an error naming the file with %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
	if fi, err := os.Stat(good); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file changed: %v %v", fi.Mode(), err)
	}
}

// BenchmarkActionResultLookup is the cost of a hit: read, verify and decode
// an entry and check that its blobs are present.
func BenchmarkActionResultLookup(b *testing.B) {
	for _, key := range []string{"", "a signing key of 32 bytes......."} {
		name := "unsigned"
		if key != "" {
			name = "signed"
		}
		b.Run(name, func(b *testing.B) {
			var opts []Option
			if key != "" {
				opts = append(opts, WithSigningKey([]byte(key)))
			}
			c, err := Open(filepath.Join(b.TempDir(), "cache"), opts...)
			if err != nil {
				b.Fatal(err)
			}
			r := &repb.ActionResult{}
			for i := 0; i < 10; i++ {
				d := put(b, c, []byte(strings.Repeat("x", i+1)))
				r.OutputFiles = append(r.OutputFiles, &repb.OutputFile{Path: "hepbuild-out/pkg/file" + string(rune('a'+i)), Digest: d.ToProto()})
			}
			action := cache.FromBytes([]byte("action"))
			if err := c.PutActionResult(ctx, action, r); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.GetActionResult(ctx, action); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeActionResult is the verification alone, without file I/O:
// what binding an entry to its action (and a signature) adds to a hit.
func BenchmarkDecodeActionResult(b *testing.B) {
	r := &repb.ActionResult{}
	for i := 0; i < 10; i++ {
		d := cache.FromBytes([]byte(strings.Repeat("x", i+1)))
		r.OutputFiles = append(r.OutputFiles, &repb.OutputFile{Path: "hepbuild-out/pkg/file" + string(rune('a'+i)), Digest: d.ToProto()})
	}
	action := cache.FromBytes([]byte("action")).Hash
	for _, key := range []string{"", "a signing key of 32 bytes......."} {
		name := "unsigned"
		var k []byte
		if key != "" {
			name, k = "signed", []byte(key)
		}
		b.Run(name, func(b *testing.B) {
			e, err := encodeAC(action, r, k)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if _, err := decodeAC(action, e, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fifo makes a named pipe: opening it for reading would wait for a writer.
func fifo(t *testing.T, p string) string {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// chowned gives the file to another user (the tests run as root), or skips:
// only root can.
func chowned(t *testing.T, p string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	if err := os.Chown(p, 4321, 4321); err != nil {
		t.Fatal(err)
	}
	return p
}

// openFolderKey is a good key file in a folder everyone may write to.
func openFolderKey(t *testing.T, secret string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadEntry: an entry is read whole whatever its reader returns at a
// time, in one read when its size is right, and to the end when the size
// it was given is short.
func TestReadEntry(t *testing.T) {
	for _, n := range []int{0, 1, 148, 4096, 70000} {
		b := bytes.Repeat([]byte("entry-bytes"), n/11+1)[:n]
		for name, r := range map[string]func() io.Reader{
			"whole":    func() io.Reader { return bytes.NewReader(b) },
			"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
			"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
			"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		} {
			for _, size := range []int64{int64(n), 0, -1, int64(n) + 7} {
				got, err := readEntry(r(), size)
				// A reader that returns less than asked for at exactly the
				// given size is trusted to be at its end only when that
				// size is the whole: files return short reads only there.
				if size < int64(n) && size > 0 && (name == "one byte" || name == "half") {
					continue
				}
				if err != nil || !bytes.Equal(got, b) {
					t.Errorf("%d bytes, %s, size %d: %d bytes, %v", n, name, size, len(got), err)
				}
			}
		}
	}
}

// TestBlobPathFIFO: a FIFO planted where a blob (the empty one, whose
// size it matches) should be is no blob, and looking it up does not wait
// for a writer.
func TestBlobPathFIFO(t *testing.T) {
	c := open(t)
	d := put(t, c, []byte{})
	p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.BlobPath(d); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("BlobPath of a FIFO: %v, want ErrNotFound", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("BlobPath waits on a FIFO at the blob's path")
	}
}

// TestGetFIFO: a FIFO planted where a blob should be (by anyone who can
// write a shared cache) is no blob: Get and the reads of a result's
// trees return at once instead of waiting in open for a writer, which
// no cancellation ends.
func TestGetFIFO(t *testing.T) {
	c := open(t)
	d := put(t, c, []byte{})
	p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	fifo(t, p)
	for name, read := range map[string]func() error{
		"Get": func() error {
			rc, err := c.Get(context.Background(), d)
			if err == nil {
				rc.Close()
			}
			return err
		},
		"readBlob": func() error { _, err := c.readBlob(d, false); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- read() }()
		select {
		case err := <-done:
			if !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("%s of a FIFO: %v, want ErrNotFound", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s waits on a FIFO at the blob's path", name)
		}
		if _, err := os.Lstat(p); err != nil {
			fifo(t, p) // removed as a bad entry: plant it again
		}
	}
}
