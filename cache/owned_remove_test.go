package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// RemoveTree removes a file, nothing at all, a read-only folder tree and a
// symbolic link (never what it points to).
func TestRemoveTree(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o444)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "sub", "f"), []byte("x"), 0o444)
	os.Chmod(filepath.Join(tree, "sub"), 0o555)
	keep := filepath.Join(dir, "keep")
	os.MkdirAll(keep, 0o755)
	os.WriteFile(filepath.Join(keep, "f"), []byte("x"), 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(keep, link); err != nil {
		t.Fatal(err)
	}
	slashed := filepath.Join(dir, "slashed")
	if err := os.Symlink(keep, slashed); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(dir, "missing"), tree, link, slashed + "/"} {
		if err := RemoveTree(p); err != nil {
			t.Errorf("RemoveTree(%s): %v", p, err)
		}
		if _, err := os.Lstat(filepath.Clean(p)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(keep, "f")); err != nil {
		t.Errorf("the link's target was touched: %v", err)
	}
}
