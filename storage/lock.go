package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// LockName is the lock file's name at the workspace root.
const LockName = "hepbuild.lock"

// lockVersion is the format version the lock file records.
const lockVersion = 1

// Identity is what identifies a remote file's content without its bytes:
// its size and the checksum the storage keeps, or, where the storage
// keeps none, its size and modification time.
type Identity struct {
	Size int64 `json:"size"`
	// ModTime is the modification time in Unix seconds, as the storage
	// reported it.
	ModTime int64 `json:"mtime"`
	// Checksum is "adler32:<hex>", or empty when the storage keeps none.
	Checksum string `json:"checksum,omitempty"`
}

// Lock is hepbuild.lock: the identity of every remote file the workspace's
// builds read, and the files each remote_glob matched. It is readable
// JSON, sorted, meant to be committed: a build is reproducible from it,
// and `--offline` builds from it without asking storage anything.
// Safe for concurrent use.
type Lock struct {
	path string

	mu      sync.Mutex
	files   map[string]Identity
	globs   map[string][]string
	changed bool
	// What this process set and dropped since the lock was read: Save
	// applies them to the file as it is then, so that builds of the
	// workspace running at once do not erase each other's entries.
	setFiles map[string]Identity
	setGlobs map[string][]string
	dropped  map[string]bool // files
	droppedG map[string]bool // globs
}

type lockFile struct {
	Version int                 `json:"version"`
	Files   map[string]Identity `json:"files"`
	Globs   map[string][]string `json:"globs,omitempty"`
}

// LoadLock reads the lock file at path; a missing file is an empty lock.
func LoadLock(path string) (*Lock, error) {
	l, err := readLock(path)
	if err != nil {
		return nil, err
	}
	l.setFiles, l.setGlobs = map[string]Identity{}, map[string][]string{}
	l.dropped, l.droppedG = map[string]bool{}, map[string]bool{}
	return l, nil
}

func readLock(file string) (*Lock, error) {
	l := &Lock{path: file, files: map[string]Identity{}, globs: map[string][]string{}}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	var f lockFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: not a lock file hepbuild can read: %v (remove it and run hepbuild fetch to make a new one)", file, err)
	}
	if f.Version != lockVersion {
		return nil, fmt.Errorf("%s: version %d, this hepbuild reads version %d (run hepbuild fetch to rewrite it)", file, f.Version, lockVersion)
	}
	for u, id := range f.Files {
		if id.Checksum != "" {
			if _, err := ParseChecksum(id.Checksum); err != nil {
				return nil, fmt.Errorf("%s: %s: %v", file, Redact(u), err)
			}
		}
		if id.Size < 0 {
			return nil, fmt.Errorf("%s: %s: negative size", file, Redact(u))
		}
		l.files[u] = id
	}
	for p, us := range f.Globs {
		// Offline, a glob's files come from here: a lock that lists
		// what the pattern cannot match (file:///home/ana/.ssh/id_rsa
		// for root://h//data/*.root) would have it downloaded, read
		// and cached as the dataset.
		dir, last := splitURL(p)
		for _, u := range us {
			name, ok := strings.CutPrefix(u, dir)
			if ok {
				ok, _ = path.Match(last, name)
			}
			if !ok || name == "." || name == ".." || strings.Contains(name, "/") {
				return nil, fmt.Errorf("%s: the glob %s lists %s, which it does not match (remove the glob from the file and run hepbuild fetch)", file, Redact(p), Redact(u))
			}
		}
		l.globs[p] = us
	}
	return l, nil
}

// Path is where the lock file is.
func (l *Lock) Path() string { return l.path }

// File returns the recorded identity of the file at url.
func (l *Lock) File(url string) (Identity, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.files[url]
	return id, ok
}

// SetFile records the identity of the file at url.
func (l *Lock) SetFile(url string, id Identity) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.files[url]; !ok || old != id {
		l.files[url] = id
		l.setFiles[url] = id
		delete(l.dropped, url)
		l.changed = true
	}
}

// Glob returns the files a pattern matched when recorded.
func (l *Lock) Glob(pattern string) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	us, ok := l.globs[pattern]
	return us, ok
}

// SetGlob records the files a pattern matches.
func (l *Lock) SetGlob(pattern string, urls []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.globs[pattern]
	if !ok || !equalStrings(old, urls) {
		l.globs[pattern] = append([]string(nil), urls...)
		l.setGlobs[pattern] = l.globs[pattern]
		delete(l.droppedG, pattern)
		l.changed = true
	}
}

// Keep drops every file and glob not in the sets: what hepbuild fetch
// does over the whole workspace, so that the lock lists what is read.
func (l *Lock) Keep(files, globs map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u := range l.files {
		if !files[u] {
			delete(l.files, u)
			delete(l.setFiles, u)
			l.dropped[u] = true
			l.changed = true
		}
	}
	for p := range l.globs {
		if !globs[p] {
			delete(l.globs, p)
			delete(l.setGlobs, p)
			l.droppedG[p] = true
			l.changed = true
		}
	}
}

// Len is the number of files recorded.
func (l *Lock) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.files)
}

// Save writes the lock file if anything changed since it was read,
// applying the changes to the file as it is now (another build may have
// saved meanwhile), through a temporary file and a rename, so it is
// whole or as before.
func (l *Lock) Save() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.changed {
		return false, nil
	}
	// Another build may have saved since this one read the lock: apply
	// this one's changes to what is there now. A file that cannot be
	// read is replaced, as before.
	if now, err := readLock(l.path); err == nil {
		for u := range l.dropped {
			delete(now.files, u)
		}
		for p := range l.droppedG {
			delete(now.globs, p)
		}
		for u, id := range l.setFiles {
			now.files[u] = id
		}
		for p, us := range l.setGlobs {
			now.globs[p] = us
		}
		l.files, l.globs = now.files, now.globs
	}
	f := lockFile{Version: lockVersion, Files: l.files}
	if len(l.globs) > 0 {
		f.Globs = l.globs
		for _, us := range f.Globs {
			sort.Strings(us)
		}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return false, err
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(l.path), "."+LockName+".tmp-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return false, err
	}
	l.changed = false
	clear(l.setFiles)
	clear(l.setGlobs)
	clear(l.dropped)
	clear(l.droppedG)
	return true, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
