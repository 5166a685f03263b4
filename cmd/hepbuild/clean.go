package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// CleanCmd removes outputs, or prunes the cache.
type CleanCmd struct {
	LocationFlags
	Cache         bool      `help:"Prune the disk cache instead of the output tree (with --max-size and/or --max-age)."`
	MaxSize       sizeValue `name:"max-size" placeholder:"SIZE" help:"With --cache: shrink the cache to SIZE (e.g. 50GB; 0 empties it), least recently used first."`
	MaxAge        ageValue  `name:"max-age" placeholder:"AGE" help:"With --cache: remove entries not used for AGE (e.g. 30d, 12h; 0s removes every entry)."`
	DryRun        bool      `name:"dry-run" help:"With --cache: say what would be removed, remove nothing."`
	Expunge       bool      `help:"Remove this workspace's output base and the disk cache (only what hepbuild made in them)."`
	AllWorkspaces bool      `name:"all-workspaces" help:"With --expunge: also remove the output bases of other workspaces kept in the cache folder."`
	Targets       []string  `arg:"" optional:"" name:"target" help:"Remove only what these targets made."`
}

// Run cleans. Nothing is removed from a folder hepbuild did not make (see
// exec.OutputBaseMarker and disk.Marker): such a folder named as output
// base or cache is an error, checked before anything is removed.
func (c *CleanCmd) Run(g *Globals, e *env) error {
	switch {
	case c.Cache:
		return c.pruneCache(e)
	case c.MaxSize != "" || c.MaxAge != "" || c.DryRun:
		return badInput("--max-size, --max-age and --dry-run go with --cache")
	case c.AllWorkspaces && !c.Expunge:
		return badInput("--all-workspaces goes with --expunge")
	}
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	base, err := c.checkOutputBase(w.root)
	if err != nil {
		return err
	}
	st, err := exec.InspectOutputBase(base)
	if err != nil {
		return badInput("--output-base: %v", err)
	}
	if c.Expunge {
		return c.expunge(e, w.root, base, st)
	}
	if len(c.Targets) > 0 {
		s, err := analyse(g, &AnalysisFlags{LocationFlags: c.LocationFlags, RemoteDataFlags: RemoteDataFlags{lenient: true}}, e, c.Targets, true)
		if err != nil {
			return err
		}
		defer s.close()
		want := map[string]bool{}
		for _, t := range s.targets {
			want[t.Label.String()] = true
		}
		n := 0
		var remoteOnly []string
		out := filepath.Join(s.outputBase, "out")
		for _, a := range s.g.Actions {
			if !want[a.Owner.String()] {
				continue
			}
			for _, o := range a.Outputs {
				remoteOnly = append(remoteOnly, o.Path)
				// Outputs are under hepbuild-out, which links to out/:
				// remove them there, never through another link.
				rel, ok := cutOutDir(o.Path)
				if !ok {
					continue
				}
				p := filepath.Join(out, rel)
				if !exec.OutputParentsAreReal(out, rel) {
					continue // behind a link: not this target's output
				}
				if _, err := os.Lstat(p); err == nil {
					if err := cache.RemoveTree(p); err != nil {
						return err
					}
					n++
				}
			}
		}
		// Outputs kept only in the cache are removed by forgetting them:
		// the next build restores or makes them as it would a removed file.
		if k := s.journal.ForgetRemoteOnly(remoteOnly, false); k > 0 {
			n += k
			_ = exec.RemoveStamps(s.outputBase)
		}
		fmt.Fprintf(e.stderr, "removed %d output(s) of %d target(s)\n", n, len(s.targets))
		return nil
	}
	if st == exec.OutputBaseAbsent || st == exec.OutputBaseEmpty {
		fmt.Fprintf(e.stderr, "nothing to remove: no output base at %s\n", base)
		return nil
	}
	unlock, err := exec.LockOutputBase(base)
	if err != nil {
		return err
	}
	defer unlock()
	for _, sub := range []string{"out", "logs"} {
		if err := cache.RemoveTree(filepath.Join(base, sub)); err != nil {
			return err
		}
	}
	if err := forgetOutputs(base); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "removed the output tree %s (the cache keeps every result: the next build restores them)\n", filepath.Join(base, "out"))
	return nil
}

