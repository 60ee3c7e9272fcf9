package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// An item is what the tests queue: id is the caller's, seq the commit's.
type item struct {
	id  int
	seq int64
}

// A call is one commit as the gate saw it begin.
type call struct {
	ids         []int // the batch's ids, sorted
	deadline    time.Time
	hasDeadline bool
}

// gate is a CommitFunc the test steers: each commit reports itself on
// started, then waits for the test to send its outcome on release, or for
// the gate to open. A commit that succeeds gives each item the next seq.
type gate struct {
	started chan call
	release chan error
	open    chan struct{} // closed: commits succeed without waiting
	lastSeq atomic.Int64
}

// newQueue returns a Queue committing through a new gate. When t ends the
// gate opens and the Queue closes.
func newQueue(t *testing.T, opts Options[item]) (*Queue[item], *gate) {
	t.Helper()
	g := &gate{started: make(chan call, 1000), release: make(chan error), open: make(chan struct{})}
	q := New(g.commit, opts)
	t.Cleanup(func() {
		g.openUp()
		q.Close()
	})
	return q, g
}

func (g *gate) commit(ctx context.Context, batch []item) error {
	c := call{}
	for _, it := range batch {
		c.ids = append(c.ids, it.id)
	}
	slices.Sort(c.ids)
	c.deadline, c.hasDeadline = ctx.Deadline()
	g.started <- c
	select {
	case err := <-g.release:
		if err != nil {
			return err
		}
	case <-g.open:
	}
	for i := range batch {
		batch[i].seq = g.lastSeq.Add(1)
	}
	return nil
}

func (g *gate) openUp() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// next returns the next commit to begin.
func (g *gate) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-g.started:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no commit began within 10s")
		return call{}
	}
}

// A result is what one Add returned.
type result struct {
	id   int // the id the caller added
	item item
	err  error
}

// addAsync calls q.Add(ctx, id) in a goroutine and returns where its result
// arrives.
func addAsync(ctx context.Context, q *Queue[item], id int) <-chan result {
	out := make(chan result, 1)
	go func() {
		got, err := q.Add(ctx, item{id: id})
		out <- result{id, got, err}
	}()
	return out
}

// addRange calls addAsync for each id from first to last and returns where
// their results arrive.
func addRange(ctx context.Context, q *Queue[item], first, last int) []<-chan result {
	var results []<-chan result
	for id := first; id <= last; id++ {
		results = append(results, addAsync(ctx, q, id))
	}
	return results
}

// wait returns the result from r.
func wait(t *testing.T, r <-chan result) result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("Add did not return within 10s")
		return result{}
	}
}

// mustCommit checks that res is a success that returned the caller's own
// item with a seq.
func mustCommit(t *testing.T, res result) {
	t.Helper()
	if res.err != nil || res.item.id != res.id || res.item.seq == 0 {
		t.Errorf("Add(id %d) = %+v, %v; want item %d with a seq, nil", res.id, res.item, res.err, res.id)
	}
}

