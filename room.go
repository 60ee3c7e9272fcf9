package partyline

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline/internal/wire"
)

const (
	// gapWait is how long a room waits for a missing seq to arrive from the
	// broker before fetching it from the store.
	gapWait = 50 * time.Millisecond
	// maxPending bounds the out-of-order events a room buffers; beyond it
	// the room fills the gap from the store at once.
	maxPending = 4096
	// pageSize is how many messages one store read fetches when a room
	// fills a gap or a connection replays.
	pageSize = 100
)

// room is one room's state on this node: its subscribers, the last seq
// delivered to them, and the events waiting for a gap to close.
type room struct {
	name  string
	topic string
	hub   *hub

	refs int // guarded by hub.mu: connections in or joining the room

	initMu     sync.Mutex // serializes init and dispose; guards subscribed
	subscribed bool

	presenceMu sync.Mutex     // serializes presence changes; guards users
	users      map[string]int // local connections per user

	wasLarge atomic.Bool // the room was large when last listed or counted (onlineUsers)

	inboxMu    sync.Mutex // guards the following; never held with another lock
	inbox      []event    // events handed to the room, waiting for the next pass
	spare      []event    // the inbox's other buffer
	delivering bool       // a pass is running or about to: it takes the inbox

	mu       sync.Mutex // guards the following
	ready    bool
	disposed bool   // no more background work: the room is gone
	last     uint64 // the highest seq delivered to subscribers
	pending  map[uint64]event
	gapTimer *time.Timer
	subs     map[*Conn]*subscription
	members  []member // subs as a slice for fan-out; nil after a change
	batch    []event  // what the current pass delivers, in order (fanout.go)
	counts   []int64  // deliveries of each event of batch

	presenceOrder presenceOrder // the latest presence change delivered per user
	presenceSeen  uint64        // presence events delivered
	// recentPresence holds the latest presence events delivered, the nth
	// at n % its length: a joiner gets those delivered while its
	// online_users was asked for (enter).
	recentPresence [8]recentEvent
}

// recentEvent is a presence event as delivered: its frame, and the session
// it was not delivered to.
type recentEvent struct {
	msg    *message
	except string
}

// subscription is one connection's membership of a room.
type subscription struct {
	// after is the highest seq the connection has been sent; live chat at or
	// below it is skipped (the seam after a replay).
	after uint64
	// recovering holds back live chat while a replay runs.
	recovering bool
	// left is closed when the connection leaves the room; a replay stops,
	// and closes replayDone.
	left, replayDone chan struct{}
	// typed and lastTyping (Unix nanoseconds, not a time.Time: the
	// subscription then fits in 48 bytes, not 64) throttle the
	// connection's typing indicators.
	typed      bool
	lastTyping int64
}

func newRoom(h *hub, name string) *room {
	return &room{
		name:    name,
		topic:   roomTopicPrefix + name,
		hub:     h,
		users:   make(map[string]int),
		pending: make(map[uint64]event),
		subs:    make(map[*Conn]*subscription),
	}
}

// init subscribes the node to the room and learns its last seq, once.
// Events that arrive in between wait in pending.
func (r *room) init(ctx context.Context) error {
	r.initMu.Lock()
	defer r.initMu.Unlock()
	if r.subscribed {
		return nil
	}
	if err := r.hub.subscribe(ctx, r.topic); err != nil {
		return err
	}
	last, err := r.hub.srv.lastSeq(ctx, r.name)
	if err != nil {
		r.hub.unsubscribe(r.topic)
		return err
	}
	r.subscribed = true
	r.mu.Lock()
	r.ready, r.last = true, last
	r.drainPendingLocked()
	r.flushLocked()
	r.mu.Unlock()
	return nil
}

