package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// buildHeadroom is the least room the GC leaves above the live heap while
// the actions of a build run. The default target (the heap may grow by as
// much as is live) suits a large build, whose action graph and journal
// are hundreds of megabytes. A small one keeps a few tens live and
// allocates a few kilobytes per action, all of it short-lived: with the
// default target it collected every 5 ms of a 20,000-action rebuild from
// the cache, 13 times, each marking the whole graph again, about a tenth
// of that rebuild's CPU. With this headroom it collects 3 times, for at
// most this much more memory.
const buildHeadroom = 128 << 20

// gcPercentFor is the GC target that lets the heap grow by the live heap
// or by headroom, whichever is more, before the next collection.
func gcPercentFor(live, headroom uint64) int {
	if live >= headroom {
		return 100
	}
	return int(headroom * 100 / max(live, 1<<20))
}

// tuneGC sets the GC target for the build phase and fits it to the live
// heap again after every collection (a finalizer runs once per cycle
// that finds its object unreachable), until stop is called. stop puts
// the default target back: what the process does after the build (the
// journal's compaction, export, in tests the next build) keeps the
// default's peak, instead of a target fitted to a heap that may have
// grown since. Nothing when GOGC is set in the environment: the user's
// choice wins.
func tuneGC(headroom uint64, gogcSet bool) (stop func()) {
	if gogcSet {
		return func() {}
	}
	// mu orders a finalizer's fit against stop: none sets a target
	// after stop has put the default back.
	var mu sync.Mutex
	stopped := false
	var arm func()
	arm = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		debug.SetGCPercent(gcPercentFor(liveHeap(), headroom))
		// Holds a pointer, so it is never one of the tiny allocations
		// that share a block and may never be finalized.
		s := &gcSentinel{}
		runtime.SetFinalizer(s, func(*gcSentinel) { arm() })
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			stopped = true
			debug.SetGCPercent(100)
		}
	}
}

type gcSentinel struct{ _ *int }

// liveHeap is the heap the last collection found live, or what the heap
// holds now when none has run yet.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 && v.Value.Uint64() > 0 {
			return v.Value.Uint64()
		}
	}
	return 0
}