// waitLen waits until q holds n waiting items.
func waitLen(t *testing.T, q *Queue[item], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); q.Len() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("Len() = %d after 10s, want %d", q.Len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAddsDuringACommitGoIntoTheNext(t *testing.T) {
	q, g := newQueue(t, Options[item]{})
	ctx := t.Context()
	first := addAsync(ctx, q, 1)
	if c := g.next(t); !slices.Equal(c.ids, []int{1}) {
		t.Fatalf("first commit carries %v, want [1]", c.ids)
	}
	later := addRange(ctx, q, 2, 4)
	waitLen(t, q, 3)
	g.release <- nil
	mustCommit(t, wait(t, first))
	if c := g.next(t); !slices.Equal(c.ids, []int{2, 3, 4}) {
		t.Fatalf("second commit carries %v, want [2 3 4]", c.ids)
	}
	g.release <- nil
	for _, r := range later {
		mustCommit(t, wait(t, r))
	}
}

func TestMaxBatchSplitsTheQueue(t *testing.T) {
	q, g := newQueue(t, Options[item]{MaxBatch: 2})
	ctx := t.Context()
	results := []<-chan result{addAsync(ctx, q, 1)}
	g.next(t)
	results = append(results, addRange(ctx, q, 2, 6)...)
	waitLen(t, q, 5)
	g.release <- nil
	var sizes []int
	for range 3 {
		sizes = append(sizes, len(g.next(t).ids))
		g.release <- nil
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Errorf("five queued items with MaxBatch 2 went in batches of %v, want [2 2 1]", sizes)
	}
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
}

func TestEachCallerGetsItsOwnItem(t *testing.T) {
	q, g := newQueue(t, Options[item]{})
	g.openUp()
	const callers = 200
	var results []<-chan result
	for id := 1; id <= callers; id++ {
		results = append(results, addAsync(t.Context(), q, id))
	}
	seqs := map[int64]int{}
	for _, r := range results {
		res := wait(t, r)
		mustCommit(t, res)
		if other, dup := seqs[res.item.seq]; dup {
			t.Errorf("ids %d and %d both got seq %d", other, res.id, res.item.seq)
		}
		seqs[res.item.seq] = res.id
	}
}

func TestCommitErrorGoesToItsBatchOnly(t *testing.T) {
	q, g := newQueue(t, Options[item]{})
	ctx := t.Context()
	first := addAsync(ctx, q, 1)
	g.next(t)
	second, third := addAsync(ctx, q, 2), addAsync(ctx, q, 3)
	waitLen(t, q, 2)
	errFail := errors.New("disk on fire")
	g.release <- errFail
	if res := wait(t, first); !errors.Is(res.err, errFail) || res.item != (item{}) {
		t.Errorf("Add in the failed batch = %+v, %v; want the zero item, %v", res.item, res.err, errFail)
	}
	g.next(t)
	g.release <- nil
	mustCommit(t, wait(t, second))
	mustCommit(t, wait(t, third))
}

func TestGivenUpWhileQueuedIsNotCommitted(t *testing.T) {
	q, g := newQueue(t, Options[item]{Capacity: 2})
	first := addAsync(t.Context(), q, 1)
	g.next(t)

	canceled, cancel := context.WithCancel(t.Context())
	queued := addAsync(canceled, q, 2)
	waitLen(t, q, 1)
	cancel()
	if res := wait(t, queued); res.err != context.Canceled || res.item != (item{}) {
		t.Errorf("Add whose context was canceled in the queue = %+v, %v; want the zero item, %v", res.item, res.err, context.Canceled)
	}

	third := addAsync(t.Context(), q, 3)
	waitLen(t, q, 2) // the queue is full: 2, given up but not yet dropped, and 3
	short, cancelShort := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := q.Add(short, item{id: 4}); err != context.DeadlineExceeded {
		t.Errorf("Add that waited for room in a full queue until its deadline: error %v, want %v", err, context.DeadlineExceeded)
	}

	g.release <- nil
	mustCommit(t, wait(t, first))
	if c := g.next(t); !slices.Equal(c.ids, []int{3}) {
		t.Errorf("commit after the given-up items carries %v, want [3]", c.ids)
	}
	g.release <- nil
	mustCommit(t, wait(t, third))
}

func TestEndedContextIsNotQueued(t *testing.T) {
	q, g := newQueue(t, Options[item]{})
	g.openUp()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := q.Add(ctx, item{id: 1}); err != context.Canceled {
		t.Errorf("Add with a canceled context: error %v, want %v", err, context.Canceled)
	}
	if q.Len() != 0 || len(g.started) != 0 {
		t.Errorf("Add with a canceled context left Len() = %d and began %d commits, want 0 and 0", q.Len(), len(g.started))
	}
}

func TestTakenItemWaitsForItsCommit(t *testing.T) {
	q, g := newQueue(t, Options[item]{})
	ctx, cancel := context.WithCancel(t.Context())
	r := addAsync(ctx, q, 1)
	g.next(t)
	cancel()
	time.Sleep(20 * time.Millisecond) // give a wrong Add time to return early
	g.release <- nil
	// Once a writer took the item its caller learns the outcome, even
	// though its context ended during the commit.
	mustCommit(t, wait(t, r))
}

func TestCommitDeadline(t *testing.T) {
	const timeout = time.Hour
	q, g := newQueue(t, Options[item]{Timeout: timeout})
	g.openUp()
	ctx := t.Context()
	soon := time.Now().Add(time.Minute)

	d, cancel := context.WithDeadline(ctx, soon)
	defer cancel()
	if _, err := q.Add(d, item{id: 1}); err != nil {
		t.Fatal(err)
	}
	if c := g.next(t); !c.hasDeadline || !c.deadline.Equal(soon) {
		t.Errorf("commit of an Add with deadline %v has deadline %v (%v), want the caller's", soon, c.deadline, c.hasDeadline)
	}

	before := time.Now()
	if _, err := q.Add(context.WithoutCancel(ctx), item{id: 2}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if c := g.next(t); !c.hasDeadline || c.deadline.Before(before.Add(timeout)) || c.deadline.After(after.Add(timeout)) {
		t.Errorf("commit of an Add without deadline has deadline %v (%v), want Timeout after it began", c.deadline, c.hasDeadline)
	}

	q0, g0 := newQueue(t, Options[item]{})
	g0.openUp()
	if _, err := q0.Add(context.WithoutCancel(ctx), item{id: 3}); err != nil {
		t.Fatal(err)
	}
	if c := g0.next(t); c.hasDeadline {
		t.Errorf("commit without Timeout of an Add without deadline has deadline %v, want none", c.deadline)
	}
}

func TestCommitDeadlineIsTheBatchsLatest(t *testing.T) {
	q, g := newQueue(t, Options[item]{Timeout: time.Hour})
	ctx := t.Context()
	first := addAsync(ctx, q, 1)
	g.next(t)
	now := time.Now()
	early, cancelEarly := context.WithDeadline(ctx, now.Add(time.Minute))
	defer cancelEarly()
	late, cancelLate := context.WithDeadline(ctx, now.Add(2*time.Minute))
	defer cancelLate()
	results := []<-chan result{first, addAsync(early, q, 2), addAsync(late, q, 3)}
	waitLen(t, q, 2)
	g.release <- nil
	c := g.next(t)
	g.release <- nil
	if want, _ := late.Deadline(); !slices.Equal(c.ids, []int{2, 3}) || !c.deadline.Equal(want) {
		t.Errorf("commit of %v has deadline %v, want %v, the later of its callers'", c.ids, c.deadline, want)
	}
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
}

func TestCloseCommitsQueuedThenRefuses(t *testing.T) {
	q, g := newQueue(t, Options[item]{})
	ctx := t.Context()
	results := []<-chan result{addAsync(ctx, q, 1)}
	g.next(t)
	results = append(results, addRange(ctx, q, 2, 6)...)
	waitLen(t, q, 5)
	closed := make(chan struct{})
	go func() {
		q.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a commit was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	g.release <- nil
	if c := g.next(t); !slices.Equal(c.ids, []int{2, 3, 4, 5, 6}) {
		t.Errorf("commit during Close carries %v, want the queued [2 3 4 5 6]", c.ids)
	}
	g.release <- nil
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
	<-closed
	if _, err := q.Add(ctx, item{id: 7}); err != ErrClosed {
		t.Errorf("Add after Close: error %v, want %v", err, ErrClosed)
	}
	q.Close() // a second Close returns at once
}

func TestSeveralWritersCommitAtOnce(t *testing.T) {
	const writers = 3
	q, g := newQueue(t, Options[item]{Writers: writers})
	ctx := t.Context()
	var results []<-chan result
	for id := 1; id <= writers; id++ {
		results = append(results, addAsync(ctx, q, id))
		// Each item waits for no other: an idle writer takes it while the
		// earlier ones are still committing.
		if c := g.next(t); !slices.Equal(c.ids, []int{id}) {
			t.Fatalf("commit %d carries %v, want [%d]", id, c.ids, id)
		}
	}
	results = append(results, addAsync(ctx, q, writers+1))
	waitLen(t, q, 1) // every writer is busy
	g.release <- nil
	if c := g.next(t); !slices.Equal(c.ids, []int{writers + 1}) {
		t.Errorf("commit after one writer finished carries %v, want [%d]", c.ids, writers+1)
	}
	for range writers {
		g.release <- nil
	}
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
}

// TestConcurrentAddsKeepTheContract runs many callers with short deadlines
// against several writers, some of whose commits fail, and checks every
// Add against what the commits saw.
func TestConcurrentAddsKeepTheContract(t *testing.T) {
	errFail := errors.New("commit failed")
	var mu sync.Mutex // guards the following
	committed := map[int]int64{}
	failed := map[int]bool{}
	var batches atomic.Int64
	commit := func(ctx context.Context, batch []item) error {
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		for _, it := range batch {
			if _, dup := committed[it.id]; dup || failed[it.id] {
				return fmt.Errorf("id %d committed twice", it.id)
			}
		}
		if batches.Add(1)%5 == 0 {
			for _, it := range batch {
				failed[it.id] = true
			}
			return errFail
		}
		for i := range batch {
			batch[i].seq = int64(len(committed) + 1)
			committed[batch[i].id] = batch[i].seq
		}
		return nil
	}
	q := New(commit, Options[item]{Writers: 3, MaxBatch: 8, Capacity: 16})
	const callers, each = 32, 50
	results := make(chan result, callers*each)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				id := c*each + i + 1
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(rand.IntN(400))*time.Microsecond)
				got, err := q.Add(ctx, item{id: id})
				cancel()
				results <- result{id, got, err}
			}
		})
	}
	wg.Wait()
	q.Close()
	close(results)
	var ok, gaveUp, failures int
	for res := range results {
		switch {
		case res.err == nil:
			ok++
			if seq, in := committed[res.id]; !in || res.item != (item{res.id, seq}) {
				t.Errorf("Add(id %d) = %+v, nil; committed with seq %d (%v)", res.id, res.item, seq, in)
			}
		case res.err == context.DeadlineExceeded:
			gaveUp++
			if _, in := committed[res.id]; in || failed[res.id] {
				t.Errorf("Add(id %d) gave up in the queue, yet the item reached a commit", res.id)
			}
		case res.err == errFail:
			failures++
			if !failed[res.id] {
				t.Errorf("Add(id %d) reported a failed commit it was not in", res.id)
			}
		default:
			t.Errorf("Add(id %d): unexpected error %v", res.id, res.err)
		}
	}
	if ok != len(committed) {
		t.Errorf("%d Adds succeeded, %d items committed", ok, len(committed))
	}
	t.Logf("%d committed in %d batches, %d gave up, %d in failed batches", ok, batches.Load(), gaveUp, failures)
}

