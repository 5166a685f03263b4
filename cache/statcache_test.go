package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// writeOld writes a file and backdates its mtime, so the stat cache may
// trust it at once (see the racy rule).
func writeOld(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Add(time.Duration(time.Now().Nanosecond() % 1000))
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

func openStat(t *testing.T, path string) *StatCache {
	t.Helper()
	s, err := OpenStatCache(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStatCacheHitAndInvalidation(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "input.json")
	s := openStat(t, filepath.Join(dir, "stat.cache"))

	lookup := func(wantContent string, wantExec bool, wantHashes int64) {
		t.Helper()
		before := s.hashes.Load()
		d, x, err := s.DigestInfo(f)
		if err != nil {
			t.Fatal(err)
		}
		if want := FromBytes([]byte(wantContent)); d != want {
			t.Errorf("digest %v, want %v (content %q)", d, want, wantContent)
		}
		if x != wantExec {
			t.Errorf("executable %v, want %v", x, wantExec)
		}
		if got := s.hashes.Load() - before; got != wantHashes {
			t.Errorf("hashed %d times, want %d", got, wantHashes)
		}
	}

	writeOld(t, f, "one", 0o644)
	lookup("one", false, 1)
	lookup("one", false, 0)

	// Same size, mtime put back: only ctime (and maybe inode) tell.
	fi, _ := os.Stat(f)
	if err := os.WriteFile(f, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(f, fi.ModTime(), fi.ModTime())
	lookup("two", false, 1)
	lookup("two", false, 0)

	// Replaced by rename: new inode.
	tmp := filepath.Join(dir, "tmp")
	writeOld(t, tmp, "six", 0o644)
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	lookup("six", false, 1)

	// chmod +x changes ctime and the executable answer.
	if err := os.Chmod(f, 0o755); err != nil {
		t.Fatal(err)
	}
	lookup("six", true, 1)
	lookup("six", true, 0)
}

func TestStatCacheRacyEntriesAreRehashed(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "fresh")
	s := openStat(t, filepath.Join(dir, "stat.cache"))
	if err := os.WriteFile(f, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An mtime not older than the recording moment: the file could still
	// change within the same timestamp tick, so every lookup re-hashes.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(f, future, future); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Digest(f); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.hashes.Load(); got != 3 {
		t.Errorf("racy file hashed %d times in 3 lookups, want 3", got)
	}

	// Just written: racy at first (within racySlop of the recording), then,
	// once recorded later than its mtime, trusted.
	g := filepath.Join(dir, "just-written")
	if err := os.WriteFile(g, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.hashes.Store(0)
	s.Digest(g)
	time.Sleep(racySlop + 50*time.Millisecond)
	s.Digest(g)
	s.Digest(g)
	s.Digest(g)
	if got := s.hashes.Load(); got != 2 {
		t.Errorf("fresh file hashed %d times in 4 lookups, want 2", got)
	}
}

func TestStatCachePersists(t *testing.T) {
	dir := t.TempDir()
	cachePath := filepath.Join(dir, "sub", "stat.cache")
	var files []string
	for i := 0; i < 50; i++ {
		p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		writeOld(t, p, fmt.Sprint(i), 0o644)
		files = append(files, p)
	}
	s := openStat(t, cachePath)
	want := map[string]Digest{}
	for _, p := range files {
		d, err := s.Digest(p)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = d
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s2 := openStat(t, cachePath)
	for _, p := range files {
		d, err := s2.Digest(p)
		if err != nil {
			t.Fatal(err)
		}
		if d != want[p] {
			t.Errorf("%s: %v after reopening, want %v", p, d, want[p])
		}
	}
	if got := s2.hashes.Load(); got != 0 {
		t.Errorf("reopened cache hashed %d files, want 0", got)
	}
	if err := s2.Save(); err != nil { // nothing changed: no write
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(cachePath + ".tmp*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestStatCacheCorruptFileIsIgnored(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "in")
	writeOld(t, f, "data", 0o644)
	cachePath := filepath.Join(dir, "stat.cache")
	s := openStat(t, cachePath)
	want, _ := s.Digest(f)
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(statMagic)+3] ^= 0xff
	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not a stat cache at all, but long enough to have a checksum"),
		"truncated": good[:len(good)-1],
		"flipped":   flipped,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(cachePath, b, 0o644); err != nil {
				t.Fatal(err)
			}
			s := openStat(t, cachePath)
			if len(s.entries) != 0 {
				t.Errorf("%d entries from a corrupt file, want 0", len(s.entries))
			}
			if d, err := s.Digest(f); err != nil || d != want {
				t.Errorf("Digest = %v, %v; want %v", d, err, want)
			}
		})
	}
}

func TestStatCacheErrors(t *testing.T) {
	dir := t.TempDir()
	s := openStat(t, filepath.Join(dir, "stat.cache"))
	for _, p := range []string{"relative/path", dir, filepath.Join(dir, "missing")} {
		if d, err := s.Digest(p); err == nil {
			t.Errorf("Digest(%q) = %v, want an error", p, d)
		}
	}
}

func TestStatCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i := 0; i < 20; i++ {
		p := filepath.Join(dir, fmt.Sprint(i))
		writeOld(t, p, fmt.Sprint("content ", i), 0o644)
		files = append(files, p)
	}
	s := openStat(t, filepath.Join(dir, "stat.cache"))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := files[(g+i)%len(files)]
				d, err := s.Digest(p)
				if err != nil {
					t.Error(err)
					return
				}
				if want := FromBytes([]byte(fmt.Sprint("content ", (g+i)%len(files)))); d != want {
					t.Errorf("%s: %v, want %v", p, d, want)
				}
				if i%50 == 0 {
					if err := s.Save(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkStatCacheHits measures 20,000 lookups of unchanged files (one
// op), against BenchmarkStat20000, the bare stat calls they must make.
func BenchmarkStatCacheHits(b *testing.B) {
	files := benchFiles(b)
	s, _ := OpenStatCache(filepath.Join(b.TempDir(), "stat.cache"))
	for _, p := range files {
		if _, err := s.Digest(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, p := range files {
			if _, err := s.Digest(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	if h := s.hashes.Load(); h != int64(len(files)) {
		b.Fatalf("hashed %d times, want %d", h, len(files))
	}
}

func BenchmarkStat20000(b *testing.B) {
	files := benchFiles(b)
	b.ResetTimer()
	for b.Loop() {
		for _, p := range files {
			if _, err := statFile(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkStatCacheLoadSave opens and saves a cache of 20,000 entries.
func BenchmarkStatCacheLoadSave(b *testing.B) {
	files := benchFiles(b)
	path := filepath.Join(b.TempDir(), "stat.cache")
	s, _ := OpenStatCache(path)
	for _, p := range files {
		s.Digest(p)
	}
	s.Save()
	b.ResetTimer()
	for b.Loop() {
		s, _ := OpenStatCache(path)
		if len(s.entries) != len(files) {
			b.Fatalf("%d entries, want %d", len(s.entries), len(files))
		}
		s.dirty = true
		if err := s.Save(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFilesOnce holds 20,000 files shared by the benchmarks, removed by TestMain.
var benchFilesOnce struct {
	sync.Once
	dir   string
	files []string
}

func benchFiles(b *testing.B) []string {
	o := &benchFilesOnce
	o.Do(func() {
		dir, err := os.MkdirTemp("", "statcache-bench")
		if err != nil {
			b.Fatal(err)
		}
		o.dir = dir
		for i := 0; i < 20000; i++ {
			sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%100))
			os.MkdirAll(sub, 0o755)
			p := filepath.Join(sub, fmt.Sprintf("f%05d.root", i))
			writeOld(b, p, p, 0o644)
			o.files = append(o.files, p)
		}
	})
	return o.files
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFilesOnce.dir != "" {
		os.RemoveAll(benchFilesOnce.dir)
	}
	os.Exit(code)
}
