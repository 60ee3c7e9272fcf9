// Package groupcommit commits items in batches (group commit): callers add
// items one at a time and wait, while writer goroutines take what is queued
// and commit it together, so one transaction serves many callers. The items
// that arrive while a writer commits go together into the next batch.
//
// A Queue knows nothing of what a commit does; the store that owns it
// passes a commit function that writes a batch and fills in each item's
// result (a sequence number, say) in place.
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is the error of Add on a Queue that Close has closed.
var ErrClosed = errors.New("groupcommit: queue is closed")

// The defaults of Options.
const (
	DefaultMaxBatch = 512
	DefaultCapacity = 4096
)

// Options configures a Queue. The zero value is one writer, batches of up to
// DefaultMaxBatch items, DefaultCapacity waiting items, and commits bounded
// only by their callers' deadlines.
type Options[T any] struct {
	// Writers is how many goroutines commit batches at once; 0 means 1.
	Writers int
	// MaxBatch caps the items one commit carries; 0 means DefaultMaxBatch.
	MaxBatch int
	// Capacity is how many items may wait for a writer before Add blocks;
	// 0 means DefaultCapacity.
	Capacity int
	// Timeout bounds one commit: its context ends when the last of its
	// callers' contexts would, and at most Timeout after the commit begins.
	// 0 means no bound but the callers'.
	Timeout time.Duration
	// Linger is how long a writer may wait for more items before it
	// commits a batch, when items arrive faster than it commits: when the
	// batch's first item was queued before the writer's last commit ended,
	// or the last batch lingered and more items came meanwhile, or they
	// come in a stream (MaxLinger, below) from several callers at a time.
	// A batch that lingers waits at most Linger (or MaxLinger), and not
	// once it holds MaxBatch items. Items that come one at a time, each
	// after the last commit, never wait, however fast they come. 0 means
	// never.
	Linger time.Duration
	// MaxLinger, when longer than Linger, is how long a batch lingers
	// instead while items come in a stream: when, counted over the last
	// rateWindow or more, they came fast enough to bring longLingerItems
	// within MaxLinger. 0 means always Linger.
	MaxLinger time.Duration
	// Behind, if set, reports how long committed items will wait anyway
	// before they are of use: a server's backlog of writes to its
	// clients, say. A batch lingering in a stream then waits that long,
	// between StreamLinger and MaxLinger, instead of MaxLinger: a wait
	// the items would spend anyway costs them nothing, and where nothing
	// waits, their latency matters more than a commit saved.
	Behind func() time.Duration
	// StreamLinger is the least a batch lingering in a stream waits when
	// Behind reports less; 0 means Linger.
	StreamLinger time.Duration
	// Key, if set, names what committing an item locks (a room's row,
	// say). No two writers then commit items of one key at once: an item
	// whose key a writer is committing waits for that writer, which
	// commits it in its next batch. So a key whose commits stall, as on a
	// row that a transaction elsewhere holds locked, holds up one writer
	// and its items, not every writer and every item.
	Key func(T) string
}

// A writer counts the items it commits over rateWindow or more to judge
// whether they come in a stream, which makes a lingering batch wait
// Options.MaxLinger: when longLingerItems or more come within it at that
// rate.
const (
	rateWindow      = 100 * time.Millisecond
	longLingerItems = 16
)

// A CommitFunc commits batch, all of it or none of it, by ctx's deadline.
// It may change the items in place: each caller of Add gets its item back
// as the commit left it. The error, if any, goes to every caller in the
// batch. A CommitFunc must not keep batch after it returns; with several
// writers, it is called from several goroutines at once.
type CommitFunc[T any] func(ctx context.Context, batch []T) error

// Queue is a group-commit queue of items of type T. Its methods are safe for
// concurrent use.
type Queue[T any] struct {
	commit       CommitFunc[T]
	maxBatch     int
	timeout      time.Duration
	linger       time.Duration
	maxLinger    time.Duration // Options.MaxLinger, or linger when that is shorter
	behind       func() time.Duration
	streamLinger time.Duration // Options.StreamLinger, within linger and maxLinger
	key          func(T) string
	writers      sync.WaitGroup

	keyMu   sync.Mutex            // guards owners, suspect, orphans' list and every writer's keys and held
	owners  map[string]*writer[T] // the writer committing each key (Options.Key)
	suspect map[string]bool       // keys whose last commit failed (keys.go)
	orphans orphans[T]            // requests of suspect keys, each key to commit alone

	mu       sync.RWMutex // guards closed; read-held while sending on queue
	closed   bool
	queue    chan *request[T]
	requests sync.Pool // of *request[T] that no writer holds (free)
}

