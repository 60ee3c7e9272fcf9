package partyline

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Deferred writes. A connection whose writer role has just been claimed
// joins the flush list, and flush goroutines write each connection in turn
// with what its queue holds by then: at most one goroutine per CPU but one
// (flushGoroutines), started when connections wait and ending when none do.
//
// While the server keeps up, a connection waits only the moment a flush
// goroutine takes to reach it. When it does not, the list grows, and each
// connection's messages pile up until its turn, to leave merged in one
// frame and one write (writer.go). The write is most of what a delivery
// costs, so the further a server falls behind, the less each delivery
// costs it, and it catches up rather than falling further behind.
//
// Each connection is on the list at most once, as it holds the writer
// role while there, so the list is never longer than the connections.
//
// A list with a delay (Options.WriteDelay) writes no connection before it
// has waited that long: what is queued for it meanwhile leaves in the same
// frame and write, so a client that receives a steady stream reads
// several messages at a time, at the price of the delay. A connection
// whose queue fills halfway meanwhile is urged onto the process's list
// (writer.go's urge), and its turn here, taken later, writes nothing.
type flushList struct {
	delay time.Duration // how long each connection waits before it is written

	mu      sync.Mutex
	conns   []flushable // waiting from conns[next] on, oldest first
	turns   []turn      // with a delay: each of conns' turn
	next    int
	running int // flush goroutines at work
	limit   int // at most this many: flushGoroutines when the first started

	perWrite time.Duration // recent wall time a goroutine took per connection
	backlog  atomic.Int64  // nanoseconds: WriteBacklog's estimate
}

// flushes is the process's flush list without a delay, shared by its
// Servers; a Server with a write delay has a list of its own.
var flushes flushList

// turn is when a connection on a list with a delay may be written, and
// the hold it waits under.
type turn struct {
	due  int64  // monotonic
	hold uint32 // sendQueue.hold's number
}

// flushable is what waits on a flush list: a *Conn.
type flushable interface {
	flush() // write what is queued, holding the writer role
	// takeHeld reports whether the turn held under hold on a list with a
	// delay still holds the writer role, which the caller then writes.
	takeHeld(hold uint32) bool
}

// maxSpareFlushList is the capacity an emptied list keeps for the next
// burst; a larger one is dropped, so a burst does not pin its memory.
const maxSpareFlushList = 4096

// add puts c, whose writer role the caller has claimed, on the list, and
// starts a flush goroutine when none runs, or when more connections wait
// than goroutines run and a CPU is left. On a list with a delay, c waits
// under hold (sendQueue.hold); other lists ignore it.
func (l *flushList) add(c flushable, hold uint32) {
	var due int64
	if l.delay > 0 {
		due = monotonic() + int64(l.delay)
	}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	if l.delay > 0 {
		l.turns = append(l.turns, turn{due, hold})
	}
	if l.running == 0 {
		l.limit = flushGoroutines()
	}
	start := l.running == 0 || l.running < l.limit && len(l.conns)-l.next > l.running
	if start {
		l.running++
	}
	l.mu.Unlock()
	if start {
		flushers.run(l)
	}
}

// WriteBacklog returns how long a connection that joined the process's
// flush list (without a delay) now would wait to be written: the
// connections waiting, times the wall time each recently took, shared
// among the flush goroutines; 0 while none waits. Where the machine has
// CPU to spare it is a few milliseconds at most; on a saturated one,
// tens. The SQLite store's group commit lingers about this long in a
// stream (sqlite/writer.go): a message that would wait as long to be
// written loses nothing by waiting in the commit instead.
func WriteBacklog() time.Duration { return time.Duration(flushes.backlog.Load()) }

