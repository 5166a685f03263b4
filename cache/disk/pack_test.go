package disk

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hepbuild/hepbuild/cache"
)

// results returns n actions and a result for each, whose stdout names it.
func results(t *testing.T, c *Cache, n int, tag string) ([]cache.Digest, []*repb.ActionResult) {
	t.Helper()
	var as []cache.Digest
	var rs []*repb.ActionResult
	for i := 0; i < n; i++ {
		as = append(as, cache.FromBytes([]byte(fmt.Sprintf("action %s %d", tag, i))))
		rs = append(rs, &repb.ActionResult{StdoutDigest: put(t, c, []byte(fmt.Sprintf("stdout of %s %d", tag, i))).ToProto()})
	}
	return as, rs
}

// store writes the results of the actions into c.
func store(t *testing.T, c *Cache, as []cache.Digest, rs []*repb.ActionResult) {
	t.Helper()
	for i := range as {
		if err := c.PutActionResult(ctx, as[i], rs[i]); err != nil {
			t.Fatal(err)
		}
	}
}

func inode(t *testing.T, p string) (ino uint64, links uint64) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Ino, uint64(st.Nlink)
}

// The results one process writes are one file, a name each: a build makes
// one inode per pack, not one per action. Another process reads them all.
func TestResultsShareAPack(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 50, "x")
	store(t, c, as, rs)
	first, links := inode(t, acPath(c, as[0]))
	if links != 50 {
		t.Errorf("the pack has %d names, want 50", links)
	}
	other := reopen(t, c)
	for i := range as {
		if ino, _ := inode(t, acPath(c, as[i])); ino != first {
			t.Errorf("result %d is in another file", i)
		}
		got, err := other.GetActionResult(ctx, as[i])
		if err != nil {
			t.Fatalf("result %d, read by another process: %v", i, err)
		}
		if diff := cmp.Diff(rs[i], got, protocmp.Transform()); diff != "" {
			t.Errorf("result %d (-want +got):\n%s", i, diff)
		}
	}
	if tmp := leftovers(t, c.Dir()); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// A process that indexed a pack finds the results appended to it since,
// reading only what was appended (not the whole pack again).
func TestReaderFindsResultsAppendedSince(t *testing.T) {
	writer := open(t)
	as, rs := results(t, writer, 3, "y")
	reader := reopen(t, writer)
	var idx *packIndex
	for i := range as {
		if err := writer.PutActionResult(ctx, as[i], rs[i]); err != nil {
			t.Fatal(err)
		}
		for j := 0; j <= i; j++ {
			if _, err := reader.GetActionResult(ctx, as[j]); err != nil {
				t.Fatalf("after %d results, result %d: %v", i+1, j, err)
			}
		}
		ino, _ := inode(t, acPath(writer, as[0]))
		v, ok := reader.packs.Load(int64(ino))
		if !ok {
			t.Fatal("the reader has no index of the pack")
		}
		if idx != nil && v.(*packIndex) != idx {
			t.Errorf("after %d results the reader indexed the pack anew", i+1)
		}
		idx = v.(*packIndex)
	}
}

// A writer starts a new pack at packLimit.
func TestPacksEndAtTheirLimit(t *testing.T) {
	defer func(l int64) { packLimit = l }(packLimit)
	packLimit = 1000
	c := open(t)
	as, rs := results(t, c, 20, "z")
	files := map[uint64]bool{}
	for i := range as {
		if err := c.PutActionResult(ctx, as[i], rs[i]); err != nil {
			t.Fatal(err)
		}
		ino, _ := inode(t, acPath(c, as[i]))
		files[ino] = true
		fi, _ := os.Stat(acPath(c, as[i]))
		if fi.Size() > packLimit {
			t.Errorf("a pack of %d bytes", fi.Size())
		}
	}
	if len(files) < 3 {
		t.Errorf("%d packs for 20 results of ~120 bytes, limit 1000", len(files))
	}
	other := reopen(t, c)
	for i := range as {
		if _, err := other.GetActionResult(ctx, as[i]); err != nil {
			t.Errorf("result %d: %v", i, err)
		}
	}
}

