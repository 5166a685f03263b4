package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/progress"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// stampKey names a build request for exec.CheckStamp: the workspace, the
// folder it was started in (relative patterns), every flag, the targets and
// the PATH environments may look tools up on. The files the build depends
// on are the stamp's own business.
func (c *BuildCmd) stampKey(root, pkg string) string {
	// The remote cache changes where results come from, never what they
	// are; and its headers are credentials, which are never hashed.
	f := c.BuildFlags
	f.RemoteFlags = RemoteFlags{}
	f.RemoteUpload = ""
	// Who hears of the build changes nothing in it; the token and the
	// notification specs are credentials.
	f.ReportFlags = ReportFlags{}
	parts := []string{root, pkg, os.Getenv("PATH"), fmt.Sprintf("%+v", f)}
	// --action-env NAME takes NAME's value from this process: the value, not
	// the flag, decides what the actions are.
	for _, a := range c.ActionEnv {
		if !strings.Contains(a, "=") {
			parts = append(parts, a+"="+os.Getenv(a))
		}
	}
	return exec.StampKey(append(parts, c.Targets...)...)
}

// nullBuild reports whether the stamp of an earlier successful build of the
// same request still matches, in which case there is nothing to do and
// loading and analysis are skipped. Builds that write events or profiles
// take the full path, so those files describe every action.
func (c *BuildCmd) nullBuild(g *Globals, e *env, start time.Time) bool {
	f := &c.BuildFlags
	if f.Events != "" || f.Profile != "" || f.CacheMaxSize != "" {
		return false
	}
	if f.SigningKey != "" {
		// A key file that became unusable (readable by others) is an error
		// even when nothing else changed: the full path reports it.
		if _, err := disk.ReadSigningKey(string(f.SigningKey)); err != nil {
			return false
		}
	}
	dir := e.cwd
	if g.Directory != "" {
		dir = g.Directory
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(e.cwd, dir)
		}
	}
	root, pkg, err := hstarlark.FindWorkspace(dir)
	if err != nil {
		return false
	}
	base := f.outputBase(root)
	// Only an output base hepbuild made (with its marker) is used here;
	// anything else takes the full path, which says what is wrong with it.
	if st, err := exec.InspectOutputBase(base); err != nil || st != exec.OutputBaseOwned {
		return false
	}
	if _, err := f.checkOutputBase(root); err != nil {
		return false
	}
	unlock, err := exec.LockOutputBase(base)
	if err != nil {
		return false
	}
	defer unlock()
	st, ok := exec.CheckStamp(base, c.stampKey(root, pkg))
	if !ok {
		return false
	}
	printer := progress.New(e.stderr, progressMode(f, e))
	printer.Finish(&exec.Summary{Total: st.Actions, UpToDate: st.Actions, Elapsed: time.Since(start)})
	printRoots(e, st.Roots)
	return true
}

