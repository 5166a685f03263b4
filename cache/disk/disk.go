// Package disk is the local disk cache: a content-addressed store of blobs
// and an action cache in one folder, shared by all workspaces of a user and
// by several users on one shared file system.
//
// Layout (the version in the folder names lets a format change start afresh):
//
//	<dir>/cas.v1/<hash[:2]>/<hash>   blobs, exactly the bytes whose SHA-256 is <hash>
//	<dir>/ac.v2/<hash[:2]>/<hash>    action results, keyed by the action digest:
//	                                 names of packs of results (see pack.go)
//	<dir>/ac.v1/<hash[:2]>/<hash>    results of an older hepbuild, a file each
//
// Every blob is written to a temporary file in its shard, hashed while
// written, verified and renamed into place; an action result is appended
// whole to a pack before its name is linked to it (pack.go); so a concurrent
// writer never leaves a partial entry under an entry's name, and after a
// crash one whose bytes the disk did not keep fails its check.
// Entries are never trusted blindly either: a blob's size is checked on every
// lookup and its hash on every read, an action result carries a checksum of
// its own bytes and of the action digest it is stored under (so that an
// entry copied over another action's is a miss), and an entry that fails a
// check is removed and reported as a miss. A wrong result is never returned.
// With a signing key (WithSigningKey) results must also carry a valid
// HMAC-SHA256 under that key; anyone who can write the folder can otherwise
// add entries that verify.
//
// Recency for pruning is the entry's mtime, refreshed by reads at most once
// per touchInterval; all names of a pack share one.
package disk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hepbuild/hepbuild/cache"
)

const (
	casDir = "cas.v1"
	acDir  = "ac.v2"
	// acDirV1 holds results of hepbuild before packs, one file each:
	// read when ac.v2 has none, and pruned, never written. (An older
	// hepbuild, which would take a pack for a damaged entry and remove
	// it, keeps to ac.v1: both share the blobs.)
	acDirV1 = "ac.v1"
	// tmpPrefix starts the name of every file being written; entries are
	// named by 64 hex digits, so the two never collide.
	tmpPrefix = ".tmp-"
	// dirMode makes folders group-writable and setgid, so that the users of
	// a shared cache (one Unix group) can all add entries to every shard,
	// whoever created it.
	dirMode = 0o775 | fs.ModeSetgid
	// fileMode: entries are never modified in place. Read-only permissions
	// protect the blobs hard-linked into output trees from accidental writes.
	fileMode = 0o444
	// touchInterval bounds how often a read refreshes an entry's mtime:
	// a touch is a write of the inode, which a rebuild from the cache made
	// twice per action (result and blob): a tenth of the CPU of a 20,165-
	// action rebuild whose entries were last used half an hour before. An
	// entry's recency is the hour it was last used, which is all
	// `clean --cache --max-age` and --max-size need.
	touchInterval = time.Hour
)

// ErrReadOnly is returned (wrapped) by the writing methods of a Cache opened
// on a folder it cannot write.
var ErrReadOnly = errors.New("disk cache is read-only")

// ErrCorrupt is returned (wrapped) by a blob reader whose content does not
// match its digest; the entry has been removed from the cache.
var ErrCorrupt = errors.New("corrupt cache entry")

// Cache is a disk cache. It implements cache.Cache and is safe for concurrent
// use, by many goroutines and by many processes (of several users) on one
// folder.
type Cache struct {
	dir      string
	readOnly bool
	// hasV1: the folder of an older hepbuild's results (acDirV1) was
	// there when the cache was opened; a miss looks there only then.
	hasV1 bool
	// signingKey, when set, signs every action result written and is
	// required of every one read (see WithSigningKey).
	signingKey []byte

	// verified remembers, by hash, the file identity of blobs whose content
	// BlobPath has checked, so that linking a large output again does not
	// re-hash it. Entries are replaced only by rename (a new inode) and any
	// write in place changes ctime, so a stale identity never matches.
	verified sync.Map // string → fileID

	// shards are the shard folders this process has made or found, so that
	// each write does not ask the file system again. Nothing of hepbuild's
	// removes a shard folder of a cache in use; if one goes anyway (the
	// whole cache removed), the write that finds it missing makes it again.
	shards sync.Map // string → struct{}

	// pack is the pack this process writes action results into, and
	// packs the index of every pack read, by inode number (see pack.go).
	pack  packWriter
	packs sync.Map     // int64 → *packIndex
	kept  atomic.Int32 // packs kept open (packIndex.f)
}

