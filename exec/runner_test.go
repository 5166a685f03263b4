package exec_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/local"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/sandbox"
)

// workspace is a temporary exec root with its output base.
type workspace struct {
	t        *testing.T
	root     string
	base     string
	strategy string
	cache    cache.Cache
	mu       sync.Mutex
	warnings []string
	// configure, when set, completes every Runner the workspace makes.
	configure func(*exec.Runner)
}

func newWorkspace(t *testing.T, strategy string, c cache.Cache) *workspace {
	t.Helper()
	w := &workspace{t: t, root: t.TempDir(), base: t.TempDir(), strategy: strategy, cache: c}
	w.write("WORKSPACE.hep", "")
	return w
}

func (w *workspace) write(rel, content string) {
	w.t.Helper()
	p := filepath.Join(w.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *workspace) read(rel string) string {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.root, rel))
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

func (w *workspace) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(w.root, rel))
	return err == nil
}

func (w *workspace) runner(j *exec.Journal, stat *cache.StatCache) *exec.Runner {
	var st sandbox.Strategy = sandbox.None{}
	switch w.strategy {
	case "symlink":
		st = sandbox.NewSymlink(filepath.Join(w.base, "sandbox"))
	case "linux":
		l, err := sandbox.NewLinux(filepath.Join(w.base, "sandbox"), w.base)
		if err != nil {
			w.t.Fatalf("the linux strategy is unavailable (apt-get install bubblewrap): %v", err)
		}
		w.t.Cleanup(func() { l.Close() })
		st = l
	}
	r := &exec.Runner{
		ExecRoot:   w.root,
		OutputBase: w.base,
		Cache:      w.cache,
		Executor:   local.New(st, local.WithGrace(200*time.Millisecond)),
		Stat:       stat,
		Journal:    j,
		Warn: func(s string) {
			w.mu.Lock()
			w.warnings = append(w.warnings, s)
			w.mu.Unlock()
		},
	}
	if w.configure != nil {
		w.configure(r)
	}
	return r
}

// openJournal prepares the output base and opens its journal, as a build
// does before its first action; the caller closes it.
func (w *workspace) openJournal() *exec.Journal {
	w.t.Helper()
	if err := exec.PrepareOutputBase(w.root, w.base); err != nil {
		w.t.Fatal(err)
	}
	j, err := exec.OpenJournal(w.base)
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

// build runs the actions in order, as one build, and returns each outcome
// and the first error.
func (w *workspace) build(actions ...*exec.Action) ([]exec.Outcome, error) {
	w.t.Helper()
	unlock, err := exec.LockOutputBase(w.base)
	if err != nil {
		w.t.Fatal(err)
	}
	defer unlock()
	if err := exec.PrepareOutputBase(w.root, w.base); err != nil {
		w.t.Fatal(err)
	}
	j, err := exec.OpenJournal(w.base)
	if err != nil {
		w.t.Fatal(err)
	}
	stat, err := cache.OpenStatCache(filepath.Join(w.base, "stat"))
	if err != nil {
		w.t.Fatal(err)
	}
	r := w.runner(j, stat)
	var outcomes []exec.Outcome
	var first error
	for _, a := range actions {
		o, err := r.Work(context.Background(), a)
		outcomes = append(outcomes, o)
		if err != nil && first == nil {
			first = err
		}
	}
	if err := j.Close(); err != nil {
		w.t.Fatal(err)
	}
	if err := stat.Save(); err != nil {
		w.t.Fatal(err)
	}
	return outcomes, first
}

// mustBuild builds and fails the test unless the outcomes are as wanted.
// clean removes the output tree and the journal's records of it, as
// hepbuild clean does: the next build restores from the cache.
func (w *workspace) clean() {
	w.t.Helper()
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(w.base, "journal.v1")); err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
}

func (w *workspace) mustBuild(want []exec.Outcome, actions ...*exec.Action) {
	w.t.Helper()
	got, err := w.build(actions...)
	if err != nil {
		var ae *exec.ActionError
		if errors.As(err, &ae) {
			w.t.Fatalf("build failed: %v\n%s", err, ae.Tail)
		}
		w.t.Fatalf("build failed: %v", err)
	}
	if diff := cmp.Diff(outcomeNames(want), outcomeNames(got)); diff != "" {
		w.t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
	}
}

func outcomeNames(os []exec.Outcome) []string {
	names := map[exec.Outcome]string{
		exec.OutcomeExecuted: "executed", exec.OutcomeCached: "cached", exec.OutcomeUpToDate: "uptodate",
		exec.OutcomeFailed: "failed", exec.OutcomeSkipped: "skipped",
	}
	var s []string
	for _, o := range os {
		s = append(s, names[o])
	}
	return s
}

var (
	executed = exec.OutcomeExecuted
	cached   = exec.OutcomeCached
	upToDate = exec.OutcomeUpToDate
)

func out(p string) string { return exec.OutDir + "/" + p }

// shell returns a bash action reading the inputs and writing the outputs
// (paths relative to the exec root).
func shell(name, script string, inputs []string, outputs ...string) *exec.Action {
	a := &exec.Action{
		Owner:    graph.Label{Pkg: "pkg", Name: name},
		Mnemonic: "Task",
		Kind:     exec.KindRun,
		Argv:     []string{"/bin/bash", "-c", "set -euo pipefail\n" + script},
		Env:      map[string]string{"PATH": "/usr/bin:/bin"},
		Pos:      graph.Pos{File: "pkg/BUILD", Line: 1, Col: 1},
	}
	for _, in := range inputs {
		a.Inputs = append(a.Inputs, exec.Artifact{Path: in, Source: !strings.HasPrefix(in, exec.OutDir+"/")})
	}
	for _, o := range outputs {
		a.Outputs = append(a.Outputs, exec.Artifact{Path: o})
	}
	return a
}

var strategyNames = []string{"none", "symlink"}

