package partyline

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// queueWait bounds every wait of the queue tests; blockWait is how long a
// call must stay blocked to count as blocked.
const (
	queueWait = 5 * time.Second
	blockWait = 50 * time.Millisecond
)

// roles counts what a queue asks of its connection: writes started, held
// writes urged and evictions. The test is the writer: it takes from the
// queue itself.
type roles struct{ writes, urges, evictions atomic.Int64 }

func (r *roles) write() { r.writes.Add(1) }
func (r *roles) flush() { r.writes.Add(1) }
func (r *roles) evict() { r.evictions.Add(1) }
func (r *roles) urge()  { r.urges.Add(1) }

// testQueue is a queue whose connection only counts.
func testQueue(limit int, maxLag time.Duration) (*sendQueue, *roles) {
	r := &roles{}
	return newSendQueue(r, limit, maxLag), r
}

// expect checks the writes started and evictions so far.
func (r *roles) expect(t *testing.T, what string, writes, evictions int64) {
	t.Helper()
	if w, e := r.writes.Load(), r.evictions.Load(); w != writes || e != evictions {
		t.Fatalf("%s: %d writes started and %d evictions, want %d and %d", what, w, e, writes, evictions)
	}
}

func msg(s string) *message { return newMessage([]byte(s)) }

func messages(n int) []*message {
	out := make([]*message, n)
	for i := range out {
		out[i] = msg(fmt.Sprint(i))
	}
	return out
}

func checkBatch(t *testing.T, got []*message, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("drained %d messages, want %d %q", len(got), len(want), want)
	}
	for i := range want {
		if string(got[i].payload) != want[i] {
			t.Errorf("message %d = %q, want %q", i, got[i].payload, want[i])
		}
	}
}

func TestQueueStartsOneWriterAndStopsWhenIdle(t *testing.T) {
	q, r := testQueue(4, 0)
	q.push(msg("a"))
	r.expect(t, "first push", 1, 0)
	q.push(msg("b"))
	r.expect(t, "second push while a writer runs", 1, 0)
	batch, w := q.take(nil)
	checkBatch(t, batch, "a", "b")
	if w.ping || w.closing || w.idle {
		t.Fatalf("take: %+v, want only messages", w)
	}
	if _, w := q.take(nil); !w.idle {
		t.Fatal("take of an empty queue did not tell the writer to stop")
	}
	q.push(msg("c"))
	r.expect(t, "push after the writer stopped", 2, 0)
}

// TestQueueUrgesAHeldWriter: while the writer waits out the write delay,
// the push that fills the queue halfway urges it, once, where the queue
// would go on to overflow; the held turn then finds its hold over, and a
// close urges a held writer too.
func TestQueueUrgesAHeldWriter(t *testing.T) {
	q, r := testQueue(8, 0)
	q.push(msg("first"))
	hold := q.hold()
	for _, m := range messages(6) {
		q.push(m)
		if len(q.msgs) < 4 && r.urges.Load() != 0 {
			t.Fatalf("%d queued of 8: %d urges, want none yet", len(q.msgs), r.urges.Load())
		}
	}
	if got := r.urges.Load(); got != 1 {
		t.Fatalf("7 queued of 8 while held: %d urges, want 1, at the push that filled it halfway", got)
	}
	r.expect(t, "pushes while held", 1, 0)
	if q.takeHeld(hold) {
		t.Error("the held turn found its hold on after an urge; want it over, so that it writes nothing")
	}
	if hold = q.hold(); !q.takeHeld(hold) {
		t.Error("a turn found its hold over though nothing urged it")
	}
	q.hold()
	q.requestClose(false)
	if got := r.urges.Load(); got != 2 {
		t.Fatalf("a close while held: %d urges in all, want 2", got)
	}
}

func TestQueuePushUntilFull(t *testing.T) {
	q, r := testQueue(3, 0)
	for _, m := range messages(3) {
		q.push(m)
	}
	r.expect(t, "pushes below the limit", 1, 0)
	q.push(msg("x"))
	r.expect(t, "a push beyond the limit", 1, 1)
	batch, _ := q.take(nil)
	checkBatch(t, batch, "0", "1", "2")
}

