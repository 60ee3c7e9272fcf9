package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The memory trim (--memory-trim) gives back to the system, once the
// server has gone quiet, the heap that a burst of work (a connect storm:
// HTTP requests, handshakes, welcomes) left free. The garbage collector
// keeps such memory for reuse: its scavenger returns only what lies beyond
// about 110% of the heap in use at the last collection, which after a storm
// is nearly twice the live heap, and an idle server collects only every two
// minutes. For idle connections that headroom is most of their resident
// memory (docs/performance.md, issue 12). A trim is one forced collection
// and the release of the free pages (debug.FreeOSMemory): a few
// milliseconds of CPU for a heap of tens of megabytes, taken only when
// nothing is happening, at most once per trimGap, and only when there is
// much to give back. Under load the server is never quiet and never trims,
// so the trim costs nothing there, unlike a lower GOGC.

// Trim settings.
const (
	// trimEvery is how often the heap is sampled.
	trimEvery = time.Second
	// trimQuietSamples is how many samples in a row must be quiet: a
	// storm's tail (handshakes finishing, welcomes written) must be over.
	trimQuietSamples = 3
	// trimGap is the least time between two trims, so that a server whose
	// work comes in bursts pays at most one forced collection per gap.
	trimGap = time.Minute
	// trimFloor is the least reclaimable heap worth a trim.
	trimFloor = 4 << 20
)

// heapSample is what a trim decision needs of the runtime's statistics.
type heapSample struct {
	allocs  uint64 // bytes allocated since the process started
	live    uint64 // live heap at the last collection
	objects uint64 // heap taken by objects, live or garbage not yet swept
	free    uint64 // heap free and not yet returned to the system
}

// reclaimable is about what a trim would return: the free heap and the
// garbage since the last collection (less, when the garbage shares pages
// with live objects).
func (s heapSample) reclaimable() uint64 {
	return s.free + s.objects - min(s.live, s.objects)
}

// trimPolicy decides, sample by sample, when to trim.
type trimPolicy struct {
	prev     heapSample
	sampled  bool
	quiet    int       // quiet samples in a row
	lastTrim time.Time // zero: never
}

// observe takes the sample s taken at now and reports whether to trim.
// A sample is quiet when less than 1/64 of the live heap, plus 64 KiB,
// was allocated since the previous one: an idle server's
// heartbeats allocate next to nothing, a server at work far more. A trim
// is due after trimQuietSamples quiet samples, trimGap after the last
// trim, when it would return more than a quarter of the live heap and at
// least trimFloor.
func (p *trimPolicy) observe(now time.Time, s heapSample) bool {
	quiet := p.sampled && s.allocs-p.prev.allocs < s.live/64+64<<10
	p.prev, p.sampled = s, true
	if !quiet {
		p.quiet = 0
		return false
	}
	p.quiet++
	if p.quiet < trimQuietSamples || (!p.lastTrim.IsZero() && now.Sub(p.lastTrim) < trimGap) {
		return false
	}
	if r := s.reclaimable(); r < trimFloor || r < s.live/4 {
		return false
	}
	p.lastTrim, p.quiet = now, 0
	return true
}

// readHeap samples the runtime's heap statistics.
func readHeap(samples []metrics.Sample) heapSample {
	metrics.Read(samples)
	return heapSample{
		allocs:  samples[0].Value.Uint64(),
		live:    samples[1].Value.Uint64(),
		objects: samples[2].Value.Uint64(),
		free:    samples[3].Value.Uint64(),
	}
}

// trimMemory samples the heap every trimEvery and trims when p says so,
// until ctx is cancelled.
func trimMemory(ctx context.Context, p *trimPolicy) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	ticker := time.NewTicker(trimEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			if p.observe(now, readHeap(samples)) {
				debug.FreeOSMemory()
			}
		}
	}
}

// memoryTrimOn resolves --memory-trim (checked to be auto, on or off):
// auto is on unless GOGC or GOMEMLIMIT is set, since whoever sets those
// tunes the collector themselves (and GOGC=off means no collection at all,
// which a trim would force).
func memoryTrimOn(setting string, getenv func(string) string) bool {
	if setting == "auto" {
		return getenv("GOGC") == "" && getenv("GOMEMLIMIT") == ""
	}
	return setting == "on"
}
