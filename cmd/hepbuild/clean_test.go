package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// userFolder makes a folder that looks like a user's home: files hepbuild
// did not make, one of them in a sub-folder.
func userFolder(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	for p, c := range map[string]string{"thesis.tex": "chapter 1\n", "data/events.root": "events\n", ".bashrc": "alias ll='ls -l'\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(home, p)), 0o755)
		if err := os.WriteFile(filepath.Join(home, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

// listTree returns every path below dir with its content (links as "-> target").
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			dest, _ := os.Readlink(p)
			out = append(out, rel+" -> "+dest)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+": "+string(b))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func sameTree(t *testing.T, what string, before, after []string) {
	t.Helper()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", what, strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// TestCleanRefusesFoldersHepbuildDidNotMake names a user's folder as the
// disk cache or the output base, and the workspace itself as output base,
// on the command line and through .hepbuildrc: clean --expunge, clean,
// clean --cache and build refuse with an error naming the flag and the
// folder, and not a file is removed, changed or added.
func TestCleanRefusesFoldersHepbuildDidNotMake(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	home := userFolder(t)
	wsBefore, homeBefore := listTree(t, root), listTree(t, home)
	cases := []struct {
		name string
		args []string
		rc   string
		want string
	}{
		{"expunge disk cache", []string{"clean", "--expunge", "--disk-cache=" + home}, "", "--disk-cache"},
		{"expunge output base", []string{"clean", "--expunge", "--output-base=" + home}, "", "--output-base"},
		{"expunge workspace as output base", []string{"clean", "--expunge", "--output-base=" + root}, "", "contains the workspace"},
		{"expunge output base inside workspace", []string{"clean", "--expunge", "--output-base=" + filepath.Join(root, "sub")}, "", "inside the workspace"},
		{"clean output base", []string{"clean", "--output-base=" + home}, "", "--output-base"},
		{"prune disk cache", []string{"clean", "--cache", "--max-size=0", "--disk-cache=" + home}, "", "--disk-cache"},
		{"build disk cache", []string{"//:b", "--progress=none", "--disk-cache=" + home}, "", "--disk-cache"},
		{"build output base", []string{"//:b", "--progress=none", "--output-base=" + home}, "", "--output-base"},
		{"build workspace as output base", []string{"//:b", "--progress=none", "--output-base=" + root}, "", "contains the workspace"},
		{"rc expunge disk cache", []string{"clean", "--expunge"}, "clean --disk-cache=" + home + "\n", "--disk-cache"},
		{"rc expunge output base", []string{"clean", "--expunge"}, "common --output-base=" + root + "\n", "contains the workspace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := filepath.Join(root, ".hepbuildrc")
			if c.rc != "" {
				os.WriteFile(rc, []byte(c.rc), 0o644)
				defer os.Remove(rc)
			}
			r := hepbuild(t, root, c.args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%v: exit %d, want 2 and an error with %q\n%s", c.args, r.code, c.want, r.stderr)
			}
			if c.rc != "" {
				os.Remove(rc)
			}
			sameTree(t, "the user's folder", homeBefore, listTree(t, home))
			sameTree(t, "the workspace", wsBefore, listTree(t, root))
		})
	}
}

// A user's folder whose entries all carry names hepbuild also uses (out/,
// logs/, tmp/; output/, environments/) is not an old output base or cache:
// without hepbuild's marker and its own files (the lock and journal; the
// cas and ac folders) it is refused, and nothing in it is removed.
func TestFoldersWithHepbuildNamesAreNotAdopted(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	mk := func(files ...string) string {
		dir := filepath.Join(t.TempDir(), "proj")
		for _, f := range files {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
			os.WriteFile(filepath.Join(dir, f), []byte("user data\n"), 0o644)
		}
		return dir
	}
	cases := []struct {
		name string
		dir  string
		args func(dir string) []string
		rc   bool
	}{
		{"clean output base", mk("out/thesis.pdf", "logs/run.log"), func(d string) []string { return []string{"clean", "--output-base=" + d} }, false},
		{"build output base", mk("out/p/A.txt", "tmp/u1"), func(d string) []string { return []string{"//:b", "--progress=none", "--output-base=" + d} }, false},
		{"rc output base", mk("out/p/A.txt", "tmp/u1"), func(d string) []string { return []string{"//:b", "--progress=none"} }, true},
		{"expunge all workspaces", mk("output/run1/out/data.root"), func(d string) []string {
			return []string{"clean", "--expunge", "--all-workspaces", "--disk-cache=" + d}
		}, false},
		{"expunge cache", mk("output/x", "environments/env.yml"), func(d string) []string { return []string{"clean", "--expunge", "--disk-cache=" + d} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := listTree(t, c.dir)
			if c.rc {
				rc := filepath.Join(root, ".hepbuildrc")
				os.WriteFile(rc, []byte("common --output-base="+c.dir+"\n"), 0o644)
				defer os.Remove(rc)
			}
			r := hepbuild(t, root, c.args(c.dir)...)
			if r.code != 2 || !strings.Contains(r.stderr, "not a hepbuild") {
				t.Errorf("exit %d, want 2 and a refusal:\n%s", r.code, r.stderr)
			}
			sameTree(t, "the user's folder", before, listTree(t, c.dir))
		})
	}
}

// TestExpungeRemovesOnlyThisWorkspace builds two workspaces sharing the
// default cache home: --expunge in one removes its output base and the
// cache, and keeps the other's output base; --all-workspaces removes that
// too and says whose it was. Files a user put into the cache folder stay.
func TestExpungeRemovesOnlyThisWorkspace(t *testing.T) {
	ws1 := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	xdg := os.Getenv("XDG_CACHE_HOME")
	ws2 := filepath.Join(t.TempDir(), "ws2")
	os.MkdirAll(ws2, 0o755)
	for p, c := range map[string]string{"WORKSPACE.hep": "", "BUILD": chain, "in.txt": "z\n", "other.txt": "w\n"} {
		os.WriteFile(filepath.Join(ws2, p), []byte(c), 0o644)
	}
	for _, ws := range []string{ws1, ws2} {
		if r := hepbuild(t, ws, "//:b", "--progress=none"); r.code != 0 {
			t.Fatalf("build %s: %d %s", ws, r.code, r.stderr)
		}
	}
	cacheHome := filepath.Join(xdg, "hepbuild")
	base1 := strings.TrimSpace(hepbuild(t, ws1, "info", "output_base").stdout)
	base2 := strings.TrimSpace(hepbuild(t, ws2, "info", "output_base").stdout)
	for _, b := range []string{base1, base2} {
		if _, err := os.Stat(filepath.Join(b, exec.OutputBaseMarker)); err != nil {
			t.Fatalf("output base %s has no marker: %v", b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(cacheHome, disk.Marker)); err != nil {
		t.Fatalf("disk cache has no marker: %v", err)
	}
	// A file the user put into the cache folder is not hepbuild's: it stays.
	note := filepath.Join(cacheHome, "NOTES.txt")
	os.WriteFile(note, []byte("mine\n"), 0o644)
	r := hepbuild(t, ws1, "clean", "--expunge")
	if r.code != 0 {
		t.Fatalf("expunge: %d %s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(note); err != nil || string(b) != "mine\n" {
		t.Fatalf("the user's file in the cache folder was removed or changed: %v", err)
	}
	if !strings.Contains(r.stderr, "kept "+note+": not made by hepbuild") {
		t.Errorf("expunge does not say it kept the user's file:\n%s", r.stderr)
	}
	os.Remove(note)
	if _, err := os.Stat(base1); err == nil {
		t.Errorf("expunge kept this workspace's output base %s", base1)
	}
	if _, err := os.Lstat(filepath.Join(ws1, "hepbuild-out")); err == nil {
		t.Errorf("expunge kept the hepbuild-out link")
	}
	for _, d := range []string{"cas.v1", "ac.v2"} {
		if _, err := os.Stat(filepath.Join(cacheHome, d)); err == nil {
			t.Errorf("expunge kept %s of the cache", d)
		}
	}
	if _, err := os.Stat(filepath.Join(base2, "out", "b.txt")); err != nil {
		t.Errorf("expunge in one workspace removed another's outputs: %v", err)
	}
	if !strings.Contains(r.stderr, "kept 1 output base(s) of other workspaces") || !strings.Contains(r.stderr, "removed the output base "+base1) {
		t.Errorf("expunge does not say what it removed and kept:\n%s", r.stderr)
	}
	// The other workspace still builds (its outputs restored or rerun).
	if r := hepbuild(t, ws2, "//:b", "--progress=none"); r.code != 0 {
		t.Fatalf("build after the other's expunge: %d %s", r.code, r.stderr)
	}

	if r := hepbuild(t, ws1, "clean", "--all-workspaces"); r.code != 2 {
		t.Errorf("--all-workspaces without --expunge: exit %d, want 2", r.code)
	}
	r = hepbuild(t, ws1, "clean", "--expunge", "--all-workspaces")
	if r.code != 0 {
		t.Fatalf("expunge --all-workspaces: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(base2); err == nil {
		t.Errorf("--all-workspaces kept %s", base2)
	}
	if !strings.Contains(r.stderr, "removed the output base "+base2+" (of "+ws2+")") {
		t.Errorf("--all-workspaces does not list the output base it removed and whose it was:\n%s", r.stderr)
	}
	if _, err := os.Stat(cacheHome); err == nil {
		t.Errorf("the emptied cache home %s is still there: %v", cacheHome, listTree(t, cacheHome))
	}
}

// TestCleanDoesNotFollowLinks plants links to a user's folder and file
// inside the cache and the output base: clean, clean --cache and clean
// --expunge remove the links, never what they point to.
func TestCleanDoesNotFollowLinks(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	if r := hepbuild(t, root, "//:b", "--progress=none"); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	home := userFolder(t)
	before := listTree(t, home)
	cacheHome := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "hepbuild")
	base := strings.TrimSpace(hepbuild(t, root, "info", "output_base").stdout)
	plant := func() {
		hash := strings.Repeat("ab", 32)
		os.MkdirAll(filepath.Join(cacheHome, "cas.v1", "ab"), 0o755)
		os.MkdirAll(filepath.Join(cacheHome, "ac.v2", "ab"), 0o755)
		os.MkdirAll(filepath.Join(cacheHome, "ac.v1", "ab"), 0o755)
		os.MkdirAll(filepath.Join(cacheHome, "environments"), 0o755)
		for _, l := range [][2]string{
			{filepath.Join(cacheHome, "cas.v1", "ab", hash), filepath.Join(home, "thesis.tex")},
			{filepath.Join(cacheHome, "ac.v2", "ab", hash), filepath.Join(home, "data")},
			{filepath.Join(cacheHome, "ac.v2", "zz"), home},
			{filepath.Join(cacheHome, "ac.v1", "ab", hash), filepath.Join(home, "data")},
			{filepath.Join(cacheHome, "ac.v1", "zz"), home},
			{filepath.Join(cacheHome, "environments", "venv"), home},
			{filepath.Join(base, "out", "home"), home},
			{filepath.Join(base, "logs", "home"), home},
			{filepath.Join(base, "sandbox", "home"), home},
		} {
			os.Remove(l[0])
			os.MkdirAll(filepath.Dir(l[0]), 0o755)
			if err := os.Symlink(l[1], l[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, args := range [][]string{{"clean"}, {"clean", "--cache", "--max-size=0"}, {"clean", "--cache", "--max-age=0s"}, {"clean", "--expunge"}} {
		plant()
		if r := hepbuild(t, root, args...); r.code != 0 {
			t.Fatalf("%v: %d %s", args, r.code, r.stderr)
		}
		sameTree(t, "the user's folder after "+strings.Join(args, " "), before, listTree(t, home))
	}
	if _, err := os.Stat(cacheHome); err == nil {
		t.Errorf("expunge left %v", listTree(t, cacheHome))
	}
}

// TestOldOutputBaseAndCacheAreAdopted: an output base and a cache made by
// the hepbuild before markers (same layout, no marker) keep working: the
// next build uses them (restoring from the cache) and marks them, and
// expunge removes them.
func TestOldOutputBaseAndCacheAreAdopted(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	ev := filepath.Join(t.TempDir(), "ev.jsonl")
	if r := hepbuild(t, root, "//:b", "--progress=none"); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	cacheHome := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "hepbuild")
	base := strings.TrimSpace(hepbuild(t, root, "info", "output_base").stdout)
	os.Remove(filepath.Join(base, exec.OutputBaseMarker))
	os.Remove(filepath.Join(cacheHome, disk.Marker))
	// Before markers, results were in ac.v1 (now read, never written).
	if err := os.Rename(filepath.Join(cacheHome, "ac.v2"), filepath.Join(cacheHome, "ac.v1")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(base, "out"))
	if r := hepbuild(t, root, "//:b", "--progress=none", "--events", ev); r.code != 0 {
		t.Fatalf("build on old layout: %d %s", r.code, r.stderr)
	}
	if got := events(t, ev)["action_cached"]; len(got) != 2 {
		t.Errorf("build on old layout restored %v from the cache, want both actions", got)
	}
	for _, m := range []string{filepath.Join(base, exec.OutputBaseMarker), filepath.Join(cacheHome, disk.Marker)} {
		if _, err := os.Stat(m); err != nil {
			t.Errorf("old layout not marked: %v", err)
		}
	}
	os.Remove(filepath.Join(base, exec.OutputBaseMarker))
	os.Remove(filepath.Join(cacheHome, disk.Marker))
	if r := hepbuild(t, root, "clean", "--expunge"); r.code != 0 {
		t.Fatalf("expunge of old layout: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(cacheHome); err == nil {
		t.Errorf("expunge of old layout left %v", listTree(t, cacheHome))
	}
}

// TestOutputBaseOfAnotherWorkspaceIsRefused: two workspaces named with one
// --output-base would overwrite each other's outputs and build state; the
// second is refused, and the first's outputs stay.
func TestOutputBaseOfAnotherWorkspaceIsRefused(t *testing.T) {
	ws1 := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	ws2 := filepath.Join(t.TempDir(), "ws2")
	os.MkdirAll(ws2, 0o755)
	for p, c := range map[string]string{"WORKSPACE.hep": "", "BUILD": chain, "in.txt": "z\n", "other.txt": "w\n"} {
		os.WriteFile(filepath.Join(ws2, p), []byte(c), 0o644)
	}
	base := filepath.Join(t.TempDir(), "base")
	if r := hepbuild(t, ws1, "//:a", "--progress=none", "--output-base="+base); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	r := hepbuild(t, ws2, "//:a", "--progress=none", "--output-base="+base)
	if r.code != 2 || !strings.Contains(r.stderr, "output base of the workspace "+ws1) {
		t.Errorf("second workspace on the same output base: exit %d, want 2 naming %s\n%s", r.code, ws1, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(base, "out", "a.txt")); err != nil || string(b) != "X\n" {
		t.Errorf("the first workspace's output changed: %q %v", b, err)
	}
}

// TestCleanForgetsTheOutputTree: clean removes the output tree and the
// journal's records of it (keeping the actions' key memos), so the next
// build checks nothing against files that are gone; it restores every
// output from the cache, and the build after that finds them all up to date.
func TestCleanForgetsTheOutputTree(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "hello\n", "other.txt": "x\n"})
	if r := hepbuild(t, root, "//:b", "//:other"); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	base := strings.TrimSpace(hepbuild(t, root, "info", "output_base").stdout)
	journal := filepath.Join(base, "journal.v1")
	if b, err := os.ReadFile(journal); err != nil || len(b) == 0 {
		t.Fatalf("no journal records after a build: %v", err)
	}
	if r := hepbuild(t, root, "clean"); r.code != 0 {
		t.Fatalf("clean: exit %d\n%s", r.code, r.stderr)
	}
	// What stays is each action's key memo, which vouches for no file.
	if b, err := os.ReadFile(journal); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if !strings.HasPrefix(line, "k\t") {
				t.Errorf("the journal still holds a record of the removed output tree: %s", line)
			}
		}
	}
	r := hepbuild(t, root, "//:b", "//:other")
	if r.code != 0 || !strings.Contains(r.stderr, "3 cached") {
		t.Fatalf("build after clean: exit %d, want 3 actions restored\n%s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "b.txt")); string(got) != "6\n" {
		t.Errorf("b.txt = %q after restoring", got)
	}
	if r := hepbuild(t, root, "//:b", "//:other"); r.code != 0 || !strings.Contains(r.stderr, "up to date") {
		t.Errorf("build after the restore: exit %d, want everything up to date\n%s", r.code, r.stderr)
	}
}
