package partyline

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/partyline/partyline/internal/wire"
)

// Presence in large rooms (docs/protocol.md §5.5). A room of N users that
// all join would cost N² user_joined frames and N online_users lists of up
// to N names. So a room with more online users than
// Options.PresenceListMax is large: online_users carries only the count,
// and each node announces the arrivals and departures it decides in one
// presence_diff per presenceDiffInterval, fanned out like any room event.

const (
	// presenceDiffInterval is the least time between two presence_diff
	// frames of one room from one node.
	presenceDiffInterval = time.Second
	// presenceDiffNames caps each list of a presence_diff; the users
	// beyond it are only counted.
	presenceDiffNames = 100
)

// largeRoom reports whether a room of count online users is large.
func (s *Server) largeRoom(count int) bool {
	return s.opts.PresenceListMax >= 0 && count > s.opts.PresenceListMax
}

// presenceChanged tells the room's members of d: at
// once with user_joined or user_left while the room is small, or in the
// room's next presence_diff when it is large or has a presence_diff under
// way on this node, so that no change of a user overtakes an earlier one
// waiting in a diff. count is the room's online users after the change,
// or -1 when the caller does not know it. except is the session not to
// tell (the one that joined or left). When the room cannot be counted the
// change is announced at once, as in a small room.
func (h *hub) presenceChanged(ctx context.Context, d presenceDecision, except string, count int) {
	if !h.batchPresence(ctx, d.room, d.user, d.joined, count) {
		h.publish(ctx, roomTopicPrefix+d.room, presenceEvent(d, except, h.srv.opts.Now()))
	}
}

// batchPresence adds the change to room's pending presence_diff if the room
// is large or already has one, starting the room's diff goroutine, and
// reports whether it did.
func (h *hub) batchPresence(ctx context.Context, room, user string, joined bool, count int) bool {
	h.diffMu.Lock()
	if d := h.diffs[room]; d != nil {
		d.add(user, joined)
		h.diffMu.Unlock()
		return true
	}
	h.diffMu.Unlock()
	if count < 0 {
		n, err := h.srv.countUsers(ctx, room)
		if err != nil {
			return false
		}
		count = n
	}
	if !h.srv.largeRoom(count) {
		return false
	}
	h.diffMu.Lock()
	defer h.diffMu.Unlock()
	d := h.diffs[room]
	if d == nil {
		if !h.startTask() {
			return false // stopping: announce it at once
		}
		d = &presenceDiff{}
		if h.diffs == nil {
			h.diffs = make(map[string]*presenceDiff)
		}
		h.diffs[room] = d
		go h.announceDiffs(room)
	}
	d.add(user, joined)
	return true
}

// announceDiffs is the diff goroutine of a room whose presence changes are
// batched on this node. It announces the changes in a presence_diff at
// once, then the changes of each following interval, and ends after an
// interval without any: a room whose members stay put has no goroutine.
// Once the hub stops it announces what is left without waiting.
func (h *hub) announceDiffs(room string) {
	defer h.tasks.Done()
	timer := time.NewTimer(presenceDiffInterval)
	defer timer.Stop()
	for {
		h.diffMu.Lock()
		pending := h.diffs[room]
		if pending.empty() {
			delete(h.diffs, room)
			h.diffMu.Unlock()
			return
		}
		h.diffs[room] = &presenceDiff{}
		h.diffMu.Unlock()

		if !h.announceDiff(room, pending) && !h.stopping() {
			h.diffMu.Lock()
			pending.addLater(h.diffs[room]) // to be tried again with what came since
			h.diffs[room] = pending
			h.diffMu.Unlock()
		}
		timer.Reset(presenceDiffInterval)
		select {
		case <-timer.C:
		case <-h.quit:
		}
	}
}

// announceDiff publishes room's changes with the room's count; it reports
// false when the count could not be had.
func (h *hub) announceDiff(room string, changes *presenceDiff) bool {
	ctx, cancel := h.backendContext()
	defer cancel()
	count, err := h.srv.countUsers(ctx, room)
	if err != nil {
		h.srv.log.Warn("presence count failed; presence_diff delayed", "room", room, "err", err)
		return false
	}
	d := changes.frame(room, count, h.srv.opts.Now())
	h.publish(ctx, roomTopicPrefix+room, event{kind: eventPresence, payload: wire.AppendPresenceDiff(nil, d)})
	return true
}

// presenceDiff collects one room's presence changes on this node between
// two presence_diff frames. Guarded by hub.diffMu.
type presenceDiff struct {
	changes map[string]presenceChange // by user
	next    uint64                    // order of the next change
}

// presenceChange is the net change of one user within a diff.
type presenceChange struct {
	joined bool
	order  uint64 // when it happened, among the diff's changes
}

// add notes that user joined (or left). A join and a leave of one user
// cancel out: they were online before and still are (or were not and
// still are not), so the diff names them in neither list.
func (d *presenceDiff) add(user string, joined bool) {
	if d.changes == nil {
		d.changes = make(map[string]presenceChange)
	}
	if c, ok := d.changes[user]; ok && c.joined != joined {
		delete(d.changes, user)
		return
	}
	d.changes[user] = presenceChange{joined: joined, order: d.next}
	d.next++
}

// addLater adds the changes of later, which happened after d's, in order.
func (d *presenceDiff) addLater(later *presenceDiff) {
	for _, user := range later.users() {
		d.add(user, later.changes[user].joined)
	}
}

func (d *presenceDiff) empty() bool { return d == nil || len(d.changes) == 0 }

// users returns the users with a change, in the order of their changes.
func (d *presenceDiff) users() []string {
	users := make([]string, 0, len(d.changes))
	for user := range d.changes {
		users = append(users, user)
	}
	slices.SortFunc(users, func(a, b string) int { return cmp.Compare(d.changes[a].order, d.changes[b].order) })
	return users
}

// frame returns the presence_diff of d: the users who joined and who left,
// each in the order they did, up to presenceDiffNames of each.
func (d *presenceDiff) frame(room string, count int, now time.Time) wire.PresenceDiff {
	f := wire.PresenceDiff{Room: room, Joined: []string{}, Left: []string{}, Count: count, Timestamp: now.UnixMilli()}
	for _, user := range d.users() {
		list, more := &f.Left, &f.LeftMore
		if d.changes[user].joined {
			list, more = &f.Joined, &f.JoinedMore
		}
		if len(*list) < presenceDiffNames {
			*list = append(*list, user)
		} else {
			*more++
		}
	}
	return f
}
