package exec_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
)

// forgetAll removes the output tree and turns the journal's records into
// key memos, as hepbuild clean does.
func (w *workspace) forgetAll() {
	w.t.Helper()
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		w.t.Fatal(err)
	}
	j, err := exec.OpenJournal(w.base)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := j.ForgetAll(); err != nil {
		w.t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		w.t.Fatal(err)
	}
}

// countKeys counts the whole keys computed until the test ends.
func countKeys(t *testing.T) *atomic.Int32 {
	var n atomic.Int32
	t.Cleanup(exec.SetKeyHook(func(*exec.Action) { n.Add(1) }))
	return &n
}

// TestRestoreAfterCleanTakesTheKeyMemo: after clean, the journal's key
// memos say each action's key, and the rebuild from the cache computes
// none; the build after it is up to date.
func TestRestoreAfterCleanTakesTheKeyMemo(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	acts := chain()
	w.mustBuild([]exec.Outcome{executed, executed, executed}, acts...)
	want := w.read(out("pkg/c.txt"))
	w.forgetAll()
	keys := countKeys(t)
	w.mustBuild([]exec.Outcome{cached, cached, cached}, acts...)
	if n := keys.Load(); n != 0 {
		t.Errorf("the rebuild after clean computed %d keys, want none: the memos say them", n)
	}
	if got := w.read(out("pkg/c.txt")); got != want {
		t.Errorf("c = %q after the restore, want %q", got, want)
	}
	w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, acts...)
}

// TestKeyMemoMissRunsWithTheWholeKey: an action whose memo names a key the
// cache has no result for runs, with its whole key computed, and stores its
// result under it: the next clean and rebuild restores it.
func TestKeyMemoMissRunsWithTheWholeKey(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	w.forgetAll()
	w.cache = openDisk(t) // another, empty cache
	keys := countKeys(t)
	w.mustBuild([]exec.Outcome{executed}, a)
	if n := keys.Load(); n != 1 {
		t.Errorf("the run computed %d keys, want 1: a command runs with its whole key", n)
	}
	w.forgetAll()
	w.mustBuild([]exec.Outcome{cached}, a)
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a = %q after the restore", got)
	}
}

// TestKeyMemoOfAnotherAction: a memo vouches for its fingerprint only; an
// action changed since clean is keyed and runs.
func TestKeyMemoOfAnotherAction(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	w.forgetAll()
	changed := *a
	changed.Argv = append([]string(nil), a.Argv...)
	changed.Argv[len(changed.Argv)-1] = strings.Replace(changed.Argv[len(changed.Argv)-1], "a-z A-Z", "a-y A-Y", 1)
	keys := countKeys(t)
	w.mustBuild([]exec.Outcome{executed}, &changed)
	if n := keys.Load(); n == 0 {
		t.Error("the changed action was not keyed: the memo of the old one was taken")
	}
	// And an edited input: the memo's fingerprint no longer matches.
	w.forgetAll()
	w.write("pkg/src1.txt", "uno\n")
	w.mustBuild([]exec.Outcome{executed}, &changed)
	if got := w.read(out("pkg/a.txt")); got != "UNO\n" {
		t.Errorf("a = %q, want the edited input's", got)
	}
}
