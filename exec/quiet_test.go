package exec

import (
	"os"
	"path/filepath"
	"testing"
)

// TestQuietSinceSeesACommandBetweenItsReads: a command that starts and
// ends while freshSource, freshInput or outputParents checks that none
// did (between the check's two reads) makes the check fail: what they
// would trust may be what that command changed (a source it edited, a
// folder it replaced with a link out of the output tree).
func TestQuietSinceSeesACommandBetweenItsReads(t *testing.T) {
	r := &Runner{ExecRoot: t.TempDir()}
	r.init()
	r.sources.Store("src/a.h", freshOutput{})
	r.fresh.Store(OutDir+"/gen/a.h", freshOutput{})
	r.realDirs.Store(OutDir+"/gen", int64(0))
	for name, check := range map[string]func() bool{
		"freshSource": func() bool { _, ok := r.freshSource("src/a.h"); return ok },
		"freshInput":  func() bool { _, ok := r.freshInput(OutDir + "/gen/a.h"); return ok },
	} {
		r.commandEpoch.Store(0)
		if !check() {
			t.Fatalf("%s: not trusted while no command ran", name)
		}
		testHookQuiet = func() {
			// What execute does around a command.
			r.commandsRunning.Add(1)
			r.commandEpoch.Add(1)
			r.commandEpoch.Add(1)
			r.commandsRunning.Add(-1)
		}
		if check() {
			t.Errorf("%s: trusted after a command started and ended during the check", name)
		}
		testHookQuiet = nil
	}
	// A folder checked before, replaced by a link meanwhile: checked
	// again, and made real, when a command ran during the check.
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(r.ExecRoot, OutDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(r.ExecRoot, OutDir, "gen")); err != nil {
		t.Fatal(err)
	}
	r.commandEpoch.Store(0)
	testHookQuiet = func() { r.commandEpoch.Add(2) }
	defer func() { testHookQuiet = nil }()
	if err := r.outputParents(OutDir + "/gen/a.h"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(r.ExecRoot, OutDir, "gen")); err != nil || !fi.IsDir() {
		t.Errorf("outputParents: the link a command put in the output tree during the check is still there (%v)", err)
	}
	testHookQuiet = nil
	if !r.quietSince(2) {
		t.Error("quietSince: not quiet at the epoch the runner is at")
	}
}
