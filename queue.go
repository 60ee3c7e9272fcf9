package partyline

import "sync"

// sendQueue is a connection's bounded outbound queue of encoded frames.
// Fan-out pushes without blocking; the connection's writer drains everything
// queued at once and writes it as one batch.
type sendQueue struct {
	limit int
	ready chan struct{} // signalled when the queue becomes non-empty
	space chan struct{} // signalled when the writer drains

	mu     sync.Mutex // guards the following
	frames [][]byte
	closed bool
}

func newSendQueue(limit int) *sendQueue {
	return &sendQueue{
		limit: limit,
		ready: make(chan struct{}, 1),
		space: make(chan struct{}, 1),
	}
}

// push appends frame unless the queue is full or closed. full reports an
// overflow, which the caller answers with eviction.
func (q *sendQueue) push(frame []byte) (full bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if len(q.frames) >= q.limit {
		q.mu.Unlock()
		return true
	}
	q.frames = append(q.frames, frame)
	wasEmpty := len(q.frames) == 1
	q.mu.Unlock()
	if wasEmpty {
		signal(q.ready)
	}
	return false
}

// pushPaced appends frame once the queue is at most half full, waiting for
// the writer to make room, so a long replay never causes an eviction and
// leaves room for live frames. It returns false if done closes first or the
// queue is closed.
func (q *sendQueue) pushPaced(frame []byte, done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return false
		}
		if len(q.frames) < max(1, q.limit/2) {
			q.frames = append(q.frames, frame)
			wasEmpty := len(q.frames) == 1
			q.mu.Unlock()
			if wasEmpty {
				signal(q.ready)
			}
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-done:
			return false
		}
	}
}

// drain moves every queued frame into batch (which it returns) and leaves
// the queue empty.
func (q *sendQueue) drain(batch [][]byte) [][]byte {
	q.mu.Lock()
	batch = append(batch, q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	if cap(q.frames) > 64 {
		q.frames = nil // a burst does not pin its memory on an idle connection
	}
	q.mu.Unlock()
	signal(q.space)
	return batch
}

// close drops what is queued; later pushes are ignored.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.frames = nil
	q.mu.Unlock()
	signal(q.space)
}

// signal wakes a waiter on c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