// writeStamp records what a successful build depended on and made.
// sources are the states of sourcePaths that changedSources took after
// the build; runner, the build's, knows the outputs it restored.
func (s *session) writeStamp(key string, sources sourceStates, runner *exec.Runner) error {
	for _, a := range s.actions {
		if a.Extras().Remote != nil {
			// Remote files can change without a trace on this machine:
			// every build asks storage (one cheap query per folder or
			// file), so there is no null build that skips it.
			return nil
		}
	}
	// The sources come once each (a raw file read by several actions is
	// one path), from sourcePaths: they are not stat'ed again.
	files := make([]string, 0, len(sources.states)+2*len(s.actions))
	for p := range sources.states {
		files = append(files, p)
	}
	files = append(files, sources.failed...)
	var trees []string
	addOne := func(a exec.Artifact) {
		p := filepath.Join(s.w.root, a.Path)
		if a.Dir {
			trees = append(trees, p)
		} else {
			files = append(files, p)
		}
	}
	add := func(arts []exec.Artifact) {
		for _, a := range arts {
			addOne(a)
		}
	}
	envs := map[*exec.Environment]bool{}
	for _, a := range s.actions {
		for _, in := range a.Inputs {
			// A generated input is an output of an action the build
			// needed (exec.Graph.Needed follows inputs), added with it:
			// half the paths of a large build, joined and sorted for nothing.
			// A source file is in sources; a source folder is a tree.
			if (in.Source && !in.Dir) || (!in.Source && s.g.Producer[in.Path] != nil) {
				continue
			}
			addOne(in)
		}
		add(a.Extras().Tools)
		add(a.Outputs)
		if env := a.Environment; env != nil && !envs[env] {
			envs[env] = true
			add(env.Files)
			// What identifies the environment on this machine (see
			// applyEnvironment): the interpreter a venv is built with, an
			// image file. A change to them must end the null build too.
			if py := env.Params["host.python"]; py != "" {
				files = append(files, strings.Fields(py)[0])
			}
			if env.Params["host.image_digest"] != "" {
				files = append(files, env.Params["image"])
			}
		}
	}
	var roots []string
	for _, r := range s.roots {
		if !r.Source {
			roots = append(roots, r.Path)
		}
	}
	return exec.WriteStamp(s.outputBase, exec.Stamp{Key: key, Files: files, Trees: trees, Actions: len(s.actions), Roots: roots,
		Journal: s.journal, ExecRoot: s.w.root, Runner: runner, Known: sources.states, KnownAt: sources.at})
}

// sourcePaths are the files and folders a build reads but does not write:
// BUILD and .star files, folders listed by globs, and source inputs.
func (s *session) sourcePaths() []string {
	var paths []string
	for _, d := range s.w.loader.Dependencies() {
		paths = append(paths, filepath.Join(s.w.root, d))
	}
	seen := map[string]bool{}
	for _, a := range s.actions {
		for _, in := range a.Inputs {
			if in.Source && !seen[in.Path] {
				seen[in.Path] = true
				paths = append(paths, filepath.Join(s.w.root, in.Path))
			}
		}
	}
	return paths
}

// sourceSnapshot is the state of each source path before the build.
// loadChanged names a file that loading read, and that was
// written after it was read and before the snapshot was taken.
type sourceSnapshot struct {
	paths       []string
	states      []exec.PathState
	loadChanged string
}

// snapshotSources records the state of the sources before the build runs.
// Loading read the BUILD, .star and read_json files earlier: one edited
// since differs from the stat the loader took before reading it,
// and the build, made from what was read, must not leave a stamp that
// records the edited state (the next build would skip the edit).
func (s *session) snapshotSources() sourceSnapshot {
	paths := s.sourcePaths()
	states, _ := exec.StatPaths(paths)
	snap := sourceSnapshot{paths: paths, states: states}
	for i, d := range s.w.loader.Dependencies() {
		// Files only: a folder's mtime moves with every entry, and
		// hepbuild itself adds one (the hepbuild-out link) after loading
		// listed the workspace's root.
		if fi, ok := s.w.loader.DependencyState(d); ok && fi != nil && !fi.IsDir() && !states[i].SameAs(fi) {
			snap.loadChanged = d
			break
		}
	}
	return snap
}

// sourceStates are the states of the sources after the build, taken from
// at on.
type sourceStates struct {
	at     time.Time
	states map[string]exec.PathState
	failed []string // not stat'ed
}

// changedSources names a source written since before was taken, or "",
// and returns the sources' states now, which the stamp records: call it
// once nothing more changes them, after the sandboxes are gone (removing
// their hard links to sources changes the sources' ctime).
func (s *session) changedSources(before sourceSnapshot) (string, sourceStates) {
	if before.loadChanged != "" {
		return before.loadChanged, sourceStates{}
	}
	at := time.Now()
	states, errs := exec.StatPaths(before.paths)
	now := sourceStates{at: at, states: make(map[string]exec.PathState, len(states))}
	for i, p := range before.paths {
		if !states[i].SameContent(before.states[i]) {
			rel, _ := filepath.Rel(s.w.root, p)
			return rel, sourceStates{}
		}
		if errs[i] != nil {
			// The stamp stats it again and says what is wrong.
			now.failed = append(now.failed, p)
			continue
		}
		now.states[p] = states[i]
	}
	return "", now
}