var _ cache.Cache = (*Cache)(nil)

// Open opens the cache in dir, creating its folders as needed.
//
// Open returns an error when dir cannot be created or is not a folder, and a
// *NotOwnedError when it holds files that are not a cache's (see Marker). When
// dir exists but cannot be written (its permissions, a read-only mount),
// Open succeeds with a read-only Cache: lookups work, every write fails with
// ErrReadOnly, and ReadOnly reports it, so the caller can warn and build on.
func Open(dir string, opts ...Option) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("opening disk cache: no folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening disk cache %s: %w", dir, err)
	}
	c := &Cache{dir: abs}
	for _, o := range opts {
		o(c)
	}
	st, err := inspect(abs)
	if err != nil {
		return nil, fmt.Errorf("opening disk cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("opening disk cache %s: %w", abs, err)
	}
	fi, err := os.Lstat(filepath.Join(abs, acDirV1))
	c.hasV1 = err == nil && fi.IsDir()
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("opening disk cache %s: %s is a symbolic link; hepbuild follows no link inside its cache (remove it)", abs, filepath.Join(abs, acDirV1))
	}
	for _, d := range []string{abs, filepath.Join(abs, casDir), filepath.Join(abs, acDir)} {
		// The cache folder may be reached through a link (a cache home on
		// another disk); its own sub-folders may not: entries written or
		// removed there would be in a folder hepbuild does not own.
		if fi, err := os.Lstat(d); err == nil && d != abs && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("opening disk cache %s: %s is a symbolic link; hepbuild follows no link inside its cache (remove it)", abs, d)
		}
		if err := mkdirShared(d); err != nil {
			if isPermission(err) && isDir(abs) {
				c.readOnly = true
				return c, nil
			}
			return nil, fmt.Errorf("opening disk cache %s: %w", abs, err)
		}
		if d == abs && st != cache.FolderOwned {
			// Marked before its sub-folders are made: another process
			// opening the new cache meanwhile finds it empty, being
			// marked or marked, never half made and unmarked.
			if err := writeMarker(abs); err != nil {
				if isPermission(err) {
					c.readOnly = true
					return c, nil
				}
				return nil, fmt.Errorf("opening disk cache %s: marking it as hepbuild's: %w", abs, err)
			}
			st = cache.FolderOwned
		}
	}
	// The folders exist; can we add to them? (Root always can, except on a
	// read-only mount.)
	f, err := os.CreateTemp(filepath.Join(abs, casDir), tmpPrefix+"probe-*")
	if err != nil {
		if isPermission(err) {
			c.readOnly = true
			return c, nil
		}
		return nil, fmt.Errorf("opening disk cache %s: %w", abs, err)
	}
	f.Close()
	os.Remove(f.Name())
	return c, nil
}

// Dir returns the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// ReadOnly reports whether the cache folder could not be written when opened.
func (c *Cache) ReadOnly() bool { return c.readOnly }