func TestQueueTakeAppendsToBatch(t *testing.T) {
	q, _ := testQueue(4, 0)
	q.push(msg("b"))
	batch, _ := q.take([]*message{msg("a")})
	checkBatch(t, batch, "a", "b")
}

func TestQueuePingAndClose(t *testing.T) {
	q, r := testQueue(4, 0)
	q.requestPing()
	r.expect(t, "a ping on a quiet queue", 1, 0)
	if _, w := q.take(nil); !w.ping || w.closing {
		t.Fatalf("take: %+v, want a ping", w)
	}
	q.push(msg("last words"))
	q.requestClose(false)
	batch, w := q.take(nil)
	checkBatch(t, batch, "last words")
	if !w.closing || w.idle {
		t.Fatalf("take after close: %+v, want the close", w)
	}
	q.push(msg("late"))
	if batch, _ := q.take(nil); len(batch) != 0 {
		t.Fatal("a push after close was accepted")
	}
	q.requestPing()
	r.expect(t, "a push and a ping after close", 1, 0)
}

func TestQueueCloseWithDropDiscardsMessages(t *testing.T) {
	q, r := testQueue(4, 0)
	q.push(msg("stale"))
	q.take(nil)
	q.push(msg("never sent"))
	q.requestClose(true)
	r.expect(t, "close while a writer runs", 1, 0)
	if batch, w := q.take(nil); len(batch) != 0 || !w.closing {
		t.Fatalf("take after an evicting close: %d messages, %+v; want none and the close", len(batch), w)
	}
}

func TestQueueTakeReleasesBurstMemory(t *testing.T) {
	q, _ := testQueue(1000, 0)
	for _, m := range messages(100) {
		q.push(m)
	}
	q.take(nil)
	if q.msgs != nil {
		t.Fatalf("after draining a burst the queue keeps capacity %d", cap(q.msgs))
	}
}

func TestQueuePushPacedWaitsForRoom(t *testing.T) {
	q, r := testQueue(4, 0)
	done := make(chan struct{})
	for i, m := range messages(2) {
		if !q.pushPaced(m, done) {
			t.Fatalf("paced push %d below half refused", i)
		}
	}
	r.expect(t, "two paced pushes", 1, 0)
	result := make(chan bool, 1)
	go func() { result <- q.pushPaced(msg("2"), done) }()
	select {
	case <-result:
		t.Fatal("a paced push at half the queue did not wait")
	case <-time.After(blockWait):
	}
	q.push(msg("live")) // live messages still fit above half
	q.take(nil)
	select {
	case ok := <-result:
		if !ok {
			t.Fatal("paced push failed after room was made")
		}
	case <-time.After(queueWait):
		t.Fatal("paced push still blocked after the writer took the messages")
	}
	close(done)
	q.push(msg("x"))
	q.push(msg("y"))
	if q.pushPaced(msg("z"), done) {
		t.Fatal("paced push on a half-full queue succeeded after done closed")
	}
}

// TestQueuePushPacedEndsOnClose checks that closing the connection wakes
// every paced push waiting for room (two replays of two rooms may wait at
// once), and that none waits afterwards.
func TestQueuePushPacedEndsOnClose(t *testing.T) {
	q, _ := testQueue(2, 0)
	q.push(msg("full"))
	result := make(chan bool, 2)
	for range 2 {
		go func() { result <- q.pushPaced(msg("paced"), nil) }()
	}
	for deadline := time.Now().Add(queueWait); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		pacing := q.pacing
		q.mu.Unlock()
		if pacing == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d paced pushes waiting, want 2", pacing)
		}
	}
	q.requestClose(false)
	for i := range 2 {
		select {
		case ok := <-result:
			if ok {
				t.Fatalf("paced push %d succeeded on a closing queue", i)
			}
		case <-time.After(queueWait):
			t.Fatalf("paced push %d still waiting after the close", i)
		}
	}
	if q.pushPaced(msg("late"), nil) {
		t.Fatal("paced push after the close succeeded")
	}
}