// A writer starts a new pack at packNames names (ext4's limit of links
// per file is 65,000).
func TestPacksEndAtTheirNames(t *testing.T) {
	defer func(n int) { packNames = n }(packNames)
	packNames = 5
	c := open(t)
	as, rs := results(t, c, 12, "names")
	files := map[uint64]bool{}
	for i := range as {
		if err := c.PutActionResult(ctx, as[i], rs[i]); err != nil {
			t.Fatal(err)
		}
		ino, links := inode(t, acPath(c, as[i]))
		files[ino] = true
		if links > 5 {
			t.Errorf("a pack with %d names", links)
		}
	}
	if len(files) != 3 {
		t.Errorf("%d packs for 12 results of at most 5 names", len(files))
	}
}

// A pack whose every name was removed (a prune, a hand) cannot be linked
// again: the next result goes into a new one.
func TestPackWithoutNamesIsReplaced(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 2, "gone")
	store(t, c, as[:1], rs[:1])
	if err := os.Remove(acPath(c, as[0])); err != nil {
		t.Fatal(err)
	}
	if err := c.PutActionResult(ctx, as[1], rs[1]); err != nil {
		t.Fatalf("a result after its pack lost its names: %v", err)
	}
	if _, err := reopen(t, c).GetActionResult(ctx, as[1]); err != nil {
		t.Error(err)
	}
	if _, err := c.GetActionResult(ctx, as[0]); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("the removed result: %v, want a miss", err)
	}
}

// A second result of an action replaces the first, in place of its name.
func TestResultReplacedInAPack(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 2, "again")
	store(t, c, as[:1], rs[:1])
	if err := reopen(t, c).PutActionResult(ctx, as[0], rs[1]); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Cache{c, reopen(t, c)} {
		got, err := r.GetActionResult(ctx, as[0])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rs[1], got, protocmp.Transform()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	if tmp := leftovers(t, c.Dir()); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// Where packs cannot be made, results are files of their own; caches of
// both kinds read each other's.
func TestResultsWithoutPacks(t *testing.T) {
	c := open(t)
	c.pack.disabled = true
	as, rs := results(t, c, 2, "own")
	for i := range as {
		if err := c.PutActionResult(ctx, as[i], rs[i]); err != nil {
			t.Fatal(err)
		}
		if _, links := inode(t, acPath(c, as[i])); links != 1 {
			t.Errorf("result %d has %d names", i, links)
		}
		if b, _ := os.ReadFile(acPath(c, as[i])); string(b[:len(acMagic)]) != acMagic {
			t.Errorf("result %d is not a file of its own: %q", i, b[:len(packMagic)])
		}
	}
	for i := range as {
		if _, err := reopen(t, c).GetActionResult(ctx, as[i]); err != nil {
			t.Errorf("result %d: %v", i, err)
		}
	}
}

// An inode number remembered as a pack's, now another file's (the pack was
// removed and its number reused), is read as that file.
func TestReusedInodeNumberOfAPack(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 1, "reused")
	c.pack.disabled = true
	store(t, c, as[:1], rs[:1])
	ino, _ := inode(t, acPath(c, as[0]))
	var h [32]byte
	stale := &packIndex{parsed: 4, recs: map[[32]byte]packRecord{}}
	copy(h[:], entryOf(t, c, as[0])) // any bytes: not the action's hash
	stale.recs[h] = packRecord{off: 1, n: 10}
	for _, idx := range []*packIndex{stale, {parsed: 1 << 20, recs: map[[32]byte]packRecord{}}} {
		c.packs.Store(int64(ino), idx)
		if _, err := c.GetActionResult(ctx, as[0]); err != nil {
			t.Errorf("a file of its own under a pack's old inode number: %v", err)
		}
	}
	// And the record of the action at a wrong place.
	var action [32]byte
	copy(action[:], mustHex(t, as[0].Hash))
	c.packs.Store(int64(ino), &packIndex{parsed: 4, recs: map[[32]byte]packRecord{action: {off: 3, n: 20}}})
	if _, err := c.GetActionResult(ctx, as[0]); err != nil {
		t.Errorf("a stale record's place: %v", err)
	}
}