// mkdirShared creates one folder, with dirMode regardless of the umask when
// the folder it is in is group-writable, and accepts a folder that exists
// (whoever made it, whatever its mode).
func mkdirShared(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		if !isDir(dir) {
			return fmt.Errorf("%s exists and is not a folder", dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	// A cache is shared by a group when its folder is group-writable (made
	// so by whoever set it up); only then are new folders made group-writable
	// too, whatever the umask. A personal cache stays the user's alone: in a
	// group-writable one, any member of the user's group could add entries.
	if parent, err := os.Stat(filepath.Dir(dir)); err != nil || parent.Mode().Perm()&0o020 == 0 {
		return nil
	}
	// Only the creator may chmod; we just created it.
	return os.Chmod(dir, dirMode)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !('0' <= h[i] && h[i] <= '9' || 'a' <= h[i] && h[i] <= 'f') {
			return false
		}
	}
	return true
}

func (c *Cache) path(kind, hash string) string {
	return filepath.Join(c.dir, kind, hash[:2], hash)
}

func checkDigest(d cache.Digest) error {
	if !validHash(d.Hash) || d.Size < 0 {
		return fmt.Errorf("invalid digest %q", d)
	}
	return nil
}

// Contains reports whether the blob is present with the right size. It does
// not read the blob: its hash is checked when it is read.
func (c *Cache) Contains(ctx context.Context, d cache.Digest) (bool, error) {
	if err := checkDigest(d); err != nil {
		return false, err
	}
	fi, err := os.Stat(c.path(casDir, d.Hash))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up %s: %w", d, err)
	}
	if fi.Size() != d.Size {
		return false, nil
	}
	touch(c.path(casDir, d.Hash), fi)
	return true, nil
}

// Get opens the blob. The reader hashes what it reads: if the content turns
// out not to match d, the read that reaches the end returns an error wrapping
// ErrCorrupt (never io.EOF) and the entry is removed. A size mismatch is
// found at once and reported as cache.ErrNotFound.
func (c *Cache) Get(ctx context.Context, d cache.Digest) (io.ReadCloser, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	p := c.path(casDir, d.Hash)
	// Opened without waiting (OpenRaw): a FIFO planted at the path would
	// otherwise hold the open until someone writes to it, beyond the
	// reach of any cancellation. Only a regular file is a blob.
	f, err := cache.OpenRaw(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != d.Size {
		f.Close()
		removeIfSame(p, fi)
		return nil, fmt.Errorf("blob %s has size %d on disk, removed: %w", d, fi.Size(), cache.ErrNotFound)
	}
	touch(p, fi)
	return &verifyingReader{f: f, fi: fi, path: p, want: d, h: cache.NewHasher()}, nil
}

// readBlob reads a small blob whole, verified like Get; a corrupt blob is
// removed and reported as cache.ErrNotFound. refresh marks it used.
func (c *Cache) readBlob(d cache.Digest, refresh bool) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	p := c.path(casDir, d.Hash)
	f, err := cache.OpenRaw(p) // see Get
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() {
		removeIfSame(p, fi)
		return nil, fmt.Errorf("blob %s is a %v, removed: %w", d, fi.Mode().Type(), cache.ErrNotFound)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d, err)
	}
	if got := cache.FromBytes(b); got != d {
		removeIfSame(p, fi)
		return nil, fmt.Errorf("blob %s: content hashes to %s, removed: %w", d, got, cache.ErrNotFound)
	}
	if refresh {
		touch(p, fi)
	}
	return b, nil
}

// verifyingReader hashes a blob as it is read and fails at the end if the
// content was not what its name promised.
type verifyingReader struct {
	f    *cache.RawFile
	fi   fs.FileInfo
	path string
	want cache.Digest
	h    *cache.Hasher
	err  error // sticky verification error
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := r.h.Digest(); got != r.want {
			removeIfSame(r.path, r.fi)
			r.err = fmt.Errorf("blob %s: content hashes to %s, removed: %w", r.want, got, ErrCorrupt)
			return n, r.err
		}
	}
	return n, err
}

// WriteTo copies through a large buffer; io.Copy would otherwise use 32 KiB.
func (r *verifyingReader) WriteTo(w io.Writer) (int64, error) {
	return cache.Copy(w, readerOnly{r})
}

func (r *verifyingReader) Close() error { return r.f.Close() }

type readerOnly struct{ io.Reader }

// Put stores the blob read from r, verifying that it matches d. It returns
// without reading r when the blob is already present.
func (c *Cache) Put(ctx context.Context, d cache.Digest, r io.Reader) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if c.readOnly {
		return fmt.Errorf("storing blob %s: %w", d, ErrReadOnly)
	}
	if fi, err := os.Stat(c.path(casDir, d.Hash)); err == nil && fi.Size() == d.Size {
		touch(c.path(casDir, d.Hash), fi)
		return nil
	}
	_, err := c.write(ctx, casDir, &d, r)
	if err != nil {
		return fmt.Errorf("storing blob %s: %w", d, err)
	}
	return nil
}

