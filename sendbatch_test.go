package partyline_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/uring"
)

// TestSendsInBatchesAndOneByOne fans messages from several publishers out
// to a room of 150, with the sends made in batches through io_uring and then one
// send(2) each: either way every subscriber gets every message, in the same order.
func TestSendsInBatchesAndOneByOne(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			was := partyline.SendInBatches(batched)
			t.Cleanup(func() { partyline.SendInBatches(was) })
			if batched {
				newRing(t, 4) // or skip
			}
			fanOutToAll(t, 150, 4, 25)
			if rings := partyline.OpenRings(); batched && rings == 0 || !batched && rings != 0 {
				t.Errorf("%d io_uring rings open after the deliveries, batched %v", rings, batched)
			}
		})
	}
}

// newRing returns an io_uring Ring of entries, closed when tb ends, or
// skips tb where the system refuses io_uring (and sends one by one).
func newRing(tb testing.TB, entries int) *uring.Ring {
	tb.Helper()
	r, err := uring.New(entries)
	if errors.Is(err, uring.ErrUnsupported) {
		tb.Skipf("this system sends one by one: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}
