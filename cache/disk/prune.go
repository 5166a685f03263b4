package disk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache"
)

// PruneOptions says what to remove. Zero fields do not limit.
type PruneOptions struct {
	// MaxSize is the total size, in bytes, the cache may keep. Zero means
	// no limit unless LimitSize is set; then it means remove every entry.
	MaxSize int64
	// LimitSize makes MaxSize a limit even when it is zero.
	LimitSize bool
	// MaxAge removes entries not used for longer. Zero means no limit
	// unless LimitAge is set; then every entry is old enough.
	MaxAge time.Duration
	// LimitAge makes MaxAge a limit even when it is zero.
	LimitAge bool
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
}

// PruneReport says what a prune removed, or would remove on a dry run.
type PruneReport struct {
	ActionResults     int   // action cache entries removed
	ActionResultBytes int64 //
	Blobs             int   // CAS blobs removed
	BlobBytes         int64 //
	// TempFiles are leftovers of writers that died (older than an hour).
	TempFiles     int
	TempFileBytes int64
	// Kept is what remains.
	KeptEntries int
	KeptBytes   int64
}

// FreedBytes is the total size removed. A blob hard-linked into an output
// tree keeps occupying the disk until the output is removed too.
func (r PruneReport) FreedBytes() int64 {
	return r.ActionResultBytes + r.BlobBytes + r.TempFileBytes
}

func (r PruneReport) String() string {
	return fmt.Sprintf("%d action results (%d bytes), %d blobs (%d bytes), %d temporary files (%d bytes); kept %d entries (%d bytes)",
		r.ActionResults, r.ActionResultBytes, r.Blobs, r.BlobBytes, r.TempFiles, r.TempFileBytes, r.KeptEntries, r.KeptBytes)
}

// staleTemp is the age after which a temporary file is taken to belong to a
// writer that died: writers keep their file's mtime fresh as they write.
const staleTemp = time.Hour

type entry struct {
	kind  string // casDir, acDir or acDirV1
	hash  string
	path  string
	size  int64 // for a result in a pack, its record's
	stat  int64 // the size its file had when scanned
	mtime time.Time
	gone  bool  // chosen for removal
	users []int // for a blob: the action results referencing it
}

// Prune removes least recently used entries until the cache is within
// opts.MaxSize, and every entry unused for longer than opts.MaxAge. An action
// result goes before the blobs it references: when a blob is chosen, the
// results that need it are removed first, since they could never hit again.
//
// Pruning is safe while other processes build from the cache: a build that
// got a hit whose blob then disappears sees a miss and reruns the action,
// blobs linked into output trees survive as those links, and an entry used
// after it was chosen for removal is kept.
func (c *Cache) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	if c.readOnly && !opts.DryRun {
		return rep, fmt.Errorf("pruning %s: %w", c.dir, ErrReadOnly)
	}
	now := time.Now()
	var entries []*entry
	byHash := map[string]int{} // blob hash → index in entries
	for _, kind := range []string{acDir, acDirV1, casDir} {
		err := filepath.WalkDir(filepath.Join(c.dir, kind), func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if de.IsDir() {
				return nil
			}
			fi, err := de.Info()
			if err != nil {
				return nil // removed meanwhile
			}
			name := de.Name()
			if strings.HasPrefix(name, tmpPrefix) {
				if now.Sub(fi.ModTime()) > staleTemp {
					rep.TempFiles++
					rep.TempFileBytes += fi.Size()
					if !opts.DryRun {
						os.Remove(p)
					}
				}
				return nil
			}
			if !validHash(name) || filepath.Base(filepath.Dir(p)) != name[:2] {
				return nil // not ours
			}
			e := &entry{kind: kind, hash: name, path: p, size: fi.Size(), stat: fi.Size(), mtime: fi.ModTime()}
			if kind == casDir {
				byHash[name] = len(entries)
			}
			entries = append(entries, e)
			return ctx.Err()
		})
		if err != nil {
			return rep, fmt.Errorf("pruning %s: %w", c.dir, err)
		}
	}

	// Which results need which blobs. A result that cannot be read or whose
	// references cannot be listed is useless: remove it first.
	var total int64
	var order []*entry
	for i, e := range entries {
		total += e.size
		if e.kind == casDir {
			order = append(order, e)
			continue
		}
		r, n, err := c.readACIn(e.kind, cache.Digest{Hash: e.hash, Size: e.size}, false, false)
		if err == nil {
			// A pack is counted by its records, each once.
			total += n - e.size
			e.size = n
		}
		var refs []string
		if err == nil {
			ds, rerr := c.references(r, false)
			err = rerr
			for _, d := range ds {
				refs = append(refs, d.Hash)
			}
		}
		if err != nil {
			e.gone = true
			total -= e.size
			continue
		}
		for _, h := range refs {
			if j, ok := byHash[h]; ok {
				entries[j].users = append(entries[j].users, i)
			}
		}
		order = append(order, e)
	}

	// Least recently used first; on a tie, results before blobs.
	sort.SliceStable(order, func(i, j int) bool {
		if !order[i].mtime.Equal(order[j].mtime) {
			return order[i].mtime.Before(order[j].mtime)
		}
		return order[i].kind != casDir && order[j].kind == casDir
	})
	expired := func(e *entry) bool {
		return (opts.MaxAge > 0 || opts.LimitAge) && now.Sub(e.mtime) >= opts.MaxAge
	}
	for _, e := range order {
		if e.gone {
			continue
		}
		fits := !opts.LimitSize && opts.MaxSize <= 0 || opts.MaxSize > 0 && total <= opts.MaxSize
		if !expired(e) && fits {
			break // everything after is newer and fits
		}
		for _, u := range e.users {
			if !entries[u].gone {
				entries[u].gone = true
				total -= entries[u].size
			}
		}
		e.gone = true
		total -= e.size
	}

	// Remove results first, then blobs, so that no moment has a result on
	// disk whose blobs this prune already removed.
	for _, kind := range []string{acDir, acDirV1, casDir} {
		for _, e := range entries {
			if e.kind != kind {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			if !e.gone || !opts.DryRun && !removeUnused(e) {
				rep.KeptEntries++
				rep.KeptBytes += e.size
				continue
			}
			if kind != casDir {
				rep.ActionResults++
				rep.ActionResultBytes += e.size
			} else {
				rep.Blobs++
				rep.BlobBytes += e.size
			}
		}
	}
	return rep, nil
}

// removeUnused removes the entry unless it was used (touched) or replaced
// since the scan; it reports whether it removed it.
func removeUnused(e *entry) bool {
	fi, err := os.Stat(e.path)
	if err != nil {
		return false // gone already: not our doing
	}
	if fi.ModTime().After(e.mtime) || fi.Size() != e.stat {
		return false
	}
	return os.Remove(e.path) == nil
}