// TestLingerGathersWhatArrivesWhileBusy: items that come one at a time,
// each after the last commit, are committed at once; items queued while a
// commit ran make the next batch linger, here until it is full.
func TestLingerGathersWhatArrivesWhileBusy(t *testing.T) {
	q, g := newQueue(t, Options[item]{MaxBatch: 5, Linger: time.Hour})
	ctx := t.Context()
	for id := 1; id <= 3; id++ { // an hour's linger holds none of them
		r := addAsync(ctx, q, id)
		if c := g.next(t); !slices.Equal(c.ids, []int{id}) {
			t.Fatalf("commit carries %v, want [%d] at once", c.ids, id)
		}
		g.release <- nil
		mustCommit(t, wait(t, r))
	}
	results := []<-chan result{addAsync(ctx, q, 4)}
	g.next(t)
	results = append(results, addRange(ctx, q, 5, 6)...)
	waitLen(t, q, 2)
	g.release <- nil
	waitLen(t, q, 0) // the writer took 5 and 6, and lingers
	results = append(results, addRange(ctx, q, 7, 9)...)
	if c := g.next(t); !slices.Equal(c.ids, []int{5, 6, 7, 8, 9}) {
		t.Fatalf("commit carries %v, want [5 6 7 8 9]: what was queued and what came while it lingered", c.ids)
	}
	g.release <- nil
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
}

