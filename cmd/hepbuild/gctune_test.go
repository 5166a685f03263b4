package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{live: 512 << 20, headroom: 128 << 20, want: 100}, // a large build: the default
		{live: 128 << 20, headroom: 128 << 20, want: 100},
		{live: 32 << 20, headroom: 128 << 20, want: 400}, // 32 MB live may grow by 128
		{live: 16 << 20, headroom: 128 << 20, want: 800},
		{live: 0, headroom: 128 << 20, want: 12800}, // unknown: as if 1 MB
	} {
		if got := gcPercentFor(c.live, c.headroom); got != c.want {
			t.Errorf("gcPercentFor(%d MB live, %d MB headroom) = %d, want %d", c.live>>20, c.headroom>>20, got, c.want)
		}
	}
}

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// waitGCPercent collects until the tuner's finalizer has set want, or
// gives up after a while (the finalizer runs after the cycle, on its own
// goroutine).
func waitGCPercent(want func(int) bool) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		p := gcPercent()
		if want(p) || time.Now().After(deadline) {
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var gcTuneBallast []byte

func TestTuneGCFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	const headroom = 256 << 20
	stop := tuneGC(headroom, false)
	small := gcPercent()
	if small <= 100 {
		t.Fatalf("with a small live heap the target is %d%%, want over 100%%", small)
	}
	// The live heap grows past the headroom: after the next collection
	// the target is the default again.
	gcTuneBallast = make([]byte, 2*headroom)
	for i := range gcTuneBallast {
		gcTuneBallast[i] = byte(i)
	}
	if p := waitGCPercent(func(p int) bool { return p == 100 }); p != 100 {
		t.Fatalf("with %d MB live the target is %d%%, want 100%%", len(gcTuneBallast)>>20, p)
	}
	gcTuneBallast = nil
	if p := waitGCPercent(func(p int) bool { return p > 100 }); p <= 100 {
		t.Fatalf("once the heap shrank the target stayed %d%%", p)
	}
	// Stopped, it no longer changes the target.
	stop()
	runtime.GC()
	debug.SetGCPercent(123)
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := gcPercent(); p != 123 {
		t.Errorf("after stop the tuner set the target to %d%%", p)
	}
}

func TestTuneGCLeavesGOGCAlone(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(77))
	stop := tuneGC(128<<20, true)
	defer stop()
	runtime.GC()
	if p := gcPercent(); p != 77 {
		t.Errorf("with GOGC set the target became %d%%, want 77%%", p)
	}
}

// TestTuneGCStopRestoresTheDefault: what follows the build phase in the
// process (the journal's compaction, export, the next build of a test)
// runs with the default target, as before the tuner, not with the last
// target it fitted to a small heap, which a grown heap would multiply.
func TestTuneGCStopRestoresTheDefault(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	debug.SetGCPercent(400) // as main sets it for loading
	stop := tuneGC(256<<20, false)
	if p := gcPercent(); p <= 100 {
		t.Fatalf("with a small live heap the target is %d%%, want over 100%%", p)
	}
	stop()
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := gcPercent(); p != 100 {
		t.Errorf("after stop the target is %d%%, want the default 100%%", p)
	}
}
