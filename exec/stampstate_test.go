package exec_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec"
)

// TestStampTakesRestoredOutputStatesFromTheRunner: the stamp records an
// output restored in the same build as the runner saw it right after
// linking it, without another stat, so that a change to it after the
// restore (here, its times) ends the next null build instead of being
// recorded. Only while that stat is still the file's: not for outputs
// linked to one blob (each link moves the ctime of all) and not once a
// command ran; those are stat'ed, and the stamp matches them as they are.
func TestStampTakesRestoredOutputStatesFromTheRunner(t *testing.T) {
	a := shell("a", "echo a > $OUT", nil, out("a.txt"))
	a.Env["OUT"] = out("a.txt")
	b := shell("b", "echo same > $OUT", nil, out("b.txt"))
	b.Env["OUT"] = out("b.txt")
	c := shell("c", "echo same > $OUT", nil, out("c.txt"))
	c.Env["OUT"] = out("c.txt")
	e := shell("e", "echo e > $OUT", nil, out("e.txt"))
	e.Env["OUT"] = out("e.txt")
	e.SetExtra().Tags = []string{"no-cache"}
	for _, tc := range []struct {
		name    string
		touched string
		run     []*exec.Action // after the restore
		match   bool
	}{
		{"output restored once", "a.txt", nil, false},
		{"outputs linked to one blob", "b.txt", nil, true},
		{"a command ran after the restore", "a.txt", []*exec.Action{e}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorkspace(t, "none", openDisk(t))
			w.mustBuild([]exec.Outcome{executed, executed, executed}, a, b, c)
			w.clean()
			if err := exec.PrepareOutputBase(w.root, w.base); err != nil {
				t.Fatal(err)
			}
			j, err := exec.OpenJournal(w.base)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			r := w.runner(j, nil)
			for _, x := range append([]*exec.Action{a, b, c}, tc.run...) {
				o, err := r.Work(context.Background(), x)
				if err != nil {
					t.Fatal(err)
				}
				if want := exec.OutcomeCached; x != e && o != want {
					t.Fatalf("%s: outcome %v, want %v", x.Owner, o, want)
				}
			}
			p := filepath.Join(w.root, out(tc.touched))
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
			s := exec.Stamp{Key: exec.StampKey("//:x"), Files: []string{p}, Journal: j, ExecRoot: w.root, Runner: r}
			if err := exec.WriteStamp(w.base, s); err != nil {
				t.Fatal(err)
			}
			if _, ok := exec.CheckStamp(w.base, s.Key); ok != tc.match {
				t.Errorf("stamp matches: %v, want %v", ok, tc.match)
			}
		})
	}
}

// TestStampRecordsKnownStates: a state the caller took (the sources'
// after the build) is recorded as given, not taken again: a change after
// it ends the next null build.
func TestStampRecordsKnownStates(t *testing.T) {
	base, dir := t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	st, err := exec.StatPath(p)
	if err != nil {
		t.Fatal(err)
	}
	s := exec.Stamp{Key: exec.StampKey("//:x"), Files: []string{p}, Known: map[string]exec.PathState{p: st}, KnownAt: at}
	if err := exec.WriteStamp(base, s); err != nil {
		t.Fatal(err)
	}
	if _, ok := exec.CheckStamp(base, s.Key); !ok {
		t.Fatal("stamp does not match right after writing it")
	}
	if err := os.WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.WriteStamp(base, s); err != nil {
		t.Fatal(err)
	}
	if _, ok := exec.CheckStamp(base, s.Key); ok {
		t.Error("stamp matches a file changed after its state was taken")
	}
	if now, _ := exec.StatPath(p); !now.SameContent(now) || now.SameContent(st) {
		t.Error("SameContent does not tell the rewritten file from the first")
	}
}

// TestStatPaths: each path's state as StatPath has it, in order, on
// however many goroutines; a missing path is a state, not an error.
func TestStatPaths(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 2500 {
		p := filepath.Join(dir, strconv.Itoa(i))
		if i%3 != 0 {
			if err := os.WriteFile(p, []byte(strings.Repeat("x", i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		paths = append(paths, p)
	}
	states, errs := exec.StatPaths(paths)
	for i, p := range paths {
		want, err := exec.StatPath(p)
		if err != nil || errs[i] != nil {
			t.Fatalf("%s: %v, %v", p, err, errs[i])
		}
		if states[i] != want {
			t.Errorf("%s: StatPaths %+v, StatPath %+v", p, states[i], want)
		}
	}
}