func TestQueueConcurrent(t *testing.T) {
	q, _ := testQueue(1<<20, 0)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				q.push(msg(fmt.Sprint(p, i)))
			}
		})
	}
	got := 0
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			batch, _ := q.take(nil)
			got += len(batch)
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	deadline := time.Now().Add(queueWait)
	for {
		q.mu.Lock()
		n := len(q.msgs)
		q.mu.Unlock()
		if n == 0 && time.Now().After(deadline.Add(-queueWait+100*time.Millisecond)) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	batch, _ := q.take(nil)
	if got+len(batch) != 4000 {
		t.Fatalf("took %d messages, want 4000", got+len(batch))
	}
}

// BenchmarkQueueDelivery is the queue's share of one delivery to an idle
// connection: the push that claims the writer role, the take of the
// message and the take that finds the queue empty and gives the role back.
func BenchmarkQueueDelivery(b *testing.B) {
	q, r := testQueue(256, 0)
	m := msg("message")
	var batch []*message
	b.ReportAllocs()
	for b.Loop() {
		q.push(m)
		batch, _ = q.take(batch[:0])
		if _, w := q.take(batch[:0]); !w.idle {
			b.Fatal("the writer role was not given back")
		}
	}
	if r.writes.Load() != int64(b.N) {
		b.Fatalf("%d writes started for %d pushes to an idle queue", r.writes.Load(), b.N)
	}
}

// TestQueueLagRule drives the coarse clock by hand: a queue whose oldest
// message has waited longer than the max lag behind a stalled writer is
// slow at the next push and at the take, except while a replay runs or
// drains.
func TestQueueLagRule(t *testing.T) {
	defer driveQueueClocks()()
	q, r := testQueue(100, time.Second)
	clocksAt(0)
	q.push(msg("a"))
	r.expect(t, "first push", 1, 0)
	q.stall() // the socket took less than was written
	clocksAt(900 * time.Millisecond)
	q.push(msg("b"))
	r.expect(t, "a push 0.9 s after the oldest message, max lag 1 s", 1, 0)
	clocksAt(1100 * time.Millisecond)
	q.pushAll([]*message{msg("c"), msg("d")})
	r.expect(t, "a push 1.1 s after the oldest message, max lag 1 s", 1, 1)
	if batch, w := q.take(nil); !w.lagging || len(batch) != 2 {
		t.Fatalf("take: %d messages, %+v; want a and b, lagging", len(batch), w)
	}
	// The take emptied the queue: the next message starts a new wait.
	clocksAt(5 * time.Second)
	q.push(msg("e"))
	clocksAt(5500 * time.Millisecond)
	if batch, w := q.take(nil); w.lagging || len(batch) != 1 {
		t.Fatalf("take: %d messages, %+v; want e, not lagging", len(batch), w)
	}

	q.replaying(1)
	q.push(msg("f"))
	clocksAt(20 * time.Second)
	q.push(msg("g"))
	r.expect(t, "a push behind a 14.5 s old message during a replay", 1, 1)
	if _, w := q.take(nil); w.lagging || !w.replaying {
		t.Fatalf("take during a replay: %+v, want replaying, not lagging", w)
	}
	q.push(msg("tail"))
	q.replaying(-1) // ends with its message still queued
	if _, w := q.take(nil); !w.replaying || !w.draining {
		t.Fatalf("take of what the replay queued before it ended: %+v, want replaying", w)
	}
	q.push(msg("h"))
	clocksAt(30 * time.Second)
	q.push(msg("i"))
	r.expect(t, "a push while the replay drains", 1, 1)
	if _, w := q.take(nil); w.lagging || w.replaying || !w.draining {
		t.Fatalf("take after the replay: %+v, want draining, not lagging", w)
	}
	q.push(msg("j"))
	clocksAt(40 * time.Second)
	q.drained() // the lag counts from now
	clocksAt(40*time.Second + 900*time.Millisecond)
	q.push(msg("k"))
	r.expect(t, "a push 0.9 s after the replay drained", 1, 1)
	clocksAt(41*time.Second + 100*time.Millisecond)
	q.push(msg("l"))
	r.expect(t, "a push 1.1 s after the replay drained", 1, 2)
}

