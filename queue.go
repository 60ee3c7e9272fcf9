package partyline

import (
	"math"
	"sync"
	"time"
)

// sendQueue is a connection's bounded outbound queue of messages, plus the
// pending ping and close requests, and the writer role. The queue is built
// with its connection and starts the writing itself: the call that adds
// work to a queue nobody is writing claims the role and writes (writer.go);
// a take that finds the queue empty gives the role back. So an idle
// connection holds no writer goroutine and no buffer, and no caller can
// forget to start a write.
//
// A connection is slow when its queue overflows, or when the oldest message
// in it has waited longer than maxLag (lag.go): the push or take that finds
// it so reports it, and the connection is evicted. Not while a replay runs,
// nor until what it wrote has left the kernel: a replay is paced to the
// client however slow (docs/protocol.md §5.3), and the lag counts from the
// moment the client has caught up.
//
// A connection's queue lives inside its Conn; its fields are packed, as
// every connection has one.
type sendQueue struct {
	conn   writerRole
	maxLag int64 // nanoseconds; 0: no lag rule
	limit  int32

	mu     sync.Mutex // guards the following
	pacing int32      // pushPaced calls waiting for space
	msgs   []*message
	// oldest is when msgs[0] was pushed, by queueClock (lag.go). It is
	// compared with the coarse clock (lag.go), which is never ahead of
	// it: a coarse clock that has not moved for a while can delay an
	// eviction, never cause one. (Stamped with the coarse clock, a message
	// pushed after a quiet spell, and written after the next tick, would
	// look as old as the spell.)
	oldest int64
	// space is signalled when the writer takes messages, and closed when
	// the queue is dropped, while pushPaced calls wait; the first of them
	// makes it and the last drops it, so a queue that paces nothing has
	// none.
	space   chan struct{}
	replays int32 // replays running: the lag rule is off
	// replayQueued: the last replay ended with messages of its own still
	// queued; the take that takes them counts as the replay's.
	replayQueued bool
	pingDue      bool
	closeDue     bool // the writer must send the close and stop
	dropped      bool // messages are refused: the connection is closing
	writing      bool // a writer holds the role
	// stalled: the role is with a writer goroutine, as the socket took
	// less than was written (or a TLS connection's writes may block).
	// Only then does the time messages wait count against the client: a
	// connection waiting its turn on the flush list waits for the server.
	stalled  bool
	draining bool // a replay has ended, what it wrote may be in the kernel: still off
	// held: the writer role waits out the write delay (writer.go). A push
	// that fills the queue halfway meanwhile, or a close, urges the write
	// instead; holds counts the holds, so that the held turn the urge
	// replaced writes nothing when it comes (takeHeld).
	held  bool
	holds uint32
}

// writerRole is what a queue asks of its connection: to write, once the
// caller has claimed the writer role (in its turn on the flush list, or at
// once: flush), to write at once a connection held for the write delay
// (urge), and to evict a slow consumer.
type writerRole interface {
	write()
	flush()
	urge()
	evict()
}

func newSendQueue(conn writerRole, limit int, maxLag time.Duration) *sendQueue {
	q := new(sendQueue)
	q.init(conn, limit, maxLag)
	return q
}

// init readies a queue that is part of its connection.
func (q *sendQueue) init(conn writerRole, limit int, maxLag time.Duration) {
	q.conn, q.limit, q.maxLag = conn, int32(min(limit, math.MaxInt32)), int64(max(maxLag, 0))
}

// push queues m unless the queue is full, lagging or dropped, and writes it
// when no writer is busy. A full or lagging queue evicts the connection.
func (q *sendQueue) push(m *message) {
	q.mu.Lock()
	slow, claimed, urge := q.addLocked(m)
	q.mu.Unlock()
	q.act(slow, claimed, urge)
}