// New returns a Queue that commits with commit, and starts its writer
// goroutines, which run until Close.
func New[T any](commit CommitFunc[T], opts Options[T]) *Queue[T] {
	writers, capacity := opts.Writers, opts.Capacity
	if writers <= 0 {
		writers = 1
	}
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	q := &Queue[T]{
		commit:    commit,
		maxBatch:  opts.MaxBatch,
		timeout:   opts.Timeout,
		linger:    opts.Linger,
		maxLinger: max(opts.Linger, opts.MaxLinger),
		behind:    opts.Behind,
		key:       opts.Key,
		owners:    make(map[string]*writer[T]),
		suspect:   make(map[string]bool),
		orphans:   orphans[T]{wake: make(chan struct{}, 1)},
		queue:     make(chan *request[T], capacity),
	}
	q.streamLinger = min(max(opts.Linger, opts.StreamLinger), q.maxLinger)
	if q.maxBatch <= 0 {
		q.maxBatch = DefaultMaxBatch
	}
	for range writers {
		q.writers.Go(func() { q.runWriter(&writer[T]{}) })
	}
	return q
}

// Add queues item and waits for the commit that carries it, returning item
// as the commit left it, or the commit's error.
//
// When ctx ends before a writer took item, item is dropped and Add returns
// ctx.Err(); ctx.Err() is returned too when ctx has ended already. Once a
// writer took item, Add waits for the outcome, which comes by the batch's
// deadline (see Options.Timeout). Add returns ErrClosed once Close was
// called.
func (q *Queue[T]) Add(ctx context.Context, item T) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	req := q.newRequest(ctx, item)
	if err := q.send(ctx, req); err != nil {
		q.free(req)
		return zero, err
	}
	var err error
	select {
	case err = <-req.done:
	case <-ctx.Done():
		if req.abandon() {
			return zero, ctx.Err() // a writer will find req in the queue: not freed
		}
		err = <-req.done
	}
	item, err = req.result(err)
	q.free(req)
	return item, err
}

// newRequest returns a request for item, queued now, from the free ones
// when there is one: Add is called for every message, and its two
// allocations were 7% of the garbage of a server taking 10,000 messages a
// second (docs/performance.md).
func (q *Queue[T]) newRequest(ctx context.Context, item T) *request[T] {
	req, _ := q.requests.Get().(*request[T])
	if req == nil {
		req = &request[T]{done: make(chan error, 1)}
	}
	req.ctx, req.item, req.queued = ctx, item, time.Now()
	req.state.Store(queued)
	return req
}

// free keeps req for a later Add. Only a request that no writer holds may
// be freed: one never queued, or one whose outcome Add has received.
func (q *Queue[T]) free(req *request[T]) {
	var zero T
	req.ctx, req.item = nil, zero
	q.requests.Put(req)
}

// send hands req to the writers, waiting while the queue is full.
func (q *Queue[T]) send(ctx context.Context, req *request[T]) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case q.queue <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len returns how many items wait for a writer, counting those whose
// callers gave up but which no writer has reached yet.
func (q *Queue[T]) Len() int {
	return len(q.queue)
}

// Close stops taking items, lets the writers commit those already queued,
// and returns once they have finished. Calling it again waits the same way.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.queue)
	}
	q.mu.Unlock()
	q.writers.Wait()
}

// runWriter is one writer goroutine: it commits the queue batch by batch
// until Close closes it and nothing waits for it. It reuses its batch
// buffers, and its linger timer, from commit to commit.
func (q *Queue[T]) runWriter(w *writer[T]) {
	var requests []*request[T]
	var items []T
	var lastCommitted time.Time // when the last commit ended
	gathered := false           // the last batch lingered, and more came
	stream := pace{since: time.Now()}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var alone, open bool
		requests, alone = q.waiting(w, requests[:0])
		if !alone {
			if requests, open = q.fromQueue(w, requests); !open {
				return
			}
			if len(requests) > 0 && q.linger > 0 && (gathered || requests[0].queued.Before(lastCommitted) || stream.shared()) {
				n := len(requests)
				requests = q.lingerFor(w, requests, timer, q.lingerTime(&stream))
				gathered = len(requests) > n
			} else {
				gathered = false
			}
		}
		stream.count(len(requests), q.maxLinger)
		var err error
		items, err = q.commitBatch(requests, items[:0], &lastCommitted)
		q.release(w, err != nil)
		clear(requests)
		clear(items)
	}
}

// fromQueue adds to batch what is queued, up to maxBatch in all, waiting
// for a first request when batch is empty, unless orphans wait (then it
// returns batch empty, for the next turn). open is false once the queue is
// closed and nothing waits.
func (q *Queue[T]) fromQueue(w *writer[T], batch []*request[T]) (_ []*request[T], open bool) {
	if len(batch) == 0 {
		q.release(w, false) // a writer that waits for the queue holds no key
		first, ok := q.next()
		switch {
		case !ok:
			return batch, q.orphaned()
		case first == nil: // woken for an orphan
			return batch, true
		}
		batch = q.admit(w, batch, first)
	}
	return q.drain(w, batch), true
}