// forgetOutputs drops the journal's records of the output tree that just
// went: those of files, which are gone, and those of outputs kept only in
// the cache (--remote-download-outputs), which belong to it. When there were
// the latter, the stamps go too, since a build whose outputs were all kept
// in the cache would otherwise still find nothing changed.
func forgetOutputs(base string) error {
	j, err := exec.OpenJournal(base)
	if err != nil {
		return err
	}
	n := j.ForgetRemoteOnly(nil, true)
	err = j.ForgetAll()
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > 0 {
		return exec.RemoveStamps(base)
	}
	return nil
}

// cutOutDir returns an output path relative to hepbuild-out.
func cutOutDir(p string) (string, bool) {
	rel, err := filepath.Rel(exec.OutDir, filepath.FromSlash(p))
	if err != nil || rel == "." || !within(filepath.Join(exec.OutDir, rel), exec.OutDir) {
		return "", false
	}
	return rel, true
}

// expunge removes this workspace's output base and the disk cache, each
// only if it is hepbuild's, and of both only what hepbuild made; the output
// bases of other workspaces in the cache folder go only with
// --all-workspaces. It lists what it removes and what it keeps.
func (c *CleanCmd) expunge(e *env, root, base string, st exec.OutputBaseState) error {
	cacheDir := c.diskCache()
	if err := disk.Check(cacheDir); err != nil {
		return badInput("--disk-cache: %v", err)
	}
	if st != exec.OutputBaseAbsent {
		unlock, err := exec.LockOutputBase(base)
		if err != nil {
			return err
		}
		left, err := exec.RemoveOutputBase(base)
		unlock()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "removed the output base %s\n", base)
		for _, l := range left {
			fmt.Fprintf(e.stderr, "  kept %s: not made by hepbuild\n", filepath.Join(base, l))
		}
	}
	if link := filepath.Join(root, exec.OutDir); isLink(link, filepath.Join(base, "out")) {
		_ = os.Remove(link)
	}
	opts := disk.RemoveOptions{}
	if c.AllWorkspaces {
		opts.RemoveOutputBase = func(dir string) ([]string, error) {
			ws := exec.OutputBaseWorkspace(dir)
			left, err := exec.RemoveOutputBase(dir)
			var no *exec.NotOwnedError
			if errors.As(err, &no) {
				return []string{dir}, nil
			}
			if err == nil && len(left) == 0 {
				if ws == "" {
					ws = "a workspace"
				}
				fmt.Fprintf(e.stderr, "removed the output base %s (of %s)\n", dir, ws)
			}
			return left, err
		}
	}
	rep, err := disk.Remove(cacheDir, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "removed the disk cache %s\n", cacheDir)
	others := 0
	for _, k := range rep.Kept {
		if filepath.Base(filepath.Dir(k)) == disk.OutputDir && !c.AllWorkspaces {
			others++
			continue
		}
		fmt.Fprintf(e.stderr, "  kept %s: not made by hepbuild\n", k)
	}
	if others > 0 {
		fmt.Fprintf(e.stderr, "  kept %d output base(s) of other workspaces in %s (--all-workspaces removes them too)\n",
			others, filepath.Join(cacheDir, disk.OutputDir))
	}
	return nil
}

func (c *CleanCmd) pruneCache(e *env) error {
	if c.MaxSize == "" && c.MaxAge == "" {
		return badInput("clean --cache needs --max-size SIZE and/or --max-age AGE (or use --expunge to remove everything)")
	}
	o := disk.PruneOptions{DryRun: c.DryRun}
	if c.MaxSize != "" {
		o.MaxSize, o.LimitSize = c.MaxSize.bytes(), true
	}
	if c.MaxAge != "" {
		o.MaxAge, _ = disk.ParseAge(string(c.MaxAge))
		o.LimitAge = true
	}
	if err := disk.Check(c.diskCache()); err != nil {
		return badInput("--disk-cache: %v", err)
	}
	if _, err := os.Stat(c.diskCache()); os.IsNotExist(err) {
		fmt.Fprintf(e.stdout, "%s: no disk cache there, nothing to prune\n", c.diskCache())
		return nil
	}
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
	fmt.Fprintf(e.stdout, "disk cache %s %s: %s\n", c.diskCache(), verb, rep.String())
	// A remote cache belongs to the group and keeps its own size limit.
	fmt.Fprintln(e.stdout, "only the disk cache was pruned; remote caches are left to their servers' own limits")
	return nil
}
