package exec_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/local"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/sandbox"
)

// contentInputs digests inputs from given contents, to compute the key an
// action has for contents that are no longer on disk.
type contentInputs map[string]string

func (c contentInputs) Digest(a exec.Artifact) (cache.Digest, bool, error) {
	s, ok := c[a.Path]
	if !ok {
		return cache.Digest{}, false, errors.New("no content for " + a.Path)
	}
	return cache.FromBytes([]byte(s)), false, nil
}

// keyFor is the action's key when its inputs have the given contents.
func keyFor(t *testing.T, a *exec.Action, contents map[string]string) cache.Digest {
	t.Helper()
	k, err := exec.ComputeKey(a, contentInputs(contents))
	if err != nil {
		t.Fatal(err)
	}
	return k.Digest
}

// inputsRig is an exec root with a journal, a stat cache and an in-memory
// action cache, and an action concatenating a.txt and b.txt.
type inputsRig struct {
	t    *testing.T
	root string
	c    *memCache
	r    *exec.Runner
	a    *exec.Action
}

func newInputsRig(t *testing.T, script string, inputs ...exec.Artifact) *inputsRig {
	t.Helper()
	root, base := t.TempDir(), t.TempDir()
	if err := exec.PrepareOutputBase(root, base); err != nil {
		t.Fatal(err)
	}
	j, err := exec.OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	stat, err := cache.OpenStatCache(filepath.Join(base, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	c := newMemCache()
	a := &exec.Action{Owner: graph.MustParseLabel("//:cat"), Mnemonic: "Task", Kind: exec.KindRun,
		Argv:    []string{"/bin/bash", "-c", "set -euo pipefail\n" + script},
		Env:     map[string]string{"PATH": "/usr/bin:/bin"},
		Inputs:  inputs,
		Outputs: []exec.Artifact{{Path: exec.OutDir + "/out.txt"}},
		Pos:     graph.Pos{File: "BUILD", Line: 1, Col: 1}}
	r := &exec.Runner{ExecRoot: root, OutputBase: base, Cache: c, Stat: stat, Journal: j,
		Executor: local.New(sandbox.None{}), Warn: func(string) {}}
	return &inputsRig{t: t, root: root, c: c, r: r, a: a}
}

func (g *inputsRig) write(rel, content string) {
	g.t.Helper()
	p := filepath.Join(g.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	// Replace, not rewrite: a generated file may be read-only.
	os.Remove(p)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

func (g *inputsRig) out() string {
	b, err := os.ReadFile(filepath.Join(g.root, exec.OutDir, "out.txt"))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// hasResult reports whether the action cache holds an entry under key.
func (g *inputsRig) hasResult(key cache.Digest) bool {
	g.c.mu.Lock()
	defer g.c.mu.Unlock()
	_, ok := g.c.ac[key]
	return ok
}

func files(paths ...string) []exec.Artifact {
	var arts []exec.Artifact
	for _, p := range paths {
		arts = append(arts, exec.Artifact{Path: p, Source: true})
	}
	return arts
}

// TestInputEditedWhileDigested: a.txt is edited after it was digested,
// while b.txt (in real life a large file) is still being hashed. The run
// sees the new a.txt; its result must never be stored under the key of the
// old one, and the journal must not call the outputs up to date.
func TestInputEditedWhileDigested(t *testing.T) {
	g := newInputsRig(t, "cat a.txt b.txt > hepbuild-out/out.txt", files("a.txt", "b.txt")...)
	g.write("a.txt", "a1\n")
	g.write("b.txt", "b1\n")
	oldKey := keyFor(t, g.a, map[string]string{"a.txt": "a1\n", "b.txt": "b1\n"})
	newKey := keyFor(t, g.a, map[string]string{"a.txt": "a2\n", "b.txt": "b1\n"})

	edited := false
	defer exec.SetDigestHook(func(p string) {
		if p == "b.txt" && !edited {
			edited = true
			g.write("a.txt", "a2\n")
		}
	})()
	o, err := g.r.Work(context.Background(), g.a)
	if err != nil || o != exec.OutcomeExecuted {
		t.Fatalf("outcome %v, err %v; want executed", o, err)
	}
	if !edited {
		t.Fatal("the hook never ran")
	}
	if g.hasResult(oldKey) {
		t.Error("the result made from a2 is stored under the key of a1")
	}
	if !g.hasResult(newKey) {
		t.Error("the result made from a2 is not stored under its own key")
	}
	if got := g.out(); got != "a2\nb1\n" {
		t.Errorf("out.txt = %q, want a2 b1", got)
	}
	if o, err := g.r.Work(context.Background(), g.a); err != nil || o != exec.OutcomeUpToDate {
		t.Errorf("second build: outcome %v, err %v; want up to date", o, err)
	}
	// Back to a1: nothing may be up to date or cached for it.
	g.write("a.txt", "a1\n")
	if o, err := g.r.Work(context.Background(), g.a); err != nil || o != exec.OutcomeExecuted {
		t.Errorf("build for a1: outcome %v, err %v; want executed", o, err)
	}
	if got := g.out(); got != "a1\nb1\n" {
		t.Errorf("out.txt = %q, want a1 b1", got)
	}
}

// TestInputKeepsChanging: an input edited on every attempt fails the action
// with an error naming it, stores nothing, and keeps nothing as up to date.
func TestInputKeepsChanging(t *testing.T) {
	g := newInputsRig(t, "cat a.txt b.txt > hepbuild-out/out.txt", files("a.txt", "b.txt")...)
	g.write("a.txt", "a0\n")
	g.write("b.txt", "b1\n")
	n := 0
	restore := exec.SetDigestHook(func(p string) {
		if p == "b.txt" {
			n++
			g.write("a.txt", strings.Repeat("a", n)+"\n")
		}
	})
	o, err := g.r.Work(context.Background(), g.a)
	restore()
	var ae *exec.ActionError
	if o != exec.OutcomeFailed || !errors.As(err, &ae) || !strings.Contains(ae.Reason, "input a.txt kept changing") {
		t.Fatalf("outcome %v, err %v; want a failure naming a.txt", o, err)
	}
	if len(g.c.ac) != 0 {
		t.Errorf("the action cache holds %d results, want none", len(g.c.ac))
	}
	if _, err := os.Stat(filepath.Join(g.root, exec.OutDir, "out.txt")); err == nil {
		t.Error("the output of a disturbed run was kept")
	}
	if o, err := g.r.Work(context.Background(), g.a); err != nil || o != exec.OutcomeExecuted {
		t.Errorf("next build: outcome %v, err %v; want executed", o, err)
	}
}

// TestInputDisturbedWhileDigested attacks the other shapes of an input:
// a link retargeted, a file deleted, a folder's file edited or added, and
// an edit that restores size and mtime. Each must either run again on the
// new inputs or fail; no result may be stored under the first key.
func TestInputDisturbedWhileDigested(t *testing.T) {
	tests := []struct {
		name    string
		inputs  []exec.Artifact
		setup   func(g *inputsRig)
		disturb func(g *inputsRig)
		old     map[string]string // contents of the first key (files only)
		wantOut string            // "" means the build must fail
		wantErr string
	}{
		{
			name:   "symlink retargeted",
			inputs: files("a.txt", "b.txt"),
			setup: func(g *inputsRig) {
				g.write("t1", "a1\n")
				g.write("t2", "a2\n")
				if err := os.Symlink("t1", filepath.Join(g.root, "a.txt")); err != nil {
					t.Fatal(err)
				}
			},
			disturb: func(g *inputsRig) {
				p := filepath.Join(g.root, "a.txt")
				os.Remove(p)
				if err := os.Symlink("t2", p); err != nil {
					t.Fatal(err)
				}
			},
			old:     map[string]string{"a.txt": "a1\n", "b.txt": "b1\n"},
			wantOut: "a2\nb1\n",
		},
		{
			name:    "input deleted",
			inputs:  files("a.txt", "b.txt"),
			setup:   func(g *inputsRig) { g.write("a.txt", "a1\n") },
			disturb: func(g *inputsRig) { os.Remove(filepath.Join(g.root, "a.txt")) },
			old:     map[string]string{"a.txt": "a1\n", "b.txt": "b1\n"},
			wantErr: "missing input a.txt",
		},
		{
			name:   "same size and mtime",
			inputs: files("a.txt", "b.txt"),
			setup:  func(g *inputsRig) { g.write("a.txt", "a1\n") },
			disturb: func(g *inputsRig) {
				p := filepath.Join(g.root, "a.txt")
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("a2\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
					t.Fatal(err)
				}
			},
			old:     map[string]string{"a.txt": "a1\n", "b.txt": "b1\n"},
			wantOut: "a2\nb1\n",
		},
		{
			name:    "folder file edited",
			inputs:  []exec.Artifact{{Path: "a", Source: true, Dir: true}, {Path: "b.txt", Source: true}},
			setup:   func(g *inputsRig) { g.write("a/x.txt", "a1\n") },
			disturb: func(g *inputsRig) { g.write("a/x.txt", "a2\n") },
			wantOut: "a2\nb1\n",
		},
		{
			name:    "folder file added",
			inputs:  []exec.Artifact{{Path: "a", Source: true, Dir: true}, {Path: "b.txt", Source: true}},
			setup:   func(g *inputsRig) { g.write("a/x.txt", "a1\n") },
			disturb: func(g *inputsRig) { g.write("a/y.txt", "y\n") },
			wantOut: "a1\ny\nb1\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script := "cat a.txt b.txt > hepbuild-out/out.txt"
			if tc.inputs[0].Dir {
				script = "cat a/* b.txt > hepbuild-out/out.txt"
			}
			g := newInputsRig(t, script, tc.inputs...)
			g.write("b.txt", "b1\n")
			tc.setup(g)
			// The first key, from a run of the action on the inputs as they
			// are: whatever ends in the cache must not be under it.
			first, err := exec.ComputeKey(g.a, &diskInputs{root: g.root})
			if err != nil {
				t.Fatal(err)
			}
			if tc.old != nil && keyFor(t, g.a, tc.old) != first.Digest {
				t.Fatal("the first key is not the key of the old contents")
			}
			done := false
			defer exec.SetDigestHook(func(p string) {
				if p == "b.txt" && !done {
					done = true
					tc.disturb(g)
				}
			})()
			o, err := g.r.Work(context.Background(), g.a)
			if !done {
				t.Fatal("the hook never ran")
			}
			if g.hasResult(first.Digest) {
				t.Error("a result is stored under the key of the inputs before the change")
			}
			if tc.wantOut == "" {
				var ae *exec.ActionError
				if !errors.As(err, &ae) || !strings.Contains(ae.Reason, tc.wantErr) {
					t.Fatalf("outcome %v, err %v; want a failure with %q", o, err, tc.wantErr)
				}
				return
			}
			if err != nil || o != exec.OutcomeExecuted {
				t.Fatalf("outcome %v, err %v; want executed", o, err)
			}
			if got := g.out(); got != tc.wantOut {
				t.Errorf("out.txt = %q, want %q", got, tc.wantOut)
			}
		})
	}
}

// diskInputs digests inputs straight from the files, without any cache.
type diskInputs struct{ root string }

func (d *diskInputs) Digest(a exec.Artifact) (cache.Digest, bool, error) {
	p := filepath.Join(d.root, a.Path)
	fi, err := os.Stat(p)
	if err != nil {
		return cache.Digest{}, false, err
	}
	dg, err := cache.FromFile(p)
	return dg, fi.Mode()&0o111 != 0, err
}

func (d *diskInputs) ListDir(a exec.Artifact) ([]exec.FileEntry, error) {
	var out []exec.FileEntry
	root := filepath.Join(d.root, a.Path)
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		dg, err := cache.FromFile(p)
		rel, _ := filepath.Rel(root, p)
		out = append(out, exec.FileEntry{Path: filepath.ToSlash(rel), Digest: dg, Executable: fi.Mode()&0o111 != 0})
		return err
	})
	return out, err
}