// TestInAStreamEveryBatchLingers: in a stream from several callers at a
// time, a batch lingers even when its first item came after the last
// commit ended, with nothing gathered: items in a stream come at random,
// and the batches that took whatever came first made a commit of one or
// two of every few.
func TestInAStreamEveryBatchLingers(t *testing.T) {
	var behind atomic.Int64 // the linger in a stream
	behind.Store(int64(10 * time.Millisecond))
	q, g := newQueue(t, Options[item]{MaxBatch: 3, Linger: 10 * time.Millisecond, MaxLinger: 2 * time.Hour,
		Behind: func() time.Duration { return time.Duration(behind.Load()) }})
	ctx := t.Context()
	results := []<-chan result{addAsync(ctx, q, 1)}
	g.next(t)
	results = append(results, addRange(ctx, q, 2, 3)...) // two callers at a time
	waitLen(t, q, 2)
	g.release <- nil
	if c := g.next(t); !slices.Equal(c.ids, []int{2, 3}) {
		t.Fatalf("commit carries %v, want [2 3]", c.ids)
	}
	g.release <- nil
	time.Sleep(rateWindow)
	results = append(results, addAsync(ctx, q, 4)) // ends the window: a stream, and a crowd
	if c := g.next(t); !slices.Equal(c.ids, []int{4}) {
		t.Fatalf("commit carries %v, want [4] at once", c.ids)
	}
	g.release <- nil
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
	behind.Store(int64(time.Hour))
	results = []<-chan result{addAsync(ctx, q, 5)}
	waitLen(t, q, 0) // the writer took 5, and lingers
	results = append(results, addRange(ctx, q, 6, 7)...)
	if c := g.next(t); !slices.Equal(c.ids, []int{5, 6, 7}) {
		t.Fatalf("commit carries %v, want [5 6 7]: the batch lingered until it was full", c.ids)
	}
	g.release <- nil
	for _, r := range results {
		mustCommit(t, wait(t, r))
	}
}