// write stores r as an entry of kind. For a blob, want is its expected
// digest (nil: name it by the digest of what was read); for an action result,
// want names the entry and the content is not hashed against it.
func (c *Cache) write(ctx context.Context, kind string, want *cache.Digest, r io.Reader) (cache.Digest, error) {
	// Before the name is known the file goes into the kind's folder; then it
	// is renamed into its shard (same file system, so rename is atomic).
	tmpDir := filepath.Join(c.dir, kind)
	if want != nil {
		tmpDir = filepath.Join(tmpDir, want.Hash[:2])
	}
	var f *os.File
	create := func() (err error) {
		f, err = createTemp(tmpDir)
		return err
	}
	var err error
	if want != nil {
		err = c.inShard(tmpDir, create)
	} else {
		err = create()
	}
	if err != nil {
		return cache.Digest{}, c.writeErr(err)
	}
	tmp := f.Name()
	fail := func(err error) (cache.Digest, error) {
		f.Close()
		os.Remove(tmp)
		return cache.Digest{}, err
	}
	h := cache.NewHasher()
	if _, err := cache.Copy(io.MultiWriter(f, h), ctxReader{ctx, r}); err != nil {
		return fail(err)
	}
	got := h.Digest()
	name := got.Hash
	if want != nil {
		if kind == casDir && got != *want {
			return fail(fmt.Errorf("content hashes to %s, want %s", got, want))
		}
		name = want.Hash
	}
	if err := f.Chmod(fileMode); err != nil {
		return fail(err)
	}
	// No fsync: it cost a disk round trip per action (most of a cheap
	// action's time). After a crash a renamed entry may hold less than its
	// content, but every read checks the size and hashes the content, and
	// action results carry their own checksum, so a torn entry is a miss and
	// is removed, never a wrong result.
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := c.renameInto(tmp, filepath.Join(c.dir, kind, name[:2]), name); err != nil {
		os.Remove(tmp)
		return cache.Digest{}, err
	}
	return got, nil
}

// createTemp creates a new file for writing, named tmpPrefix and a random
// suffix, in dir; like os.CreateTemp, but opened through cache.OpenFile,
// which saves four system calls per entry written.
func createTemp(dir string) (*os.File, error) {
	var rnd [8]byte
	for try := 0; ; try++ {
		rand.Read(rnd[:])
		f, err := cache.OpenFile(filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !errors.Is(err, fs.ErrExist) || try == 9 {
			return f, err
		}
	}
}

// shard makes sure the shard folder dir exists, asking the file system
// only the first time.
func (c *Cache) shard(dir string) error {
	if _, ok := c.shards.Load(dir); ok {
		return nil
	}
	if err := mkdirShared(dir); err != nil {
		return err
	}
	// As for cas.v1 and ac.v2 (see Open): entries go into folders the
	// cache owns, never through a link someone put in a shard's place.
	if fi, err := os.Lstat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder (a symbolic link?); hepbuild follows no link inside its cache (remove it)", dir)
	}
	c.shards.Store(dir, struct{}{})
	return nil
}

// inShard runs op, which makes a file in the shard folder dir, after
// making sure the folder exists, and once more after making it again if op
// found it gone.
func (c *Cache) inShard(dir string, op func() error) error {
	if err := c.shard(dir); err != nil {
		return err
	}
	err := op()
	if errors.Is(err, fs.ErrNotExist) && !isDir(dir) {
		c.shards.Delete(dir)
		if err := c.shard(dir); err != nil {
			return err
		}
		err = op()
	}
	return err
}

// renameInto renames the temporary file tmp to name in the shard folder
// dir, making the folder again if it went away. Not os.Rename, which
// stats the new name first (to refuse replacing a folder, which rename(2)
// refuses too when tmp is a file): a system call per entry stored.
func (c *Cache) renameInto(tmp, dir, name string) error {
	return c.inShard(dir, func() error {
		dst := filepath.Join(dir, name)
		if err := syscall.Rename(tmp, dst); err != nil {
			return &os.LinkError{Op: "rename", Old: tmp, New: dst, Err: err}
		}
		return nil
	})
}

