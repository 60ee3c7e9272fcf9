package partyline

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// queueWait bounds every wait of the queue tests; blockWait is how long a
// call must stay blocked to count as blocked.
const (
	queueWait = 5 * time.Second
	blockWait = 50 * time.Millisecond
)

func frames(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprint(i))
	}
	return out
}

func checkBatch(t *testing.T, got [][]byte, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("drained %d frames %q, want %d %q", len(got), got, len(want), want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("frame %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestQueueStartsOneWriterAndStopsWhenIdle(t *testing.T) {
	q := newSendQueue(4, 0)
	if full, start := q.push([]byte("a")); full || !start {
		t.Fatalf("first push: full %v start %v, want a writer started", full, start)
	}
	if _, start := q.push([]byte("b")); start {
		t.Fatal("second push started another writer while one runs")
	}
	batch, w := q.take(nil)
	checkBatch(t, batch, "a", "b")
	if w.ping || w.closing || w.idle {
		t.Fatalf("take: %+v, want only frames", w)
	}
	if _, w := q.take(nil); !w.idle {
		t.Fatal("take of an empty queue did not tell the writer to stop")
	}
	if _, start := q.push([]byte("c")); !start {
		t.Fatal("push after the writer stopped did not start a new one")
	}
}

func TestQueuePushUntilFull(t *testing.T) {
	q := newSendQueue(3, 0)
	for i, f := range frames(3) {
		if full, _ := q.push(f); full {
			t.Fatalf("push %d reported full below the limit", i)
		}
	}
	if full, _ := q.push([]byte("x")); !full {
		t.Fatal("push beyond the limit was not reported full")
	}
	batch, _ := q.take(nil)
	checkBatch(t, batch, "0", "1", "2")
}

func TestQueueTakeAppendsToBatch(t *testing.T) {
	q := newSendQueue(4, 0)
	q.push([]byte("b"))
	batch, _ := q.take([][]byte{[]byte("a")})
	checkBatch(t, batch, "a", "b")
}

func TestQueuePingAndClose(t *testing.T) {
	q := newSendQueue(4, 0)
	if !q.requestPing() {
		t.Fatal("a ping on a quiet queue did not start a writer")
	}
	if _, w := q.take(nil); !w.ping || w.closing {
		t.Fatalf("take: %+v, want a ping", w)
	}
	q.push([]byte("last words"))
	q.requestClose(false)
	batch, w := q.take(nil)
	checkBatch(t, batch, "last words")
	if !w.closing || w.idle {
		t.Fatalf("take after close: %+v, want the close", w)
	}
	if full, start := q.push([]byte("late")); full || start {
		t.Fatal("a push after close was accepted")
	}
	if q.requestPing() {
		t.Fatal("a ping after close started a writer")
	}
}

func TestQueueCloseWithDropDiscardsFrames(t *testing.T) {
	q := newSendQueue(4, 0)
	q.push([]byte("stale"))
	q.take(nil)
	q.push([]byte("never sent"))
	if q.requestClose(true) {
		t.Fatal("close started a second writer while one runs")
	}
	if batch, w := q.take(nil); len(batch) != 0 || !w.closing {
		t.Fatalf("take after an evicting close: %q %+v, want no frames and the close", batch, w)
	}
}

func TestQueueTakeReleasesBurstMemory(t *testing.T) {
	q := newSendQueue(1000, 0)
	for _, f := range frames(100) {
		q.push(f)
	}
	q.take(nil)
	if q.frames != nil {
		t.Fatalf("after draining a burst the queue keeps capacity %d", cap(q.frames))
	}
}

func TestQueuePushPacedWaitsForRoom(t *testing.T) {
	q := newSendQueue(4, 0)
	started := 0
	start := func() { started++ }
	done := make(chan struct{})
	for i, f := range frames(2) {
		if !q.pushPaced(f, done, nil, start) {
			t.Fatalf("paced push %d below half refused", i)
		}
	}
	if started != 1 {
		t.Fatalf("paced pushes started %d writers, want 1", started)
	}
	result := make(chan bool, 1)
	go func() { result <- q.pushPaced([]byte("2"), done, nil, start) }()
	select {
	case <-result:
		t.Fatal("a paced push at half the queue did not wait")
	case <-time.After(blockWait):
	}
	q.push([]byte("live")) // live frames still fit above half
	q.take(nil)
	select {
	case ok := <-result:
		if !ok {
			t.Fatal("paced push failed after room was made")
		}
	case <-time.After(queueWait):
		t.Fatal("paced push still blocked after the writer took the frames")
	}
	close(done)
	q.push([]byte("x"))
	q.push([]byte("y"))
	if q.pushPaced([]byte("z"), done, nil, start) {
		t.Fatal("paced push on a half-full queue succeeded after done closed")
	}
}

func TestQueueConcurrent(t *testing.T) {
	q := newSendQueue(1<<20, 0)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				q.push([]byte(fmt.Sprint(p, i)))
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
		n := len(q.frames)
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
		t.Fatalf("took %d frames, want 4000", got+len(batch))
	}
}

// BenchmarkQueueDelivery is the queue's share of one delivery to an idle
// connection: the push that claims the writer role, the take of the frame
// and the take that finds the queue empty and gives the role back.
func BenchmarkQueueDelivery(b *testing.B) {
	q := newSendQueue(256, 0)
	frame := []byte("frame")
	var batch [][]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, claimed := q.push(frame); !claimed {
			b.Fatal("the push did not claim the writer role")
		}
		batch, _ = q.take(batch[:0])
		if _, w := q.take(batch[:0]); !w.idle {
			b.Fatal("the writer role was not given back")
		}
	}
}

