package partyline

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestFanOutReachesEveryMemberOnce checks the chunking for many CPU counts
// and room sizes, including ones where equal chunks do not divide evenly.
func TestFanOutReachesEveryMemberOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8, 131} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 255, 256, 257, 1000, 16769} {
			members := make([]member, n)
			var calls atomic.Int64
			sent := fanOut(members, func(member) bool { calls.Add(1); return true })
			if sent != n || calls.Load() != int64(n) {
				t.Errorf("GOMAXPROCS %d, %d members: sent %d with %d calls, want %d", procs, n, sent, calls.Load(), n)
			}
		}
	}
}
