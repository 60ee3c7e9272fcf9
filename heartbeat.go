package partyline

import (
	"sync"
	"time"
)

// heartbeat pings every connection once per ping interval from a single
// goroutine, and drops the connections not heard from within the pong wait.
// Connections are dealt round-robin into slots, one slot is visited per
// tick, and a tick is a fraction of the interval, so pings are spread evenly
// over it. It costs no timer and no goroutine per connection; the goroutine
// runs only while there are connections.
type heartbeat struct {
	interval, wait time.Duration
	emptied        chan struct{} // signalled when the last connection leaves

	mu      sync.Mutex // guards the following
	slots   []map[*Conn]struct{}
	next    int // the slot the next connection goes to
	count   int
	running bool
}

// heartbeatTick is the shortest time between two ticks; at most
// maxHeartbeatSlots ticks make an interval.
const (
	heartbeatTick     = 20 * time.Millisecond
	maxHeartbeatSlots = 64
)

func newHeartbeat(interval, wait time.Duration) *heartbeat {
	n := int(min(max(interval/heartbeatTick, 1), maxHeartbeatSlots))
	h := &heartbeat{interval: interval, wait: wait, emptied: make(chan struct{}, 1), slots: make([]map[*Conn]struct{}, n)}
	for i := range h.slots {
		h.slots[i] = make(map[*Conn]struct{})
	}
	return h
}

// add starts heartbeats for c.
func (h *heartbeat) add(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.heartbeatSlot = int32(h.next)
	h.slots[h.next][c] = struct{}{}
	h.next = (h.next + 1) % len(h.slots)
	h.count++
	if !h.running {
		h.running = true
		go h.run()
	}
}

// remove stops heartbeats for c.
func (h *heartbeat) remove(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.slots[c.heartbeatSlot][c]; ok {
		delete(h.slots[c.heartbeatSlot], c)
		if h.count--; h.count == 0 {
			signal(h.emptied) // the goroutine ends now, not at its next tick
		}
	}
}

// run visits one slot per tick until no connection is left.
func (h *heartbeat) run() {
	ticker := time.NewTicker(h.interval / time.Duration(len(h.slots)))
	defer ticker.Stop()
	var due []*Conn
	for slot := 0; ; slot = (slot + 1) % len(h.slots) {
		select {
		case <-ticker.C:
		case <-h.emptied:
		}
		var live bool
		if due, live = h.due(slot, due[:0]); !live {
			return
		}
		now := tick() // also the lag rule's clock (lag.go)
		for _, c := range due {
			c.heartbeat(now, h.wait)
		}
		clear(due)
	}
}

// due appends the connections of slot to list. live is false, and the
// goroutine marked stopped, when there are no connections at all.
func (h *heartbeat) due(slot int, list []*Conn) (_ []*Conn, live bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count == 0 {
		h.running = false
		return list, false
	}
	for c := range h.slots[slot] {
		list = append(list, c)
	}
	return list, true
}
