package batch

import (
	"context"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec"
)

// An interrupt that comes while sbatch is submitting must not kill it: the
// batch system may already have accepted the jobs, whose ids sbatch has
// not printed yet, and they would run on, unknown to hepbuild, neither
// cancelled nor recorded. The submission ends, and Close cancels its jobs.
func TestCloseDuringSubmitLeavesNoJob(t *testing.T) {
	r := newRig(t, Config{})
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := &slowSubmit{fakeBackend: r.be, entered: entered, release: release}
	r.e.Close(context.Background(), true)
	r.be2(slow)
	a, k := r.action(0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.e.Execute(ctx, &exec.ExecRequest{Action: a, Key: k, ExecRoot: r.root})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing submitted")
	}
	cancel() // Ctrl-C
	closed := make(chan error, 1)
	go func() { closed <- r.e.Close(context.Background(), false) }()
	time.Sleep(100 * time.Millisecond)
	close(release) // sbatch would have printed the ids now
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	r.be.mu.Lock()
	defer r.be.mu.Unlock()
	if len(r.be.state) != 0 {
		t.Errorf("jobs left on the batch system after an interrupted build: %v", r.be.state)
	}
}

// slowSubmit is the fake batch system whose submit command takes time: the
// system accepts the jobs at once, the command prints their ids when
// released; killed before that, it prints nothing.
type slowSubmit struct {
	*fakeBackend
	entered, release chan struct{}
}

func (s *slowSubmit) Submit(ctx context.Context, a *Array) ([]string, error) {
	ids, err := s.fakeBackend.Submit(ctx, a)
	close(s.entered)
	select {
	case <-s.release:
		return ids, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// be2 restarts the rig's engine over another backend.
func (r *rig) be2(b Backend) {
	cfg := Config{Backend: b, Results: r.cache, Upload: r.cache, Dir: r.dir, Worker: []string{"hepbuild", "worker"},
		PollInterval: 20 * time.Millisecond, Window: 20 * time.Millisecond}
	e, err := New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
	r.t.Cleanup(func() { e.Close(context.Background(), true) })
}