// TestALoneCallerNeverLingers: a caller that adds items one after another,
// each once the last is committed, fast enough to make a stream, is not
// held up: its batches are of one.
func TestALoneCallerNeverLingers(t *testing.T) {
	q, g := newQueue(t, Options[item]{Linger: time.Millisecond, MaxLinger: 2 * time.Hour,
		Behind: func() time.Duration { return time.Hour }}) // a linger would outlast the test
	ctx := t.Context()
	for id := 1; id <= 5; id++ { // the second ends a window: a stream
		r := addAsync(ctx, q, id)
		if c := g.next(t); !slices.Equal(c.ids, []int{id}) {
			t.Fatalf("commit carries %v, want [%d] at once", c.ids, id)
		}
		g.release <- nil
		mustCommit(t, wait(t, r))
		if id <= 2 {
			time.Sleep(rateWindow)
		}
	}
}

// startLingering commits item 1 alone and queues item 2 while that commit
// runs, so that the writer takes item 2 and lingers. It returns where the
// results of both arrive.
func startLingering(t *testing.T, q *Queue[item], g *gate) []<-chan result {
	t.Helper()
	results := []<-chan result{addAsync(t.Context(), q, 1)}
	g.next(t)
	results = append(results, addAsync(t.Context(), q, 2))
	waitLen(t, q, 1)
	g.release <- nil
	waitLen(t, q, 0)
	return results
}

