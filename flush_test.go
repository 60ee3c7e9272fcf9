package partyline

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countedFlush records the order in which a flush list flushes it, and
// how many flushes run at once.
type countedFlush struct {
	id      int
	order   *[]int
	mu      *sync.Mutex
	running *atomic.Int32
	most    *atomic.Int32
	hold    time.Duration
}

func (f countedFlush) takeHeld(uint32) bool { return true }

func (f countedFlush) flush() {
	n := f.running.Add(1)
	for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
	}
	time.Sleep(f.hold)
	f.mu.Lock()
	*f.order = append(*f.order, f.id)
	f.mu.Unlock()
	f.running.Add(-1)
}

// TestFlushListOrderAndGoroutines: connections are flushed oldest first
// when one goroutine serves them, never by more goroutines than
// flushGoroutines allows, and the goroutines end once the list is empty.
func TestFlushListOrderAndGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	var l flushList
	var order []int
	var mu sync.Mutex
	var running, most atomic.Int32
	const n = 3 * maxSpareFlushList // long enough to compact while draining
	for i := range n {
		l.add(countedFlush{i, &order, &mu, &running, &most, 0}, 0)
	}
	eventually(t, "every connection flushed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == n
	})
	if got, limit := int(most.Load()), flushGoroutines(); got > limit {
		t.Errorf("%d flushes ran at once; want at most %d", got, limit)
	}
	seen := make([]bool, n)
	for _, id := range order {
		if seen[id] {
			t.Fatalf("connection %d flushed twice", id)
		}
		seen[id] = true
	}
	eventually(t, "flush goroutines to end", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.running == 0 && runtime.NumGoroutine() <= base
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running != 0 || len(l.conns) != 0 || cap(l.conns) > maxSpareFlushList {
		t.Errorf("after draining: %d running, %d waiting, capacity %d; want 0, 0, at most %d",
			l.running, len(l.conns), cap(l.conns), maxSpareFlushList)
	}
}

// TestFlushGoroutinesLeaveACPU: flushing may take every CPU but one, and
// takes the only one there is.
func TestFlushGoroutinesLeaveACPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for procs, want := range map[int]int{1: 1, 2: 1, 8: 7} {
		runtime.GOMAXPROCS(procs)
		if got := flushGoroutines(); got != want {
			t.Errorf("with GOMAXPROCS %d: %d flush goroutines; want %d", procs, got, want)
		}
	}
}

// TestFlushListFIFO: with one CPU's worth of flushing, the list is served
// in the order connections joined it, across compactions.
func TestFlushListFIFO(t *testing.T) {
	var l flushList
	l.running, l.limit = 1, 1 // as if a goroutine were at work: add starts none
	const n = 2*maxSpareFlushList + 10
	var order []int
	var mu sync.Mutex
	var running, most atomic.Int32
	for i := range n {
		l.add(countedFlush{i, &order, &mu, &running, &most, 0}, 0)
	}
	l.run() // this goroutine is the one at work
	for i, id := range order {
		if id != i {
			t.Fatalf("flush %d was connection %d; want first in, first out", i, id)
		}
	}
	if len(order) != n || l.running != 0 {
		t.Errorf("flushed %d of %d, %d still running", len(order), n, l.running)
	}
}

// nopFlush is a connection with nothing to write.
type nopFlush struct{ flushes atomic.Int64 }

func (f *nopFlush) flush()               { f.flushes.Add(1) }
func (f *nopFlush) takeHeld(uint32) bool { return true }

// BenchmarkFlushList measures what waiting on the flush list costs a
// delivery: one add and one take, with the list's goroutines at work.
func BenchmarkFlushList(b *testing.B) {
	var l flushList
	f := new(nopFlush)
	b.ReportAllocs()
	for range b.N {
		l.add(f, 0)
	}
	for f.flushes.Load() < int64(b.N) {
		runtime.Gosched()
	}
}

// eventually fails t unless cond holds within 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestFlushListBacklog: a flush list's backlog is the connections still
// waiting times the recent time per connection written, and nothing once
// none waits.
func TestFlushListBacklog(t *testing.T) {
	l := flushList{running: 1, perWrite: time.Millisecond}
	for range 4 * flushBatch {
		l.conns = append(l.conns, countedFlush{})
	}
	var batch [flushBatch]flushable
	for _, want := range []time.Duration{192, 128, 64, 0} {
		l.take(batch[:0], flushBatch, flushBatch*time.Millisecond) // 1 ms each, as before
		if got := time.Duration(l.backlog.Load()); got != want*time.Millisecond {
			t.Fatalf("backlog %v, want %v", got, want*time.Millisecond)
		}
	}
	if taken, _ := l.take(batch[:0], flushBatch, 3*flushBatch*time.Millisecond); len(taken) != 0 {
		t.Fatalf("took %d from an empty list", len(taken))
	}
	if l.perWrite <= time.Millisecond || l.running != 0 || l.backlog.Load() != 0 {
		t.Errorf("per write %v, %d running, backlog %v; want the slower writes counted, none running, none",
			l.perWrite, l.running, time.Duration(l.backlog.Load()))
	}
}

