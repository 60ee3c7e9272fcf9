package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// BenchmarkAppend measures Append on store with writers goroutines calling
// it at once, spread over eight rooms, and reports msgs/s and the 99th
// percentile of Append's wall time (p99-ms). Each message carries 100 bytes
// of content.
func BenchmarkAppend(b *testing.B, store partyline.Store, writers int) {
	content := fmt.Sprintf("%0100d", 0)
	rooms := make([]string, writers)
	for w := range rooms {
		rooms[w] = fmt.Sprintf("bench-%d", w%8)
	}
	AppendConcurrently(b, store, writers, func(w int, _ int64) partyline.Message {
		return partyline.Message{Room: rooms[w], ID: "bench", Username: "bench", Content: content}
	})
}

// AppendConcurrently appends b.N messages to store from writers goroutines,
// message i (from 1) by writer w being message(w, i), and reports msgs/s
// and the 99th percentile of Append's wall time (p99-ms).
func AppendConcurrently(b *testing.B, store partyline.Store, writers int, message func(w int, i int64) partyline.Message) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	latencies := NewLatencies(writers)
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				msg := message(w, i)
				start := time.Now()
				if _, err := store.Append(ctx, msg); err != nil {
					b.Error(err)
					return
				}
				latencies.Record(w, time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	latencies.Report(b)
}

// Latencies records the wall times of a benchmark's calls, one list per
// writer goroutine so that recording takes no lock and shares no memory.
type Latencies struct {
	perWriter [][]time.Duration
}

// NewLatencies returns Latencies for writers goroutines, numbered from 0.
func NewLatencies(writers int) *Latencies {
	return &Latencies{perWriter: make([][]time.Duration, writers)}
}

// Record adds d, the wall time of one call by writer w. Only goroutine w
// may call it with w.
func (l *Latencies) Record(w int, d time.Duration) {
	l.perWriter[w] = append(l.perWriter[w], d)
}

// Report reports the 99th percentile of the recorded times, in
// milliseconds, as p99-ms: the tail the callers of a store see. Call it
// once the writers are done.
func (l *Latencies) Report(b *testing.B) {
	all := slices.Concat(l.perWriter...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	p99 := all[min(len(all)-1, len(all)*99/100)]
	b.ReportMetric(float64(p99)/float64(time.Millisecond), "p99-ms")
}