func TestFailingCommand(t *testing.T) {
	for _, st := range strategyNames {
		t.Run(st, func(t *testing.T) {
			w := newWorkspace(t, st, newMemCache())
			a := shell("fail", `for i in $(seq 1 30); do echo "line $i"; done
echo partial > hepbuild-out/pkg/x.txt
exit 3`, nil, out("pkg/x.txt"))
			_, err := w.build(a)
			var ae *exec.ActionError
			if !errors.As(err, &ae) {
				t.Fatalf("got error %v, want an ActionError", err)
			}
			if ae.ExitCode != 3 || ae.Reason != "exit status 3" {
				t.Errorf("exit code %d, reason %q; want 3, exit status 3", ae.ExitCode, ae.Reason)
			}
			var want []string
			for i := 11; i <= 30; i++ {
				want = append(want, fmt.Sprintf("line %d", i))
			}
			if diff := cmp.Diff(strings.Join(want, "\n"), ae.Tail); diff != "" {
				t.Errorf("tail mismatch (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(ae.Log, filepath.Join(w.base, "logs")+"/") {
				t.Errorf("log %s is not under the output base's logs", ae.Log)
			}
			if log, err := os.ReadFile(ae.Log); err != nil || !strings.HasPrefix(string(log), "line 1\n") {
				t.Errorf("log %s does not hold the full output (err %v)", ae.Log, err)
			}
			if !strings.Contains(ae.Command, "exit 3") {
				t.Errorf("command %q does not show the script", ae.Command)
			}
			if w.exists(out("pkg/x.txt")) {
				t.Error("the output of a failed action was kept")
			}
		})
	}
}

func TestMissingOutput(t *testing.T) {
	for _, st := range strategyNames {
		t.Run(st, func(t *testing.T) {
			w := newWorkspace(t, st, newMemCache())
			a := shell("half", "echo a > hepbuild-out/pkg/a.txt", nil, out("pkg/a.txt"), out("pkg/b.txt"))
			_, err := w.build(a)
			var ae *exec.ActionError
			if !errors.As(err, &ae) {
				t.Fatalf("got error %v, want an ActionError", err)
			}
			if want := "did not write declared output " + out("pkg/b.txt"); ae.Reason != want {
				t.Errorf("reason %q, want %q", ae.Reason, want)
			}
			if w.exists(out("pkg/a.txt")) {
				t.Error("an output of the failed action was kept")
			}
		})
	}
}

func TestMissingSourceInput(t *testing.T) {
	w := newWorkspace(t, "none", nil)
	a := shell("read", "cat pkg/nope.txt > hepbuild-out/pkg/x", []string{"pkg/nope.txt"}, out("pkg/x"))
	_, err := w.build(a)
	var ae *exec.ActionError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "//pkg:read") || !strings.Contains(ae.Reason, "missing input pkg/nope.txt") {
		t.Errorf("got %v; want an error naming the target and the missing file", err)
	}
}

// An undeclared file is neither picked up nor cached; the symlink sandbox
// discards it, the none strategy leaves it where the command put it.
func TestUndeclaredOutput(t *testing.T) {
	for _, st := range strategyNames {
		t.Run(st, func(t *testing.T) {
			c := newMemCache()
			w := newWorkspace(t, st, c)
			a := shell("extra", "echo yes > hepbuild-out/pkg/declared.txt; echo no > hepbuild-out/pkg/undeclared.txt", nil, out("pkg/declared.txt"))
			w.mustBuild([]exec.Outcome{executed}, a)
			if got := c.blobCount(); got != 1 {
				t.Errorf("cache holds %d blobs, want only the declared output", got)
			}
			if _, ok := c.blobs[cache.FromBytes([]byte("no\n"))]; ok {
				t.Error("the undeclared file was cached")
			}
			if st == "symlink" && w.exists(out("pkg/undeclared.txt")) {
				t.Error("the symlink sandbox kept an undeclared file")
			}
		})
	}
}

func TestSymlinkSandboxHidesUndeclaredInput(t *testing.T) {
	w := newWorkspace(t, "symlink", nil)
	w.write("pkg/declared.txt", "d")
	w.write("pkg/secret.txt", "s")
	a := shell("peek", "cat pkg/secret.txt > hepbuild-out/pkg/x", []string{"pkg/declared.txt"}, out("pkg/x"))
	_, err := w.build(a)
	var ae *exec.ActionError
	if !errors.As(err, &ae) || !strings.Contains(ae.Tail, "secret.txt") {
		t.Errorf("got %v; want a failure to read the undeclared file", err)
	}
}

// chain is three actions: a from src1, b from src2, c from a and b.
func chain() []*exec.Action {
	return []*exec.Action{
		shell("a", "tr a-z A-Z < pkg/src1.txt > hepbuild-out/pkg/a.txt", []string{"pkg/src1.txt"}, out("pkg/a.txt")),
		shell("b", "tr a-z A-Z < pkg/src2.txt > hepbuild-out/pkg/b.txt", []string{"pkg/src2.txt"}, out("pkg/b.txt")),
		shell("c", "cat hepbuild-out/pkg/a.txt hepbuild-out/pkg/b.txt > hepbuild-out/pkg/c.txt",
			[]string{out("pkg/a.txt"), out("pkg/b.txt")}, out("pkg/c.txt")),
	}
}

func TestIncrementalBuilds(t *testing.T) {
	for _, st := range strategyNames {
		t.Run(st, func(t *testing.T) {
			c := newMemCache()
			w := newWorkspace(t, st, c)
			w.write("pkg/src1.txt", "one\n")
			w.write("pkg/src2.txt", "two\n")
			actions := chain()
			w.mustBuild([]exec.Outcome{executed, executed, executed}, actions...)
			if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
				t.Fatalf("c = %q", got)
			}

			// Nothing changed: nothing runs, and the cache is not read.
			reads := c.readCount()
			w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, actions...)
			if got := c.readCount(); got != reads {
				t.Errorf("a null build read the cache %d times", got-reads)
			}

			// One input changed: exactly the actions depending on it run.
			w.write("pkg/src2.txt", "deux\n")
			w.mustBuild([]exec.Outcome{upToDate, executed, executed}, actions...)
			if got := w.read(out("pkg/c.txt")); got != "ONE\nDEUX\n" {
				t.Errorf("c = %q after the change", got)
			}

			// Back to the old input: the results come from the cache.
			w.write("pkg/src2.txt", "two\n")
			w.mustBuild([]exec.Outcome{upToDate, cached, cached}, actions...)
			if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
				t.Errorf("c = %q after restoring", got)
			}
		})
	}
}

// A rerun whose output is byte-identical leaves its dependents up to date.
func TestEarlyCutoff(t *testing.T) {
	w := newWorkspace(t, "none", newMemCache())
	w.write("pkg/src.txt", "alpha\n")
	actions := []*exec.Action{
		shell("first", "head -c 1 pkg/src.txt > hepbuild-out/pkg/first.txt", []string{"pkg/src.txt"}, out("pkg/first.txt")),
		shell("use", "cat hepbuild-out/pkg/first.txt hepbuild-out/pkg/first.txt > hepbuild-out/pkg/use.txt",
			[]string{out("pkg/first.txt")}, out("pkg/use.txt")),
	}
	w.mustBuild([]exec.Outcome{executed, executed}, actions...)
	w.write("pkg/src.txt", "apple\n") // same first letter
	w.mustBuild([]exec.Outcome{executed, upToDate}, actions...)
	w.write("pkg/src.txt", "banana\n")
	w.mustBuild([]exec.Outcome{executed, executed}, actions...)
	if got := w.read(out("pkg/use.txt")); got != "bb" {
		t.Errorf("use = %q, want %q", got, "bb")
	}
}

