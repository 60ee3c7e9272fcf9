package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/partyline/partyline"
)

// BenchmarkAppend measures Append on store with writers goroutines calling
// it at once, spread over eight rooms, and reports msgs/s. Each message
// carries 100 bytes of content.
func BenchmarkAppend(b *testing.B, store partyline.Store, writers int) {
	ctx := context.Background()
	content := fmt.Sprintf("%0100d", 0)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			room := fmt.Sprintf("bench-%d", w%8)
			for next.Add(1) <= int64(b.N) {
				msg := partyline.Message{Room: room, ID: "bench", Username: "bench", Content: content}
				if _, err := store.Append(ctx, msg); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
