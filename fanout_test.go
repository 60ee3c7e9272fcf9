package partyline

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

// TestEventsArrivingDuringAPassWait checks that handing a room an event
// while a pass runs does not wait for that pass, and that what arrives
// meanwhile is delivered by the next pass, in order.
func TestEventsArrivingDuringAPassWait(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	r, err := s.hub.acquireRoom(context.Background(), "passes")
	if err != nil {
		t.Fatal(err)
	}
	defer s.hub.releaseRoom(r)
	c := benchConn(s, 0) // its queue never starts a writer: the test takes
	chat := func(seq uint64) event { return chatWith(seq, fmt.Sprint(seq)) }
	r.mu.Lock()
	r.subs[c] = &subscription{}
	first := r.last + 1
	// Hold the room's lock, as a long pass would: the first event's
	// goroutine becomes the one delivering, and waits.
	done := make(chan struct{})
	go func() { r.handle(chat(first)); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r.inboxMu.Lock()
		taken := r.delivering && len(r.inbox) == 0
		r.inboxMu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first event's pass did not start")
		}
	}
	r.handle(chat(first + 1)) // would deadlock if it waited for the pass
	r.handle(chat(first + 2))
	r.mu.Unlock()
	<-done
	var got []*message
	for deadline := time.Now().Add(5 * time.Second); len(got) < 3; time.Sleep(time.Millisecond) {
		c.queue.mu.Lock()
		queued := len(c.queue.msgs)
		c.queue.mu.Unlock()
		if queued > 0 { // a take of nothing would give the writer role back
			batch, _ := c.queue.take(nil)
			got = append(got, batch...)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages delivered, want 3", len(got))
		}
	}
	for i, m := range got {
		if want := fmt.Sprint(first + uint64(i)); string(m.payload) != want {
			t.Fatalf("message %d is %q, want %q", i, m.payload, want)
		}
	}
}

// TestAPassFitsTheSendQueue hands a room more events at once than half a
// send queue: they are delivered over several passes, so that a subscriber
// that keeps up is never evicted for the size of a pass.
func TestAPassFitsTheSendQueue(t *testing.T) {
	s, err := New(Options{SendQueue: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	r, err := s.hub.acquireRoom(context.Background(), "passes")
	if err != nil {
		t.Fatal(err)
	}
	defer s.hub.releaseRoom(r)
	c := benchConn(s, 0)
	r.mu.Lock()
	r.subs[c] = &subscription{}
	first := r.last + 1
	r.mu.Unlock()
	r.inboxMu.Lock()
	for i := range 10 {
		r.inbox = append(r.inbox, chatWith(first+uint64(i), fmt.Sprint(i)))
	}
	r.delivering = true
	r.inboxMu.Unlock()
	var got []*message
	for passes := 1; ; passes++ {
		more := r.pass()
		batch, _ := c.queue.take(nil)
		if len(batch) > 4 {
			t.Fatalf("pass %d delivered %d messages, want at most half the queue of 8", passes, len(batch))
		}
		got = append(got, batch...)
		if !more {
			break
		}
	}
	if len(got) != 10 || c.isClosing() {
		t.Fatalf("%d messages delivered, closing %v; want all 10 and no eviction", len(got), c.isClosing())
	}
}

// chatWith is a room's chat event with seq and payload, as a node receives
// it from the broker.
func chatWith(seq uint64, payload string) event {
	e := event{kind: eventChat, seq: seq, payload: []byte(payload)}
	e.msg = e.deliverable("passes")
	return e
}

// TestSubscriptionSize guards the size of a subscription, which every
// membership of every connection has: 48 bytes on 64-bit systems.
func TestSubscriptionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit systems")
	}
	if size := unsafe.Sizeof(subscription{}); size > 48 {
		t.Errorf("a subscription is %d bytes, want at most 48", size)
	}
}