// TestQueueLagWaitsForAStall: messages waiting while the connection waits
// its turn on the flush list wait for the server, whatever their age; the
// lag counts once a writer goroutine has the role.
func TestQueueLagWaitsForAStall(t *testing.T) {
	defer driveQueueClocks()()
	q, r := testQueue(100, time.Second)
	clocksAt(0)
	q.push(msg("a"))
	clocksAt(10 * time.Second)
	q.push(msg("b"))
	r.expect(t, "a push 10 s after the oldest message, the writer not stalled", 1, 0)
	if _, w := q.take(nil); w.lagging {
		t.Fatalf("take, the writer not stalled: %+v, want not lagging", w)
	}
	q.push(msg("c"))
	q.stall()
	clocksAt(11500 * time.Millisecond)
	q.push(msg("d"))
	r.expect(t, "a push 1.5 s after the oldest message, the writer stalled", 1, 1)
}

func TestQueueWithoutLagRule(t *testing.T) {
	defer driveQueueClocks()()
	q, r := testQueue(100, 0)
	clocksAt(0)
	q.push(msg("a"))
	clocksAt(time.Hour)
	q.push(msg("b"))
	r.expect(t, "max lag 0: a push behind an hour-old message", 1, 0)
}

// driveQueueClocks hands the queue's clocks to clocksAt for the rest
// of the test and returns what gives them back.
func driveQueueClocks() (restore func()) {
	coarse := coarseClock.Load()
	return func() { coarseClock.Store(coarse); drivenClock.Store(0) }
}

// clocksAt sets both of the queue's clocks to d after an arbitrary start.
func clocksAt(d time.Duration) {
	now := int64(time.Hour + d) // never 0, which would hand drivenClock back
	coarseClock.Store(now)
	drivenClock.Store(now)
}

// TestCatchingUpRounds steps lagState.catchingUp through a resumed
// client's catch-up: it is exempt while each round is shorter than the
// last, caught up once one takes less than the max lag, not catching up
// once one lasts as long as the last; and with no replay to catch up
// with, never exempt.
func TestCatchingUpRounds(t *testing.T) {
	const maxLag, ms = int64(100 * time.Millisecond), int64(time.Millisecond)
	var none lagState
	none.written = 10_000
	if none.catchingUp(2_000, 72*3600*1000*ms, maxLag) {
		t.Fatal("exempt with no replay to catch up with")
	}
	l := lagState{written: 1_000, replayed: 1_000, roundAt: 1}
	steps := []struct {
		at, delivered, written int64
		want                   bool
	}{
		{500 * ms, 600, 1_200, true},     // reading the replay: the first round is not bounded
		{1000 * ms, 1_000, 1_400, true},  // the replay read in 1 s: next, the 400 bytes written meanwhile
		{1300 * ms, 1_200, 1_450, true},  // 300 ms into a round after one of 1 s
		{1500 * ms, 1_400, 1_500, true},  // round two took 500 ms: round three, for 100 bytes
		{1550 * ms, 1_500, 1_510, false}, // 50 ms: caught up
	}
	for i, s := range steps {
		l.written = s.written
		if got := l.catchingUp(s.delivered, s.at, maxLag); got != s.want {
			t.Fatalf("step %d: catchingUp = %v, want %v (%+v)", i, got, s.want, l)
		}
	}
	slow := lagState{written: 1_000, replayed: 1_000, roundAt: 1}
	slow.written = 2_000
	if !slow.catchingUp(1_000, 1000*ms, maxLag) { // the replay read in 1 s; 1,000 more written
		t.Fatal("not exempt after reading the replay")
	}
	if !slow.catchingUp(1_500, 1900*ms, maxLag) {
		t.Fatal("not exempt 900 ms into a round after one of 1 s")
	}
	if slow.catchingUp(1_800, 2000*ms, maxLag) || slow.markAt != 1000*ms || slow.markBytes != 2_000 {
		t.Fatalf("exempt, or marked %+v, after a round as long as the last: want the lag counted from its start", slow)
	}
}