// flushGoroutines is how many flush goroutines may run at once: one per CPU
// but one, and at least one. The CPU left over reads and handles what
// clients send, the fan-out included, so a burst of writes does not hold
// up the next message; and one goroutine alone gets through the list more
// slowly than two, so more of what it writes is merged. On 2 CPUs, with
// the clients on the same machine, one flush goroutine instead of two
// took a room of 1,000 subscribers from 0.77 writes per delivery to 0.62,
// its CPU per delivery down by a fifth and its median latency by a third,
// and left 10,000 connections publishing in rooms of ten as they were
// (docs/performance.md, item 12).
func flushGoroutines() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// flushBatch is how many connections a flush goroutine takes at once, at
// most: fewer lock round trips, and sends made in larger batches
// (sendbatch_linux.go), while the others still find work. Batches of 64
// rather than 16 took a room of 1,000 subscribers from 5.3 and 4.6 CPU/M
// to 4.0 and 3.7 (docs/performance.md, item 19).
const flushBatch = 64

// run is a flush goroutine: it writes connections until none waits.
// It makes its sends in batches where it can (sendbatch_linux.go).
func (l *flushList) run() {
	var batch [flushBatch]flushable
	sends := takeBatchWriter()
	defer sends.putBack()
	wrote, took := 0, time.Duration(0)
	for {
		taken, wait := l.take(batch[:0], wrote, took)
		if wait > 0 {
			time.Sleep(wait)
			wrote = 0
			continue
		}
		if len(taken) == 0 {
			return
		}
		start := time.Now()
		sends.flush(taken)
		wrote, took = len(taken), time.Since(start)
		clear(taken)
	}
}

// take appends to batch the connections that have waited longest, a fair
// share of those due and at most flushBatch, and returns it. It returns
// batch empty when none waits, in which case the calling flush goroutine
// must end, or, with how long until the first is due, when none is due
// yet. wrote and took are the caller's last batch: how many connections
// it wrote, in how long.
func (l *flushList) take(batch []flushable, wrote int, took time.Duration) ([]flushable, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if wrote > 0 {
		l.perWrite += (took/time.Duration(wrote) - l.perWrite) / 8
	}
	for len(batch) == 0 { // again if every turn taken had been urged
		waiting := len(l.conns) - l.next
		if waiting == 0 {
			l.backlog.Store(0)
			l.running--
			l.conns, l.turns, l.next = l.conns[:0], l.turns[:0], 0
			if cap(l.conns) > maxSpareFlushList {
				l.conns, l.turns = nil, nil
			}
			return batch, 0
		}
		k := min(flushBatch, cap(batch), (waiting+l.running-1)/l.running)
		if l.delay > 0 {
			now := monotonic()
			if k = l.due(k, now); k == 0 {
				return batch, time.Duration(l.turns[l.next].due - now)
			}
		}
		batch = l.appendTurns(batch, k)
		clear(l.conns[l.next : l.next+k])
		l.next += k
		l.backlog.Store(int64(time.Duration(waiting-k) * l.perWrite / time.Duration(l.running)))
		if l.next >= maxSpareFlushList && 2*l.next >= len(l.conns) { // a list that never empties
			n := copy(l.conns, l.conns[l.next:])
			clear(l.conns[n:])
			if l.delay > 0 {
				l.turns = l.turns[:copy(l.turns, l.turns[l.next:])]
			}
			l.conns, l.next = l.conns[:n], 0
		}
	}
	return batch, 0
}

// appendTurns appends to batch the next k waiting connections, but for
// those, on a list with a delay, whose held turn an urge has replaced.
func (l *flushList) appendTurns(batch []flushable, k int) []flushable {
	if l.delay == 0 {
		return append(batch, l.conns[l.next:l.next+k]...)
	}
	for i, c := range l.conns[l.next : l.next+k] {
		if c.takeHeld(l.turns[l.next+i].hold) {
			batch = append(batch, c)
		}
	}
	return batch
}

// due returns how many of the first k waiting connections are due at
// now: as they joined in order, those up to the first that is not.
func (l *flushList) due(k int, now int64) int {
	for i, t := range l.turns[l.next : l.next+k] {
		if t.due > now {
			return i
		}
	}
	return k
}
