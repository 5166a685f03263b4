package worker

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// A job the batch system cancels (scancel, preemption, a node drained)
// gets SIGTERM in every process at once: the action's command dies of it
// as the worker itself is told to stop. That death is the job's, not the
// action's: the worker must not record it as the action's failure, or
// the submitter reports the action failed instead of resubmitting it.
func TestWorkerKilledWithItsJobRecordsNoFailure(t *testing.T) {
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	a := bashAction("echo $$ > "+pidFile+"; exec sleep 100", nil, "hepbuild-out/x")
	ref := submit(t, c, t.TempDir(), a)
	w, out := newWorker(t, c, "tok")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Status, 1)
	go func() { done <- w.Run(ctx, []Ref{ref}) }()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the action did not start")
		}
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	// slurmstepd signals the job's processes one after another; the
	// worker learns of its own signal a moment after the command died.
	syscall.Kill(pid, syscall.SIGTERM)
	time.Sleep(3 * time.Millisecond)
	cancel()
	st := <-done
	if _, err := c.GetActionResult(context.Background(), exec.FailureKey(ref.Action, "tok")); err == nil {
		t.Errorf("the job's cancellation was recorded as the action's failure (status %v); the worker said:\n%s", st, out)
	}
}
