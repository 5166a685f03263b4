package batch

import (
	"context"
	"github.com/hepbuild/hepbuild/exec"
	"testing"
)

// Jobs an earlier build left running (--detach) that this build never
// asked for are not this build's to cancel: an interrupted build cancels
// its own jobs, and those it took over because it needed their actions;
// the others stay running and recorded for the build that wants them.
func TestCloseLeavesUnneededAdoptedJobs(t *testing.T) {
	r := newRig(t, Config{})
	a, k := r.action(0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	answers := r.run(ctx, []*exec.Action{a}, []*exec.Key{k})
	r.waitJobs(1)
	cancel()
	wait(t, answers[0])
	if err := r.e.Close(context.Background(), true); err != nil {
		t.Fatal(err)
	}

	r.start(Config{})
	if n := r.e.Adopted(); n != 1 {
		t.Fatalf("adopted %d jobs, want 1", n)
	}
	b, kb := r.action(1, 0)
	ctx2, cancel2 := context.WithCancel(context.Background())
	answers = r.run(ctx2, []*exec.Action{b}, []*exec.Key{kb})
	r.waitJobs(2)
	cancel2() // the build is interrupted
	wait(t, answers[0])
	if err := r.e.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.be.cancels {
		for _, id := range c {
			if id == "1_0" {
				t.Errorf("the earlier build's job 1_0, which this build never needed, was cancelled")
			}
		}
	}
	r.start(Config{})
	if n := r.e.Adopted(); n != 1 {
		t.Errorf("the next build re-attaches to %d jobs, want the earlier build's 1", n)
	}
}
