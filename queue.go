package partyline

import (
	"sync"
	"time"
)

// sendQueue is a connection's bounded outbound queue of prepared frames,
// plus the pending ping and close requests, and the writer role: the call
// that adds work to a queue nobody is writing claims the role and must write
// (writer.go); a take that finds the queue empty gives the role back. So an
// idle connection holds no writer goroutine and no buffer.
//
// A connection is slow when its queue overflows, or when the oldest frame
// in it has waited longer than maxLag (lag.go): the push or take that finds
// it so reports it, and the connection is evicted. Not while a replay runs,
// nor until what it wrote has left the kernel: a replay is paced to the
// client however slow (docs/protocol.md §5.3), and the lag counts from the
// moment the client has caught up.
type sendQueue struct {
	limit  int
	maxLag int64         // nanoseconds; 0: no lag rule
	space  chan struct{} // signalled when the writer takes frames

	mu       sync.Mutex // guards the following
	frames   [][]byte
	oldest   int64 // when frames[0] was pushed (coarse clock, lag.go)
	pingDue  bool
	closeDue bool // the writer must send the close frame and stop
	dropped  bool // frames are refused: the connection is closing
	writing  bool // a writer goroutine is running
	pacing   int  // pushPaced calls waiting for space
	replays  int  // replays running: the lag rule is off
	draining bool // a replay has ended, what it wrote may be in the kernel: still off
}

func newSendQueue(limit int, maxLag time.Duration) *sendQueue {
	return &sendQueue{limit: limit, maxLag: int64(max(maxLag, 0)), space: make(chan struct{}, 1)}
}

// push appends frame unless the queue is full, lagging or dropped. slow
// reports a full or lagging queue, which the caller answers with eviction;
// claimed says the caller has claimed the writer role and must write.
func (q *sendQueue) push(frame []byte) (slow, claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped {
		return false, false
	}
	if q.slowLocked(1) {
		return true, false
	}
	q.frames = append(q.frames, frame)
	return false, q.claimWriterLocked()
}

// pushAll is push for several frames at once, all or none: one fan-out
// pass's frames for the connection.
func (q *sendQueue) pushAll(frames [][]byte) (slow, claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped {
		return false, false
	}
	if q.slowLocked(len(frames)) {
		return true, false
	}
	q.frames = append(q.frames, frames...)
	return false, q.claimWriterLocked()
}

// slowLocked reports whether n more frames would overflow the queue or
// join frames that have waited too long; when the queue is empty it stamps
// the frames about to be added.
func (q *sendQueue) slowLocked(n int) bool {
	if len(q.frames)+n > q.limit {
		return true
	}
	if len(q.frames) == 0 {
		q.oldest = coarseNow()
		return false
	}
	return q.laggingLocked()
}

// laggingLocked reports whether the oldest queued frame has waited longer
// than the max lag, outside a replay.
func (q *sendQueue) laggingLocked() bool {
	return q.maxLag > 0 && q.replays == 0 && !q.draining && len(q.frames) > 0 &&
		coarseNow()-q.oldest > q.maxLag
}

// replaying counts a replay starting (delta 1) or ending (-1). When the
// last one ends, the queue is draining until the writer sees that what the
// replays wrote has left the kernel, and calls drained.
func (q *sendQueue) replaying(delta int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.replays += delta
	if delta < 0 && q.replays == 0 {
		q.draining = true
	}
}

// drained ends the draining after replays. What is queued is stamped
// afresh: the lag counts from now.
func (q *sendQueue) drained() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.draining = false
	if len(q.frames) > 0 {
		q.oldest = coarseNow()
	}
}

// pushPaced appends frame once the queue is at most half full, waiting for
// the writer to make room, so a long replay never causes an eviction and
// leaves room for live frames; when it claims the writer role it calls
// write. It returns false if closing or left closes first, or the queue is
// dropped.
func (q *sendQueue) pushPaced(frame []byte, closing, left <-chan struct{}, write func()) bool {
	for {
		q.mu.Lock()
		if q.dropped {
			q.mu.Unlock()
			return false
		}
		if len(q.frames) < max(1, q.limit/2) {
			if len(q.frames) == 0 {
				q.oldest = coarseNow()
			}
			q.frames = append(q.frames, frame)
			claimed := q.claimWriterLocked()
			q.mu.Unlock()
			if claimed {
				write()
			}
			return true
		}
		q.pacing++
		q.mu.Unlock()
		ok := true
		select {
		case <-q.space:
		case <-closing:
			ok = false
		case <-left:
			ok = false
		}
		q.mu.Lock()
		q.pacing--
		q.mu.Unlock()
		if !ok {
			return false
		}
	}
}

// requestPing asks the writer to send a ping; it reports whether the caller
// must start the writer.
func (q *sendQueue) requestPing() (claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closeDue {
		return false
	}
	q.pingDue = true
	return q.claimWriterLocked()
}

// requestClose asks the writer to send the close frame after what is queued
// (or instead of it, with drop) and to stop. It reports whether the caller
// must start the writer.
func (q *sendQueue) requestClose(drop bool) (claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closeDue, q.dropped = true, true
	if drop {
		clear(q.frames)
		q.frames = nil
	}
	return q.claimWriterLocked()
}

// cork claims the writer role if it is free, so that frames queued from now
// on wait to leave together; it reports whether it did, and the caller must
// then uncork (writer.go). A busy writer sends them anyway.
func (q *sendQueue) cork() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.claimWriterLocked()
}

// claimWriterLocked marks a writer as running and reports whether none was.
func (q *sendQueue) claimWriterLocked() bool {
	if q.writing {
		return false
	}
	q.writing = true
	return true
}

// work is what a take hands the writer besides frames.
type work struct {
	ping, closing bool
	// idle: there was nothing to do, and the writer role is given back.
	idle bool
	// lagging: the oldest frame taken had waited longer than the max lag.
	lagging bool
	// replaying: a replay runs; draining: one has ended, and what it wrote
	// may still be in the kernel. Either way the lag rule is off.
	replaying, draining bool
}

// take moves the queued frames into batch and returns the pending
// requests. When there is nothing to do it marks the writer stopped and
// returns idle: the writer must exit, and the next push starts a new one.
func (q *sendQueue) take(batch [][]byte) (_ [][]byte, w work) {
	q.mu.Lock()
	w.lagging = q.laggingLocked()
	batch = append(batch, q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	if cap(q.frames) > 64 {
		q.frames = nil // a burst does not pin its memory on a quiet connection
	}
	w.ping, w.closing = q.pingDue, q.closeDue
	w.replaying, w.draining = q.replays > 0, q.draining
	q.pingDue = false
	if len(batch) == 0 && !w.ping && !w.closing {
		q.writing = false
		w.idle = true
	}
	pacing := q.pacing > 0
	q.mu.Unlock()
	if pacing {
		signal(q.space)
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