// An output changed behind hepbuild's back is restored, not trusted.
func TestTamperedOutputIsRestored(t *testing.T) {
	w := newWorkspace(t, "none", newMemCache())
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	p := filepath.Join(w.root, out("pkg/a.txt"))
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("EVIL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{cached}, a)
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a = %q after restoring", got)
	}
}

func TestRestoreFromCacheByHardLink(t *testing.T) {
	for _, st := range strategyNames {
		t.Run(st, func(t *testing.T) {
			c := openDisk(t)
			w := newWorkspace(t, st, c)
			w.write("pkg/src1.txt", "one\n")
			w.write("pkg/src2.txt", "two\n")
			actions := chain()
			w.mustBuild([]exec.Outcome{executed, executed, executed}, actions...)

			// Removing the link alone loses nothing: the outputs are in the output base.
			if err := os.Remove(filepath.Join(w.root, exec.OutDir)); err != nil {
				t.Fatal(err)
			}
			w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, actions...)

			// Removing the output tree restores everything from the cache.
			if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
				t.Fatal(err)
			}
			w.mustBuild([]exec.Outcome{cached, cached, cached}, actions...)
			if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
				t.Errorf("c = %q after restoring", got)
			}
			for _, p := range []string{"pkg/a.txt", "pkg/b.txt", "pkg/c.txt"} {
				fi, err := os.Stat(filepath.Join(w.root, out(p)))
				if err != nil {
					t.Fatal(err)
				}
				d, _ := cache.FromFile(filepath.Join(w.root, out(p)))
				blob, err := c.BlobPath(d)
				if err != nil {
					t.Fatal(err)
				}
				bi, _ := os.Stat(blob)
				if !os.SameFile(fi, bi) {
					t.Errorf("%s is not a hard link to its blob", p)
				}
				if fi.Mode().Perm() != 0o444 {
					t.Errorf("%s has mode %v, want read-only", p, fi.Mode())
				}
			}
			// And the restored outputs are up to date next time.
			w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, actions...)
		})
	}
}

func openDisk(t *testing.T) *disk.Cache {
	t.Helper()
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A blob corrupted on disk is a miss: the action reruns, without warnings.
func TestCorruptDiskBlobReruns(t *testing.T) {
	c := openDisk(t)
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	blob, err := c.BlobPath(cache.FromBytes([]byte("ONE\n")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, []byte("EVL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{executed}, a)
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a = %q, want the rerun's output", got)
	}
	if len(w.warnings) != 0 {
		t.Errorf("a corrupt blob is a miss, not a cache failure; warnings: %q", w.warnings)
	}
	w.mustBuild([]exec.Outcome{upToDate}, a)
}

// A blob gone from the disk cache (pruned by another user, deleted by
// hand) is a miss too: the result is read without checking its blobs, and
// restoring finds the gap before it trusts anything.
func TestGoneDiskBlobReruns(t *testing.T) {
	c := openDisk(t)
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	blob, err := c.BlobPath(cache.FromBytes([]byte("ONE\n")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{executed}, a)
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a = %q, want the rerun's output", got)
	}
	if len(w.warnings) != 0 {
		t.Errorf("a blob gone is a miss, not a cache failure; warnings: %q", w.warnings)
	}
	w.mustBuild([]exec.Outcome{upToDate}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{cached}, a)
}

func TestCorruptBlobReruns(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	c.corrupt(cache.FromBytes([]byte("ONE\n")))
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{executed}, a)
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a = %q, want the rerun's output", got)
	}
	if len(w.warnings) != 0 {
		t.Errorf("a corrupt blob is a miss, not a cache failure; warnings: %q", w.warnings)
	}
}

func TestFailingCacheDegrades(t *testing.T) {
	c := newMemCache()
	c.failAll = errors.New("disk on fire")
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	w.mustBuild([]exec.Outcome{executed, executed, executed}, chain()...)
	if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
		t.Errorf("c = %q", got)
	}
	if len(w.warnings) != 1 || !strings.Contains(w.warnings[0], "disk on fire") {
		t.Errorf("warnings = %q, want exactly one naming the cache error", w.warnings)
	}
}

func TestNoCacheTag(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	a.SetExtra().Tags = []string{"no-cache"}
	w.mustBuild([]exec.Outcome{executed}, a)
	if c.blobCount() != 0 || len(c.ac) != 0 {
		t.Errorf("a no-cache action was cached: %d blobs, %d results", c.blobCount(), len(c.ac))
	}
	w.mustBuild([]exec.Outcome{upToDate}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{executed}, a)
}

func TestWriteAndCopyActions(t *testing.T) {
	w := newWorkspace(t, "none", newMemCache())
	w.write("pkg/tool.sh", "#!/bin/sh\necho tool\n")
	if err := os.Chmod(filepath.Join(w.root, "pkg/tool.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "w"}, Mnemonic: "FileWrite", Kind: exec.KindWrite,
		Extra: &exec.Extra{Content: []byte("#!/bin/sh\necho written\n")}, Executable: true, Outputs: []exec.Artifact{{Path: out("pkg/w.sh")}}}
	cp := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "c"}, Mnemonic: "Symlink", Kind: exec.KindSymlink,
		Inputs: []exec.Artifact{{Path: "pkg/tool.sh", Source: true}}, Outputs: []exec.Artifact{{Path: out("pkg/tool_copy.sh")}}}
	use := shell("use", "hepbuild-out/pkg/w.sh > hepbuild-out/pkg/use.txt; hepbuild-out/pkg/tool_copy.sh >> hepbuild-out/pkg/use.txt",
		[]string{out("pkg/tool_copy.sh"), out("pkg/w.sh")}, out("pkg/use.txt"))
	w.mustBuild([]exec.Outcome{executed, executed, executed}, write, cp, use)
	if got := w.read(out("pkg/use.txt")); got != "written\ntool\n" {
		t.Errorf("use = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(w.root, "pkg/tool.sh")); fi.Mode().Perm() != 0o755 {
		t.Errorf("copying made the source file %v", fi.Mode())
	}
	w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, write, cp, use)
	write.SetExtra().Content = []byte("#!/bin/sh\necho changed\n")
	w.mustBuild([]exec.Outcome{executed, upToDate, executed}, write, cp, use)
}