// dispose unsubscribes a room that has lost its last reference.
func (r *room) dispose() {
	r.initMu.Lock()
	defer r.initMu.Unlock()
	r.mu.Lock()
	r.disposed = true
	if r.gapTimer != nil && r.gapTimer.Stop() {
		r.hub.tasks.Done() // the timer's function will not run
	}
	r.gapTimer = nil
	r.mu.Unlock()
	if r.subscribed {
		r.subscribed = false
		r.hub.unsubscribe(r.topic)
	}
}

// handle takes one event of the room from the broker. Events are delivered
// in passes (fanout.go): the goroutine that finds the room idle delivers its
// event at once; events that arrive meanwhile wait in the inbox, and the
// next pass delivers them together, each subscriber's share of them in one
// write. So a room that cannot keep up with its publishers pays one write
// per subscriber per pass, not per message, and catches up. A publisher
// waits for no fan-out but that of its own event: the passes after it are
// a goroutine's, which runs while the inbox keeps filling.
func (r *room) handle(e event) {
	r.inboxMu.Lock()
	r.inbox = append(r.inbox, e)
	if r.delivering {
		r.inboxMu.Unlock()
		return
	}
	r.delivering = true
	r.inboxMu.Unlock()
	if !r.pass() {
		return
	}
	if !r.hub.startTask() {
		for r.pass() { // stopping: finish here rather than start a goroutine
		}
		return
	}
	go func() {
		defer r.hub.tasks.Done()
		for r.pass() {
		}
	}()
}

// maxSpareInbox bounds the capacity an emptied inbox keeps for the next one.
const maxSpareInbox = 1024

// pass delivers what the inbox holds, up to half a send queue: a pass's
// frames must fit a subscriber's queue, or the server's own delay would
// evict subscribers that keep up. It reports whether events are left or
// arrived meanwhile; the caller is then still the one delivering and must
// pass again.
func (r *room) pass() (more bool) {
	r.inboxMu.Lock()
	events := r.inbox
	if n := max(1, r.hub.srv.opts.SendQueue/2); len(events) > n {
		events = events[:n:n]
		r.inbox = append(r.spare[:0], r.inbox[n:]...)
	} else {
		r.inbox = r.spare
	}
	r.spare = nil
	r.inboxMu.Unlock()

	r.mu.Lock()
	for _, e := range events {
		r.handleLocked(e)
	}
	r.flushLocked()
	r.mu.Unlock()

	clear(events)
	if cap(events) > maxSpareInbox {
		events = nil
	}
	r.inboxMu.Lock()
	defer r.inboxMu.Unlock()
	r.spare = events[:0]
	if len(r.inbox) == 0 {
		r.delivering = false
		return false
	}
	return true
}

// handleLocked adds an event to the pass: in seq order for chat,
// buffering early arrivals and filling gaps from the store.
func (r *room) handleLocked(e event) {
	if e.kind != eventChat {
		if e.kind == eventPresence {
			if r.stalePresenceLocked(e) {
				return
			}
			r.presenceSeen++ // delivered in this pass, under this lock (pass)
			r.recentPresence[r.presenceSeen%uint64(len(r.recentPresence))] = recentEvent{e.msg, e.except}
		}
		r.batch = append(r.batch, e)
		return
	}
	switch {
	case !r.ready:
		r.pending[e.seq] = e
	case e.seq <= r.last:
		// Already delivered: a broker duplicate or a gap fill got it first.
	case e.seq == r.last+1:
		r.deliverLocked(e)
		r.drainPendingLocked()
	default:
		r.pending[e.seq] = e
		r.scheduleGapFillLocked()
	}
}

// deliverLocked adds the next chat message to the pass, for every live
// subscriber.
func (r *room) deliverLocked(e event) {
	r.batch = append(r.batch, e)
	r.last = e.seq
}

// drainPendingLocked delivers buffered events that have become next in line.
func (r *room) drainPendingLocked() {
	for {
		e, ok := r.pending[r.last+1]
		if !ok {
			break
		}
		delete(r.pending, e.seq)
		r.deliverLocked(e)
	}
	for seq := range r.pending {
		if seq <= r.last {
			delete(r.pending, seq)
		}
	}
	if len(r.pending) > 0 {
		r.scheduleGapFillLocked()
	}
}