// pushPong queues m, a pong, in place of a pong still queued last: the
// answer to a ping that follows another not yet answered may be the only
// one (RFC 6455 §5.5.3), so a client's burst of pings fills no queue.
func (q *sendQueue) pushPong(m *message) {
	q.mu.Lock()
	if n := len(q.msgs); n > 0 && q.msgs[n-1].control && !q.dropped {
		q.msgs[n-1] = m
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	q.push(m)
}

// pushAll is push for several messages at once, all or none: one fan-out
// pass's messages for the connection, which leave together.
func (q *sendQueue) pushAll(msgs []*message) {
	q.mu.Lock()
	slow, claimed, urge := q.addLocked(msgs...)
	q.mu.Unlock()
	q.act(slow, claimed, urge)
}

// addLocked appends msgs unless the queue is dropped or they would make it
// slow. slow reports a full or lagging queue; claimed, that the caller has
// claimed the writer role; urge, that the caller must urge the write held
// for the write delay, as the queue is half full.
func (q *sendQueue) addLocked(msgs ...*message) (slow, claimed, urge bool) {
	if q.dropped {
		return false, false, false
	}
	if q.slowLocked(len(msgs)) {
		return true, false, false
	}
	q.msgs = append(q.msgs, msgs...)
	if q.held && len(q.msgs) >= int(q.limit)/2 {
		q.held = false
		return false, false, true
	}
	return false, q.claimWriterLocked(), false
}

// act evicts a slow connection, writes for a caller that has claimed the
// writer role, or urges a held write.
func (q *sendQueue) act(slow, claimed, urge bool) {
	switch {
	case slow:
		q.conn.evict()
	case claimed:
		q.conn.write()
	case urge:
		q.conn.urge()
	}
}

// hold records that the writer role waits out the write delay, and returns
// the hold's number for takeHeld.
func (q *sendQueue) hold() uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = true
	q.holds++
	return q.holds
}

// takeHeld ends the hold numbered hold when its time has come, and reports
// whether it was still on: false when an urge has written the connection
// since, and the writer role is no longer the held turn's.
func (q *sendQueue) takeHeld(hold uint32) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.held || q.holds != hold {
		return false
	}
	q.held = false
	return true
}

// slowLocked reports whether n more messages would overflow the queue or
// join messages that have waited too long; when the queue is empty it
// stamps the messages about to be added.
func (q *sendQueue) slowLocked(n int) bool {
	if len(q.msgs)+n > int(q.limit) {
		return true
	}
	if len(q.msgs) == 0 {
		q.oldest = queueClock()
		return false
	}
	return q.laggingLocked()
}

// laggingLocked reports whether the oldest queued message has waited longer
// than the max lag behind a stalled writer, outside a replay.
func (q *sendQueue) laggingLocked() bool {
	return q.maxLag > 0 && q.stalled && q.replays == 0 && !q.draining && len(q.msgs) > 0 &&
		coarseNow()-q.oldest > q.maxLag
}

// stall records that the writer role passes to a writer goroutine: the
// socket would not take what was written, and from now until the role is
// given back, what waits in the queue waits for the client.
func (q *sendQueue) stall() {
	q.mu.Lock()
	q.stalled = true
	q.mu.Unlock()
}

// replaying counts a replay starting (delta 1) or ending (-1). When the
// last one ends, the queue is draining until the writer sees that what the
// replays wrote has left the kernel, and calls drained.
func (q *sendQueue) replaying(delta int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.replays += int32(delta)
	if delta < 0 && q.replays == 0 {
		q.draining, q.replayQueued = true, len(q.msgs) > 0
	}
}

// drained ends the draining after replays. What is queued is stamped
// afresh: the lag counts from now.
func (q *sendQueue) drained() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.draining = false
	if len(q.msgs) > 0 {
		q.oldest = queueClock()
	}
}

