package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// CleanCmd removes outputs, or prunes the cache.
type CleanCmd struct {
	BuildFlags
	Cache   bool     `help:"Prune the disk cache instead of the output tree (with --max-size and/or --max-age)."`
	MaxSize string   `name:"max-size" placeholder:"SIZE" help:"With --cache: shrink the cache to SIZE (e.g. 50GB), least recently used first."`
	MaxAge  string   `name:"max-age" placeholder:"AGE" help:"With --cache: remove entries not used for AGE (e.g. 30d, 12h)."`
	DryRun  bool     `name:"dry-run" help:"With --cache: say what would be removed, remove nothing."`
	Expunge bool     `help:"Remove the output base (outputs, logs, build state) and the whole disk cache."`
	Targets []string `arg:"" optional:"" name:"target" help:"Remove only what these targets made."`
}

// Run cleans.
func (c *CleanCmd) Run(g *Globals, e *env) error {
	switch {
	case c.Cache:
		return c.pruneCache(e)
	case c.MaxSize != "" || c.MaxAge != "" || c.DryRun:
		return badInput("--max-size, --max-age and --dry-run go with --cache")
	}
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	base := c.outputBase(w.root)
	if c.Expunge {
		unlock, err := exec.LockOutputBase(base)
		if err == nil {
			defer unlock()
		}
		if err := removeTree(base); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(w.root, exec.OutDir))
		if err := removeTree(c.diskCache()); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "removed the output base %s and the disk cache %s\n", base, c.diskCache())
		return nil
	}
	if len(c.Targets) > 0 {
		s, err := analyse(g, &c.BuildFlags, e, c.Targets, true)
		if err != nil {
			return err
		}
		defer s.close()
		want := map[string]bool{}
		for _, t := range s.targets {
			want[t.Label.String()] = true
		}
		n := 0
		for _, a := range s.g.Actions {
			if !want[a.Owner.String()] {
				continue
			}
			for _, o := range a.Outputs {
				p := filepath.Join(w.root, filepath.FromSlash(o.Path))
				if _, err := os.Lstat(p); err == nil {
					if err := removeTree(p); err != nil {
						return err
					}
					n++
				}
			}
		}
		fmt.Fprintf(e.stderr, "removed %d output(s) of %d target(s)\n", n, len(s.targets))
		return nil
	}
	unlock, err := exec.LockOutputBase(base)
	if err != nil {
		return err
	}
	defer unlock()
	for _, sub := range []string{"out", "logs"} {
		if err := removeTree(filepath.Join(base, sub)); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "removed the output tree %s (the cache keeps every result: the next build restores them)\n", filepath.Join(base, "out"))
	return nil
}

func (c *CleanCmd) pruneCache(e *env) error {
	if c.MaxSize == "" && c.MaxAge == "" {
		return badInput("clean --cache needs --max-size SIZE and/or --max-age AGE (or use --expunge to remove everything)")
	}
	var o disk.PruneOptions
	var err error
	if c.MaxSize != "" {
		if o.MaxSize, err = disk.ParseSize(c.MaxSize); err != nil {
			return badInput("--max-size: %v", err)
		}
	}
	if c.MaxAge != "" {
		if o.MaxAge, err = disk.ParseAge(c.MaxAge); err != nil {
			return badInput("--max-age: %v", err)
		}
	}
	o.DryRun = c.DryRun
	dc, err := disk.Open(c.diskCache())
	if err != nil {
		return err
	}
	rep, err := dc.Prune(e.ctx, o)
	if err != nil {
		return err
	}
	verb := "freed"
	if c.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(e.stdout, "%s %s: %s\n", c.diskCache(), verb, rep.String())
	return nil
}

// removeTree removes path and everything below it, making read-only folders
// (outputs are read-only) writable first.
func removeTree(path string) error {
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}
