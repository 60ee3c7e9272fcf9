package partyline

import "sync"

// sendQueue is a connection's bounded outbound queue of prepared frames,
// plus the pending ping and close requests, and the writer role: the call
// that adds work to a queue nobody is writing claims the role and must write
// (writer.go); a take that finds the queue empty gives the role back. So an
// idle connection holds no writer goroutine and no buffer.
type sendQueue struct {
	limit int
	space chan struct{} // signalled when the writer takes frames

	mu       sync.Mutex // guards the following
	frames   [][]byte
	pingDue  bool
	closeDue bool // the writer must send the close frame and stop
	dropped  bool // frames are refused: the connection is closing
	writing  bool // a writer goroutine is running
	pacing   int  // pushPaced calls waiting for space
}

func newSendQueue(limit int) *sendQueue {
	return &sendQueue{limit: limit, space: make(chan struct{}, 1)}
}

// push appends frame unless the queue is full or dropped. full reports an
// overflow, which the caller answers with eviction; claimed says the
// caller has claimed the writer role and must write.
func (q *sendQueue) push(frame []byte) (full, claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped {
		return false, false
	}
	if len(q.frames) >= q.limit {
		return true, false
	}
	q.frames = append(q.frames, frame)
	return false, q.claimWriterLocked()
}

// pushAll is push for several frames at once, all or none: one fan-out
// pass's frames for the connection.
func (q *sendQueue) pushAll(frames [][]byte) (full, claimed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped {
		return false, false
	}
	if len(q.frames)+len(frames) > q.limit {
		return true, false
	}
	q.frames = append(q.frames, frames...)
	return false, q.claimWriterLocked()
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

// take moves the queued frames into batch and returns the pending requests.
// When there is nothing to do it marks the writer stopped and returns
// idle: the writer must exit, and the next push starts a new one.
func (q *sendQueue) take(batch [][]byte) (_ [][]byte, ping, closing, idle bool) {
	q.mu.Lock()
	batch = append(batch, q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	if cap(q.frames) > 64 {
		q.frames = nil // a burst does not pin its memory on a quiet connection
	}
	ping, closing = q.pingDue, q.closeDue
	q.pingDue = false
	if len(batch) == 0 && !ping && !closing {
		q.writing = false
		idle = true
	}
	pacing := q.pacing > 0
	q.mu.Unlock()
	if pacing {
		signal(q.space)
	}
	return batch, ping, closing, idle
}

// signal wakes a waiter on c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
