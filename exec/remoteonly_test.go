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
)

// download makes the workspace's runners keep restored outputs in the
// cache as mode says, writing those of the actions making top.
func (w *workspace) download(mode exec.DownloadMode, top ...string) {
	set := map[string]bool{}
	for _, p := range top {
		set[p] = true
	}
	w.configure = func(r *exec.Runner) {
		r.Download = mode
		r.TopLevel = set
	}
}

func (w *workspace) remoteOnly(p string) bool {
	w.t.Helper()
	j, err := exec.OpenJournal(w.base)
	if err != nil {
		w.t.Fatal(err)
	}
	defer j.Close()
	return j.RemoteOnly(p)
}

var (
	oneDigest = cache.FromBytes([]byte("ONE\n"))
	twoDigest = cache.FromBytes([]byte("TWO\n"))
)

// TestDownloadTopLevel: a result restored for a dependency stays in the
// cache, its dependent is restored from its digest alone, a second build
// is up to date, and an action that runs fetches what it reads first.
func TestDownloadTopLevel(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "symlink", c)
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	actions := chain()
	w.mustBuild([]exec.Outcome{executed, executed, executed}, actions...)
	// Another clone: a fresh output tree, the same cache.
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.download(exec.DownloadTopLevel, out("pkg/c.txt"))
	w.mustBuild([]exec.Outcome{cached, cached, cached}, actions...)
	if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
		t.Errorf("c = %q", got)
	}
	for _, p := range []string{"pkg/a.txt", "pkg/b.txt"} {
		if w.exists(out(p)) {
			t.Errorf("%s was written, want it kept in the cache", p)
		}
		if !w.remoteOnly(out(p)) {
			t.Errorf("the journal does not record %s as kept in the cache", p)
		}
	}
	if n, m := c.servedCount(oneDigest), c.servedCount(twoDigest); n+m != 0 {
		t.Errorf("the cache served a.txt %d and b.txt %d times, want never", n, m)
	}

	reads := c.readCount()
	w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, actions...)
	if got := c.readCount(); got != reads {
		t.Errorf("a second build read the cache %d times", got-reads)
	}

	// c must run: it reads a and b, which are fetched first.
	c2 := shell("c", "cat hepbuild-out/pkg/b.txt hepbuild-out/pkg/a.txt > hepbuild-out/pkg/c.txt",
		[]string{out("pkg/a.txt"), out("pkg/b.txt")}, out("pkg/c.txt"))
	w.mustBuild([]exec.Outcome{upToDate, upToDate, executed}, actions[0], actions[1], c2)
	if got := w.read(out("pkg/c.txt")); got != "TWO\nONE\n" {
		t.Errorf("c = %q after running", got)
	}
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" || w.remoteOnly(out("pkg/a.txt")) {
		t.Errorf("a = %q, remote-only %t after its dependent ran; want it in the tree", got, w.remoteOnly(out("pkg/a.txt")))
	}
	if fi, err := os.Stat(filepath.Join(w.root, out("pkg/a.txt"))); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("fetched a.txt: %v %v, want read-only", fi, err)
	}
	// The fetched inputs are outputs like any other now.
	w.download(exec.DownloadAll)
	w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, actions[0], actions[1], c2)
}

