package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestToleranceNeverHidesAMissingTarget: --tolerance lets a build of many
// branches succeed without the few that failed; it must not report
// success when a target that was asked for was never built because it
// needs a failed branch (its action skipped): the user asked for the
// merge and there is none.
func TestToleranceNeverHidesAMissingTarget(t *testing.T) {
	build := `
task(name = "b1", outs = ["b1.txt"], cmd = "echo 1 > $@")
task(name = "b2", outs = ["b2.txt"], cmd = "echo 2 > $@")
task(name = "b3", outs = ["b3.txt"], cmd = "exit 3")
task(name = "merge", srcs = [":b1", ":b2", ":b3"], outs = ["merged.txt"], cmd = "cat $(SRCS) > $@")
`
	root := testWorkspace(t, map[string]string{"BUILD": build})
	r := hepbuild(t, root, "//:merge", "--tolerance=1", "--progress=plain")
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out/merged.txt")); err == nil {
		t.Fatal("merged.txt was built from a failed branch")
	}
	if r.code == 0 {
		t.Errorf("exit 0 although the requested //:merge was not built:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "//:b3") {
		t.Errorf("the failure is not named:\n%s", r.stderr)
	}
}
