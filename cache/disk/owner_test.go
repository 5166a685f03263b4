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

// TestOpenRefusesLinkedSubfolders: cas.v1 or ac.v1 replaced by a link to a
// user's folder is refused instead of filled or pruned.
func TestOpenRefusesLinkedSubfolders(t *testing.T) {
	for _, sub := range []string{casDir, acDir} {
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
