package partyline

import (
	"testing"
	"time"
)

func TestPresenceOrderFresh(t *testing.T) {
	var o presenceOrder
	start := time.Unix(1_000_000, 0)
	steps := []struct {
		user   string
		number uint64
		after  time.Duration
		want   bool
	}{
		{"bob", 5, 0, true},
		{"bob", 3, time.Second, false},                        // older: reordered by the broker
		{"bob", 5, time.Second, false},                        // the same: a broker duplicate
		{"ann", 4, time.Second, true},                         // another user's order is her own
		{"bob", 7, 2 * time.Second, true},                     // newer
		{"bob", 6, presenceOrderWindow + time.Second, false},  // remembered in the older window
		{"bob", 6, 2*presenceOrderWindow + time.Second, true}, // forgotten after two windows
		{"ann", 2, 5 * presenceOrderWindow, true},             // a long quiet forgets everything
	}
	for i, s := range steps {
		if got := o.fresh(s.user, s.number, start.Add(s.after)); got != s.want {
			t.Errorf("step %d: fresh(%q, %d) after %v = %v, want %v", i, s.user, s.number, s.after, got, s.want)
		}
	}
}
