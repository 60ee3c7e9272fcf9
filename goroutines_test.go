package partyline

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestGoroutinePoolReusesItsGoroutines: work given one piece at a time runs
// on one goroutine, which ends once it has waited long enough.
func TestGoroutinePoolReusesItsGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	done := make(chan int)
	p := goroutinePool[int]{do: func(i int) { done <- i }}
	idle := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle)
	}
	for i := range 100 {
		p.run(i)
		if got := <-done; got != i {
			t.Fatalf("work %d ran as %d", i, got)
		}
		eventually(t, "the goroutine to wait again", func() bool { return idle() == 1 })
		// The goroutine and the sweep; a sweep that has just ended may be
		// counted a moment longer beside the next.
		eventually(t, fmt.Sprintf("at most %d goroutines after %d pieces of work", base+2, i+1),
			func() bool { return runtime.NumGoroutine() <= base+2 })
	}
	eventually(t, "the idle goroutine to end", func() bool { return idle() == 0 && runtime.NumGoroutine() <= base })
}

// TestGoroutinePoolKeepsAtMostMaxIdle: after a burst of work that ran at
// once, at most maxIdleGoroutines of its goroutines wait for more.
func TestGoroutinePoolKeepsAtMostMaxIdle(t *testing.T) {
	base := runtime.NumGoroutine()
	var started, release sync.WaitGroup
	gate := make(chan struct{})
	p := goroutinePool[struct{}]{do: func(struct{}) { started.Done(); <-gate; release.Done() }}
	const n = 2 * maxIdleGoroutines
	started.Add(n)
	release.Add(n)
	for range n {
		p.run(struct{}{})
	}
	started.Wait() // all n ran at once, so on n goroutines
	close(gate)
	release.Wait()
	eventually(t, "as many goroutines as may to wait, and the rest to end", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == maxIdleGoroutines && runtime.NumGoroutine() <= base+maxIdleGoroutines+1
	})
	eventually(t, "the idle goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}