// TestLingerInAStream: once items have come fast enough to bring
// longLingerItems within MaxLinger, a lingering batch waits MaxLinger
// (here until it is full) rather than Linger; with Options.Behind, as long
// as Behind says, within StreamLinger (or Linger) and MaxLinger.
func TestLingerInAStream(t *testing.T) {
	for _, tc := range []struct {
		name         string
		behind       func() time.Duration
		streamLinger time.Duration
		want         []int
	}{
		{"no Behind", nil, 0, []int{4, 5, 6, 7, 8}},
		{"none behind", func() time.Duration { return 0 }, 0, []int{4}},
		{"none behind, an hour's StreamLinger", func() time.Duration { return 0 }, time.Hour, []int{4, 5, 6, 7, 8}},
		{"two hours behind", func() time.Duration { return 2 * time.Hour }, 0, []int{4, 5, 6, 7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const linger = 10 * time.Millisecond
			q, g := newQueue(t, Options[item]{MaxBatch: 5, Linger: linger, MaxLinger: time.Hour,
				Behind: tc.behind, StreamLinger: tc.streamLinger})
			results := startLingering(t, q, g)
			if c := g.next(t); !slices.Equal(c.ids, []int{2}) { // no stream yet
				t.Fatalf("commit carries %v, want [2] after Linger", c.ids)
			}
			g.release <- nil
			time.Sleep(rateWindow) // the next batch ends the window: a stream, at an hour's linger
			results = append(results, addAsync(t.Context(), q, 3))
			g.next(t)
			results = append(results, addAsync(t.Context(), q, 4))
			waitLen(t, q, 1)
			g.release <- nil
			waitLen(t, q, 0)        // the writer took 4, and lingers
			time.Sleep(10 * linger) // long past Linger
			results = append(results, addRange(t.Context(), q, 5, 8)...)
			if c := g.next(t); !slices.Equal(c.ids, tc.want) {
				t.Fatalf("commit carries %v, want %v", c.ids, tc.want)
			}
			g.openUp() // and whatever follows
			for _, r := range results {
				mustCommit(t, wait(t, r))
			}
		})
	}
}

func TestAddReusesItsRequests(t *testing.T) {
	q := New(func(context.Context, []item) error { return nil }, Options[item]{})
	defer q.Close()
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := q.Add(ctx, item{id: 1}); err != nil {
			t.Fatal(err)
		}
	})
	// Without the reuse, 2 (the request and its channel); under -race the
	// pool drops a quarter of them, about 0.5 on average.
	want := 0.0
	if raceEnabled {
		want = 1
	}
	if allocs > want {
		t.Errorf("Add allocated %v times per call, want at most %v: its request and channel are reused", allocs, want)
	}
}

// heldCount counts the requests that wait for the writer holding their
// key, each writer's once however many keys it holds.
func heldCount(q *Queue[item]) int {
	q.keyMu.Lock()
	defer q.keyMu.Unlock()
	writers := map[*writer[item]]bool{}
	held := 0
	for _, w := range q.owners {
		if !writers[w] {
			writers[w] = true
			held += len(w.held)
		}
	}
	return held
}

// waitHeld waits until n requests wait for the writer holding their key.
func waitHeld(t *testing.T, q *Queue[item], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		held := heldCount(q)
		if held == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held after 10s, want %d", held, n)
		}
	}
}

