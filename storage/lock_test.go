package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), LockName)
	l, err := LoadLock(p)
	if err != nil || l.Len() != 0 {
		t.Fatalf("a missing lock: %v, %d files", err, l.Len())
	}
	if saved, err := l.Save(); saved || err != nil {
		t.Fatalf("an unchanged lock was written: %v %v", saved, err)
	}
	l.SetFile("root://h//b.root", Identity{Size: 2, ModTime: 5, Checksum: "adler32:00000002"})
	l.SetFile("root://h//a.root", Identity{Size: 1, ModTime: 5})
	l.SetGlob("root://h//*.root", []string{"root://h//b.root", "root://h//a.root"})
	if saved, err := l.Save(); !saved || err != nil {
		t.Fatalf("save: %v %v", saved, err)
	}
	b, _ := os.ReadFile(p)
	if strings.Index(string(b), "a.root") > strings.Index(string(b), "b.root") || !strings.HasSuffix(string(b), "\n") {
		t.Errorf("the lock is not sorted, one entry a line:\n%s", b)
	}
	again, err := LoadLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := again.File("root://h//b.root"); id.Checksum != "adler32:00000002" || id.Size != 2 {
		t.Errorf("read back %+v", id)
	}
	if g, _ := again.Glob("root://h//*.root"); len(g) != 2 || g[0] != "root://h//a.root" {
		t.Errorf("glob read back %v", g)
	}
	again.Keep(map[string]bool{"root://h//a.root": true}, nil)
	again.Save()
	b, _ = os.ReadFile(p)
	if strings.Contains(string(b), "b.root") || strings.Contains(string(b), "globs") {
		t.Errorf("Keep left:\n%s", b)
	}
}

// TestLockBadFiles: a lock hepbuild cannot read is an error naming the
// file and what to do, never silently an empty lock.
func TestLockBadFiles(t *testing.T) {
	for name, content := range map[string]string{
		"not json":        "{",
		"other version":   `{"version": 2, "files": {}}`,
		"unknown field":   `{"version": 1, "files": {}, "extra": 1}`,
		"bad checksum":    `{"version": 1, "files": {"root://h//a": {"size": 1, "mtime": 0, "checksum": "crc99:1"}}}`,
		"negative size":   `{"version": 1, "files": {"root://h//a": {"size": -1, "mtime": 0}}}`,
		"checksum format": `{"version": 1, "files": {"root://h//a": {"size": 1, "mtime": 0, "checksum": "adler32"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), LockName)
			os.WriteFile(p, []byte(content), 0o644)
			_, err := LoadLock(p)
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("got %v, want an error naming %s", err, p)
			}
		})
	}
}

func TestParseChecksum(t *testing.T) {
	c, err := ParseChecksum("ADLER32:0A0B0C0D")
	if err != nil || c.String() != "adler32:0a0b0c0d" {
		t.Errorf("got %v %v", c, err)
	}
	for _, bad := range []string{"", "adler32", ":1", "md5:abc", "adler32:zz", "adler32:123"} {
		if _, err := ParseChecksum(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestConcurrentSavesMerge: two builds of one workspace, each recording
// the files it read, both save; neither loses the other's entries, and
// what one dropped (fetch) stays dropped. Before, each wrote the lock as
// it had read it at its start plus its own changes: the last to save
// erased what the other had recorded.
func TestConcurrentSavesMerge(t *testing.T) {
	p := filepath.Join(t.TempDir(), LockName)
	first, _ := LoadLock(p)
	first.SetFile("root://h//old.root", Identity{Size: 1})
	first.SetFile("root://h//gone.root", Identity{Size: 1})
	if _, err := first.Save(); err != nil {
		t.Fatal(err)
	}
	a, _ := LoadLock(p)
	b, _ := LoadLock(p)
	a.SetFile("root://h//a.root", Identity{Size: 2})
	a.SetGlob("root://h//*.root", []string{"root://h//a.root"})
	a.Keep(map[string]bool{"root://h//old.root": true, "root://h//a.root": true}, map[string]bool{"root://h//*.root": true})
	b.SetFile("root://h//b.root", Identity{Size: 3})
	b.SetFile("root://h//old.root", Identity{Size: 4})
	for _, l := range []*Lock{a, b} {
		if _, err := l.Save(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadLock(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"root://h//a.root": 2, "root://h//b.root": 3, "root://h//old.root": 4}
	if got.Len() != len(want) {
		t.Errorf("the lock has %d files, want %d", got.Len(), len(want))
	}
	for u, size := range want {
		if id, ok := got.File(u); !ok || id.Size != size {
			t.Errorf("%s: %+v, %v; want size %d", u, id, ok, size)
		}
	}
	if _, ok := got.Glob("root://h//*.root"); !ok {
		t.Error("the glob one build recorded is lost")
	}
}

// TestLockGlobListsOnlyMatches: offline, a glob's files come from the
// lock. A lock (a commit, a merge) listing under a pattern a URL the
// pattern cannot match is refused when read. Before, --offline took it as
// one of the dataset's files: file:///home/ana/.ssh/id_rsa, listed under
// root://h//data/*.root with its size and checksum, was downloaded into
// the output tree, read by the analysis and put in shared caches.
func TestLockGlobListsOnlyMatches(t *testing.T) {
	for _, bad := range []string{"file:///home/ana/.ssh/id_rsa", "root://h//data/sub/x.root", "root://h//data/..", "root://h//data/x.txt", "root://other//data/x.root"} {
		p := filepath.Join(t.TempDir(), LockName)
		body := `{"version": 1, "files": {}, "globs": {"root://h//data/*": ["root://h//data/a.root", "` + bad + `"]}}`
		if bad == "root://h//data/x.txt" {
			body = strings.Replace(body, `data/*"`, `data/*.root"`, 1)
		}
		os.WriteFile(p, []byte(body), 0o644)
		_, err := LoadLock(p)
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("a lock listing %s under the glob: %v, want an error", bad, err)
		}
	}
	p := filepath.Join(t.TempDir(), LockName)
	os.WriteFile(p, []byte(`{"version": 1, "files": {}, "globs": {"root://h//data/*.root": ["root://h//data/a.root", "root://h//data/b%20c.root"]}}`), 0o644)
	if _, err := LoadLock(p); err != nil {
		t.Errorf("a lock whose glob lists matches: %v", err)
	}
}
