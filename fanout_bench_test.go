package partyline

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/partyline/partyline/internal/wire"
)

// fanoutDrainEvery is how many messages a benchmark connection's queue
// holds before its "writer" drains it: well under the default queue of 256,
// so nobody is evicted, and small enough that drain keeps the queue's
// backing array (append grows a [][]byte to capacity 37, then 74, and drain
// drops any above 64), so what is measured is the fan-out, not the queue
// regrowing after each batch.
const fanoutDrainEvery = 32

// benchConn is a subscriber with only a queue: room.handle's delivery path
// needs no WebSocket.
func benchConn(s *Server, i int) *Conn {
	c := &Conn{
		srv:      s,
		session:  fmt.Sprintf("s%d", i),
		username: fmt.Sprintf("user%d", i),
	}
	c.queue.init(c, s.opts.SendQueue, s.opts.MaxLag)
	c.queue.writing = true // the benchmark is the writer: never start one
	return c
}

// BenchmarkFanout measures a room delivering one chat message, already
// encoded, to every subscriber: room.handle → a pass → flushLocked →
// sendQueue.push, per message and per delivery.
func BenchmarkFanout(b *testing.B) {
	for _, subscribers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			benchmarkFanout(b, subscribers)
		})
	}
}

func benchmarkFanout(b *testing.B, subscribers int) {
	s, err := New(Options{})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	r, err := s.hub.acquireRoom(ctx, "bench")
	if err != nil {
		b.Fatalf("acquireRoom: %v", err)
	}
	conns := make([]*Conn, subscribers)
	r.mu.Lock()
	for i := range conns {
		conns[i] = benchConn(s, i)
		r.subs[conns[i]] = &subscription{}
	}
	first := r.last + 1
	r.mu.Unlock()
	b.Cleanup(func() {
		r.mu.Lock()
		clear(r.subs)
		r.mu.Unlock()
		s.hub.releaseRoom(r)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
	})

	payload := wire.AppendChat(nil, wire.Chat{Room: "bench", Seq: first, ID: "0123456789abcdef01234567",
		Username: "alice", Content: "hello, everyone in the room", Timestamp: time.Now().UnixMilli()})
	published := time.Now().UnixNano()
	var batch []*message
	delivered := 0
	drainAll := func() {
		for _, c := range conns {
			batch, _ = c.queue.take(batch[:0])
			c.queue.writing = true // the benchmark is the writer: never start one
			delivered += len(batch)
			clear(batch)
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	seq, messages := first, 0
	b.ReportAllocs()
	for b.Loop() {
		e := event{kind: eventChat, seq: seq, at: published, payload: payload}
		e.msg = e.deliverable("bench")
		r.handle(e)
		seq++
		if messages++; messages%fanoutDrainEvery == 0 {
			b.StopTimer()
			drainAll()
			b.StartTimer()
		}
	}
	runtime.ReadMemStats(&after)
	drainAll()

	// The benchmark did the work it claims: every subscriber got every
	// message once, nobody was evicted, and nothing is left pending.
	if want := messages * subscribers; delivered != want {
		b.Fatalf("%d frames delivered, want %d messages × %d subscribers = %d", delivered, messages, subscribers, want)
	}
	for _, c := range conns {
		if c.isClosing() {
			b.Fatalf("subscriber %s was closed (%d %q) during the benchmark", c.session, c.closeCode, c.closeReason)
		}
	}
	r.mu.Lock()
	last, pending := r.last, len(r.pending)
	r.mu.Unlock()
	if last != seq-1 || pending != 0 {
		b.Fatalf("room at seq %d with %d pending, want seq %d and none pending", last, pending, seq-1)
	}

	deliveries := float64(messages * subscribers)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
}
