package partyline

import (
	"sync"
	"syscall"

	"github.com/partyline/partyline/internal/uring"
)

// Sends in batches. A flush goroutine writes the connections it takes from
// the flush list (flush.go) together: it frames what each has queued, then
// makes all their sends with one io_uring submission (internal/uring)
// rather than one send(2) each. The kernel does the same work per send,
// but the system call's entry and exit are paid once per batch: a send
// cost about a third less CPU in batches of 64, more on a virtual machine
// (docs/performance.md, item 19). Where the system refuses io_uring, or
// SendInBatches turned them off, each connection is written as before.
//
// Each connection goes on as flush would alone: what its socket did not
// take at once goes to its writer goroutine, and what was queued meanwhile
// goes out in the batch's next round.

// batchWriter is a flush goroutine's ring, and its scratch.
type batchWriter struct {
	ring   *uring.Ring
	round  []*writer // the writers whose sends are in the ring, in order
	frames []int     // how many of each one's frames were sent
}

// batchWriters holds the rings of the flush goroutines between their runs;
// there are never more than flush goroutines run at once.
var batchWriters struct {
	sync.Mutex
	free    []*batchWriter
	open    int  // rings made and not closed
	most    int  // when > 0, the system refused a ring past this many
	refused bool // the system refused io_uring, or it was turned off
}

// takeBatchWriter returns a batchWriter for a flush goroutine to use until
// putBack, or nil where sends are made one at a time.
func takeBatchWriter() *batchWriter {
	p := &batchWriters
	p.Lock()
	defer p.Unlock()
	if p.refused {
		return nil
	}
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	if p.most > 0 && p.open >= p.most {
		return nil
	}
	ring, err := uring.New(flushBatch)
	if err != nil {
		// No ring at all: io_uring is refused. Some: the system's limit
		// (RLIMIT_MEMLOCK before Linux 5.12), and the goroutines past
		// it send one by one.
		p.refused, p.most = p.open == 0, p.open
		return nil
	}
	p.open++
	return &batchWriter{ring: ring}
}

// putBack returns b for the next flush goroutine, or closes its ring if it
// failed or batches were turned off meanwhile.
func (b *batchWriter) putBack() {
	if b == nil {
		return
	}
	p := &batchWriters
	p.Lock()
	defer p.Unlock()
	switch {
	case b.ring == nil:
		p.open--
	case p.refused:
		b.ring.Close()
		p.open--
	default:
		p.free = append(p.free, b)
	}
}

// SendInBatches turns on or off, for the whole process, the flush
// goroutines' sends in batches through io_uring, and reports whether they
// were on. They are on unless turned off, or the system refuses io_uring,
// in which case turning them on has no effect. A flush goroutine that is
// running keeps its way of sending until it ends.
func SendInBatches(on bool) bool {
	p := &batchWriters
	p.Lock()
	defer p.Unlock()
	was := !p.refused
	p.refused, p.most = !on, 0
	if !on {
		for _, b := range p.free {
			b.ring.Close()
			p.open--
		}
		p.free = nil
	}
	return was
}

// flush writes conns, whose writer roles the caller holds, as each one's
// flush would: polled sockets in batches, the others one by one.
func (b *batchWriter) flush(conns []flushable) {
	if b == nil || b.ring == nil {
		for _, c := range conns {
			c.flush()
		}
		return
	}
	round := b.round[:0]
	for _, f := range conns {
		c, ok := f.(*Conn)
		if !ok || polled(c) == nil {
			f.flush()
			continue
		}
		w := writers.Get().(*writer)
		w.c = c
		round = append(round, w)
	}
	for len(round) > 0 && b.ring != nil {
		round = b.send(round)
	}
	for _, w := range round { // the ring failed: the rest one by one
		if !w.writeWithoutBlocking() {
			w.handOff()
		}
	}
	clear(round)
	b.round = round[:0]
}

// polled returns c's socket where the poller watches it, else nil.
func polled(c *Conn) *polledSocket {
	if r, ok := c.rawConn.(*polledRawConn); ok {
		return (*polledSocket)(r)
	}
	return nil
}

// send makes one round: it takes what each writer's connection has queued
// and sends it in one submission. It returns the writers whose sockets
// took everything, to see in the next round whether more came meanwhile;
// it has released the others' roles or handed them to writer goroutines.
func (b *batchWriter) send(round []*writer) []*writer {
	sent := round[:0] // the round's writers are visited once, in order
	b.frames = b.frames[:0]
	for _, w := range round {
		if !w.takeQueued() {
			w.done()
			continue
		}
		socket := polled(w.c)
		if w.closeDue || !socket.acquire() {
			w.handOff() // the writer goroutine sends the close, or finds the socket closed
			continue
		}
		k := min(len(w.pending), maxIovecs)
		b.ring.Send(int(socket.fd), w.pending[:k])
		sent = append(sent, w)
		b.frames = append(b.frames, k)
	}
	results, err := b.ring.Submit()
	if err != nil {
		b.ring.Close()
		b.ring = nil // this goroutine sends one at a time from now on
	}
	next := sent[:0]
	for i, w := range sent {
		polled(w.c).release()
		if w.sent(results[i], b.frames[i]) {
			next = append(next, w)
		}
	}
	clear(round[len(next):])
	return next
}

// sent takes in the result of sending w.pending's first k frames: the
// bytes the socket took, or a negated errno. It reports whether all of
// w.pending is written, which keeps the role for the next round; else
// the rest is the writer goroutine's.
func (w *writer) sent(result, k int) bool {
	if result == -int(syscall.EIO) { // the ring failed midway: what the socket took is unknown
		w.writeErr = syscall.EIO
		w.c.close(0, "")
		w.handOff()
		return false
	}
	n := max(result, 0) // a failure is the writer goroutine's to find again, and report
	want := totalLen(w.pending[:k])
	w.c.lag.written += int64(n)
	w.advance(n)
	// The rest, if there were more frames than one send takes, goes now.
	if n < want || !w.writePendingNow() {
		w.handOff()
		return false
	}
	return true
}

// openRings is how many rings the process holds: a descriptor each.
func openRings() int {
	batchWriters.Lock()
	defer batchWriters.Unlock()
	return batchWriters.open
}