// TestDownloadAllAfterMinimal: outputs kept in the cache are up to date
// only while the build does not want their bytes.
func TestDownloadAllAfterMinimal(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	actions := chain()
	w.mustBuild([]exec.Outcome{executed, executed, executed}, actions...)
	// A stale file where an output kept in the cache goes is removed.
	p := filepath.Join(w.root, out("pkg/a.txt"))
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("STALE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"pkg/b.txt", "pkg/c.txt"} {
		os.Remove(filepath.Join(w.root, out(q)))
	}
	w.download(exec.DownloadMinimal)
	w.mustBuild([]exec.Outcome{cached, cached, cached}, actions...)
	for _, q := range []string{"pkg/a.txt", "pkg/b.txt", "pkg/c.txt"} {
		if w.exists(out(q)) {
			t.Errorf("%s is in the output tree after a minimal build", q)
		}
	}
	w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, actions...)
	// The target named is written in toplevel mode, even when an earlier
	// build kept it in the cache.
	w.download(exec.DownloadTopLevel, out("pkg/c.txt"))
	w.mustBuild([]exec.Outcome{upToDate, upToDate, cached}, actions...)
	if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
		t.Errorf("c = %q", got)
	}
	w.download(exec.DownloadAll)
	w.mustBuild([]exec.Outcome{cached, cached, upToDate}, actions...)
	for q, want := range map[string]string{"pkg/a.txt": "ONE\n", "pkg/b.txt": "TWO\n", "pkg/c.txt": "ONE\nTWO\n"} {
		if got := w.read(out(q)); got != want {
			t.Errorf("%s = %q after --remote-download-outputs=all, want %q", q, got, want)
		}
	}
}

// TestRemoteOnlyInputGone: an input kept only in the cache that the cache
// lost fails its dependent with a clear error, and the next build makes it
// again.
func TestRemoteOnlyInputGone(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	actions := chain()
	w.mustBuild([]exec.Outcome{executed, executed, executed}, actions...)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.download(exec.DownloadMinimal)
	w.mustBuild([]exec.Outcome{cached, cached, cached}, actions...)
	c.remove(oneDigest)
	c2 := shell("c", "cat hepbuild-out/pkg/b.txt hepbuild-out/pkg/a.txt > hepbuild-out/pkg/c.txt",
		[]string{out("pkg/a.txt"), out("pkg/b.txt")}, out("pkg/c.txt"))
	// One build, c tried twice (--retries): both attempts say why.
	unlock, err := exec.LockOutputBase(w.base)
	if err != nil {
		t.Fatal(err)
	}
	j, err := exec.OpenJournal(w.base)
	if err != nil {
		t.Fatal(err)
	}
	r := w.runner(j, nil)
	for _, a := range actions[:2] {
		if o, err := r.Work(context.Background(), a); o != upToDate || err != nil {
			t.Fatalf("%s: %v %v, want up to date", a.Owner, outcomeNames([]exec.Outcome{o}), err)
		}
	}
	for attempt := 1; attempt <= 2; attempt++ {
		o, err := r.Work(context.Background(), c2)
		var ae *exec.ActionError
		if !errors.As(err, &ae) || o != exec.OutcomeFailed {
			t.Fatalf("attempt %d: %v, error %v; want c to fail", attempt, outcomeNames([]exec.Outcome{o}), err)
		}
		if !strings.Contains(ae.Reason, out("pkg/a.txt")) || !strings.Contains(ae.Reason, "build again") {
			t.Errorf("attempt %d: the error does not name the input and say to build again: %s", attempt, ae.Reason)
		}
	}
	j.Close()
	unlock()
	w.mustBuild([]exec.Outcome{executed, upToDate, executed}, actions[0], actions[1], c2)
	if got := w.read(out("pkg/c.txt")); got != "TWO\nONE\n" {
		t.Errorf("c = %q", got)
	}
}

// TestOutputFoldersAreAlwaysWritten: only plain files are kept in the cache alone.
func TestOutputFoldersAreAlwaysWritten(t *testing.T) {
	w := newWorkspace(t, "none", newMemCache())
	a := shell("tree", "mkdir -p hepbuild-out/pkg/tree; echo one > hepbuild-out/pkg/tree/one.txt", nil)
	a.Outputs = []exec.Artifact{{Path: out("pkg/tree"), Dir: true}}
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.download(exec.DownloadMinimal)
	w.mustBuild([]exec.Outcome{cached}, a)
	if got := w.read(out("pkg/tree/one.txt")); got != "one\n" {
		t.Errorf("one.txt = %q", got)
	}
}
