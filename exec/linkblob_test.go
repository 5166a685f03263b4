package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache"
)

// TestLinkBlob: a cached file goes straight to a free path, replaces a
// file or a symbolic link already there (never writing through the link),
// and leaves nothing behind in the output base.
func TestLinkBlob(t *testing.T) {
	base, ws, outside := t.TempDir(), t.TempDir(), t.TempDir()
	r := &Runner{OutputBase: base}
	blob := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(blob, []byte("cached"), 0o444); err != nil {
		t.Fatal(err)
	}
	d := cache.FromBytes([]byte("cached"))
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("not hepbuild's"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, prepare := range map[string]func(dst string) error{
		"free":    func(string) error { return nil },
		"file":    func(dst string) error { return os.WriteFile(dst, []byte("old"), 0o644) },
		"symlink": func(dst string) error { return os.Symlink(victim, dst) },
	} {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(ws, name)
			if err := prepare(dst); err != nil {
				t.Fatal(err)
			}
			linked, err := r.linkBlob(blob, d, dst)
			if !linked || err != nil {
				t.Fatalf("linkBlob = %v, %v; want linked", linked, err)
			}
			fi, err := os.Lstat(dst)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("dst is %v, %v; want a regular file", fi, err)
			}
			if b, _ := os.ReadFile(dst); string(b) != "cached" {
				t.Errorf("dst holds %q, want the blob", b)
			}
			if b, _ := os.ReadFile(victim); string(b) != "not hepbuild's" {
				t.Errorf("the symbolic link's target was written: %q", b)
			}
			if left, _ := os.ReadDir(filepath.Join(base, "tmp")); len(left) != 0 {
				t.Errorf("left in the output base: %v", left)
			}
		})
	}
}

// TestWellFormed: a digest from a result is well formed only when it is
// what ParseDigest would return for its string: 64 lower-case hex digits
// and a size of at least zero.
func TestWellFormed(t *testing.T) {
	good := cache.FromBytes([]byte("x"))
	for _, c := range []struct {
		d    cache.Digest
		want bool
	}{
		{good, true},
		{cache.Digest{Hash: good.Hash, Size: 0}, true},
		{cache.Digest{Hash: good.Hash, Size: -1}, false},
		{cache.Digest{Hash: strings.ToUpper(good.Hash), Size: 1}, false},
		{cache.Digest{Hash: good.Hash[:63], Size: 1}, false},
		{cache.Digest{Hash: good.Hash + "0", Size: 1}, false},
		{cache.Digest{Hash: good.Hash[:63] + "g", Size: 1}, false},
		{cache.Digest{Hash: good.Hash[:10] + "/" + good.Hash[11:], Size: 1}, false},
		{cache.Digest{}, false},
	} {
		if got := wellFormed(c.d); got != c.want {
			t.Errorf("wellFormed(%q) = %v, want %v", c.d, got, c.want)
		}
		p, err := cache.ParseDigest(c.d.String())
		if old := err == nil && p == c.d; old != c.want {
			t.Errorf("%q: ParseDigest says %v, the table %v", c.d, old, c.want)
		}
	}
}
