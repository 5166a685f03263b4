package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// StatCache remembers the digest of files by (path, size, mtime, ctime, inode,
// device), so an unchanged input is never hashed twice, across builds. It is
// safe for concurrent use by many goroutines; two processes sharing one file
// each keep their own view, and the last Save wins (losing entries only costs
// a re-hash).
//
// An entry is trusted only if the file's mtime is older than the moment the
// entry was recorded (the "racy" rule of git and ninja): a file written in the
// same timestamp tick as it was hashed could change again without changing
// its stat data, so it is hashed again on the next lookup, which then records
// a trustworthy entry.
type StatCache struct {
	path    string
	hashes  atomic.Int64 // files hashed, for tests and statistics
	mu      sync.RWMutex // guards entries and dirty
	entries map[string]statEntry
	dirty   bool
}

type statEntry struct {
	fileStat
	recorded int64 // unix ns, taken before the stat that preceded hashing
	digest   Digest
}

// fileStat is what must be unchanged for an entry to stay valid.
type fileStat struct {
	size, mtime, ctime int64 // ns
	ino, dev           uint64
	mode               uint32 // permission bits
}

func (s fileStat) executable() bool { return s.mode&0o111 != 0 }

// racySlop widens the racy window below the recording moment. File
// timestamps come from the kernel's coarse clock (one tick, up to 10 ms,
// behind the time.Now we record) or from a file server's clock (NTP-close to
// ours), so a write just after recording may carry an mtime just before it.
const racySlop = 100 * time.Millisecond

// coarseSlop applies instead when the file system stores whole seconds
// (an mtime with zero nanoseconds): FAT has 2 s granularity.
const coarseSlop = 2 * time.Second

func (e *statEntry) racy() bool {
	slop := int64(racySlop)
	if e.mtime%int64(time.Second) == 0 {
		slop = int64(coarseSlop)
	}
	return e.mtime >= e.recorded-slop
}

// OpenStatCache opens the stat cache persisted at path, or starts an empty
// one if the file is missing, unreadable or corrupt: the cache only saves
// work, so a bad file is never an error.
func OpenStatCache(path string) (*StatCache, error) {
	s := &StatCache{path: path, entries: map[string]statEntry{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return s, nil
	}
	if entries, err := decodeStatCache(b); err == nil {
		s.entries = entries
	}
	return s, nil
}

// Digest returns the digest of the file at the absolute path.
func (s *StatCache) Digest(path string) (Digest, error) {
	d, _, err := s.DigestInfo(path)
	return d, err
}

// DigestInfo returns the digest of the file at the absolute path and whether
// it is executable (any execute permission bit set). Symbolic links are
// followed: the digest is that of the file they point to.
func (s *StatCache) DigestInfo(path string) (Digest, bool, error) {
	if !filepath.IsAbs(path) {
		return Digest{}, false, fmt.Errorf("stat cache: %s is not an absolute path", path)
	}
	recorded := time.Now().UnixNano()
	st, err := statFile(path)
	if err != nil {
		return Digest{}, false, err
	}
	return s.digestInfo(path, st, recorded)
}

// DigestInfoStat is DigestInfo for a file the caller has just stat'ed: fi
// is os.Stat of the absolute path (or os.Lstat, when it is no link), and
// recorded the time (unix ns) taken before that stat. It saves the stat.
func (s *StatCache) DigestInfoStat(path string, fi fs.FileInfo, recorded int64) (Digest, bool, error) {
	st, ok := fileStatOf(fi)
	if !ok || !filepath.IsAbs(path) {
		return s.DigestInfo(path)
	}
	return s.digestInfo(path, st, recorded)
}

func (s *StatCache) digestInfo(path string, st fileStat, recorded int64) (Digest, bool, error) {
	s.mu.RLock()
	e, ok := s.entries[path]
	s.mu.RUnlock()
	if ok && e.fileStat == st && !e.racy() {
		return e.digest, st.executable(), nil
	}

	// Hash, and make sure the file did not change meanwhile; a file being
	// written while we read it gets a few more tries, then an error.
	for attempt := 0; ; attempt++ {
		s.hashes.Add(1)
		d, err := FromFile(path)
		if err != nil {
			return Digest{}, false, err
		}
		after, err := statFile(path)
		if err != nil {
			return Digest{}, false, err
		}
		if after == st && d.Size == st.size {
			s.mu.Lock()
			s.entries[path] = statEntry{fileStat: st, recorded: recorded, digest: d}
			s.dirty = true
			s.mu.Unlock()
			return d, st.executable(), nil
		}
		if attempt == 2 {
			return Digest{}, false, fmt.Errorf("hashing %s: the file changed while it was read", path)
		}
		recorded, st = time.Now().UnixNano(), after
	}
}

// Save persists the cache, atomically: a temporary file renamed over the old
// one. It does nothing when no entry changed since the last Save.
func (s *StatCache) Save() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	b := encodeStatCache(s.entries)
	s.dirty = false
	s.mu.Unlock()

	err := writeFileAtomic(s.path, b)
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("saving stat cache: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// The file format: statMagic, then per entry the path (uvarint length and
// bytes), size, mtime, ctime, recorded (varints), inode, device, mode
// (uvarints) and the 32-byte SHA-256; then the SHA-256 of everything before,
// so that a torn or corrupt file is recognised and ignored.
const statMagic = "hepstat1"

func encodeStatCache(entries map[string]statEntry) []byte {
	b := make([]byte, 0, len(statMagic)+len(entries)*128+sha256.Size)
	b = append(b, statMagic...)
	var sum [sha256.Size]byte
	for p, e := range entries {
		if _, err := hex.Decode(sum[:], []byte(e.digest.Hash)); err != nil {
			continue // not a SHA-256 digest: never produced by DigestInfo
		}
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		b = binary.AppendVarint(b, e.size)
		b = binary.AppendVarint(b, e.mtime)
		b = binary.AppendVarint(b, e.ctime)
		b = binary.AppendVarint(b, e.recorded)
		b = binary.AppendUvarint(b, e.ino)
		b = binary.AppendUvarint(b, e.dev)
		b = binary.AppendUvarint(b, uint64(e.mode))
		b = append(b, sum[:]...)
	}
	check := sha256.Sum256(b)
	return append(b, check[:]...)
}

var errCorrupt = errors.New("corrupt stat cache")

func decodeStatCache(b []byte) (map[string]statEntry, error) {
	if len(b) < len(statMagic)+sha256.Size || string(b[:len(statMagic)]) != statMagic {
		return nil, errCorrupt
	}
	body, check := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], check) {
		return nil, errCorrupt
	}
	r := body[len(statMagic):]
	entries := map[string]statEntry{}
	uvarint := func() uint64 {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			r = nil
			return 0
		}
		r = r[n:]
		return v
	}
	varint := func() int64 {
		v, n := binary.Varint(r)
		if n <= 0 {
			r = nil
			return 0
		}
		r = r[n:]
		return v
	}
	for len(r) > 0 {
		n := uvarint()
		if uint64(len(r)) < n {
			return nil, errCorrupt
		}
		p := string(r[:n])
		r = r[n:]
		var e statEntry
		e.size, e.mtime, e.ctime, e.recorded = varint(), varint(), varint(), varint()
		e.ino, e.dev, e.mode = uvarint(), uvarint(), uint32(uvarint())
		if len(r) < sha256.Size {
			return nil, errCorrupt
		}
		e.digest = Digest{Hash: hex.EncodeToString(r[:sha256.Size]), Size: e.size}
		r = r[sha256.Size:]
		entries[p] = e
	}
	return entries, nil
}
