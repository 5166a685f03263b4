package disk

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hepbuild/hepbuild/cache"
)

// Action results are written into packs: files that hold many entries, one
// after another, and that have no name of their own. Each result's entry
// name (ac.v2/<hash[:2]>/<hash>) is a hard link to the pack that holds it,
// made once the entry is written whole. A build so creates one file per
// packLimit bytes (or packNames results) instead of one per action: on a
// file system that has just deleted many files (every benchmark, every
// rm -rf of a large tree) each new inode can cost up to a millisecond of
// kernel time, which was most of hepbuild's own CPU per action.
//
// A pack is packMagic, then records: the entry's length (4 bytes, little
// endian), the action's hash (32 bytes), then the entry, exactly as a file
// of its own would hold it (see acMagic): checksummed and bound to its
// action, so a record read under another action's name is a miss. Only the
// process that made a pack appends to it, and only whole records before it
// links their names: a reader that opens a name finds the record complete.
// A name that leads to a pack without its action's record (a torn write
// after a crash, a link made by hand) is a damaged entry: a miss, removed.
//
// All names of a pack are one inode: their mtime is the pack's, which its
// writer's appends and any name's use refresh. An entry's recency for
// pruning is so that of the latest entry written or used of its pack.
const packMagic = "hepacpk1"

const packRecordHeader = 4 + 32

// packLimit is the size at which a writer starts a new pack (a variable
// for tests).
var packLimit int64 = 16 << 20

// maxEntryFile bounds what is read of a result's file: a pack stops growing
// at packLimit (but for a single result larger than that), and a file of
// gigabytes planted under a result's name would otherwise be read whole.
var maxEntryFile int64 = 256 << 20

// packNames bounds the names linked to one pack: ext4 allows a file 65,000
// (EMLINK beyond), and a pack of small results would reach that before
// packLimit.
var packNames = 60000

// errNoPacks says that packs cannot be made here (no anonymous files, no
// /proc): results are written as files of their own.
var errNoPacks = errors.New("packs not supported")

// packWriter is the pack this process appends results to.
type packWriter struct {
	mu       sync.Mutex
	f        *os.File
	off      int64
	names    int // names linked to the pack
	disabled bool
}

// packIndex locates the records of a pack read so far.
type packIndex struct {
	mu     sync.Mutex
	parsed int64 // bytes parsed: records beyond are read when looked for
	// seen is the pack's size when it was last read: bytes beyond are
	// appended since, and may hold a record that supersedes one indexed
	// (its writer stored the action's result again).
	seen int64
	recs map[[32]byte]packRecord
	// f, when set, is the pack, kept open, on device dev. While it is
	// open its inode cannot be freed (on a local file system: see
	// onLocalFS), so no other file can have its number: a name whose lstat gives that device and number is a
	// name of this very pack, read through f without opening the name.
	// Never closed (a closed descriptor's number could be reused while
	// another goroutine reads through it): keptPacks bounds them.
	f   *cache.RawFile
	dev uint64
}

// keptPacks bounds the packs a Cache keeps open for reading.
const keptPacks = 64

// testHookOnLocalFS is onLocalFS, which tests replace: a pack is kept open
// only on a local file system.
var testHookOnLocalFS = onLocalFS

type packRecord struct {
	off int64 // of the entry, after the record's header
	n   int64
}