// flushFunc is a connection whose flush is a function.
type flushFunc func()

func (f flushFunc) flush()               { f() }
func (f flushFunc) takeHeld(uint32) bool { return true }

// TestFlushListDelay: a list with a delay flushes each connection no
// sooner than the delay after it joined, oldest first, and its goroutine
// ends once the list is empty.
func TestFlushListDelay(t *testing.T) {
	base := runtime.NumGoroutine()
	const delay = 50 * time.Millisecond
	l := flushList{delay: delay}
	var mu sync.Mutex
	var order []int
	var waited []time.Duration
	for i := range 3 {
		joined := time.Now()
		l.add(flushFunc(func() {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, i)
			waited = append(waited, time.Since(joined))
		}), 0)
		time.Sleep(delay / 3) // each joins while the one before waits
	}
	eventually(t, "every connection flushed and the goroutine ended", func() bool {
		mu.Lock()
		defer mu.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(order) == 3 && l.running == 0 && runtime.NumGoroutine() <= base
	})
	for i, w := range waited {
		if order[i] != i || w < delay {
			t.Errorf("flush %d: connection %d after %v; want connection %d, no sooner than %v", i, order[i], w, i, delay)
		}
	}
}

// TestFlushListTurnsStayWithTheirConnections: when a delayed list that
// never empties is compacted, each connection keeps its own turn.
func TestFlushListTurnsStayWithTheirConnections(t *testing.T) {
	l := flushList{delay: time.Hour, running: 1}
	const n = 2*maxSpareFlushList + 10
	for i := range n {
		l.conns = append(l.conns, countedFlush{id: i})
		l.turns = append(l.turns, turn{due: int64(i), hold: uint32(i)}) // all past: the clock has run longer
	}
	var batch [flushBatch]flushable
	for compacted := false; !compacted; {
		before := l.next
		if taken, wait := l.take(batch[:0], 0, 0); len(taken) == 0 || wait != 0 {
			t.Fatalf("took %d, wait %v, from a list of due connections", len(taken), wait)
		}
		compacted = l.next < before
	}
	for j := l.next; j < len(l.conns); j++ {
		if id := l.conns[j].(countedFlush).id; l.turns[j] != (turn{due: int64(id), hold: uint32(id)}) {
			t.Fatalf("after compaction, connection %d has turn %+v; want due and hold %d", id, l.turns[j], id)
		}
	}
	if len(l.turns) != len(l.conns) {
		t.Errorf("%d turns for %d connections", len(l.turns), len(l.conns))
	}
}

// heldFlush is a connection held on a list with a delay whose held turn
// an urge may have replaced: urged says which holds.
type heldFlush struct {
	flushFunc
	urged func(hold uint32) bool
}

func (f heldFlush) takeHeld(hold uint32) bool { return !f.urged(hold) }

// TestFlushListSkipsUrgedTurns: on a list with a delay, a turn that an
// urge has replaced writes nothing, and a goroutine whose every turn was
// replaced still ends, leaving the list to start the next one.
func TestFlushListSkipsUrgedTurns(t *testing.T) {
	base := runtime.NumGoroutine()
	l := flushList{delay: time.Millisecond}
	var mu sync.Mutex
	var flushed []uint32
	add := func(hold uint32, urged bool) {
		l.add(heldFlush{
			flushFunc: func() { mu.Lock(); flushed = append(flushed, hold); mu.Unlock() },
			urged:     func(uint32) bool { return urged },
		}, hold)
	}
	ended := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.running == 0 && runtime.NumGoroutine() <= base
	}
	add(1, false)
	add(2, true)
	add(3, false)
	eventually(t, "the goroutine ended", ended)
	if !slices.Equal(flushed, []uint32{1, 3}) {
		t.Fatalf("flushed the turns held under %v; want 1 and 3, not the urged 2", flushed)
	}
	add(4, true)
	add(5, true)
	eventually(t, "the goroutine ended after turns that were all urged", ended)
	add(6, false)
	eventually(t, "the next goroutine flushed a new turn", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(flushed, []uint32{1, 3, 6})
	})
}
