package partyline

import "time"

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
	deliver(r.membersLocked(), events, counts)
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

// deliver pushes each member its share of events: the chat it is live for
// and the other events unless it sent them, at once, to leave in one write.
// A push costs no system call (the flush goroutines write, flush.go), so
// even a room of many thousands is pushed to from one goroutine. It adds
// to counts how many members got each event.
func deliver(members []member, events []event, counts []int64) {
	var smallMsgs [8]*message
	msgs := smallMsgs[:0]
	for _, m := range members {
		msgs = msgs[:0]
		for i := range events {
			e := &events[i]
			if e.kind == eventChat && (m.sub.recovering || e.seq <= m.sub.after) ||
				e.kind != eventChat && m.conn.session == e.except {
				continue
			}
			msgs = append(msgs, e.msg) // encoded once, for every subscriber
			counts[i]++
		}
		switch len(msgs) {
		case 0:
		case 1:
			m.conn.queue.push(msgs[0])
		default:
			m.conn.queue.pushAll(msgs)
		}
	}
}
