package exec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLookaheadOverlapsLookups: with Lookahead, cache lookups of many
// actions overlap while -j still bounds the commands that run.
func TestLookaheadOverlapsLookups(t *testing.T) {
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("a%d:", i))
	}
	b := newTestBuild(t, lines...)
	var lookups, commands concurrency
	var ran atomic.Int64
	gather := make(chan struct{})
	var arrived atomic.Int64
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		lookups.enter()
		// The first four lookups wait for each other: they can only all
		// arrive if they run at once, beyond -j 1.
		if n := arrived.Add(1); n <= 4 {
			if n == 4 {
				close(gather)
			}
			select {
			case <-gather:
			case <-time.After(30 * time.Second):
				lookups.leave()
				return OutcomeFailed, errors.New("lookups did not overlap")
			}
		}
		lookups.leave()
		if strings.HasSuffix(a.Owner.Name, "0") || strings.HasSuffix(a.Owner.Name, "5") {
			return OutcomeCached, nil // a hit: no slot needed
		}
		ctx, err := AcquireSlot(ctx)
		if err != nil {
			return OutcomeFailed, err
		}
		commands.enter()
		time.Sleep(time.Millisecond)
		commands.leave()
		CommandDone(ctx)
		ran.Add(1)
		return OutcomeExecuted, nil
	}
	s := &Scheduler{Jobs: 1, Lookahead: 8, Capacity: Resources{CPU: 100}}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err != nil {
		t.Fatal(err)
	}
	if got := commands.peak.Load(); got != 1 {
		t.Errorf("%d commands ran at once, want -j 1", got)
	}
	if got := lookups.peak.Load(); got < 4 {
		t.Errorf("at most %d lookups at once, want at least 4", got)
	}
	if sum.Executed != 32 || sum.Cached != 8 || ran.Load() != 32 {
		t.Errorf("executed %d, cached %d, ran %d; want 32, 8, 32", sum.Executed, sum.Cached, ran.Load())
	}
}

// TestLookaheadWalltimeStartsWithTheSlot: an action's walltime counts from
// its slot, not from its lookup, however long it waited for one.
func TestLookaheadWalltimeStartsWithTheSlot(t *testing.T) {
	b := newTestBuild(t, "long:", "short:")
	b.byName["short"].SetExtra().Timeout = 300 * time.Millisecond
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		ctx, err := AcquireSlot(ctx)
		if err != nil {
			return OutcomeFailed, err
		}
		if a.Owner.Name == "long" {
			time.Sleep(600 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return OutcomeFailed, ctx.Err()
		}
		return OutcomeExecuted, nil
	}
	s := &Scheduler{Jobs: 1, Lookahead: 4, Capacity: Resources{CPU: 100}}
	sum, err := s.Run(context.Background(), b.g, b.actions, work)
	if err != nil || sum.Executed != 2 {
		t.Fatalf("executed %d: %v", sum.Executed, err)
	}
}

// TestLookaheadStopsWaitingOnFailure: without -k, a failure stops the
// lookups that wait for a slot; they are skipped, not failed, and the
// build ends.
func TestLookaheadStopsWaitingOnFailure(t *testing.T) {
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf("a%d:", i))
	}
	b := newTestBuild(t, lines...)
	work := func(ctx context.Context, a *Action) (Outcome, error) {
		ctx, err := AcquireSlot(ctx)
		if err != nil {
			return OutcomeFailed, err
		}
		time.Sleep(20 * time.Millisecond)
		return OutcomeFailed, actionErr(a, "boom")
	}
	s := &Scheduler{Jobs: 1, Lookahead: 8, Capacity: Resources{CPU: 100}}
	done := make(chan struct{})
	var sum *Summary
	var err error
	go func() { sum, err = s.Run(context.Background(), b.g, b.actions, work); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the build did not end after a failure")
	}
	var bf *BuildFailedError
	if !errors.As(err, &bf) || sum.Failed != 1 || sum.Skipped != 9 {
		t.Errorf("failed %d, skipped %d, err %v; want 1, 9 and a build failure", sum.Failed, sum.Skipped, err)
	}
}
