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

func isSignalled(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestQueuePushUntilFull(t *testing.T) {
	q := newSendQueue(3)
	for i, f := range frames(3) {
		if full := q.push(f); full {
			t.Fatalf("push %d of 3 into a queue of 3 reported full", i)
		}
	}
	if full := q.push([]byte("x")); !full {
		t.Errorf("push into a full queue of 3 did not report full")
	}
	checkBatch(t, q.drain(nil), "0", "1", "2")
	if full := q.push([]byte("after")); full {
		t.Errorf("push after drain reported full")
	}
	checkBatch(t, q.drain(nil), "after")
	checkBatch(t, q.drain(nil))
}

func TestQueueDrainAppendsToBatch(t *testing.T) {
	q := newSendQueue(10)
	q.push([]byte("b"))
	q.push([]byte("c"))
	batch := append(make([][]byte, 0, 8), []byte("a"))
	checkBatch(t, q.drain(batch), "a", "b", "c")
}

func TestQueueReadySignal(t *testing.T) {
	q := newSendQueue(10)
	if isSignalled(q.ready) {
		t.Fatal("ready signalled on a new queue")
	}
	q.push([]byte("1"))
	if !isSignalled(q.ready) {
		t.Fatal("ready not signalled when the queue became non-empty")
	}
	q.push([]byte("2"))
	if isSignalled(q.ready) {
		t.Error("ready signalled again by a push onto a non-empty queue")
	}
	q.drain(nil)
	q.push([]byte("3"))
	if !isSignalled(q.ready) {
		t.Error("ready not signalled when the drained queue became non-empty again")
	}
}

func TestQueueClose(t *testing.T) {
	q := newSendQueue(2)
	q.push([]byte("dropped"))
	q.close()
	if full := q.push([]byte("x")); full {
		t.Error("push onto a closed queue reported full; want ignored")
	}
	checkBatch(t, q.drain(nil))
	if ok := q.pushPaced([]byte("x"), nil); ok {
		t.Error("pushPaced onto a closed queue returned true")
	}
	checkBatch(t, q.drain(nil))
	q.close() // twice is fine
}

func TestQueueDrainReleasesBurstMemory(t *testing.T) {
	q := newSendQueue(1000)
	for _, f := range frames(100) {
		q.push(f)
	}
	if got := len(q.drain(nil)); got != 100 {
		t.Fatalf("drained %d frames, want 100", got)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if cap(q.frames) > 64 {
		t.Errorf("after draining a burst of 100, the queue keeps capacity %d", cap(q.frames))
	}
}

func TestQueuePushPacedBelowHalf(t *testing.T) {
	q := newSendQueue(4)
	for i := range 2 {
		if ok := q.pushPaced([]byte(fmt.Sprint(i)), nil); !ok {
			t.Fatalf("pushPaced %d into an empty queue of 4 returned false", i)
		}
	}
	checkBatch(t, q.drain(nil), "0", "1")
}

// pushPacedAsync runs pushPaced on a goroutine and returns its result channel.
func pushPacedAsync(q *sendQueue, frame string, done <-chan struct{}) <-chan bool {
	result := make(chan bool, 1)
	go func() { result <- q.pushPaced([]byte(frame), done) }()
	return result
}

func expectBlocked(t *testing.T, result <-chan bool, what string) {
	t.Helper()
	select {
	case ok := <-result:
		t.Fatalf("%s returned %v; want it blocked", what, ok)
	case <-time.After(blockWait):
	}
}

func expectResult(t *testing.T, result <-chan bool, want bool, what string) {
	t.Helper()
	select {
	case ok := <-result:
		if ok != want {
			t.Fatalf("%s returned %v, want %v", what, ok, want)
		}
	case <-time.After(queueWait):
		t.Fatalf("%s still blocked after %v", what, queueWait)
	}
}

func TestQueuePushPacedWaitsForDrain(t *testing.T) {
	q := newSendQueue(4)
	q.push([]byte("a"))
	q.push([]byte("b")) // half full
	result := pushPacedAsync(q, "paced", nil)
	expectBlocked(t, result, "pushPaced into a half-full queue")
	checkBatch(t, q.drain(nil), "a", "b")
	expectResult(t, result, true, "pushPaced after drain")
	checkBatch(t, q.drain(nil), "paced")
}

func TestQueuePushPacedLeavesRoomForLive(t *testing.T) {
	q := newSendQueue(4)
	q.push([]byte("a"))
	q.push([]byte("b"))
	result := pushPacedAsync(q, "paced", nil)
	expectBlocked(t, result, "pushPaced into a half-full queue")
	// Live frames still fit while the replay waits.
	if full := q.push([]byte("live")); full {
		t.Error("push with a paced writer waiting reported full")
	}
	checkBatch(t, q.drain(nil), "a", "b", "live")
	expectResult(t, result, true, "pushPaced after drain")
}

func TestQueuePushPacedDone(t *testing.T) {
	q := newSendQueue(2)
	q.push([]byte("a"))
	done := make(chan struct{})
	result := pushPacedAsync(q, "paced", done)
	expectBlocked(t, result, "pushPaced into a half-full queue")
	close(done)
	expectResult(t, result, false, "pushPaced after done closed")
	checkBatch(t, q.drain(nil), "a")
}

func TestQueuePushPacedClose(t *testing.T) {
	q := newSendQueue(2)
	q.push([]byte("a"))
	result := pushPacedAsync(q, "paced", nil)
	expectBlocked(t, result, "pushPaced into a half-full queue")
	q.close()
	expectResult(t, result, false, "pushPaced after close")
}

func TestQueuePushPacedLimitOne(t *testing.T) {
	q := newSendQueue(1)
	if ok := q.pushPaced([]byte("a"), nil); !ok {
		t.Fatal("pushPaced into an empty queue of 1 returned false")
	}
	result := pushPacedAsync(q, "b", nil)
	expectBlocked(t, result, "pushPaced into a full queue of 1")
	checkBatch(t, q.drain(nil), "a")
	expectResult(t, result, true, "pushPaced after drain")
}

// TestQueueConcurrent runs pushers, a paced pusher and a drainer at once;
// under -race it checks the locking, and every frame arrives exactly once.
func TestQueueConcurrent(t *testing.T) {
	const pushers, perPusher, paced = 4, 200, 200
	q := newSendQueue(pushers*perPusher + paced)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range perPusher {
				if q.push([]byte(fmt.Sprintf("p%d-%d", p, i))) {
					t.Errorf("push reported full")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range paced {
			if !q.pushPaced([]byte(fmt.Sprintf("r-%d", i)), nil) {
				t.Errorf("pushPaced returned false")
				return
			}
		}
	})
	seen := make(map[string]bool)
	deadline := time.After(queueWait)
	for len(seen) < pushers*perPusher+paced {
		select {
		case <-q.ready:
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("received %d of %d frames in %v", len(seen), pushers*perPusher+paced, queueWait)
		}
		for _, f := range q.drain(nil) {
			if seen[string(f)] {
				t.Fatalf("frame %q delivered twice", f)
			}
			seen[string(f)] = true
		}
	}
	wg.Wait()
}