func (c *Cache) writeErr(err error) error {
	if isPermission(err) {
		return fmt.Errorf("%w: %v", ErrReadOnly, err)
	}
	return err
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// BlobPath returns the path of the blob's file in the cache after checking
// its size and hash, so the executor can hard-link it into an output tree
// instead of copying it. It returns cache.ErrNotFound (wrapped) if the blob
// is absent or fails the check (a failing entry is removed).
//
// The file is shared by the cache and every tree linked to it: it must never
// be written to, truncated or chmod'ed. Its mode is 0444; link it only where
// a read-only, non-executable file is wanted, and copy it otherwise. Pruning
// the cache later removes the cache's name for the file, not the linked
// outputs, which keep their content.
func (c *Cache) BlobPath(d cache.Digest) (string, error) {
	p, _, err := c.BlobFile(d)
	return p, err
}

// BlobFile is BlobPath that also returns the stat of the verified file,
// taken through the descriptor it was hashed from: its size, mode and
// identity, without another stat of the path.
func (c *Cache) BlobFile(d cache.Digest) (string, fs.FileInfo, error) {
	if err := checkDigest(d); err != nil {
		return "", nil, err
	}
	p := c.path(casDir, d.Hash)
	if id, ok := c.verified.Load(d.Hash); ok {
		// Hashed by this process: one stat tells whether it is still
		// the very file (Lstat: a link to it is not, see below).
		fi, err := os.Lstat(p)
		if err == nil && id.(fileID) == idOf(fi) {
			touch(p, fi)
			return p, fi, nil
		}
	}
	// Hashed through one descriptor and remembered by that descriptor's
	// stat, taken before the hash: what is remembered as verified is the
	// file that was hashed, as it was, even if another one is renamed over
	// the path meanwhile or it is written to while being read.
	// Not through a symbolic link: a caller hard-links the path, and a
	// hard link to a link (which another member of a shared cache's group
	// can put there) would be a link to whatever it points to, whose
	// content may change after it was verified.
	f, err := cache.OpenRawNoFollow(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}
	if errors.Is(err, syscall.ELOOP) {
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			removeEntry(p) // the link, not what it points to
		}
		return "", nil, fmt.Errorf("blob %s is a symbolic link, removed: %w", d, cache.ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("looking up blob %s: %w", d, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("looking up blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != d.Size {
		removeIfSame(p, fi)
		return "", nil, fmt.Errorf("blob %s has size %d on disk, removed: %w", d, fi.Size(), cache.ErrNotFound)
	}
	// Touching changes its times: the stat remembered is the one after.
	if touch(p, fi) {
		if fi, err = f.Stat(); err != nil {
			return "", nil, fmt.Errorf("looking up blob %s: %w", d, err)
		}
	}
	// Read to the size its stat gave, not to the read that says it is
	// over (see CopyFile): a file that grew meanwhile still hashes to
	// another digest.
	h := blobHashers.Get().(*cache.Hasher)
	h.Reset()
	defer blobHashers.Put(h)
	if _, err := cache.CopyFile(h, f, fi.Size()); err != nil {
		return "", nil, fmt.Errorf("verifying blob %s: %w", d, err)
	}
	if !h.Matches(d) {
		removeIfSame(p, fi)
		return "", nil, fmt.Errorf("blob %s: content hashes to %s, removed: %w", d, h.Digest(), cache.ErrNotFound)
	}
	c.verified.Store(d.Hash, idOf(fi))
	return p, fi, nil
}

// blobHashers holds the Hashers BlobFile verifies blobs with: one per
// blob linked would be two allocations per restored output.
var blobHashers = sync.Pool{New: func() any { return cache.NewHasher() }}

// PutFile stores the file at path as a blob and returns its digest. On the
// cache's file system a non-executable file is stored by hard link, not
// copied, and made read-only (mode 0444): the file and the cache entry are
// then one inode, so the file's content must never change afterwards (the
// executor treats outputs as read-only). Executable files, and files on
// another file system, are copied. When the blob is already present, the
// file is left as it is.
func (c *Cache) PutFile(ctx context.Context, path string) (cache.Digest, error) {
	if c.readOnly {
		return cache.Digest{}, fmt.Errorf("storing %s: %w", path, ErrReadOnly)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return cache.Digest{}, fmt.Errorf("storing %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return cache.Digest{}, fmt.Errorf("storing %s: not a regular file", path)
	}
	if fi.Mode()&0o111 == 0 {
		d, err := c.link(ctx, path, fi)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, errCannotLink) {
			return cache.Digest{}, fmt.Errorf("storing %s: %w", path, err)
		}
	}
	f, err := cache.Open(path)
	if err != nil {
		return cache.Digest{}, fmt.Errorf("storing %s: %w", path, err)
	}
	defer f.Close()
	d, err := c.write(ctx, casDir, nil, f)
	if err != nil {
		return cache.Digest{}, fmt.Errorf("storing %s: %w", path, err)
	}
	return d, nil
}

var errCannotLink = errors.New("cannot hard-link")

// link stores path, which Lstat said is fi, by hard link. The link is made
// first, under a temporary name, and hashed through that name, so the
// digest is that of the inode that becomes the entry.
func (c *Cache) link(ctx context.Context, path string, fi fs.FileInfo) (cache.Digest, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(c.dir, casDir, tmpPrefix+"link-"+hex.EncodeToString(rnd[:]))
	if err := os.Link(path, tmp); err != nil {
		// EXDEV (another file system), EPERM (protected_hardlinks, no link
		// support), EMLINK: copying works in all of these.
		return cache.Digest{}, fmt.Errorf("%w: %v", errCannotLink, err)
	}
	d, err := cache.FromFile(tmp)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		os.Remove(tmp)
		return cache.Digest{}, err
	}
	final := c.path(casDir, d.Hash)
	if fi, err := os.Stat(final); err == nil && fi.Size() == d.Size {
		os.Remove(tmp)
		touch(final, fi)
		return d, nil
	}
	// The executor makes outputs read-only before it stores them: their
	// mode is usually the entry's already. All of the mode counts, not
	// only the permissions: a setuid, setgid or sticky bit goes too.
	// (Lstat came before the link: the file's owner may chmod it since,
	// but the owner may chmod the entry, the same inode, at any time.)
	if fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != fileMode {
		if err := os.Chmod(tmp, fileMode); err != nil {
			os.Remove(tmp)
			return cache.Digest{}, err
		}
	}
	if err := c.renameInto(tmp, filepath.Dir(final), filepath.Base(final)); err != nil {
		os.Remove(tmp)
		return cache.Digest{}, err
	}
	return d, nil
}

// fileID identifies the content of a file that is never written in place.
type fileID struct {
	ino, size   int64
	mtime, ctim int64
}

func idOf(fi fs.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = int64(st.Ino)
		id.ctim = cache.CtimeNano(st)
	}
	return id
}

// touch refreshes an entry's recency, at most once per touchInterval so that
// reads stay cheap, and says whether it tried. Failures are ignored (another
// user's entry in a shared cache just ages).
func touch(p string, fi fs.FileInfo) bool {
	if time.Since(fi.ModTime()) < touchInterval {
		return false
	}
	touchNow(p)
	return true
}

// removeIfSame removes the entry at p if it is still the file fi describes:
// a concurrent writer may have renamed a good entry over the bad one.
func removeIfSame(p string, fi fs.FileInfo) {
	cur, err := os.Stat(p)
	if err == nil && cache.SameInode(cur, fi) {
		removeEntry(p)
	}
}

// removeEntry removes the entry file p unless its shard folder is not a real
// folder. Lookups open entries through the shard's path, which follows a
// symbolic link that anyone who can write the cache's folders can put in a
// shard's place: what is read there is verified like any entry, but a
// removal would be of a file outside the cache.
func removeEntry(p string) {
	if d, err := os.Lstat(filepath.Dir(p)); err == nil && d.IsDir() {
		os.Remove(p)
	}
}
