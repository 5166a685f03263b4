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
	// The delay from ready to submitted, with a window of 0 and of 3s:
	// submitting takes a process start or two, slow on a busy machine, so
	// the two are compared rather than one against a fixed bound.
	delay := func(window string) time.Duration {
		root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "x", outs = ["x.txt"], cmd = "echo x > $@")`})
		ev := filepath.Join(t.TempDir(), "events.jsonl")
		r := hepbuild(t, root, "//:x", "--disk-cache", diskCache, "--executor=htcondor", "--batch-window="+window, "--batch-poll=100ms", "--progress=plain", "--events", ev)
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
		if queued.IsZero() || submitted.IsZero() {
			t.Fatalf("--batch-window=%s: no job_queued or job_submitted event:\n%s", window, b)
		}
		return submitted.Sub(queued)
	}
	waited, atOnce := delay("3s"), delay("0")
	if waited < 3*time.Second {
		t.Errorf("submitted %v after it was ready, with --batch-window=3s", waited)
	}
	if atOnce > waited-2*time.Second {
		t.Errorf("submitted %v after it was ready with --batch-window=0, %v with 3s", atOnce, waited)
	}
}
