package starlark

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// stampWorkspace writes a workspace whose BUILD file loads a .star file,
// reads a JSON file and globs its inputs.
func stampWorkspace(t *testing.T) string {
	t.Helper()
	return writeTree(t, map[string]string{
		"WORKSPACE.hep":       "",
		"ana/BUILD":           "load(':defs.star', 'NAME')\ncfg = read_json('cfg.json')\ntask(name = NAME, srcs = glob(['data/*.txt']), outs = ['out.txt'], cmd = 'cat $(SRCS) > $@ && echo %s >> $@' % cfg['x'])\n",
		"ana/defs.star":       "NAME = 'merge'\n",
		"ana/cfg.json":        `{"x": "one"}`,
		"ana/data/a.txt":      "a\n",
		"ana/data/b.txt":      "b\n",
		"ana/data/notes.md":   "not matched\n",
		"other/BUILD":         "",
		"other/unrelated.txt": "",
	})
}

func TestDependencies(t *testing.T) {
	root := stampWorkspace(t)
	l, err := NewLoader(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Analyze([]graph.Label{graph.MustParseLabel("//ana:merge")}); err != nil {
		t.Fatal(err)
	}
	want := []string{"WORKSPACE.hep", "ana", "ana/BUILD", "ana/cfg.json", "ana/data", "ana/defs.star"}
	if diff := cmp.Diff(want, l.Dependencies()); diff != "" {
		t.Errorf("Dependencies mismatch (-want +got):\n%s", diff)
	}
}

// stampFor loads and analyses //ana:merge and records a build stamp of its
// dependencies and its action's inputs, as the build command does.
func stampFor(t *testing.T, root, base string) {
	t.Helper()
	l, err := NewLoader(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := l.Analyze([]graph.Label{graph.MustParseLabel("//ana:merge")})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, d := range l.Dependencies() {
		files = append(files, filepath.Join(root, d))
	}
	for _, a := range g.Actions {
		for _, in := range a.Inputs {
			files = append(files, filepath.Join(root, in.Path))
		}
	}
	if err := exec.WriteStamp(base, exec.Stamp{Key: "k", Files: files, Actions: len(g.Actions)}); err != nil {
		t.Fatal(err)
	}
}

// TestStampInvalidation changes, one at a time, each kind of thing loading
// and analysis depend on, and expects the build stamp to stop matching;
// unrelated changes keep it.
func TestStampInvalidation(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(t *testing.T, root string)
		matches bool
	}{
		{"nothing", func(*testing.T, string) {}, true},
		{"unrelated package file", func(t *testing.T, root string) { write(t, root, "other/unrelated.txt", "changed") }, true},
		{"BUILD file", func(t *testing.T, root string) {
			write(t, root, "ana/BUILD", "load(':defs.star', 'NAME')\ncfg = read_json('cfg.json')\ntask(name = NAME, srcs = glob(['data/*.txt']), outs = ['out.txt'], cmd = 'cat $(SRCS) > $@ && echo %s >> $@' % cfg['y'])\n")
		}, false},
		{".star file, same size", func(t *testing.T, root string) { write(t, root, "ana/defs.star", "NAME = 'merga'\n") }, false},
		{"read_json file, same size", func(t *testing.T, root string) { write(t, root, "ana/cfg.json", `{"x": "two"}`) }, false},
		{"file added that the glob matches", func(t *testing.T, root string) { write(t, root, "ana/data/c.txt", "c\n") }, false},
		{"file added that the glob does not match", func(t *testing.T, root string) { write(t, root, "ana/data/c.md", "c\n") }, false},
		{"globbed file removed", func(t *testing.T, root string) { remove(t, root, "ana/data/b.txt") }, false},
		{"input changed, same size", func(t *testing.T, root string) { write(t, root, "ana/data/a.txt", "A\n") }, false},
		{"BUILD.hep added beside BUILD", func(t *testing.T, root string) { write(t, root, "ana/BUILD.hep", "") }, false},
		{"input made executable", func(t *testing.T, root string) {
			if err := os.Chmod(filepath.Join(root, "ana/data/a.txt"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		for _, settle := range []bool{false, true} {
			name := c.name
			if settle {
				// Past the racy window, the stat alone must notice.
				name += ", stamp not racy"
			}
			t.Run(name, func(t *testing.T) {
				root, base := stampWorkspace(t), t.TempDir()
				if settle {
					old := time.Now().Add(-time.Hour)
					_ = filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
						if err == nil {
							_ = os.Chtimes(p, old, old)
						}
						return nil
					})
					// ctime cannot be set back: wait out the racy window.
					time.Sleep(120 * time.Millisecond)
				}
				stampFor(t, root, base)
				if _, ok := exec.CheckStamp(base, "k"); !ok {
					t.Fatal("the stamp does not match right after it was written")
				}
				c.change(t, root)
				if _, ok := exec.CheckStamp(base, "k"); ok != c.matches {
					t.Errorf("stamp matches = %v after the change, want %v", ok, c.matches)
				}
			})
		}
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	fi, err := os.Stat(p)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		// Keep the old mtime, as a fast edit within one timestamp tick
		// would: only the content (or ctime) tells.
		_ = os.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
}

func remove(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
}

// TestPackageOrder checks the targets a BUILD file makes, in order: each
// rule's outputs and the rule, as declared, then source files in order of
// first mention, then the BUILD file. An unset label attribute (task's env)
// names no target.
func TestPackageOrder(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"WORKSPACE.hep": "",
		"BUILD": "task(name = 'b', srcs = ['in2.txt', ':a'], outs = ['b.txt'], cmd = 'cat $(SRCS) > $@')\n" +
			"task(name = 'a', srcs = ['in1.txt', 'in2.txt'], outs = ['a.txt'], cmd = 'cat $(SRCS) > $@')\n",
		"in1.txt": "1\n",
		"in2.txt": "2\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := NewLoader(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Package("", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"b.txt", "b", "a.txt", "a", "in2.txt", "in1.txt", "BUILD"}
	if diff := cmp.Diff(want, p.Order); diff != "" {
		t.Errorf("Order mismatch (-want +got):\n%s", diff)
	}
	if len(p.Targets) != len(want) {
		t.Errorf("%d targets, want %d: %v", len(p.Targets), len(want), p.Order)
	}
}