func (r *room) scheduleGapFillLocked() {
	if r.gapTimer != nil || r.disposed || !r.hub.startTask() {
		return
	}
	wait := gapWait
	if len(r.pending) >= maxPending {
		wait = 0
	}
	r.gapTimer = time.AfterFunc(wait, func() {
		defer r.hub.tasks.Done()
		r.fillGap()
	})
}

// fillGap reads from the store the messages between the last delivered seq
// and the oldest pending one, which the broker lost or has yet to bring.
// A seq the store no longer has (trimmed by retention) is skipped.
func (r *room) fillGap() {
	r.mu.Lock()
	r.gapTimer = nil
	from, to := r.last, r.oldestPendingLocked()
	r.mu.Unlock()
	if to == 0 {
		return
	}
	messages, err := storeCall(r.hub, r.hub.inFlight, "history", func(ctx context.Context, store Store) ([]Message, error) {
		return store.History(ctx, r.name, HistoryQuery{Forward: true, After: from, Limit: int(min(to-from-1, pageSize))})
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.hub.srv.log.Warn("gap fill failed; retrying", "room", r.name, "err", err)
		r.scheduleGapFillLocked()
		return
	}
	r.catchUpLocked(messages, to)
}

// catchUpLocked delivers messages read from the store in order. When the
// store skips seqs (retention trimmed them), so does the room, up to limit.
func (r *room) catchUpLocked(messages []Message, limit uint64) {
	for _, m := range messages {
		if m.Seq <= r.last {
			continue
		}
		if m.Seq > r.last+1 {
			r.last = m.Seq - 1 // retention trimmed what lies between
		}
		e, ok := r.pending[m.Seq] // the broker's copy, already encoded
		if ok {
			delete(r.pending, m.Seq)
		} else {
			e = chatEvent(m)
			e.msg = e.deliverable(m.Room)
		}
		r.deliverLocked(e)
	}
	if len(messages) == 0 && limit > r.last+1 {
		r.last = limit - 1
	}
	r.drainPendingLocked()
	r.flushLocked()
}

func (r *room) oldestPendingLocked() uint64 {
	var oldest uint64
	for seq := range r.pending {
		if oldest == 0 || seq < oldest {
			oldest = seq
		}
	}
	return oldest
}

// resync delivers whatever the store has beyond the last delivered seq,
// after the broker may have lost events.
func (r *room) resync() {
	if !r.hub.startTask() {
		return
	}
	go func() {
		defer r.hub.tasks.Done()
		for range 1000 { // bounded: at most 100,000 messages per resync
			r.mu.Lock()
			from, gone := r.last, r.disposed
			r.mu.Unlock()
			if gone || r.hub.stopping() {
				return
			}
			messages, err := storeCall(r.hub, r.hub.inFlight, "history", func(ctx context.Context, store Store) ([]Message, error) {
				return store.History(ctx, r.name, HistoryQuery{Forward: true, After: from, Limit: pageSize})
			})
			if err != nil || len(messages) == 0 {
				return
			}
			r.mu.Lock()
			r.catchUpLocked(messages, 0)
			r.mu.Unlock()
		}
	}()
}

// refreshPresence sends online_users anew to only, or to every member
// when only is nil, unless the room has none or the hub stops. A list that
// a presence event overtook while it was asked for is asked for again, a
// few times at most, so that no member gets a list older than an event it
// was sent.
func (r *room) refreshPresence(only *Conn) {
	ctx, cancel := r.hub.backendContext()
	defer cancel()
	for range 3 {
		r.mu.Lock()
		seen, members := r.presenceSeen, len(r.subs)
		r.mu.Unlock()
		if members == 0 || r.hub.stopping() {
			return
		}
		users, count, err := r.onlineUsers(ctx)
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.presenceSeen == seen {
			m := newMessage(wire.AppendOnlineUsers(nil, r.name, users, count))
			for c := range r.subs {
				if only == nil || c == only {
					c.queue.push(m)
				}
			}
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// chatEvent turns a stored message into the event that announces it, its
// frame written into a buffer sized for it (wire.ChatLen).
func chatEvent(m Message) event {
	c := wire.Chat(m)
	return event{kind: eventChat, seq: m.Seq, payload: wire.AppendChat(make([]byte, 0, wire.ChatLen(c)), c)}
}

// presenceEvent is the user_joined or user_left event of d, its number in
// seq (presence_order.go).
func presenceEvent(d presenceDecision, except string, now time.Time) event {
	return event{
		kind:    eventPresence,
		seq:     d.number,
		except:  except,
		payload: wire.AppendPresenceChange(nil, d.joined, d.room, d.user, now.UnixMilli()),
	}
}

// enter makes c a member of the room: it counts the user's connections,
// announces the user's arrival when it is their first anywhere, and
// subscribes c, queueing joined and online_users before any live frame.
// With since set, c first replays what it missed (recover).
func (r *room) enter(ctx context.Context, c *Conn, since *uint64) (*subscription, error) {
	r.presenceMu.Lock()
	defer r.presenceMu.Unlock()
	h := r.hub
	var arrival *presenceDecision
	if r.users[c.username]++; r.users[c.username] == 1 {
		var err error
		if arrival, err = h.enterPresence(ctx, r.name, c.username); err != nil {
			delete(r.users, c.username)
			return nil, err
		}
		if arrival != nil {
			h.events.joined(r.name, c.username)
		}
	}
	// The count after the arrival decides how it is announced.
	seen := r.presenceEvents()
	users, count, err := r.onlineUsers(ctx)
	if arrival != nil {
		if err != nil {
			count = -1 // unknown: announced anyway, so that the leave below follows it
		}
		h.presenceChanged(ctx, *arrival, c.session, count)
	}
	if err != nil {
		r.decrementLocked(ctx, c)
		return nil, err
	}
	sub, recovered, err := r.recoveryPoint(ctx, since)
	if err != nil {
		r.decrementLocked(ctx, c)
		return nil, err
	}
	if missed := r.subscribe(c, sub, since != nil, recovered, users, count, seen); missed {
		r.refreshPresence(c)
	}
	return sub, nil
}

// presenceEvents returns how many presence events the room has delivered.
func (r *room) presenceEvents() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.presenceSeen
}

// sendRecentPresenceLocked sends c, a new member, the presence events
// delivered since the room had delivered seen, which went to the members
// before c was one, after the online_users that may predate them. It
// reports whether some are no longer held: c then needs a list anew. r.mu
// must be held.
func (r *room) sendRecentPresenceLocked(c *Conn, seen uint64) (missed bool) {
	held := uint64(len(r.recentPresence))
	for n := seen + 1; n <= r.presenceSeen; n++ {
		if r.presenceSeen-n >= held {
			missed = true
			continue
		}
		if e := r.recentPresence[n%held]; e.except != c.session {
			c.queue.push(e.msg)
		}
	}
	return missed
}

// subscribe makes sub c's subscription and queues joined and online_users
// (users, count), under the room's lock, so that the live chat that
// follows is what joined's seq says: after it, or, when sub recovers,
// after the replay; then the presence events delivered since the room had
// delivered seen (sendRecentPresenceLocked), reporting whether some were
// no longer held.
func (r *room) subscribe(c *Conn, sub *subscription, withRecovered, recovered bool, users []string, count int, seen uint64) (missed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !sub.recovering {
		sub.after = r.last
	}
	joined := joinedMessage(r.name, r.last, withRecovered, recovered, users, count)
	if sub.recovering {
		joined.seq = sub.after // the client has the room up to since; the replay brings the rest
	}
	c.queue.push(joined)
	r.subs[c] = sub
	r.members = nil
	return r.sendRecentPresenceLocked(c, seen)
}

// connections counts the room's subscribers on this node.
func (r *room) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// rejoined sends a member that joins again joined and online_users, under
// the room's lock, so that no chat after the joined seq comes before it.
// While a replay is under way the member does not have the room up to that
// seq yet: the replay moves its resume point (an SSE id), not joined.
func (r *room) rejoined(c *Conn, users []string, count int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	joined := joinedMessage(r.name, r.last, false, false, users, count)
	if sub := r.subs[c]; sub != nil && sub.recovering {
		joined.mark = markNone
	}
	c.queue.push(joined)
}

// resume restarts the delivery of the room to c, a member under old, from
// since: a replay under way stops, then joined and online_users (users,
// count) follow as for a join with since, and the subscription it returns
// replays from there if the store still holds since+1. The caller holds
// c's roomsMu, so c does not leave the room meanwhile.
func (r *room) resume(ctx context.Context, c *Conn, old *subscription, since uint64, users []string, count int) (*subscription, error) {
	if old.replayDone != nil {
		close(old.left)
		<-old.replayDone
		r.mu.Lock()
		old.left = nil // closed: exit must not close it again
		r.mu.Unlock()
	}
	sub, recovered, err := r.recoveryPoint(ctx, &since)
	if err != nil {
		return nil, err
	}
	sub.typed, sub.lastTyping = old.typed, old.lastTyping
	r.subscribe(c, sub, true, recovered, users, count, r.presenceEvents())
	return sub, nil
}

// mayRelayTyping reports whether a member's typing indicator may be
// relayed now, at most one per typingInterval, and counts it if so.
func (r *room) mayRelayTyping(sub *subscription, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sub.typed && time.Duration(now.UnixNano()-sub.lastTyping) < typingInterval {
		return false
	}
	sub.typed, sub.lastTyping = true, now.UnixNano()
	return true
}

// joinedMessage is joined and online_users in one message, so that
// nothing can come between them; it sets the room's resume point.
func joinedMessage(room string, seq uint64, withRecovered, recovered bool, users []string, count int) *message {
	b := wire.AppendJoined(nil, room, seq, withRecovered, recovered)
	b = wire.AppendOnlineUsers(append(b, '\n'), room, users, count)
	return markedMessage(b, markSeq, room, seq)
}

// recoveryPoint decides whether a join with since can resume: the store
// must still hold since+1, or since must be the room's last seq.
func (r *room) recoveryPoint(ctx context.Context, since *uint64) (sub *subscription, recovered bool, err error) {
	sub = &subscription{}
	if since == nil {
		return sub, false, nil
	}
	firstAfter := func() ([]Message, error) {
		return storeCall(r.hub, ctx, "history", func(ctx context.Context, store Store) ([]Message, error) {
			return store.History(ctx, r.name, HistoryQuery{Forward: true, After: *since, Limit: 1})
		})
	}
	next, err := firstAfter()
	if err != nil {
		return nil, false, err
	}
	if len(next) == 0 {
		last, err := r.hub.srv.lastSeq(ctx, r.name)
		if err != nil {
			return nil, false, err
		}
		if last > *since { // committed since History answered: ask again
			if next, err = firstAfter(); err != nil {
				return nil, false, err
			}
		}
		recovered = *since == last
	}
	if len(next) > 0 {
		recovered = next[0].Seq == *since+1
	}
	if recovered {
		sub.after, sub.recovering = *since, true
		sub.left, sub.replayDone = make(chan struct{}), make(chan struct{})
	}
	return sub, recovered, nil
}

// exit removes c from the room and announces the user's departure when it
// was their last connection anywhere.
func (r *room) exit(c *Conn) {
	r.mu.Lock()
	if sub := r.subs[c]; sub != nil && sub.left != nil {
		close(sub.left)
	}
	delete(r.subs, c)
	r.members = nil
	r.mu.Unlock()
	ctx, cancel := r.hub.backendContext()
	defer cancel()
	r.presenceMu.Lock()
	defer r.presenceMu.Unlock()
	r.decrementLocked(ctx, c)
}

// decrementLocked drops one of the user's connections; the last one leaves
// presence. r.presenceMu must be held.
func (r *room) decrementLocked(ctx context.Context, c *Conn) {
	if r.users[c.username]--; r.users[c.username] > 0 {
		return
	}
	delete(r.users, c.username)
	departure, err := r.hub.leavePresence(ctx, r.name, c.username)
	if err != nil {
		r.hub.srv.log.Warn("presence remove failed", "room", r.name, "user", c.username, "err", err)
		return
	}
	if departure != nil {
		r.hub.events.left(r.name, c.username)
		r.hub.presenceChanged(ctx, *departure, c.session, -1)
	}
}

// onlineUsers returns what online_users tells of the room: its users,
// sorted and unique, and their count; no users (an empty list) when the
// room is large. A room that was small when last looked at here is listed
// at once, in one Presence call as before rooms could be large; one that
// was large is counted first when the Presence is a Counter, so that it is
// not listed while it stays large.
func (r *room) onlineUsers(ctx context.Context) (users []string, count int, err error) {
	s := r.hub.srv
	if _, ok := s.opts.Presence.(Counter); ok && r.wasLarge.Load() {
		if count, err = s.countUsers(ctx, r.name); err != nil {
			return nil, 0, err
		}
		if s.largeRoom(count) {
			return []string{}, count, nil
		}
	}
	users, err = presenceCall(r.hub, ctx, "users", func(ctx context.Context, p Presence) ([]string, error) {
		return p.Users(ctx, r.name)
	})
	if err != nil {
		return nil, 0, err
	}
	large := s.largeRoom(len(users))
	r.wasLarge.Store(large)
	if large {
		return []string{}, len(users), nil
	}
	if !sort.StringsAreSorted(users) {
		sort.Strings(users)
	}
	return users, len(users), nil
}

// replay sends c the stored messages after sub.after, paced to the client,
// then switches it to live delivery at the seam: under the room's lock, once
// the replay has reached the last seq delivered live. It stops when the
// connection leaves the room or closes. A client that replays more slowly
// than the room fills may find the next message it needs gone, dropped by
// the store's retention: it cannot keep up, and is evicted as a slow
// consumer (4009), to resume as one, rather than get a gap.
func (r *room) replay(c *Conn, sub *subscription) {
	defer close(sub.replayDone)
	c.queue.replaying(1) // paced, never evicted for lagging
	defer c.queue.replaying(-1)
	r.mu.Lock()
	cursor := sub.after
	r.mu.Unlock()
	for {
		messages, err := storeCall(r.hub, r.hub.inFlight, "history", func(ctx context.Context, store Store) ([]Message, error) {
			return store.History(ctx, r.name, HistoryQuery{Forward: true, After: cursor, Limit: pageSize})
		})
		if err != nil {
			c.sendError(newError(CodeUnavailable, "recovery of "+r.name+" failed: store unavailable"), nil)
			c.close(closeInternalError, "recovery failed")
			return
		}
		for _, m := range messages {
			if m.Seq != cursor+1 {
				c.evict()
				return
			}
			if !c.queue.pushPaced(chatEvent(m).deliverable(m.Room), sub.left) {
				return
			}
			cursor = m.Seq
		}
		if len(messages) < pageSize && r.goLive(c, sub, cursor) {
			return
		}
	}
}

// goLive ends a replay that has reached the live stream, or whose
// connection has left the room.
func (r *room) goLive(c *Conn, sub *subscription, cursor uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs[c] != sub {
		return true
	}
	if cursor < r.last {
		return false
	}
	sub.after, sub.recovering = cursor, false
	return true
}
