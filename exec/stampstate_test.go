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
// command ran; those are stat'ed, and the stamp matches them as they are
// when only their ctime moved.
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
			j := w.openJournal()
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
			// A change of the ctime alone (a chmod to the mode it has):
			// what another link to the file does too, which a stat
			// taken now records and the journal does not count as a
			// write (see Journal.vouched).
			p := filepath.Join(w.root, out(tc.touched))
			moveCtime(t, p)
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

// TestStampRefusesOutputsChangedDuringTheBuild: an output the journal
// recorded (made, restored or found up to date) that is edited, replaced
// or removed before the stamp is written (someone saves it in an editor
// while the build goes on) is not recorded as it is then: the next build
// would take that state for the build's own and skip it. The stamp holds
// the state the journal vouches for, which the next check does not find,
// and the full build then finds the edit. An output that only had its
// ctime moved (another link to its inode) is recorded as it is.
func TestStampRefusesOutputsChangedDuringTheBuild(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, p string)
		match  bool
	}{
		{"unchanged", func(t *testing.T, p string) {}, true},
		{"another link to it", func(t *testing.T, p string) {
			if err := os.Link(p, p+".link"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"edited", func(t *testing.T, p string) {
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, []byte("edited by hand\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"replaced", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"removed", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := shell("a", "echo a > $OUT", nil, out("a.txt"))
			a.Env["OUT"] = out("a.txt")
			w := newWorkspace(t, "none", openDisk(t))
			j := w.openJournal()
			defer j.Close()
			r := w.runner(j, nil)
			if o, err := r.Work(context.Background(), a); err != nil || o != executed {
				t.Fatalf("outcome %v, %v", o, err)
			}
			p := filepath.Join(w.root, out("a.txt"))
			tc.change(t, p)
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

// moveCtime changes the file's ctime and nothing else, as another hard
// link to it would: a chmod to its own mode, again until the ctime's
// clock tick has passed.
func moveCtime(t *testing.T, p string) {
	t.Helper()
	before, err := exec.StatPath(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if err := os.Chmod(p, fi.Mode()); err != nil {
			t.Fatal(err)
		}
		if now, _ := exec.StatPath(p); now != before {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the ctime did not move")
}
