package exec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// TestSwappedActionCacheEntryReruns: the disk cache's entry of one action
// copied over another's makes the second a miss that runs, never a restore
// of the first one's outputs.
func TestSwappedActionCacheEntryReruns(t *testing.T) {
	c, err := disk.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	a := shell("a", "echo made by a > $0", nil, out("pkg/x.txt"))
	a.Argv = append(a.Argv, out("pkg/x.txt"))
	b := shell("b", "echo made by b > $0", nil, out("pkg/x.txt"))
	b.Argv = append(b.Argv, out("pkg/x.txt"))
	// a's result by another process: a pack of results of its own, which
	// holds no record of b.
	other, err := disk.Open(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	wa := newWorkspace(t, "none", other)
	wa.mustBuild([]exec.Outcome{executed}, a)
	w := newWorkspace(t, "none", c)
	w.mustBuild([]exec.Outcome{executed}, b)

	ka, err := exec.ComputeKey(a, &diskInputs{root: wa.root})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := exec.ComputeKey(b, &diskInputs{root: w.root})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(k *exec.Key) string { return filepath.Join(c.Dir(), "ac.v2", k.Digest.Hash[:2], k.Digest.Hash) }
	data, err := os.ReadFile(entry(ka))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(entry(kb)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry(kb), data, 0o444); err != nil {
		t.Fatal(err)
	}
	// A new workspace sharing the cache: nothing is up to date there.
	w2 := newWorkspace(t, "none", c)
	w2.mustBuild([]exec.Outcome{executed}, b)
	if got := w2.read(out("pkg/x.txt")); got != "made by b\n" {
		t.Errorf("x.txt = %q, want b's output", got)
	}
}