// next waits for a request from the queue, or for an orphan to commit
// (then it returns nil); ok is false once the queue is closed and empty.
func (q *Queue[T]) next() (req *request[T], ok bool) {
	select {
	case req, ok = <-q.queue:
		return req, ok
	case <-q.orphans.wake:
		return nil, true
	}
}

// lingerTime is how long a lingering batch waits: Linger, or in a stream
// MaxLinger, or as long as Options.Behind says, within StreamLinger and
// MaxLinger.
func (q *Queue[T]) lingerTime(stream *pace) time.Duration {
	if !stream.stream {
		return q.linger
	}
	if q.behind == nil {
		return q.maxLinger
	}
	return min(max(q.behind(), q.streamLinger), q.maxLinger)
}

// lingerFor adds to batch the requests that arrive within wait, up to
// maxBatch in all, leaving out those whose callers gave up (and, with
// Options.Key, those another writer holds). timer is the writer's, stopped.
func (q *Queue[T]) lingerFor(w *writer[T], batch []*request[T], timer *time.Timer, wait time.Duration) []*request[T] {
	timer.Reset(wait)
	defer timer.Stop()
	for len(batch) < q.maxBatch {
		select {
		case req, ok := <-q.queue:
			if !ok {
				return batch
			}
			batch = q.drain(w, q.admit(w, batch, req))
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// pace is a writer's count of the items it commits, by rateWindow.
type pace struct {
	since   time.Time // when the count began
	items   int       // counted since then
	largest int       // the largest batch since then
	stream  bool      // the last window's items came in a stream
	crowd   bool      // and some of its batches carried several
}

// count adds the n items of a batch, and at the end of a window judges
// whether they came fast enough to bring longLingerItems within maxLinger,
// and from more than one caller at a time.
func (p *pace) count(n int, maxLinger time.Duration) {
	p.items += n
	p.largest = max(p.largest, n)
	now := time.Now()
	if elapsed := now.Sub(p.since); elapsed >= rateWindow {
		p.stream = time.Duration(p.items)*maxLinger >= longLingerItems*elapsed
		p.crowd = p.largest > 1
		p.since, p.items, p.largest = now, 0, 0
	}
}

// shared reports whether the last window's items came in a stream from
// several callers, so that a batch gathers more by lingering: one caller
// that adds in a loop, each item once the last is committed, makes a
// stream of batches of one, which a linger would only hold up.
func (p *pace) shared() bool {
	return p.stream && p.crowd
}

// drain appends to batch what is queued, up to maxBatch in all, leaving
// out requests whose callers gave up (see admit), without waiting.
func (q *Queue[T]) drain(w *writer[T], batch []*request[T]) []*request[T] {
	for len(batch) < q.maxBatch {
		select {
		case req, ok := <-q.queue:
			if !ok {
				return batch
			}
			batch = q.admit(w, batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch commits the items of requests, using items as the buffer
// handed to commit, sets *committed to when the commit ended and reports
// the outcome to each request. It returns the buffer for reuse, and the
// commit's error.
func (q *Queue[T]) commitBatch(requests []*request[T], items []T, committed *time.Time) ([]T, error) {
	if len(requests) == 0 {
		return items, nil
	}
	for _, req := range requests {
		items = append(items, req.item)
	}
	ctx := context.Background()
	if deadline, ok := q.deadline(requests); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	err := q.commit(ctx, items)
	*committed = time.Now()
	for i, req := range requests {
		req.item = items[i]
		req.done <- err
	}
	return items, err
}

// deadline returns when a commit carrying batch must end: when the last of
// its callers gives up, at most q.timeout from now. ok is false when
// nothing bounds the commit.
func (q *Queue[T]) deadline(batch []*request[T]) (deadline time.Time, ok bool) {
	var limit time.Time
	if q.timeout > 0 {
		limit = time.Now().Add(q.timeout)
	}
	for _, req := range batch {
		d, ok := req.ctx.Deadline()
		if !ok || (!limit.IsZero() && d.After(limit)) {
			return limit, !limit.IsZero()
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	return deadline, true
}

// A request is one Add waiting for a writer.
type request[T any] struct {
	ctx    context.Context
	item   T            // the writer sets the committed item before sending on done
	queued time.Time    // when Add was called
	state  atomic.Int32 // queued, then taken or abandoned
	done   chan error   // receives the outcome once a writer took the request
}

const (
	queued int32 = iota
	taken
	abandoned
)

// take claims req for a batch; false means its caller already gave up.
func (req *request[T]) take() bool {
	return req.state.CompareAndSwap(queued, taken)
}

// abandon withdraws req from the queue; false means a writer already took
// it and will report the outcome.
func (req *request[T]) abandon() bool {
	return req.state.CompareAndSwap(queued, abandoned)
}

// result is what Add returns once the writer reported err.
func (req *request[T]) result(err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return req.item, nil
}
