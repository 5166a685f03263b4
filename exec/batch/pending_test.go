package batch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec"
)

// A job that stays pending says why, as the batch system puts it: a job
// Slurm holds after a failed launch, or one waiting on a partition limit,
// never starts, and a build that only says "submitted" hangs without a
// word of the reason.
func TestPendingReasonIsShown(t *testing.T) {
	r := newRig(t, Config{})
	a, k := r.action(0, 0)
	var mu sync.Mutex
	var updates []exec.JobUpdate
	go r.e.Execute(context.Background(), &exec.ExecRequest{Action: a, Key: k, ExecRoot: r.root,
		Progress: func(u exec.JobUpdate) { mu.Lock(); updates = append(updates, u); mu.Unlock() }})
	r.waitJobs(1)
	r.be.set("1_0", Status{State: StatePending, Reason: "launch failed requeued held"})
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		for _, u := range updates {
			if u.State == exec.JobSubmitted && u.Message == "launch failed requeued held" {
				mu.Unlock()
				return
			}
		}
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	t.Errorf("no update says why the job is pending: %+v", updates)
}