// pushPaced queues m once the queue is at most half full, waiting for the
// writer to make room, so a long replay never causes an eviction and leaves
// room for live messages. It returns false if left closes first, or the
// queue is dropped: the connection is closing.
func (q *sendQueue) pushPaced(m *message, left <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.dropped {
			q.mu.Unlock()
			return false
		}
		if len(q.msgs) < max(1, int(q.limit)/2) {
			if len(q.msgs) == 0 {
				q.oldest = queueClock()
			}
			q.msgs = append(q.msgs, m)
			claimed := q.claimWriterLocked()
			q.mu.Unlock()
			if claimed {
				// At once, not in a turn on the flush list: a replay's
				// message must be taken while the replay still counts
				// (replaying), or its bytes in the kernel would count
				// against the client once the replay has ended.
				q.conn.flush()
			}
			return true
		}
		if q.pacing++; q.space == nil {
			q.space = make(chan struct{}, 1)
		}
		space := q.space
		q.mu.Unlock()
		ok := true
		select {
		case <-space:
		case <-left:
			ok = false
		}
		q.mu.Lock()
		if q.pacing--; q.pacing == 0 {
			q.space = nil
		}
		q.mu.Unlock()
		if !ok {
			return false
		}
	}
}

// requestPing asks the writer to send a ping.
func (q *sendQueue) requestPing() {
	q.mu.Lock()
	claimed := false
	if !q.closeDue {
		q.pingDue = true
		claimed = q.claimWriterLocked()
	}
	q.mu.Unlock()
	q.act(false, claimed, false)
}

// requestClose asks the writer to send the close after what is queued (or
// instead of it, with drop) and to stop; a writer held for the write delay
// is urged.
func (q *sendQueue) requestClose(drop bool) {
	q.mu.Lock()
	q.closeDue, q.dropped = true, true
	if drop {
		clear(q.msgs)
		q.msgs = nil
	}
	claimed, urge := q.claimWriterLocked(), q.held
	q.held = false
	space := q.space // every paced push waiting for room gives up
	q.space = nil
	q.mu.Unlock()
	if space != nil {
		close(space)
	}
	q.act(false, claimed, urge)
}

// cork claims the writer role if it is free, so that messages queued from
// now on wait to leave together, until uncork(claimed) writes them. A busy
// writer sends them anyway.
func (q *sendQueue) cork() (claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.claimWriterLocked()
}

// uncork ends a cork: it writes what was queued if the cork claimed the
// writer role.
func (q *sendQueue) uncork(claimed bool) { q.act(false, claimed, false) }

// claimWriterLocked marks a writer as running and reports whether none was.
func (q *sendQueue) claimWriterLocked() bool {
	if q.writing {
		return false
	}
	q.writing = true
	return true
}

// work is what a take hands the writer besides messages.
type work struct {
	ping, closing bool
	// idle: there was nothing to do, and the writer role is given back.
	idle bool
	// lagging: the oldest message taken had waited longer than the max lag.
	lagging bool
	// replaying: a replay runs, or its last messages are taken; draining:
	// one has ended, and what it wrote may still be in the kernel. Either
	// way the lag rule is off.
	replaying, draining bool
}

// take moves the queued messages into batch and returns the pending
// requests. When there is nothing to do it marks the writer stopped and
// returns idle: the writer must exit, and the next push starts a new one.
func (q *sendQueue) take(batch []*message) (_ []*message, w work) {
	q.mu.Lock()
	w.lagging = q.laggingLocked()
	batch = append(batch, q.msgs...)
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	if cap(q.msgs) > 64 {
		q.msgs = nil // a burst does not pin its memory on a quiet connection
	}
	w.ping, w.closing = q.pingDue, q.closeDue
	w.replaying, w.draining = q.replays > 0 || q.replayQueued, q.draining
	q.replayQueued = false
	q.pingDue = false
	if len(batch) == 0 && !w.ping && !w.closing {
		q.writing, q.stalled = false, false
		w.idle = true
	}
	space := q.space
	q.mu.Unlock()
	if space != nil {
		signal(space)
	}
	return batch, w
}

// signal wakes a waiter on c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
