package partyline

import (
	"sync"
	"time"
)

// Pooled goroutines. A poller-driven connection gets a reader each time
// bytes arrive (reader.go), and the flush list a flush goroutine each time
// connections start to wait (flush.go): thousands of times a second under
// load. A new goroutine starts with a small stack, and handling a message,
// or framing one, takes more: each grew its stack, copying it, once or
// twice (8% of the server's CPU with 10,000 clients publishing in rooms of
// ten). So a goroutine that has done its work waits, with its grown stack,
// for the next; one that has waited goroutineIdleTime with none ends, so
// a quiet server holds none.
type goroutinePool[T any] struct {
	do func(T) // the work

	mu       sync.Mutex
	idle     []idleGoroutine[T] // the longest idle first; the last is reused first
	sweeping bool               // a goroutine retires the idle ones in time
}

// idleGoroutine is a pooled goroutine waiting for work.
type idleGoroutine[T any] struct {
	work  chan T // buffered: its next work, or closed to end it
	since int64  // when it began to wait (monotonic)
}

// The process's pools, shared by its Servers.
var (
	readers  = goroutinePool[readTask]{do: readTask.run}
	flushers = goroutinePool[*flushList]{do: (*flushList).run}
)

// readTask is a reader to run: readAvailable's arguments.
type readTask struct {
	c       *Conn
	buf     *[]byte
	n       int
	drained bool
}

func (t readTask) run() { t.c.readAvailable(t.buf, t.n, t.drained) }

const (
	// maxIdleGoroutines is how many goroutines of a pool may wait at once.
	maxIdleGoroutines = 1024
	// goroutineIdleTime is how long a pooled goroutine waits for work
	// before it ends, give or take as much again.
	goroutineIdleTime = time.Second
)

// run does w on a waiting goroutine, or on a new one when none waits.
func (p *goroutinePool[T]) run(w T) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		g := p.idle[n-1]
		p.idle[n-1] = idleGoroutine[T]{}
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		g.work <- w
		return
	}
	p.mu.Unlock()
	go p.serve(w)
}

// serve does w, then the work given to it while it waits, until it is
// retired or finds the pool full.
func (p *goroutinePool[T]) serve(w T) {
	next := make(chan T, 1)
	for ok := true; ok; w, ok = <-next {
		p.do(w)
		var none T
		w = none // holds nothing while it waits
		if !p.wait(next) {
			return
		}
	}
}

// wait puts a goroutine whose work comes on next on the idle list. It
// returns false when the list is full: the goroutine must end.
func (p *goroutinePool[T]) wait(next chan T) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdleGoroutines {
		return false
	}
	p.idle = append(p.idle, idleGoroutine[T]{work: next, since: monotonic()})
	if !p.sweeping {
		p.sweeping = true
		go p.sweep()
	}
	return true
}

// sweep retires, every goroutineIdleTime, the goroutines that have waited
// longer than that, until none waits.
func (p *goroutinePool[T]) sweep() {
	for {
		time.Sleep(goroutineIdleTime)
		if !p.retire(monotonic() - int64(goroutineIdleTime)) {
			return
		}
	}
}

// retire ends the goroutines that have waited since before cutoff. It
// returns false, ending the sweep, when none is left waiting.
func (p *goroutinePool[T]) retire(cutoff int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := 0
	for k < len(p.idle) && p.idle[k].since < cutoff {
		close(p.idle[k].work)
		k++
	}
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if n == 0 {
		p.idle = nil
		p.sweeping = false
	}
	return n > 0
}
