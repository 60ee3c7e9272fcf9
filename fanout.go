package partyline

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// parallelFanout is the room size from which one delivery is split across
// the CPUs: below it, starting goroutines costs more than it saves.
const parallelFanout = 256

// member is one entry of a room's subscriber list.
type member struct {
	conn *Conn
	sub  *subscription
}

// membersLocked returns the room's subscribers as a slice, rebuilt only
// after the membership changed. r.mu must be held.
func (r *room) membersLocked() []member {
	if r.members == nil {
		r.members = make([]member, 0, len(r.subs))
		for c, sub := range r.subs {
			r.members = append(r.members, member{c, sub})
		}
	}
	return r.members
}

// flushLocked delivers the pass's events (room.batch) to every subscriber
// and counts each chat message's deliveries. The caller holds r.mu.
func (r *room) flushLocked() {
	events := r.batch
	if len(events) == 0 {
		return
	}
	tick() // the lag rule's clock (lag.go)
	counts := r.counts[:0]
	for range events {
		counts = append(counts, 0)
	}
	fanOut(r.membersLocked(), func(part []member) { deliverPart(part, events, counts) })
	now := time.Now().UnixNano()
	for i := range events {
		if e := &events[i]; e.kind == eventChat {
			latency := time.Duration(0)
			if e.at != 0 {
				latency = time.Duration(now - e.at)
			}
			r.hub.srv.opts.Metrics.MessageOut(int(counts[i]), latency)
		}
	}
	clear(events)
	r.batch, r.counts = events[:0], counts[:0]
	if cap(events) > maxSpareInbox {
		r.batch, r.counts = nil, nil
	}
}

// deliverPart sends each member of part its share of events: the chat it is
// live for and the other events unless it sent them, pushed at once and
// written in one write. It adds to counts how many members got each event.
func deliverPart(part []member, events []event, counts []int64) {
	var smallMsgs [8]*message
	var smallCounts [8]int64
	msgs, got := smallMsgs[:0], smallCounts[:0]
	for range events {
		got = append(got, 0)
	}
	for _, m := range part {
		msgs = msgs[:0]
		for i := range events {
			e := &events[i]
			if e.kind == eventChat && (m.sub.recovering || e.seq <= m.sub.after) ||
				e.kind != eventChat && m.conn.session == e.except {
				continue
			}
			msgs = append(msgs, e.msg) // encoded once, for every subscriber
			got[i]++
		}
		switch len(msgs) {
		case 0:
		case 1:
			m.conn.queue.push(msgs[0])
		default:
			m.conn.queue.pushAll(msgs)
		}
	}
	for i, n := range got {
		atomic.AddInt64(&counts[i], n)
	}
}

// fanOut calls send with parts of members that together hold each member
// once. A large room is split in one part per CPU, the calling goroutine
// taking the first; it returns when all are done, so deliveries stay in
// order. send may read members' subscriptions: the caller holds r.mu
// throughout.
func fanOut(members []member, send func(part []member)) {
	chunks := min(runtime.GOMAXPROCS(0), len(members)/(parallelFanout/2))
	if len(members) < parallelFanout || chunks < 2 {
		send(members)
		return
	}
	size := (len(members) + chunks - 1) / chunks
	chunks = (len(members) + size - 1) / size // no chunk starts past the end
	var wg sync.WaitGroup
	for i := 1; i < chunks; i++ {
		part := members[i*size : min((i+1)*size, len(members))]
		wg.Go(func() { send(part) })
	}
	send(members[:size])
	wg.Wait()
}
