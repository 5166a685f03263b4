package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch/standin"
)

// TestBatchWindowZeroSubmitsAtOnce: --batch-window=0 asks for no gathering:
// a ready action is submitted at once, not after the default 2s. Runs
// against the HTCondor stand-in (exec/batch/standin): the real tools
// cannot be installed here.
func TestBatchWindowZeroSubmitsAtOnce(t *testing.T) {
	standin.Install(t, "htcondor")
	t.Setenv(asMainEnv, "1")
	root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "x", outs = ["x.txt"], cmd = "echo x > $@")`})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	r := hepbuild(t, root, "//:x", "--disk-cache", diskCache, "--executor=htcondor", "--batch-window=0", "--batch-poll=100ms", "--progress=plain", "--events", ev)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	var queued, submitted time.Time
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Type string
			Time time.Time
		}
		json.Unmarshal([]byte(line), &e)
		switch {
		case e.Type == "job_queued" && queued.IsZero():
			queued = e.Time
		case e.Type == "job_submitted" && submitted.IsZero():
			submitted = e.Time
		}
	}
	if d := submitted.Sub(queued); queued.IsZero() || d > time.Second {
		t.Errorf("submitted %v after it was ready, with --batch-window=0", d)
	}
}