// In the linux sandbox the folder input sits in the folder of the
// consumer's output: both must be visible.
func TestOutputFolderRoundTrip(t *testing.T) {
	for _, strategy := range []string{"symlink", "linux"} {
		for _, c := range []cache.Cache{newMemCache(), openDisk(t)} {
			t.Run(strategy+"/"+fmt.Sprintf("%T", c)[1:], func(t *testing.T) {
				testOutputFolderRoundTrip(t, strategy, c)
			})
		}
	}
}

func testOutputFolderRoundTrip(t *testing.T, strategy string, c cache.Cache) {
	w := newWorkspace(t, strategy, c)
	a := shell("tree", `d=hepbuild-out/pkg/tree
mkdir -p $d/sub/deeper $d/empty
echo one > $d/one.txt
echo two > $d/sub/two.txt
printf '#!/bin/sh\n' > $d/sub/deeper/run.sh; chmod +x $d/sub/deeper/run.sh`, nil)
	a.Outputs = []exec.Artifact{{Path: out("pkg/tree"), Dir: true}}
	use := shell("use", "cat hepbuild-out/pkg/tree/sub/two.txt > hepbuild-out/pkg/use.txt",
		nil, out("pkg/use.txt"))
	use.Inputs = []exec.Artifact{{Path: out("pkg/tree"), Dir: true}}
	w.mustBuild([]exec.Outcome{executed, executed}, a, use)
	w.mustBuild([]exec.Outcome{upToDate, upToDate}, a, use)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{cached, cached}, a, use)
	for rel, want := range map[string]string{"one.txt": "one\n", "sub/two.txt": "two\n", "sub/deeper/run.sh": "#!/bin/sh\n"} {
		if got := w.read(out("pkg/tree/" + rel)); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(w.root, out("pkg/tree/sub/deeper/run.sh"))); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("run.sh lost its executable bit (%v, %v)", fi, err)
	}
	if !w.exists(out("pkg/tree/empty")) {
		t.Error("the empty folder was not restored")
	}
}