// TestKeyHoldsOneWriter: with Options.Key, an item whose key a writer is
// committing waits for that writer, while another writer commits the
// items of other keys; the first writer then commits it.
func TestKeyHoldsOneWriter(t *testing.T) {
	hot := func(it item) string {
		if it.id < 100 {
			return "hot"
		}
		return fmt.Sprint(it.id)
	}
	q, g := newQueue(t, Options[item]{Writers: 2, Key: hot})
	ctx := context.Background()
	first := addAsync(ctx, q, 1)
	if c := g.next(t); !slices.Equal(c.ids, []int{1}) {
		t.Fatalf("first commit %v, want [1]", c.ids)
	}
	second := addAsync(ctx, q, 2) // the same key: waits for the first writer
	waitHeld(t, q, 1)
	cold := addAsync(ctx, q, 100)
	if c := g.next(t); !slices.Equal(c.ids, []int{100}) {
		t.Fatalf("while the hot key's commit stalls, the next commit is %v, want [100] alone", c.ids)
	}
	g.openUp() // the commits under way, and the next
	mustCommit(t, wait(t, cold))
	mustCommit(t, wait(t, first))
	if c := g.next(t); !slices.Equal(c.ids, []int{2}) {
		t.Fatalf("after the hot key's commit, the next is %v, want [2]", c.ids)
	}
	mustCommit(t, wait(t, second))
}

// TestKeyCloseCommitsWhatWaits: Close commits what waits for a writer's key.
func TestKeyCloseCommitsWhatWaits(t *testing.T) {
	q, g := newQueue(t, Options[item]{Writers: 2, Key: func(item) string { return "one" }})
	ctx := context.Background()
	third := addAsync(ctx, q, 3)
	g.next(t)
	fourth := addAsync(ctx, q, 4)
	waitHeld(t, q, 1)
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	g.openUp()
	<-closed
	mustCommit(t, wait(t, third))
	mustCommit(t, wait(t, fourth))
}

// TestKeyHeldCallerMayGiveUp: a request waiting for the writer of its key
// is not yet taken, so its caller may give up, and is not committed.
func TestKeyHeldCallerMayGiveUp(t *testing.T) {
	q, g := newQueue(t, Options[item]{Writers: 2, Key: func(item) string { return "one" }})
	first := addAsync(context.Background(), q, 1)
	g.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if res := wait(t, addAsync(ctx, q, 2)); !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("Add held behind a stalled commit = %v, want its context's error", res.err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the held Add gave up after %v, not when its context ended", took)
	}
	g.release <- nil
	mustCommit(t, wait(t, first))
	third := addAsync(context.Background(), q, 3)
	if c := g.next(t); !slices.Equal(c.ids, []int{3}) {
		t.Fatalf("next commit %v, want [3]: the abandoned 2 is not committed", c.ids)
	}
	g.release <- nil
	mustCommit(t, wait(t, third))
}

// TestKeyAfterFailureAlone: when a commit of two keys fails, the requests
// that waited for its writer are committed one key at a time, so that the
// key that fails does not fail the other's again.
func TestKeyAfterFailureAlone(t *testing.T) {
	parity := func(it item) string { return fmt.Sprint(it.id % 2) }
	q, g := newQueue(t, Options[item]{Writers: 2, Key: func(it item) string {
		if it.id >= 10 {
			return fmt.Sprint("other", it.id)
		}
		return parity(it)
	}})
	ctx := context.Background()
	busy := addRange(ctx, q, 10, 11) // both writers stalled
	g.next(t)
	g.next(t)
	mixed := addRange(ctx, q, 1, 2) // wait in the queue for a writer
	waitLen(t, q, 2)
	g.release <- nil // one writer goes on, and takes 1 and 2 together
	if c := g.next(t); !slices.Equal(c.ids, []int{1, 2}) {
		t.Fatalf("commit %v, want [1 2]", c.ids)
	}
	g.release <- nil // the other writer goes on, and finds 3 and 4 claimed
	later := addRange(ctx, q, 3, 4)
	waitHeld(t, q, 2)
	g.release <- errors.New("a row is locked")
	for _, r := range mixed {
		if res := wait(t, r); res.err == nil {
			t.Fatalf("Add(%d) in the failed commit succeeded", res.id)
		}
	}
	seen := map[int]bool{}
	for range 2 {
		c := g.next(t)
		if len(c.ids) != 1 {
			t.Fatalf("after the failure a commit of %v, want one key alone", c.ids)
		}
		seen[c.ids[0]] = true
	}
	if !seen[3] || !seen[4] {
		t.Fatalf("commits after the failure %v, want [3] and [4]", seen)
	}
	g.openUp()
	for _, r := range append(busy, later...) {
		mustCommit(t, wait(t, r))
	}
}

