package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// listAbove is the number of wanted files in one folder from which the
// resolver lists the folder (one round trip) rather than stat each file.
const listAbove = 3

// Resolver validates remote files against storage and the lock file:
// one cheap metadata query per file (or one listing per folder), the
// checksum asked again only when the size or modification time moved.
// Safe for concurrent use.
type Resolver struct {
	pool *Pool
	lock *Lock
	ctx  context.Context
	// Offline answers from the lock alone and asks storage nothing.
	Offline bool
	// Refresh asks every checksum again (hepbuild fetch).
	Refresh bool
	// Parallel bounds the queries in flight; 0 means 32.
	Parallel int

	mu     sync.Mutex
	listed map[string]File // by URL, from listings made during this run

	queries, checksums atomic.Int64
}

// NewResolver validates against the storage of pool and records in lock;
// ctx bounds every query, Glob's included.
func NewResolver(ctx context.Context, pool *Pool, lock *Lock) *Resolver {
	return &Resolver{pool: pool, lock: lock, ctx: ctx, listed: map[string]File{}}
}

// Lock is the lock file the resolver records in.
func (r *Resolver) Lock() *Lock { return r.lock }

// Queries is the number of metadata queries (stat, list, checksum) sent.
func (r *Resolver) Queries() int64 { return r.queries.Load() }

// Checksums is the number of checksum queries among them.
func (r *Resolver) Checksums() int64 { return r.checksums.Load() }

func (r *Resolver) parallel() int {
	if r.Parallel > 0 {
		return r.Parallel
	}
	return 32
}

// splitURL cuts a URL into its folder (ending in "/") and last segment.
func splitURL(raw string) (dir, name string) {
	i := strings.LastIndexByte(raw, '/')
	return raw[:i+1], raw[i+1:]
}

// entryName returns the last segment of entry, an entry's URL in a
// listing of folder dir, and whether the entry is in that folder: a
// listing that names the folder's parent, itself, another folder's file
// or a sub-folder's (a broken or hostile server) names no file of dir.
// Only paths are compared: servers spell their own name as they like.
func entryName(dir, entry string) (string, bool) {
	du, err1 := url.Parse(dir)
	eu, err2 := url.Parse(entry)
	if err1 != nil || err2 != nil {
		return "", false
	}
	p := strings.TrimSuffix(eu.Path, "/")
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	if path.Dir(path.Clean("/"+p)) != path.Clean("/"+du.Path) {
		return "", false
	}
	return path.Base(strings.TrimRight(entry, "/")), true
}

// Glob lists the folder of pattern (one query) and returns the files
// whose names match its last segment, in the pattern's own spelling,
// sorted. Offline, it answers what the lock recorded.
func (r *Resolver) Glob(pattern string) ([]string, error) {
	if r.Offline {
		us, ok := r.lock.Glob(pattern)
		if !ok {
			return nil, fmt.Errorf("%s is not in %s, and --offline asks storage nothing: run hepbuild fetch", Redact(pattern), LockName)
		}
		return us, nil
	}
	dir, last := splitURL(pattern)
	c, err := r.pool.Client(dir)
	if err != nil {
		return nil, err
	}
	r.queries.Add(1)
	entries, err := c.List(r.ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", Redact(dir), err)
	}
	var urls []string
	r.mu.Lock()
	for _, e := range entries {
		if e.Dir {
			continue
		}
		name, in := entryName(dir, e.URL)
		if !in {
			continue
		}
		if ok, _ := path.Match(last, name); !ok {
			continue
		}
		u := dir + name
		e.URL = u
		r.listed[u] = e
		urls = append(urls, u)
	}
	r.mu.Unlock()
	sort.Strings(urls)
	r.lock.SetGlob(pattern, urls)
	return urls, nil
}

// MissingError names remote files that storage does not have.
type MissingError struct {
	URLs []string
}

