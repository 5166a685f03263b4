package exec

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// runWithin runs the build, failing the test should it hang.
func runWithin(t *testing.T, s *Scheduler, b *testBuild, work Work) (*Summary, error) {
	t.Helper()
	type res struct {
		sum *Summary
		err error
	}
	done := make(chan res, 1)
	go func() {
		sum, err := s.Run(context.Background(), b.g, b.actions, work)
		done <- res{sum, err}
	}()
	select {
	case r := <-done:
		return r.sum, r.err
	case <-time.After(time.Minute):
		t.Fatal("the build hangs")
		return nil, nil
	}
}

// With -j 1, an action that waits for another build (Unslotted) gives the
// slot back: an independent action runs meanwhile, and the waiting one
// takes a slot again before its command; commands never overlap.
func TestUnslottedWaitFreesTheSlot(t *testing.T) {
	b := newTestBuild(t, "waits:", "other:")
	otherDone := make(chan struct{})
	var commands, most atomic.Int32
	command := func() {
		n := commands.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		commands.Add(-1)
	}
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		if a.Owner.Name == "other" {
			command()
			close(otherDone)
			return OutcomeExecuted, nil
		}
		wctx, yield := Unslotted(ctx)
		yield()
		yield() // a second call changes nothing
		<-otherDone
		ctx, err := AcquireSlot(wctx)
		if err != nil {
			return OutcomeFailed, err
		}
		command()
		CommandDone(ctx)
		return OutcomeExecuted, nil
	}
	// The waiting action starts first: most critical.
	estimate := func(a *Action) time.Duration {
		if a.Owner.Name == "waits" {
			return time.Hour
		}
		return time.Second
	}
	sum, err := runWithin(t, &Scheduler{Jobs: 1, Estimate: estimate}, b, work)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Executed != 2 {
		t.Errorf("executed %d, want 2", sum.Executed)
	}
	if most.Load() != 1 {
		t.Errorf("%d commands ran at once with -j 1", most.Load())
	}
}

// The walltime of an action that waited starts when it gets its slot
// again: a wait longer than the walltime does not fail it.
func TestUnslottedWaitIsNotWalltime(t *testing.T) {
	b := newTestBuild(t, "waits:")
	b.actions[0].SetExtra().Timeout = 50 * time.Millisecond
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		wctx, yield := Unslotted(ctx)
		yield()
		<-ctx.Done() // the walltime of the attempt as it started ends
		if wctx.Err() != nil {
			return OutcomeFailed, errors.New("the wait's context ended with the walltime")
		}
		ctx, err := AcquireSlot(wctx)
		if err != nil {
			return OutcomeFailed, err
		}
		if _, ok := ctx.Deadline(); !ok {
			return OutcomeFailed, errors.New("the command runs without a walltime")
		}
		return OutcomeExecuted, ctx.Err()
	}
	sum, err := runWithin(t, &Scheduler{Jobs: 1}, b, work)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Executed != 1 {
		t.Errorf("executed %d, want 1", sum.Executed)
	}
}

// A wait ends when the build stops starting actions (a failure without
// -k): the waiting action is skipped, not failed.
func TestUnslottedWaitEndsWhenTheBuildStops(t *testing.T) {
	b := newTestBuild(t, "waits:", "fails:")
	waiting := make(chan struct{})
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		if a.Owner.Name == "fails" {
			<-waiting
			return OutcomeFailed, actionErr(a, "exit status 1")
		}
		wctx, yield := Unslotted(ctx)
		yield()
		close(waiting)
		<-wctx.Done()
		if c := context.Cause(wctx); !errors.Is(c, errNoSlot) {
			return OutcomeFailed, c
		}
		return OutcomeSkipped, errNoSlot
	}
	sum, err := runWithin(t, &Scheduler{Jobs: 2}, b, work)
	var bf *BuildFailedError
	if !errors.As(err, &bf) {
		t.Fatalf("error %v, want the failed action", err)
	}
	if sum.Failed != 1 || sum.Skipped != 1 {
		t.Errorf("failed %d, skipped %d; want 1, 1", sum.Failed, sum.Skipped)
	}
}