// TestKeysUnderStress runs many Adds over few keys through several
// writers, with commits that fail or take a while and callers that give
// up, then closes the queue: no two commits carry one key at once, every
// Add returns, and what was committed got distinct seqs.
func TestKeysUnderStress(t *testing.T) {
	var mu sync.Mutex
	inFlight := map[string]int{}
	var lastSeq atomic.Int64
	key := func(it item) string { return fmt.Sprint(it.id % 3) }
	commit := func(ctx context.Context, batch []item) error {
		keys := map[string]bool{}
		for _, it := range batch {
			keys[key(it)] = true
		}
		mu.Lock()
		for k := range keys {
			if inFlight[k]++; inFlight[k] > 1 {
				t.Errorf("two commits of key %s at once", k)
			}
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			for k := range keys {
				inFlight[k]--
			}
			mu.Unlock()
		}()
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		if rand.IntN(10) == 0 {
			return errors.New("failed")
		}
		for i := range batch {
			batch[i].seq = lastSeq.Add(1)
		}
		return nil
	}
	q := New(commit, Options[item]{Writers: 4, Key: key, Capacity: 64})
	var wg sync.WaitGroup
	seqs := make(chan int64, 4000)
	for g := range 40 {
		wg.Go(func() {
			for i := range 50 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rand.IntN(20))*time.Millisecond)
				got, err := q.Add(ctx, item{id: g*100 + i})
				cancel()
				if err == nil {
					seqs <- got.seq
				}
			}
		})
	}
	wg.Wait()
	q.Close()
	close(seqs)
	seen := map[int64]bool{}
	for s := range seqs {
		if s == 0 || seen[s] {
			t.Fatalf("seq %d given twice, or none", s)
		}
		seen[s] = true
	}
	t.Logf("%d of 2000 committed", len(seen))
}

// TestSuspectKeyFailsAlone: after a commit of a key fails, the key is
// committed alone until a commit of it succeeds, so that the requests of
// other keys queued meanwhile are not failed with it again.
func TestSuspectKeyFailsAlone(t *testing.T) {
	q, g := newQueue(t, Options[item]{Key: func(it item) string { return fmt.Sprint(it.id % 2) }})
	ctx := context.Background()
	first := addAsync(ctx, q, 2)
	g.next(t)
	queued := addRange(ctx, q, 3, 4) // 4 has the failing key, 3 another
	waitLen(t, q, 2)
	g.release <- errors.New("a row is locked")
	if res := wait(t, first); res.err == nil {
		t.Fatal("the failed commit's Add succeeded")
	}
	for range 2 {
		if c := g.next(t); len(c.ids) != 1 {
			t.Fatalf("after a failure of its key, a commit of %v, want each key alone", c.ids)
		}
		g.release <- nil
	}
	for _, r := range queued {
		mustCommit(t, wait(t, r))
	}
	// Its commit succeeded: the key goes with others again.
	again := addAsync(ctx, q, 6)
	g.next(t)
	more := addRange(ctx, q, 7, 8)
	waitLen(t, q, 2)
	g.release <- nil
	mustCommit(t, wait(t, again))
	if c := g.next(t); !slices.Equal(c.ids, []int{7, 8}) {
		t.Fatalf("after a success, commit %v, want [7 8] together", c.ids)
	}
	g.release <- nil
	for _, r := range more {
		mustCommit(t, wait(t, r))
	}
}