func (e *MissingError) Error() string {
	var b strings.Builder
	for i, u := range e.URLs {
		if i == 5 {
			fmt.Fprintf(&b, " and %d more", len(e.URLs)-5)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(Redact(u))
	}
	return "no such file on storage: " + b.String()
}

func (e *MissingError) Unwrap() error { return ErrNotExist }

// Resolve returns the identity of every url, from the lock where storage
// confirms it (same size and modification time) and from a checksum
// query where not, and records it in the lock. Files storage lacks are a
// *MissingError naming them all; a storage that cannot be reached is
// an error wrapping ErrUnavailable.
func (r *Resolver) Resolve(urls []string) (map[string]Identity, error) {
	out := make(map[string]Identity, len(urls))
	if r.Offline {
		var missing []string
		for _, u := range urls {
			id, ok := r.lock.File(u)
			if !ok {
				missing = append(missing, u)
				continue
			}
			out[u] = id
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%d remote files are not in %s, and --offline asks storage nothing: run hepbuild fetch (first: %s)", len(missing), LockName, Redact(missing[0]))
		}
		return out, nil
	}

	// What storage says now: from this run's listings, else one listing
	// per folder with several wanted files, else one stat per file.
	now := make(map[string]File, len(urls))
	var mu sync.Mutex
	byDir := map[string][]string{}
	r.mu.Lock()
	for _, u := range urls {
		if f, ok := r.listed[u]; ok {
			now[u] = f
			continue
		}
		dir, _ := splitURL(u)
		byDir[dir] = append(byDir[dir], u)
	}
	r.mu.Unlock()

	g, ctx := errgroup.WithContext(r.ctx)
	g.SetLimit(r.parallel())
	var missing []string
	notFound := func(u string) {
		mu.Lock()
		missing = append(missing, u)
		mu.Unlock()
	}
	// wait ends a round of queries: its first error, else the files
	// storage lacks, all of them.
	wait := func() error {
		if err := g.Wait(); err != nil {
			return err
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return &MissingError{URLs: missing}
		}
		return nil
	}
	for dir, us := range byDir {
		c, err := r.pool.Client(dir)
		if err != nil {
			return nil, err
		}
		if len(us) >= listAbove {
			g.Go(func() error {
				r.queries.Add(1)
				entries, err := c.List(ctx, dir)
				if errors.Is(err, ErrNotExist) {
					for _, u := range us {
						notFound(u)
					}
					return nil
				}
				if err != nil {
					return fmt.Errorf("listing %s: %w", Redact(dir), err)
				}
				byName := make(map[string]File, len(entries))
				for _, e := range entries {
					if name, in := entryName(dir, e.URL); in {
						byName[name] = e
					}
				}
				mu.Lock()
				defer mu.Unlock()
				for _, u := range us {
					_, name := splitURL(u)
					e, ok := byName[name]
					if !ok || e.Dir {
						missing = append(missing, u)
						continue
					}
					e.URL = u
					now[u] = e
				}
				return nil
			})
			continue
		}
		for _, u := range us {
			g.Go(func() error {
				r.queries.Add(1)
				f, err := c.Stat(ctx, u)
				if errors.Is(err, ErrNotExist) || (err == nil && f.Dir) {
					notFound(u)
					return nil
				}
				if err != nil {
					return fmt.Errorf("%s: %w", Redact(u), err)
				}
				f.URL = u
				mu.Lock()
				now[u] = f
				mu.Unlock()
				return nil
			})
		}
	}
	if err := wait(); err != nil {
		return nil, err
	}

	// The checksum of each file whose size or time moved.
	g, ctx = errgroup.WithContext(r.ctx)
	g.SetLimit(r.parallel())
	for _, u := range urls {
		f := now[u]
		if f.Size < 0 {
			// Never into the lock, which would then not load.
			return nil, fmt.Errorf("%s: %w: the server reports a negative size (%d)", Redact(u), ErrUnavailable, f.Size)
		}
		id := Identity{Size: f.Size, ModTime: f.ModTime.Unix()}
		if f.ModTime.IsZero() {
			id.ModTime = 0
		}
		if old, ok := r.lock.File(u); ok && !r.Refresh && old.Size == id.Size && old.ModTime == id.ModTime {
			mu.Lock() // the checksum goroutines write out too
			out[u] = old
			mu.Unlock()
			continue
		}
		c, err := r.pool.Client(u)
		if err != nil {
			return nil, err
		}
		g.Go(func() error {
			r.queries.Add(1)
			r.checksums.Add(1)
			sum, err := c.Checksum(ctx, u)
			if errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
				// Servers lose the odd checksum job under load (XRootD
				// 5.5 over HTTP, about one in thousands): ask once more
				// before calling the storage unavailable.
				r.queries.Add(1)
				sum, err = c.Checksum(ctx, u)
			}
			switch {
			case errors.Is(err, ErrNoChecksum):
			case errors.Is(err, ErrNotExist):
				notFound(u)
				return nil
			case err != nil:
				return fmt.Errorf("checksum of %s: %w", Redact(u), err)
			default:
				id.Checksum = sum.String()
			}
			mu.Lock()
			out[u] = id
			mu.Unlock()
			r.lock.SetFile(u, id)
			return nil
		})
	}
	if err := wait(); err != nil {
		return nil, err
	}
	return out, nil
}
