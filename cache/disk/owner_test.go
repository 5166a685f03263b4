package disk

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRefusesAFolderItDidNotMake: a folder holding other files is
// neither opened as a cache nor written to; an empty or new one is marked.
func TestOpenRefusesAFolderItDidNotMake(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "thesis.tex"), []byte("x"), 0o644)
	_, err := Open(home)
	var no *NotOwnedError
	if !errors.As(err, &no) {
		t.Fatalf("Open of a user's folder: %v, want a NotOwnedError", err)
	}
	if ents, _ := os.ReadDir(home); len(ents) != 1 {
		t.Errorf("Open of a user's folder wrote into it: %v", ents)
	}
	if _, err := Remove(home, RemoveOptions{}); !errors.As(err, &no) {
		t.Errorf("Remove of a user's folder: %v, want a NotOwnedError", err)
	}
	if _, err := os.Stat(filepath.Join(home, "thesis.tex")); err != nil {
		t.Errorf("Remove of a user's folder removed a file: %v", err)
	}
	for _, dir := range []string{filepath.Join(t.TempDir(), "new"), t.TempDir()} {
		if _, err := Open(dir); err != nil {
			t.Fatalf("Open %s: %v", dir, err)
		}
		if _, err := os.Stat(filepath.Join(dir, Marker)); err != nil {
			t.Errorf("Open %s wrote no marker: %v", dir, err)
		}
	}
}

// TestOpenRefusesLinkedSubfolders: cas.v1, ac.v2 or ac.v1 replaced by a link to a
// user's folder is refused instead of filled or pruned.
func TestOpenRefusesLinkedSubfolders(t *testing.T) {
	for _, sub := range []string{casDir, acDir, acDirV1} {
		dir := filepath.Join(t.TempDir(), "cache")
		if _, err := Open(dir); err != nil {
			t.Fatal(err)
		}
		user := t.TempDir()
		os.WriteFile(filepath.Join(user, "notes"), []byte("x"), 0o644)
		os.RemoveAll(filepath.Join(dir, sub))
		if err := os.Symlink(user, filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); err == nil {
			t.Errorf("Open with %s linked to a user's folder succeeded", sub)
		}
		if ents, _ := os.ReadDir(user); len(ents) != 1 {
			t.Errorf("the user's folder behind %s changed: %v", sub, ents)
		}
	}
}

// TestOpenWhileAnotherProcessMarksIt: two builds starting at once with a
// new cache folder. The one that comes second finds the folder as the
// first left it at any moment: empty, holding only the marker being
// written, or marked and being filled; it opens it, never refusing it as
// someone else's folder.
func TestOpenWhileAnotherProcessMarksIt(t *testing.T) {
	for name, make := range map[string]func(dir string) error{
		"empty": func(dir string) error { return os.Mkdir(dir, 0o755) },
		"marker written": func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, Marker), []byte(markerText), 0o644)
		},
		"marker being written": func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, tmpPrefix+"marker-123"), nil, 0o644)
		},
		"marked, cas.v1 made": func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "cas.v1"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, Marker), []byte(markerText), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			if err := make(dir); err != nil {
				t.Fatal(err)
			}
			c, err := Open(dir)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if c.ReadOnly() {
				t.Error("opened read-only")
			}
			if fi, err := os.Lstat(filepath.Join(dir, Marker)); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("no marker after Open: %v", err)
			}
		})
	}
	// A folder of one's own holding a file of that kind of name and
	// anything else is still refused.
	dir := t.TempDir()
	for _, f := range []string{tmpPrefix + "marker-1", "thesis.tex"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open took a folder holding thesis.tex")
	}
}