// A build killed by SIGKILL in the middle of an action leaves a partial
// output; the next build must not take it for a good one.
func TestKilledBuildIsRedone(t *testing.T) {
	if os.Getenv("HEPBUILD_TEST_KILLED_ROOT") != "" {
		return // the helper below runs in its own process
	}
	w := newWorkspace(t, "none", nil)
	w.write("pkg/src1.txt", "one\n")
	slow := killableAction(w.root)
	w.mustBuild([]exec.Outcome{executed}, slow)
	if got := w.read(out("pkg/slow.txt")); got != "partial\nrest\n" {
		t.Fatalf("slow = %q", got)
	}
	w.write("pkg/src1.txt", "changed\n")

	// Run the build in a helper process and kill it mid-action.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	marker := filepath.Join(w.root, "started")
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(marker); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, err = sandbox.None{}.Run(ctx, sandbox.Spec{
		ExecRoot: w.root,
		Argv:     []string{exe, "-test.run=^TestKilledBuildHelper$"},
		Env: map[string]string{
			"HEPBUILD_TEST_KILLED_ROOT": w.root, "HEPBUILD_TEST_KILLED_BASE": w.base, "PATH": "/usr/bin:/bin",
		},
		Grace:   50 * time.Millisecond, // the helper ignores SIGTERM: this is a SIGKILL
		Timeout: 30 * time.Second,
		LogPath: filepath.Join(t.TempDir(), "helper.log"),
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("helper: %v, want it killed", err)
	}
	defer killLeftover(t, filepath.Join(w.root, "sleeper.pid"))
	if got := w.read(out("pkg/slow.txt")); got != "partial\n" {
		t.Fatalf("after the kill slow = %q, want the partial output", got)
	}
	for _, f := range []string{marker, filepath.Join(w.root, "pause")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	w.write("pkg/src1.txt", "one\n") // the inputs of the first, good run
	w.mustBuild([]exec.Outcome{executed}, slow)
	if got := w.read(out("pkg/slow.txt")); got != "partial\nrest\n" {
		t.Errorf("slow = %q after the rebuild", got)
	}
}

// killableAction writes half its output, says so, and pauses long enough to
// be killed when the marker file "pause" exists.
func killableAction(root string) *exec.Action {
	return shell("slow", `echo partial > hepbuild-out/pkg/slow.txt
if [ -e pause ]; then touch started; echo $$ > sleeper.pid; exec sleep 100; fi
echo rest >> hepbuild-out/pkg/slow.txt`, []string{"pkg/src1.txt"}, out("pkg/slow.txt"))
}

// TestKilledBuildHelper is the build that TestKilledBuildIsRedone kills.
func TestKilledBuildHelper(t *testing.T) {
	root := os.Getenv("HEPBUILD_TEST_KILLED_ROOT")
	if root == "" {
		t.Skip("helper process for TestKilledBuildIsRedone")
	}
	signal.Ignore(syscall.SIGTERM)
	w := &workspace{t: t, root: root, base: os.Getenv("HEPBUILD_TEST_KILLED_BASE"), strategy: "none"}
	w.write("pause", "")
	_, _ = w.build(killableAction(root))
	t.Fatal("the helper was not killed")
}

func killLeftover(t *testing.T, pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// BenchmarkNullBuild measures checking 20,000 up-to-date actions, journal
// and stat cache loading included: the whole of a null build after loading
// and analysis. Half the actions read a source file, half read another
// action's output.
func BenchmarkNullBuild(b *testing.B) {
	const n = 20000
	t := &testing.T{}
	w := &workspace{t: t, root: b.TempDir(), base: b.TempDir(), strategy: "none", cache: nil}
	var actions []*exec.Action
	for i := range n {
		var in exec.Artifact
		if i < n/2 {
			in = exec.Artifact{Path: fmt.Sprintf("pkg%d/src%d.txt", i%100, i), Source: true}
			w.write(in.Path, strconv.Itoa(i))
		} else {
			in = actions[i-n/2].Outputs[0]
		}
		actions = append(actions, &exec.Action{
			Owner: graph.Label{Pkg: fmt.Sprintf("pkg%d", i%100), Name: strconv.Itoa(i)}, Mnemonic: "Copy",
			Kind: exec.KindSymlink, Inputs: []exec.Artifact{in},
			Outputs: []exec.Artifact{{Path: fmt.Sprintf("%s/pkg%d/out%d.txt", exec.OutDir, i%100, i)}},
		})
	}
	build := func() (upToDate int) {
		if err := exec.PrepareOutputBase(w.root, w.base); err != nil {
			b.Fatal(err)
		}
		j, err := exec.OpenJournal(w.base)
		if err != nil {
			b.Fatal(err)
		}
		stat, err := cache.OpenStatCache(filepath.Join(w.base, "stat"))
		if err != nil {
			b.Fatal(err)
		}
		r := w.runner(j, stat)
		for _, a := range actions {
			o, err := r.Work(context.Background(), a)
			if err != nil {
				b.Fatal(err)
			}
			if o == exec.OutcomeUpToDate {
				upToDate++
			}
		}
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		if err := stat.Save(); err != nil {
			b.Fatal(err)
		}
		return upToDate
	}
	build()
	time.Sleep(50 * time.Millisecond) // past the stat cache's racy window
	build()                           // settles the stat cache
	b.ResetTimer()
	for b.Loop() {
		if got := build(); got != n {
			b.Fatalf("%d of %d actions up to date in a null build", got, n)
		}
	}
}

func TestTimeoutIsActionFailure(t *testing.T) {
	w := newWorkspace(t, "none", nil)
	a := shell("slow", "echo started; sleep 100 & sleep 100", nil, out("pkg/x"))
	a.SetExtra().Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := w.build(a)
	var ae *exec.ActionError
	if !errors.As(err, &ae) || ae.Reason != "timed out after 200ms" || ae.Tail != "started" {
		t.Errorf("got %v (%+v); want a timeout failure with the output", err, ae)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timed-out action took %v", d)
	}
}

func TestCommandNotFound(t *testing.T) {
	w := newWorkspace(t, "symlink", nil)
	a := shell("tool", "", nil, out("pkg/x"))
	a.Argv = []string{"pkg/no-such-tool", "--flag"}
	_, err := w.build(a)
	var ae *exec.ActionError
	if !errors.As(err, &ae) || !strings.Contains(ae.Reason, "could not start pkg/no-such-tool") {
		t.Errorf("got %v; want an action failure naming the tool", err)
	}
}

// Two builds of one workspace at once wait for each other and both succeed.
func TestConcurrentBuildsOfOneWorkspace(t *testing.T) {
	c := openDisk(t)
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.build(chain()...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := w.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
		t.Errorf("c = %q", got)
	}
	w.mustBuild([]exec.Outcome{upToDate, upToDate, upToDate}, chain()...)
}

// Two workspaces sharing one cache: the second restores what the first made.
func TestWorkspacesShareCache(t *testing.T) {
	c := openDisk(t)
	w1 := newWorkspace(t, "none", c)
	w2 := newWorkspace(t, "symlink", c)
	for _, w := range []*workspace{w1, w2} {
		w.write("pkg/src1.txt", "one\n")
		w.write("pkg/src2.txt", "two\n")
	}
	w1.mustBuild([]exec.Outcome{executed, executed, executed}, chain()...)
	w2.mustBuild([]exec.Outcome{cached, cached, cached}, chain()...)
	if got := w2.read(out("pkg/c.txt")); got != "ONE\nTWO\n" {
		t.Errorf("c = %q", got)
	}
}

// The runner drives the real scheduler: its Work is an exec.Work.
func TestWithScheduler(t *testing.T) {
	w := newWorkspace(t, "symlink", newMemCache())
	w.write("pkg/src1.txt", "one\n")
	w.write("pkg/src2.txt", "two\n")
	actions := chain()
	g, err := exec.NewGraph(actions, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := func() *exec.Summary {
		t.Helper()
		j := w.openJournal()
		defer j.Close()
		s := &exec.Scheduler{Jobs: 2}
		sum, err := s.Run(context.Background(), g, actions, w.runner(j, nil).Work)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	if sum := run(); sum.Executed != 3 {
		t.Errorf("first build executed %d, want 3", sum.Executed)
	}
	w.write("pkg/src1.txt", "uno\n")
	if sum := run(); sum.Executed != 2 || sum.UpToDate != 1 {
		t.Errorf("after a change: executed %d, up to date %d; want 2, 1", sum.Executed, sum.UpToDate)
	}
	if got := w.read(out("pkg/c.txt")); got != "UNO\nTWO\n" {
		t.Errorf("c = %q", got)
	}
}

// Check says what Work would do without doing it.
func TestCheck(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	check := func() exec.Outcome {
		t.Helper()
		j, err := exec.OpenJournal(w.base)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		o, err := w.runner(j, nil).Check(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if got := check(); got != executed {
		t.Errorf("before the first build: %v, want must run", outcomeNames([]exec.Outcome{got}))
	}
	w.mustBuild([]exec.Outcome{executed}, a)
	if got := check(); got != upToDate {
		t.Errorf("after the build: %v, want up to date", outcomeNames([]exec.Outcome{got}))
	}
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	if got := check(); got != cached {
		t.Errorf("after removing the outputs: %v, want cached", outcomeNames([]exec.Outcome{got}))
	}
	if w.exists(out("pkg/a.txt")) {
		t.Error("Check restored the output")
	}
}

// TestInputEditedWhileRunning: a source file changed while its action runs
// (here by the command itself, on its first run only) must not leave a
// result stored under the key of the old content: the action runs again on
// the new content, and the old content's key stays empty.
func TestInputEditedWhileRunning(t *testing.T) {
	root := t.TempDir()
	base := t.TempDir()
	if err := exec.PrepareOutputBase(root, base); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(root, "in.txt")
	os.WriteFile(in, []byte("v1\n"), 0o644)
	mark := filepath.Join(t.TempDir(), "edited")
	a := &exec.Action{Owner: graph.MustParseLabel("//:a"), Mnemonic: "Task", Kind: exec.KindRun,
		Argv: []string{"/bin/bash", "-c", "cat in.txt > hepbuild-out/out.txt\n" +
			"if [ ! -e " + mark + " ]; then : > " + mark + "; echo v2 > in.txt; fi"},
		Env:     map[string]string{"PATH": "/usr/bin:/bin"},
		Inputs:  []exec.Artifact{{Path: "in.txt", Source: true}},
		Outputs: []exec.Artifact{{Path: exec.OutDir + "/out.txt"}}}
	v1 := keyFor(t, a, map[string]string{"in.txt": "v1\n"})
	c := newMemCache()
	j, err := exec.OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var warnings []string
	r := &exec.Runner{ExecRoot: root, OutputBase: base, Cache: c, Journal: j, Executor: local.New(sandbox.None{}),
		Warn: func(s string) { warnings = append(warnings, s) }}
	if o, err := r.Work(context.Background(), a); err != nil || o != exec.OutcomeExecuted {
		t.Fatalf("outcome %v, err %v; want executed", o, err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "input in.txt changed while the action was keyed and run") {
		t.Errorf("warnings %q, want one naming in.txt", warnings)
	}
	if _, ok := c.ac[v1]; ok {
		t.Error("a result is stored under the key of v1")
	}
	if b, _ := os.ReadFile(filepath.Join(root, exec.OutDir, "out.txt")); string(b) != "v2\n" {
		t.Errorf("out.txt = %q, want v2", b)
	}
	// Back to v1: the build must run again (nothing was cached under v1's key).
	os.WriteFile(in, []byte("v1\n"), 0o644)
	if o, err := r.Work(context.Background(), a); err != nil || o != exec.OutcomeExecuted {
		t.Fatalf("rebuild: outcome %v, err %v; want executed", o, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, exec.OutDir, "out.txt")); string(b) != "v1\n" {
		t.Errorf("out.txt = %q, want v1", b)
	}
}

// Outputs an action wrote are read-only once stored, executables staying
// executable, with or without a cache that links them.
func TestExecutedOutputsAreReadOnly(t *testing.T) {
	for name, c := range map[string]cache.Cache{"memory": newMemCache(), "disk": openDisk(t)} {
		t.Run(name, func(t *testing.T) {
			w := newWorkspace(t, "none", c)
			a := shell("a", "echo x > hepbuild-out/pkg/a.txt; echo '#!/bin/sh' > hepbuild-out/pkg/run.sh; chmod 755 hepbuild-out/pkg/run.sh",
				nil, out("pkg/a.txt"), out("pkg/run.sh"))
			w.mustBuild([]exec.Outcome{executed}, a)
			for p, want := range map[string]os.FileMode{"pkg/a.txt": 0o444, "pkg/run.sh": 0o555} {
				fi, err := os.Stat(filepath.Join(w.root, out(p)))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
				}
			}
		})
	}
}

// TestRestoreReplacesWhatIsInTheWay: a restore links each output file
// straight to its path, without removing it first; what an earlier build
// left there (a folder output at the same path, a file of other content)
// is replaced, and the outcome is a restore, not a run.
func TestRestoreReplacesWhatIsInTheWay(t *testing.T) {
	for _, c := range []struct{ name, script string }{
		{"folder", "mkdir -p hepbuild-out/pkg/x/sub; echo old > hepbuild-out/pkg/x/sub/f"},
		{"file", "mkdir -p hepbuild-out/pkg; echo old > hepbuild-out/pkg/x"},
		{"link", "mkdir -p hepbuild-out/pkg; ln -s /etc/passwd hepbuild-out/pkg/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorkspace(t, "none", openDisk(t))
			file := shell("file", "echo new > hepbuild-out/pkg/x", nil, out("pkg/x"))
			w.mustBuild([]exec.Outcome{executed}, file)
			w.clean()
			// Another build's output at that path, then a restore.
			old := shell("old", c.script, nil)
			old.SetExtra().Tags = []string{"no-cache"}
			if _, err := w.build(old); err != nil {
				t.Fatal(err)
			}
			w.mustBuild([]exec.Outcome{cached}, file)
			p := filepath.Join(w.root, "hepbuild-out", "pkg", "x")
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("x after the restore: %v, %v; want a regular file", fi, err)
			}
			if got := w.read(out("pkg/x")); got != "new\n" {
				t.Errorf("x = %q after the restore, want %q", got, "new\n")
			}
		})
	}
}

// TestSymlinkedDiskBlobIsNotLinked: a member of a shared cache's group can
// put a symbolic link where a blob should be, to a file of the right
// content that they can change later. A hard link to that path is a link
// to the symlink, so the restored output would follow the member's file:
// such a blob is no blob, and the output is a regular file of its own.
func TestSymlinkedDiskBlobIsNotLinked(t *testing.T) {
	dir := t.TempDir()
	c, err := disk.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	blob, err := c.BlobPath(cache.FromBytes([]byte("ONE\n")))
	if err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	if err := os.WriteFile(theirs, []byte("ONE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(theirs, blob); err != nil {
		t.Fatal(err)
	}
	// Another process: nothing verified yet.
	if w.cache, err = disk.Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := w.build(a); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(w.root, out("pkg/a.txt"))
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("a.txt after the restore: %v, %v; want a regular file", fi, err)
	}
	if err := os.WriteFile(theirs, []byte("EVL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a.txt = %q: it follows a file outside the cache", got)
	}
}

// swappingCache is a disk cache whose blob file is swapped for a symbolic
// link to a file outside it right after it was verified, as another member
// of a shared cache's group can do.
type swappingCache struct {
	*disk.Cache
	outside string
	// content, when set, is written to a file renamed over the blob
	// instead of the link: another file, of other content.
	content string
}

func (c swappingCache) BlobFile(d cache.Digest) (string, fs.FileInfo, error) {
	p, fi, err := c.Cache.BlobFile(d)
	if err != nil {
		return p, fi, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(c.outside, b, 0o644); err != nil {
		return "", nil, err
	}
	link := p + ".link"
	if c.content != "" {
		err = os.WriteFile(link, []byte(c.content), 0o444)
	} else {
		err = os.Symlink(c.outside, link)
	}
	if err != nil {
		return "", nil, err
	}
	if err := os.Rename(link, p); err != nil {
		return "", nil, err
	}
	return p, fi, nil
}

func (c swappingCache) BlobPath(d cache.Digest) (string, error) {
	p, _, err := c.BlobFile(d)
	return p, err
}

// TestBlobSwappedForALinkIsNotRestored: a blob swapped for a link between
// its check and the hard link to it leaves a link as the output, which a
// restore must not keep (it would follow a file that someone else controls).
func TestBlobSwappedForALinkIsNotRestored(t *testing.T) {
	c := openDisk(t)
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "theirs")
	w.cache = swappingCache{Cache: c, outside: outside}
	if _, err := w.build(a); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(w.root, out("pkg/a.txt"))
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("a.txt after the restore: %v, %v; want a regular file", fi, err)
	}
	if err := os.WriteFile(outside, []byte("EVL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a.txt = %q: it follows a file outside the cache", got)
	}
}

// TestLinkPlantedByACommandIsNotFollowed: a command run without a sandbox
// that replaces a folder of the output tree by a link (to a folder of the
// user's) does not lead hepbuild there: an output written below that
// folder later in the build, here one kept only in the cache and fetched
// for the action that reads it, goes to a real folder again. hepbuild
// never writes or removes anything at the link's target.
func TestLinkPlantedByACommandIsNotFollowed(t *testing.T) {
	for _, mine := range []string{"", "mine\n"} {
		outside := t.TempDir()
		x := filepath.Join(outside, "x")
		if mine != "" {
			if err := os.WriteFile(x, []byte(mine), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		w := newWorkspace(t, "none", openDisk(t))
		b := shell("b", "mkdir -p hepbuild-out/pkg/sub; echo B > hepbuild-out/pkg/sub/x", nil, out("pkg/sub/x"))
		w.mustBuild([]exec.Outcome{executed}, b)
		for _, p := range []string{"out", "journal.v1"} {
			if err := os.RemoveAll(filepath.Join(w.base, p)); err != nil {
				t.Fatal(err)
			}
		}
		planter := shell("planter", "rm -rf hepbuild-out/pkg/sub; ln -s "+outside+" hepbuild-out/pkg/sub; echo > hepbuild-out/pkg/p.txt", nil, out("pkg/p.txt"))
		reader := shell("reader", "cat hepbuild-out/pkg/sub/x > hepbuild-out/pkg/r.txt", []string{out("pkg/sub/x")}, out("pkg/r.txt"))
		w.download(exec.DownloadMinimal)
		got, err := w.build(b, planter, reader)
		t.Logf("outcomes %v, %v", outcomeNames(got), err)
		b2, err := os.ReadFile(x)
		switch {
		case mine == "" && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("hepbuild wrote %s behind the planted link: %q, %v", x, b2, err)
		case mine != "" && (err != nil || string(b2) != mine):
			t.Errorf("a file behind the planted link: %q, %v; want %q", b2, err, mine)
		}
	}
}

// TestBlobSwappedForAnotherFileIsNotRestored: a blob swapped for another
// file between its check and the hard link to it is not the blob that was
// verified: the output it would leave is not kept.
func TestBlobSwappedForAnotherFileIsNotRestored(t *testing.T) {
	c := openDisk(t)
	w := newWorkspace(t, "none", c)
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
		t.Fatal(err)
	}
	w.cache = swappingCache{Cache: c, outside: filepath.Join(t.TempDir(), "theirs"), content: "EVL\n"}
	if _, err := w.build(a); err != nil {
		t.Fatal(err)
	}
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a.txt = %q, want the action's output", got)
	}
}

// TestRestoreOverTheBlobItselfLeavesNoLink: restoring an output that is
// already a hard link to its blob (the journal lost its record) renames a
// second link to the blob over it, which changes nothing: that second link
// must not stay behind (its removal by the next build would change the
// output's ctime, and the journal would then find the output changed).
func TestRestoreOverTheBlobItselfLeavesNoLink(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/src1.txt", "one\n")
	a := chain()[0]
	w.mustBuild([]exec.Outcome{executed}, a)
	if err := os.Remove(filepath.Join(w.base, "journal.v1")); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{cached}, a)
	left, _ := filepath.Glob(filepath.Join(w.base, "tmp", "*"))
	if len(left) != 0 {
		t.Errorf("left in the output base's tmp: %q", left)
	}
	if got := w.read(out("pkg/a.txt")); got != "ONE\n" {
		t.Errorf("a = %q", got)
	}
}

// TestRestoredInputChangedByACommand: a generated input this build
// restored is keyed from what the restore found, without a stat, only while
// no command has run since; a command that replaced it (run without the
// linux sandbox) is seen, and its reader is keyed from what is there now.
func TestRestoredInputChangedByACommand(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	gen := shell("gen", "echo one > hepbuild-out/pkg/gen.txt", nil, out("pkg/gen.txt"))
	use := shell("use", "tr a-z A-Z < hepbuild-out/pkg/gen.txt > hepbuild-out/pkg/use.txt", []string{out("pkg/gen.txt")}, out("pkg/use.txt"))
	w.mustBuild([]exec.Outcome{executed, executed}, gen, use)
	w.clean()
	// gen comes back from the cache; then a command replaces its output.
	vandal := shell("vandal", "rm -f hepbuild-out/pkg/gen.txt; echo two > hepbuild-out/pkg/gen.txt", nil)
	vandal.SetExtra().Tags = []string{"no-cache"}
	w.mustBuild([]exec.Outcome{cached, executed, executed}, gen, vandal, use)
	if got := w.read(out("pkg/use.txt")); got != "TWO\n" {
		t.Errorf("use = %q, want it made from the file a command put there (TWO)", got)
	}
}

// TestSourceEditedByACommand: a source file an action digested is taken
// for the next action that reads it from that stat, without another, only
// while no command has run since; a command that rewrote it in place (run
// without the linux sandbox, same size) is seen, and the next reader is
// keyed from what is there now, not restored under the old content's key.
func TestSourceEditedByACommand(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/s.txt", "one\n")
	// Old enough that its stat vouches for the content (not racy): only
	// such a stat is kept for the next reader.
	time.Sleep(150 * time.Millisecond)
	r1 := shell("r1", "tr a-z A-Z < pkg/s.txt > hepbuild-out/pkg/r1.txt", []string{"pkg/s.txt"}, out("pkg/r1.txt"))
	r2 := shell("r2", "cat pkg/s.txt > hepbuild-out/pkg/r2.txt", []string{"pkg/s.txt"}, out("pkg/r2.txt"))
	w.mustBuild([]exec.Outcome{executed, executed}, r1, r2)
	w.clean()
	vandal := shell("vandal", "echo two > pkg/s.txt", nil)
	vandal.SetExtra().Tags = []string{"no-cache"}
	w.mustBuild([]exec.Outcome{cached, executed, executed}, r1, vandal, r2)
	if got := w.read(out("pkg/r2.txt")); got != "two\n" {
		t.Errorf("r2 = %q, want it made from what the command wrote (two)", got)
	}
	if len(w.warnings) != 0 {
		t.Errorf("warnings: %q", w.warnings)
	}
}

// TestSourceLinkIntoOutputsRestored: a source that is a symbolic link into
// the output tree is stat'ed by every action that reads it: a restore
// replaces the file it leads to without a command, and a later reader is
// keyed from what is there then.
func TestSourceLinkIntoOutputsRestored(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	gen := shell("gen", "echo one > hepbuild-out/pkg/gen.txt", nil, out("pkg/gen.txt"))
	r1 := shell("r1", "cat pkg/link.txt > hepbuild-out/pkg/r1.txt", []string{"pkg/link.txt"}, out("pkg/r1.txt"))
	r2 := shell("r2", "tr a-z A-Z < pkg/link.txt > hepbuild-out/pkg/r2.txt", []string{"pkg/link.txt"}, out("pkg/r2.txt"))
	w.write("pkg/x.txt", "")
	if err := os.Symlink("../"+out("pkg/gen.txt"), filepath.Join(w.root, "pkg/link.txt")); err != nil {
		t.Fatal(err)
	}
	stale := func() {
		t.Helper()
		p := filepath.Join(w.base, "out", "pkg", "gen.txt")
		os.Remove(p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Old enough that its stat vouches for the content (not racy).
		time.Sleep(150 * time.Millisecond)
	}
	// The cache learns r1 and r2 of "old", and gen.
	stale()
	w.mustBuild([]exec.Outcome{executed, executed}, r1, r2)
	w.mustBuild([]exec.Outcome{executed}, gen)
	w.clean()
	// gen's output is stale again; r1 reads "old", gen is restored, and
	// r2 must read "one".
	stale()
	w.mustBuild([]exec.Outcome{cached, cached, executed}, r1, gen, r2)
	if got := w.read(out("pkg/r2.txt")); got != "ONE\n" {
		t.Errorf("r2 = %q, want it made from the restored file (ONE)", got)
	}
}

// TestRestoredInputEditedOutsideBeforeKeyed: a generated input this build
// restored, edited by someone outside hepbuild (same size) after the
// restore and before its reader is keyed, while no command runs: the
// reader is keyed from what the restore found, but its run sees the edit
// and starts again; nothing is stored under the key of the old content.
func TestRestoredInputEditedOutsideBeforeKeyed(t *testing.T) {
	for _, strategy := range strategyNames {
		t.Run(strategy, func(t *testing.T) { testRestoredInputEditedOutsideBeforeKeyed(t, strategy) })
	}
}

func testRestoredInputEditedOutsideBeforeKeyed(t *testing.T, strategy string) {
	w := newWorkspace(t, strategy, openDisk(t))
	w.write("pkg/a.txt", "a\n")
	gen := shell("gen", "echo one > hepbuild-out/pkg/gen.txt", nil, out("pkg/gen.txt"))
	use := shell("use", "cat pkg/a.txt hepbuild-out/pkg/gen.txt | tr a-z A-Z > hepbuild-out/pkg/use.txt",
		[]string{"pkg/a.txt", out("pkg/gen.txt")}, out("pkg/use.txt"))
	w.mustBuild([]exec.Outcome{executed, executed}, gen, use)
	w.clean()
	// Another content for use's inputs, so that use misses the cache.
	w.write("pkg/a.txt", "b\n")
	edited := false
	defer exec.SetDigestHook(func(p string) {
		if p == "pkg/a.txt" && !edited {
			edited = true
			// Same size, in place: only the stat tells.
			gp := filepath.Join(w.root, out("pkg/gen.txt"))
			if err := os.Chmod(gp, 0o644); err != nil {
				t.Error(err)
			}
			f, err := os.OpenFile(gp, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteString("two\n")
			f.Close()
		}
	})()
	got, err := w.build(gen, use)
	if err != nil {
		t.Fatal(err)
	}
	if !edited {
		t.Fatal("the hook never ran")
	}
	if diff := cmp.Diff(outcomeNames([]exec.Outcome{cached, executed}), outcomeNames(got)); diff != "" {
		t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
	}
	if got := w.read(out("pkg/use.txt")); got != "B\nTWO\n" {
		t.Errorf("use = %q, want B TWO", got)
	}
	// The first run, keyed from what the restore found, was not kept.
	if len(w.warnings) != 1 || !strings.Contains(w.warnings[0], "gen.txt changed") {
		t.Errorf("warnings %q, want one: gen.txt changed and use ran again", w.warnings)
	}
}

// uploadingRemote uploads the action's inputs, as the batch and REAPI
// executors do, and then reports that the command failed.
type uploadingRemote struct {
	cas  cache.CAS
	runs int
}

func (u *uploadingRemote) Name() string { return "uploading" }

func (u *uploadingRemote) Execute(ctx context.Context, req *exec.ExecRequest) (*exec.ExecResponse, error) {
	u.runs++
	if _, err := exec.UploadInputs(ctx, u.cas, req.Action, req.Key, req.ExecRoot, req.Inputs); err != nil {
		return nil, err
	}
	return &exec.ExecResponse{Result: exec.ExecResult{ExitCode: 1}, Where: "uploading job"}, nil
}

// TestRestoredInputEditedOutsideRemoteRetry: a generated input this build
// restored and someone outside hepbuild then edited is keyed, first, from
// what the restore found; the upload to a remote executor sees the edit,
// and the action's next attempt must key the input from what is there now,
// not from the restore again (no command runs here to tell it apart), or
// every attempt fails the same way.
func TestRestoredInputEditedOutsideRemoteRetry(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/a.txt", "a\n")
	gen := shell("gen", "echo one > hepbuild-out/pkg/gen.txt", nil, out("pkg/gen.txt"))
	use := shell("use", "cat pkg/a.txt hepbuild-out/pkg/gen.txt > hepbuild-out/pkg/use.txt",
		[]string{"pkg/a.txt", out("pkg/gen.txt")}, out("pkg/use.txt"))
	w.mustBuild([]exec.Outcome{executed, executed}, gen, use)
	w.clean()
	w.write("pkg/a.txt", "b\n")
	remote := &uploadingRemote{cas: openDisk(t)}
	w.configure = func(r *exec.Runner) {
		r.Route = func(a *exec.Action) exec.RemoteExecutor {
			if a.Owner.Name == "use" {
				return remote
			}
			return nil
		}
	}
	edited := false
	defer exec.SetDigestHook(func(p string) {
		if p == "pkg/a.txt" && !edited {
			edited = true
			gp := filepath.Join(w.root, out("pkg/gen.txt"))
			if err := os.Remove(gp); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(gp, []byte("two\n"), 0o644); err != nil {
				t.Error(err)
			}
		}
	})()
	_, err := w.build(gen, use)
	if !edited {
		t.Fatal("the hook never ran")
	}
	if err == nil || strings.Contains(err.Error(), "kept changing") {
		t.Errorf("build error %v, want the remote command's failure", err)
	}
	if remote.runs > 2 {
		t.Errorf("sent to the remote executor %d times, want at most 2 (the edit, then the inputs as they are)", remote.runs)
	}
}