// putPacked appends the entry of action to this process's pack and links
// the entry's name to it. errNoPacks: write the entry as a file instead.
func (c *Cache) putPacked(action string, entry []byte) error {
	var hash [32]byte
	if _, err := hex.Decode(hash[:], []byte(action)); err != nil {
		return err
	}
	rec := make([]byte, packRecordHeader, packRecordHeader+len(entry))
	binary.LittleEndian.PutUint32(rec, uint32(len(entry)))
	copy(rec[4:], hash[:])
	rec = append(rec, entry...)
	dir := filepath.Join(c.dir, acDir, action[:2])
	w := &c.pack
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.disabled {
		return errNoPacks
	}
	for {
		if w.f == nil || w.off+int64(len(rec)) > packLimit && w.off > int64(len(packMagic)) || w.names >= packNames {
			if err := c.startPack(); err != nil {
				return err
			}
		}
		if _, err := w.f.WriteAt(rec, w.off); err != nil {
			// The pack's end is now unknown: the next result goes into
			// a new one.
			w.drop()
			return c.writeErr(err)
		}
		w.off += int64(len(rec))
		err := c.inShard(dir, func() error { return c.linkPack(w.f, dir, action) })
		if err == nil {
			w.names++
			return nil
		}
		if isPermission(err) {
			// The shard folder is not this user's to write (in a
			// shared cache): the pack goes on for the other shards.
			return c.writeErr(err)
		}
		var taken *nameTakenError
		if errors.As(err, &taken) {
			// Linked under a temporary name, so the pack is fine: only
			// this name could not be replaced (a folder there, say).
			w.names++
			return c.writeErr(err)
		}
		first := w.names == 0
		w.drop()
		if first {
			// A new pack that cannot be linked (no /proc, a file
			// system that refuses): results are files of their own,
			// whose write says what is wrong if anything is.
			w.disabled = true
			return errNoPacks
		}
		// A pack whose every name was pruned cannot be linked again
		// (ENOENT), nor one with as many names as the file system
		// allows (EMLINK): the result goes into a new pack, whose first
		// link works or ends the use of packs.
	}
}

// startPack makes a new pack, without a name, in the action cache's folder
// (on its file system).
func (c *Cache) startPack() error {
	w := &c.pack
	w.drop()
	f, err := openAnonymous(filepath.Join(c.dir, acDir), fileMode)
	if errors.Is(err, errNoPacks) {
		w.disabled = true
		return err
	}
	if err != nil {
		return c.writeErr(err)
	}
	fail := func(err error) error {
		f.Close()
		return c.writeErr(err)
	}
	if _, err := f.WriteAt([]byte(packMagic), 0); err != nil {
		return fail(err)
	}
	// No index of what is written: a build seldom reads back its own
	// results, and one of 200,000 actions would keep 16 MB of it.
	w.f, w.off, w.names = f, int64(len(packMagic)), 0
	return nil
}

// drop closes the pack: the next result starts a new one.
func (w *packWriter) drop() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// linkPack gives the pack f the entry's name in dir. A name that exists
// (another result of the same action) is replaced, as a rename would.
func (c *Cache) linkPack(f *os.File, dir, name string) error {
	dst := filepath.Join(dir, name)
	err := linkAnonymous(f, dst)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, tmpPrefix+"pack-"+hex.EncodeToString(rnd[:]))
	if err := linkAnonymous(f, tmp); err != nil {
		return err
	}
	err = syscall.Rename(tmp, dst)
	// When dst was already a name of this pack, rename leaves both names:
	// tmp goes in any case.
	os.Remove(tmp)
	if err != nil {
		return &nameTakenError{&os.LinkError{Op: "rename", Old: tmp, New: dst, Err: err}}
	}
	return nil
}

// nameTakenError says that a pack, which could be linked, could not take
// the name of a result from what holds it.
type nameTakenError struct{ *os.LinkError }

func (e *nameTakenError) Unwrap() error { return e.LinkError }

// fromKeptPack returns the entry of the action hash from a pack this process keeps
// open, when fi, the lstat of the entry's name, says the name is one of
// them: a lookup is then an lstat and a pread. found is false otherwise,
// and when the entry is not there whole or fails check (the caller opens
// the name and looks again, and handles what it finds).
func (c *Cache) fromKeptPack(fi fs.FileInfo, hash [32]byte, check func([]byte) error) (b []byte, found bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return nil, false
	}
	v, ok := c.packs.Load(int64(st.Ino))
	if !ok {
		return nil, false
	}
	idx := v.(*packIndex)
	if idx.f == nil || idx.dev != uint64(st.Dev) {
		return nil, false
	}
	return indexed(idx, idx.f, fi, hash, check)
}

// indexed returns the entry of hash from the pack f, through its index,
// when it is there whole and passes check. An entry not signed with the
// cache's key passes: it is where it should be, and the caller says it is
// unsigned without reading the pack all again.
func indexed(idx *packIndex, f *cache.RawFile, fi fs.FileInfo, hash [32]byte, check func([]byte) error) ([]byte, bool) {
	b, ok, err := fromPack(idx, f, fi, hash)
	if err != nil || !ok {
		return nil, false
	}
	if cerr := check(b); cerr != nil && !errors.Is(cerr, errUnsigned) {
		return nil, false
	}
	return b, true
}