// Processes writing and reading the same results at once only ever read
// a whole, right one.
func TestConcurrentPackWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	base, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	as, rs := results(t, base, 40, "both")
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := Open(dir)
			if err != nil {
				errs <- err
				return
			}
			for round := 0; round < 3; round++ {
				for i := range as {
					j := (i + w*7) % len(as)
					if err := c.PutActionResult(ctx, as[j], rs[j]); err != nil {
						errs <- err
					}
					got, err := c.GetActionResult(ctx, as[(j+1)%len(as)])
					if err == nil && !cmp.Equal(rs[(j+1)%len(as)], got, protocmp.Transform()) {
						errs <- fmt.Errorf("result %d: a wrong one", (j+1)%len(as))
					} else if err != nil && !errors.Is(err, cache.ErrNotFound) {
						errs <- err
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range as {
		got, err := reopen(t, base).GetActionResult(ctx, as[i])
		if err != nil || !cmp.Equal(rs[i], got, protocmp.Transform()) {
			t.Errorf("result %d at the end: %v", i, err)
		}
	}
	if tmp := leftovers(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Results an older hepbuild wrote, a file each in ac.v1, are still found;
// one in ac.v2 comes first; and prunes remove them like any other.
func TestResultsOfAnOlderHepbuild(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 2, "older")
	old := func(a cache.Digest, r *repb.ActionResult) string {
		b, err := encodeAC(a.Hash, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(c.Dir(), acDirV1, a.Hash[:2], a.Hash)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o444); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p0 := old(as[0], rs[0])
	old(as[1], rs[0])
	c = reopen(t, c) // a process that finds ac.v1 when it opens the cache
	if err := c.PutActionResult(ctx, as[1], rs[1]); err != nil {
		t.Fatal(err)
	}
	for i, want := range []*repb.ActionResult{rs[0], rs[1]} {
		got, err := c.GetActionResult(ctx, as[i])
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("result %d (-want +got):\n%s", i, diff)
		}
	}
	// The older result, used, is copied into a pack; ac.v1 keeps it.
	if b, _ := os.ReadFile(acPath(c, as[0])); !bytes.HasPrefix(b, []byte(packMagic)) {
		t.Errorf("the older hepbuild's result used is not in a pack: %q", b[:min(len(b), 8)])
	}
	if _, err := os.Stat(p0); err != nil {
		t.Errorf("the older hepbuild's result is gone from ac.v1: %v", err)
	}
	setMtime(t, p0, time.Now().Add(-48*time.Hour))
	rep, err := c.Prune(ctx, PruneOptions{MaxAge: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ActionResults != 1 {
		t.Errorf("pruned %d results, want the old one: %v", rep.ActionResults, rep)
	}
	if _, err := os.Stat(p0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the older hepbuild's old result survived the prune: %v", err)
	}
	if _, err := c.GetActionResult(ctx, as[1]); err != nil {
		t.Errorf("result 1 after the prune: %v", err)
	}
}

// A file of a gigabyte (sparse) where an indexed pack was is a miss, not
// read: neither through the index nor afresh.
func TestHugeFileUnderAnIndexedPack(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 2, "huge")
	store(t, c, as, rs)
	if _, err := c.GetActionResult(ctx, as[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(acPath(c, as[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(acPath(c, as[1]), 1<<30); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, a := range []cache.Digest{cache.FromBytes([]byte("not there")), as[1]} {
		// Not in the index: the first would read the pack's tail.
		if _, err := c.GetActionResult(ctx, a); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("%s: %v, want a miss", a, err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("looking up a result in a 1 GB file allocated %d MB", got>>20)
	}
}

// In a cache with a signing key, a result in a pack not signed with it is
// a miss, left in place, and its pack is not read again for it.
func TestUnsignedResultInAnIndexedPack(t *testing.T) {
	plain := open(t)
	as, rs := results(t, plain, 1, "unsigned")
	store(t, plain, as[:1], rs[:1])
	signed := openSigned(t, plain.Dir(), "the group's key, 32 bytes long..")
	ino, _ := inode(t, acPath(plain, as[0]))
	var idx *packIndex
	for i := 0; i < 3; i++ {
		if _, err := signed.GetActionResult(ctx, as[0]); !errors.Is(err, cache.ErrNotFound) || !strings.Contains(err.Error(), "not signed") {
			t.Fatalf("an unsigned result: %v, want a miss for want of a signature", err)
		}
		v, ok := signed.packs.Load(int64(ino))
		if !ok {
			t.Fatal("the pack is not indexed")
		}
		if idx != nil && v.(*packIndex) != idx {
			t.Error("the pack was read again for an unsigned result")
		}
		idx = v.(*packIndex)
	}
	if _, err := plain.GetActionResult(ctx, as[0]); err != nil {
		t.Errorf("the unsigned result, without a key: %v", err)
	}
}

// After its first result, the results of a pack are read through the
// descriptor kept open, without opening their names; a name linked to
// another pack since is read from that one; and at most keptPacks packs
// are kept open.
func TestKeptPacks(t *testing.T) {
	writer := open(t)
	as, rs := results(t, writer, 10, "kept")
	store(t, writer, as, rs)
	reader := reopen(t, writer)
	opens := 0
	testHookOpenEntry = func() { opens++ }
	defer func() { testHookOpenEntry = nil }()
	for i := range as {
		got, err := reader.GetActionResult(ctx, as[i])
		if err != nil || !cmp.Equal(rs[i], got, protocmp.Transform()) {
			t.Fatalf("result %d: %v, %v", i, got, err)
		}
	}
	if opens != 1 {
		t.Errorf("%d names opened for 10 results of one pack, want 1", opens)
	}
	// Another process's result for as[3], in its pack.
	if err := reopen(t, writer).PutActionResult(ctx, as[3], rs[7]); err != nil {
		t.Fatal(err)
	}
	got, err := reader.GetActionResult(ctx, as[3])
	if err != nil || !cmp.Equal(rs[7], got, protocmp.Transform()) {
		t.Errorf("a name linked to another pack since: %v, %v", got, err)
	}
	// Many packs: the first keptPacks are kept open, the others read.
	var more []cache.Digest
	for i := 0; i < keptPacks+6; i++ {
		w := reopen(t, writer)
		a, r := results(t, w, 1, fmt.Sprint("many ", i))
		if err := w.PutActionResult(ctx, a[0], r[0]); err != nil {
			t.Fatal(err)
		}
		more = append(more, a[0])
	}
	for _, a := range more {
		if _, err := reader.GetActionResult(ctx, a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	kept := 0
	reader.packs.Range(func(_, v any) bool {
		if v.(*packIndex).f != nil {
			kept++
		}
		return true
	})
	if kept != keptPacks {
		t.Errorf("%d packs kept open, want %d", kept, keptPacks)
	}
}

// endless is a file that grows as it is read (someone appending to it
// without end), which says how much was read of it.
type endless struct{ read, stop int64 }

func (e *endless) Read(b []byte) (int, error) {
	if e.read >= e.stop {
		return 0, errors.New("read on and on")
	}
	e.read += int64(len(b))
	return len(b), nil
}

// A result's file that grows while it is read is read no further than the
// bound on a result's file.
func TestGrowingEntryFileReadBounded(t *testing.T) {
	defer func(n int64) { maxEntryFile = n }(maxEntryFile)
	maxEntryFile = 1 << 20
	f := &endless{stop: 64 << 20}
	b, err := readEntry(f, 100)
	if err != nil {
		t.Fatal(err) // the endless file's own error: read to its stop
	}
	if int64(len(b)) <= maxEntryFile {
		t.Errorf("read %d bytes: readEntryFile would not see it is too long", len(b))
	}
	if f.read > 2*maxEntryFile {
		t.Errorf("read %d MiB of it", f.read>>20)
	}
}

// A symbolic link in a result's place, to a file outside the cache, is a
// miss and removed, never read through: nor is what it points to marked as
// used (its mtime set), even when it holds an intact entry of the action.
func TestResultSymlinkNotFollowed(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 1, "link")
	store(t, c, as[:1], rs[:1])
	outside := filepath.Join(t.TempDir(), "entry")
	if err := os.WriteFile(outside, entryOf(t, c, as[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(outside, old, old); err != nil {
		t.Fatal(err)
	}
	p := acPath(c, as[0])
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	if _, err := reopen(t, c).GetActionResult(ctx, as[0]); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("a result that is a link to a file outside the cache: %v, want a miss", err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link is still there: %v", err)
	}
	fi, err := os.Stat(outside)
	if err != nil {
		t.Fatalf("the file it pointed to: %v", err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("the file outside the cache was touched: mtime %v, was %v", fi.ModTime(), old)
	}
}

// A shard folder replaced by a symbolic link to a folder outside the cache
// (anyone who can write the cache's folders can do that) may be read
// through, but a file found there that is no good entry is not removed:
// nothing outside the cache is removed, neither a result's file nor a
// blob's.
func TestNothingRemovedThroughALinkedShard(t *testing.T) {
	c := open(t)
	action := cache.FromBytes([]byte("an action"))
	blob := cache.FromBytes([]byte("a blob"))
	for _, tc := range []struct {
		kind, hash string
		lookup     func() error
	}{
		{acDir, action.Hash, func() error { _, err := c.GetActionResult(ctx, action); return err }},
		{acDirV1, action.Hash, func() error { _, err := c.GetActionResult(ctx, action); return err }},
		{casDir, blob.Hash, func() error { _, err := c.Get(ctx, blob); return err }},
		{casDir, blob.Hash, func() error { _, _, err := c.BlobFile(blob); return err }},
	} {
		outside := t.TempDir()
		victim := filepath.Join(outside, tc.hash)
		if err := os.WriteFile(victim, []byte("not an entry, not the blob"), 0o644); err != nil {
			t.Fatal(err)
		}
		shard := filepath.Join(c.Dir(), tc.kind, tc.hash[:2])
		os.MkdirAll(filepath.Dir(shard), 0o755)
		os.Remove(shard)
		if err := os.Symlink(outside, shard); err != nil {
			t.Fatal(err)
		}
		if err := tc.lookup(); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("%s: a file through a linked shard: %v, want a miss", tc.kind, err)
		}
		if _, err := os.Stat(victim); err != nil {
			t.Errorf("%s: the file outside the cache: %v", tc.kind, err)
		}
		os.Remove(shard)
	}
}

// A pack with as many names as its file system allows (65,000 on ext4: a
// pack of small results reaches that before packLimit) takes no more: the
// result goes into a new pack, not lost with an error.
func TestPackAtItsLinkLimit(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 2, "links")
	store(t, c, as[:1], rs[:1])
	aside := filepath.Join(filepath.Dir(c.Dir()), "names")
	if err := os.Mkdir(aside, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		err := os.Link(acPath(c, as[0]), filepath.Join(aside, fmt.Sprint(i)))
		if errors.Is(err, syscall.EMLINK) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 70000 {
			t.Skip("no link limit on this file system")
		}
	}
	if err := c.PutActionResult(ctx, as[1], rs[1]); err != nil {
		t.Fatalf("a result for a pack at its link limit: %v", err)
	}
	if _, err := reopen(t, c).GetActionResult(ctx, as[1]); err != nil {
		t.Error(err)
	}
}

// A file planted under a result's name that looks like a pack but holds no
// record of the action is a miss and removed, and its index is not kept:
// each such file would otherwise hold memory for as long as the process
// runs (up to millions of records for one of maxEntryFile bytes).
func TestIndexOfAPackWithoutTheResultNotKept(t *testing.T) {
	c := open(t)
	action := cache.FromBytes([]byte("the action"))
	var recs []any
	for i := 0; i < 1000; i++ {
		recs = append(recs, cache.FromBytes([]byte(fmt.Sprint("other ", i))), []byte{})
	}
	plant(t, c, action, packOf(recs...))
	ino, _ := inode(t, acPath(c, action))
	if _, err := c.GetActionResult(ctx, action); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("a pack without the action's record: %v, want a miss", err)
	}
	if _, ok := c.packs.Load(int64(ino)); ok {
		t.Error("the index of a pack without the action's record was kept")
	}
}

// A result whose name cannot be replaced (a folder planted there) is not
// stored, but the pack, which was linked under a temporary name, goes on:
// it is neither given up for files of their own (when it was the process's
// first result) nor replaced by a new pack (later).
func TestNameThatCannotBeReplacedKeepsThePack(t *testing.T) {
	c := open(t)
	as, rs := results(t, c, 6, "folder")
	for _, i := range []int{0, 3} {
		if err := os.MkdirAll(filepath.Join(acPath(c, as[i]), "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range as {
		err := c.PutActionResult(ctx, as[i], rs[i])
		if (i == 0 || i == 3) != (err != nil) {
			t.Errorf("result %d: %v", i, err)
		}
	}
	first, links := inode(t, acPath(c, as[1]))
	if links != 4 {
		t.Errorf("the pack of result 1 has %d names, want 4", links)
	}
	for _, i := range []int{2, 4, 5} {
		if ino, _ := inode(t, acPath(c, as[i])); ino != first {
			t.Errorf("result %d is in another file", i)
		}
	}
}

// A result written again into the same pack (after a miss whose blob was
// gone, say) is the one read, by the reader that indexed the pack before
// as by the writer and by a fresh reader: not the record it supersedes.
func TestResultSupersededInTheSamePack(t *testing.T) {
	w := open(t)
	as, rs := results(t, w, 2, "superseded")
	store(t, w, as[:1], rs[:1])
	reader := reopen(t, w)
	for _, c := range []*Cache{w, reader} {
		if got, err := c.GetActionResult(ctx, as[0]); err != nil || !cmp.Equal(rs[0], got, protocmp.Transform()) {
			t.Fatalf("the first result: %v, %v", got, err)
		}
	}
	before, _ := inode(t, acPath(w, as[0]))
	if err := w.PutActionResult(ctx, as[0], rs[1]); err != nil {
		t.Fatal(err)
	}
	if after, _ := inode(t, acPath(w, as[0])); after != before {
		t.Fatal("the second result went into another pack")
	}
	for name, c := range map[string]*Cache{"writer": w, "reader": reader, "fresh reader": reopen(t, w)} {
		got, err := c.GetActionResult(ctx, as[0])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(rs[1], got, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// A pack kept open is another file's inode number on another device (two
// file systems under one cache, through a shard on another mount): a name
// with that number on this device is read from its own file, not through
// the descriptor kept.
func TestKeptPackOfAnotherDevice(t *testing.T) {
	w := open(t)
	as, rs := results(t, w, 2, "device")
	store(t, w, as[:1], rs[:1])
	reader := reopen(t, w)
	if _, err := reader.GetActionResult(ctx, as[0]); err != nil {
		t.Fatal(err)
	}
	first, _ := inode(t, acPath(w, as[0]))
	v, ok := reader.packs.Load(int64(first))
	if !ok || v.(*packIndex).f == nil {
		t.Fatal("the pack is not kept open")
	}
	kept := v.(*packIndex)
	// Another process's result of the same action, in its own pack.
	if err := reopen(t, w).PutActionResult(ctx, as[0], rs[1]); err != nil {
		t.Fatal(err)
	}
	second, _ := inode(t, acPath(w, as[0]))
	// As if the first pack had the second's number on another device.
	reader.packs.Store(int64(second), &packIndex{parsed: kept.parsed, seen: kept.seen, recs: kept.recs, f: kept.f, dev: kept.dev + 1})
	got, err := reader.GetActionResult(ctx, as[0])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs[1], got, protocmp.Transform()); diff != "" {
		t.Errorf("read through the descriptor of another device's file (-want +got):\n%s", diff)
	}
}

// The count of packs kept open never wraps around: a process that has
// made as many indexes as an int32 counts keeps no more descriptors.
func TestKeptPacksCountDoesNotWrap(t *testing.T) {
	w := open(t)
	as, rs := results(t, w, 1, "wrap")
	store(t, w, as[:1], rs[:1])
	reader := reopen(t, w)
	reader.kept.Store(1<<31 - 1)
	if _, err := reader.GetActionResult(ctx, as[0]); err != nil {
		t.Fatal(err)
	}
	ino, _ := inode(t, acPath(w, as[0]))
	if v, ok := reader.packs.Load(int64(ino)); !ok || v.(*packIndex).f != nil {
		t.Errorf("indexed %v, kept open beyond keptPacks", ok)
	}
}

// A pack on a file system not known to be local (NFS, where a pack removed
// from another machine is freed and its inode number reused while this
// process holds it open) is not kept open: its results are read through
// their names. The test's own folder is on a local one.
func TestNoPackKeptOffLocalFileSystems(t *testing.T) {
	w := open(t)
	as, rs := results(t, w, 3, "network")
	store(t, w, as, rs)
	f, err := cache.OpenRaw(acPath(w, as[0]))
	if err != nil {
		t.Fatal(err)
	}
	local := onLocalFS(f)
	f.Close()
	if !local {
		t.Skip("the test's folder is not on a file system known to be local")
	}
	defer func() { testHookOnLocalFS = onLocalFS }()
	testHookOnLocalFS = func(*cache.RawFile) bool { return false }
	reader := reopen(t, w)
	opens := 0
	testHookOpenEntry = func() { opens++ }
	defer func() { testHookOpenEntry = nil }()
	for i := range as {
		if got, err := reader.GetActionResult(ctx, as[i]); err != nil || !cmp.Equal(rs[i], got, protocmp.Transform()) {
			t.Fatalf("result %d: %v, %v", i, got, err)
		}
	}
	if opens != len(as) {
		t.Errorf("%d names opened for %d results, want each", opens, len(as))
	}
	ino, _ := inode(t, acPath(w, as[0]))
	if v, ok := reader.packs.Load(int64(ino)); !ok || v.(*packIndex).f != nil {
		t.Errorf("indexed %v, or kept open", ok)
	}
}