// TestQueueLagRule drives the coarse clock by hand: a queue whose oldest
// frame has waited longer than the max lag is slow at the next push and at
// the take, except while a replay runs or drains.
func TestQueueLagRule(t *testing.T) {
	defer coarseClock.Store(coarseClock.Load())
	at := func(d time.Duration) { coarseClock.Store(int64(time.Hour + d)) }
	q := newSendQueue(100, time.Second)
	at(0)
	if slow, claimed := q.push([]byte("a")); slow || !claimed {
		t.Fatalf("first push: slow %v claimed %v, want a writer", slow, claimed)
	}
	at(900 * time.Millisecond)
	if slow, _ := q.push([]byte("b")); slow {
		t.Fatal("a push 0.9 s after the oldest frame, max lag 1 s: slow")
	}
	at(1100 * time.Millisecond)
	if slow, _ := q.pushAll([][]byte{[]byte("c"), []byte("d")}); !slow {
		t.Fatal("a push 1.1 s after the oldest frame, max lag 1 s: not slow")
	}
	if batch, w := q.take(nil); !w.lagging || len(batch) != 2 {
		t.Fatalf("take: %q %+v, want a and b, lagging", batch, w)
	}
	// The take emptied the queue: the next frame starts a new wait.
	at(5 * time.Second)
	q.push([]byte("e"))
	at(5500 * time.Millisecond)
	if batch, w := q.take(nil); w.lagging || len(batch) != 1 {
		t.Fatalf("take: %q %+v, want e, not lagging", batch, w)
	}

	q.replaying(1)
	q.push([]byte("f"))
	at(20 * time.Second)
	if slow, _ := q.push([]byte("g")); slow {
		t.Fatal("a push behind a 14.5 s old frame during a replay: slow")
	}
	if _, w := q.take(nil); w.lagging || !w.replaying {
		t.Fatalf("take during a replay: %+v, want replaying, not lagging", w)
	}
	q.replaying(-1)
	q.push([]byte("h"))
	at(30 * time.Second)
	if slow, _ := q.push([]byte("i")); slow {
		t.Fatal("a push while the replay drains: slow")
	}
	if _, w := q.take(nil); w.lagging || w.replaying || !w.draining {
		t.Fatalf("take after the replay: %+v, want draining, not lagging", w)
	}
	q.push([]byte("j"))
	at(40 * time.Second)
	q.drained() // the lag counts from now
	at(40*time.Second + 900*time.Millisecond)
	if slow, _ := q.push([]byte("k")); slow {
		t.Fatal("a push 0.9 s after the replay drained: slow")
	}
	at(41*time.Second + 100*time.Millisecond)
	if slow, _ := q.push([]byte("l")); !slow {
		t.Fatal("a push 1.1 s after the replay drained: not slow")
	}
}

func TestQueueWithoutLagRule(t *testing.T) {
	defer coarseClock.Store(coarseClock.Load())
	q := newSendQueue(100, 0)
	coarseClock.Store(0)
	q.push([]byte("a"))
	coarseClock.Store(int64(time.Hour))
	if slow, _ := q.push([]byte("b")); slow {
		t.Fatal("max lag 0: a push behind an hour-old frame is slow")
	}
}
