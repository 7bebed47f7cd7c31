package watch

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// tuneGC keeps the heap's headroom in proportion to a large fleet: Go's
// default (GOGC=100) lets the heap grow to twice what is live before it
// collects, which for a watcher holding a million agents is hundreds of
// megabytes of garbage on top of the fleet. Every few seconds it sets the
// GC percentage so that the headroom is a fifth of the live heap, but
// never less than 64 MiB nor more than the default: a small fleet is
// collected as usual, a million agents cost at most 20% over what they
// need. (A quarter gave 610 bytes of RSS per agent at a million agents
// beating every 10 s, a fifth about 585, for a few more collections; see
// BENCHMARKS.md.) A GOGC set in the environment is the operator's choice and turns
// this off; GOMEMLIMIT is honoured by the runtime either way (a limit below
// what the fleet needs makes the GC run often, never drop agents).
func tuneGC(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		return
	}
	defer debug.SetGCPercent(100)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	last := 100
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		if p := gcPercent(sample[0].Value.Uint64()); p != last {
			debug.SetGCPercent(p)
			last = p
		}
	}
}

// gcPercent is the GOGC that gives a live heap of live bytes its headroom:
// a fifth of it, at least 64 MiB, at most the default 100%.
func gcPercent(live uint64) int {
	if live == 0 {
		return 100
	}
	headroom := max(64<<20, live/5)
	return int(min(max(100*headroom/live, 20), 100))
}
