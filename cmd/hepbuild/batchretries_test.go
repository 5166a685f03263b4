package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec/batch/standin"
)

// TestBatchRetriesAreNotSquared: --retries=1 allows one resubmission of an
// action whose job exceeded its memory: two jobs in all. The engine
// resubmits it once, and must not then hand the runner a failure that the
// scheduler retries with a fresh round of resubmissions (four jobs, and
// the memory bump starting over). Runs against the HTCondor stand-in
// (exec/batch/standin): the real tools cannot be installed here.
func TestBatchRetriesAreNotSquared(t *testing.T) {
	state := standin.Install(t, "htcondor")
	for n := 1; n <= 8; n++ {
		standin.Plan(t, state, n, standin.OverMemory, "")
	}
	t.Setenv(asMainEnv, "1")
	root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "big", outs = ["big.txt"], resources = {"memory": "100MB"}, cmd = "echo > $@")`})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	r := hepbuild(t, root, "//:big", "--disk-cache", diskCache, "--executor=htcondor", "--batch-poll=200ms", "--batch-window=100ms",
		"--progress=plain", "--retries=1", "--retry-bump=memory=2x", "--events", ev)
	if r.code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if n := standin.Count(t, state, "condor_submit"); n != 2 {
		t.Errorf("%d jobs submitted for one action with --retries=1, want 2\n%s", n, r.stderr)
	}
	if !strings.Contains(r.stderr, "exceeded its memory request of 191 MB") {
		t.Errorf("the last attempt's request is not the bumped one:\n%s", r.stderr)
	}
}