// readEntryFile returns the entry of the action hash from the open file f, whose
// stat is fi: the whole file for a result's own file, or its record in a
// pack. ok is false when f is a pack without a whole record of the action.
// check verifies an entry; one from a pack indexed earlier that fails it is
// looked for again from the file's start (its inode number may have been
// reused since by another file).
func (c *Cache) readEntryFile(f *cache.RawFile, fi fs.FileInfo, hash [32]byte, check func([]byte) error) (b []byte, ok bool, err error) {
	ino := idOf(fi).ino
	if v, found := c.packs.Load(ino); found {
		if b, ok := indexed(v.(*packIndex), f, fi, hash, check); ok {
			return b, true, nil
		}
		c.packs.Delete(ino)
	}
	if fi.Size() > maxEntryFile {
		return nil, false, nil
	}
	b, err = readEntry(f, fi.Size())
	if int64(len(b)) > maxEntryFile {
		return nil, false, nil // it grew: not a pack, which stops at packLimit
	}
	if err != nil || !bytes.HasPrefix(b, []byte(packMagic)) {
		return b, true, err
	}
	// A pack seen for the first time: index what was read.
	idx := &packIndex{recs: map[[32]byte]packRecord{}, seen: int64(len(b))}
	idx.parse(b, 0)
	r, found := idx.recs[hash]
	if !found {
		// Damaged, or not a pack of hepbuild's: the caller removes the
		// name, and the index is not kept.
		return nil, false, nil
	}
	// Counted only while below the bound, so that the count, which every
	// new index would raise, never wraps around to allow more.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && c.kept.Load() < keptPacks && testHookOnLocalFS(f) && c.kept.Add(1) <= keptPacks {
		if d, err := cache.DupRaw(f); err == nil {
			idx.f, idx.dev = d, uint64(st.Dev)
		}
	}
	c.packs.Store(ino, idx)
	return b[r.off : r.off+r.n], true, nil
}

// fromPack reads the record of hash from the pack f, indexed by idx so
// far: records appended since are indexed first.
func fromPack(idx *packIndex, f *cache.RawFile, fi fs.FileInfo, hash [32]byte) ([]byte, bool, error) {
	if fi.Size() > maxEntryFile {
		return nil, false, nil // not the pack that was indexed
	}
	idx.mu.Lock()
	r, found := idx.recs[hash]
	if fi.Size() > idx.parsed && fi.Size() > idx.seen {
		// Appended since it was last read: read even when the action's
		// record is indexed, since a later one of it replaces it (as it
		// does for a reader that parses the whole pack).
		from := idx.parsed
		tail := make([]byte, fi.Size()-from)
		n, err := f.ReadAt(tail, from)
		if err != nil && !errors.Is(err, io.EOF) {
			idx.mu.Unlock()
			return nil, false, err
		}
		idx.parse(tail[:n], from)
		idx.seen = from + int64(n)
		r, found = idx.recs[hash]
	}
	idx.mu.Unlock()
	if !found || r.off+r.n > fi.Size() {
		return nil, false, nil
	}
	b := make([]byte, r.n)
	if _, err := f.ReadAt(b, r.off); err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// parse indexes the whole records of b, read from offset at, and moves
// parsed past them. A pack's first bytes are its magic.
func (idx *packIndex) parse(b []byte, at int64) {
	i := 0
	if at == 0 {
		i = len(packMagic)
	}
	for len(b)-i >= packRecordHeader {
		n := int64(binary.LittleEndian.Uint32(b[i:]))
		if int64(len(b)-i-packRecordHeader) < n {
			break // not written whole yet
		}
		var h [32]byte
		copy(h[:], b[i+4:i+packRecordHeader])
		idx.recs[h] = packRecord{off: at + int64(i+packRecordHeader), n: n}
		i += packRecordHeader + int(n)
	}
	idx.parsed = at + int64(i)
}
