package partyline

import (
	"context"
	"encoding/json"
	"time"
)

// Presence changes in the cluster's order. Two nodes announce what they
// decide on two connections to the Broker, which may reorder them: when a
// user's last connection on node A leaves as their first on node B
// arrives, node C could get B's user_joined before A's user_left and take
// the user for gone. An OrderedPresence numbers every first and last
// decision in one order; the announcement carries the number in its seq,
// and a room drops an announcement older than the latest it delivered for
// the same user (presenceOrder). Announcements without a number (from a
// Presence that does not number, from expiry and restore, or from a node
// of an earlier version) are always delivered.

// presenceDecision is a user's arrival in a room or departure from it, as
// the Presence decided it cluster-wide.
type presenceDecision struct {
	room, user string
	joined     bool
	number     uint64 // the decision's place in the cluster's order, or 0
}

// enterPresence records that user has a connection in room on this node,
// and returns the change when no node had the user there before.
func (h *hub) enterPresence(ctx context.Context, room, user string) (*presenceDecision, error) {
	return presenceCall(h, ctx, "add", func(ctx context.Context, p Presence) (*presenceDecision, error) {
		first, number, err := addOrdered(ctx, p, room, user)
		if !first || err != nil {
			return nil, err
		}
		return &presenceDecision{room: room, user: user, joined: true, number: number}, nil
	})
}

// leavePresence records that user has no connection left in room on this
// node, and returns the change when no node has the user there any more.
func (h *hub) leavePresence(ctx context.Context, room, user string) (*presenceDecision, error) {
	return presenceCall(h, ctx, "remove", func(ctx context.Context, p Presence) (*presenceDecision, error) {
		last, number, err := removeOrdered(ctx, p, room, user)
		if !last || err != nil {
			return nil, err
		}
		return &presenceDecision{room: room, user: user, number: number}, nil
	})
}

// addOrdered is p's AddOrdered, or its Add with no number.
func addOrdered(ctx context.Context, p Presence, room, user string) (bool, uint64, error) {
	if o, ok := p.(OrderedPresence); ok {
		return o.AddOrdered(ctx, room, user)
	}
	first, err := p.Add(ctx, room, user)
	return first, 0, err
}

// removeOrdered is p's RemoveOrdered, or its Remove with no number.
func removeOrdered(ctx context.Context, p Presence, room, user string) (bool, uint64, error) {
	if o, ok := p.(OrderedPresence); ok {
		return o.RemoveOrdered(ctx, room, user)
	}
	last, err := p.Remove(ctx, room, user)
	return last, 0, err
}

// presenceOrderWindow is how long a room remembers the number of a user's
// latest presence change: far longer than the broker takes to deliver an
// announcement, reordered or not, and short enough that a room with many
// comings and goings does not remember every user it ever saw.
const presenceOrderWindow = time.Minute

// presenceOrder remembers, per user, the number of the latest presence
// change a room delivered, for between one and two windows.
type presenceOrder struct {
	latest, older map[string]uint64
	since         time.Time // when latest began
}

// fresh reports whether the change numbered number of user is newer than
// every change of the user remembered, and remembers it if so.
func (o *presenceOrder) fresh(user string, number uint64, now time.Time) bool {
	if age := now.Sub(o.since); age >= presenceOrderWindow {
		o.older, o.latest, o.since = o.latest, nil, now
		if age >= 2*presenceOrderWindow {
			o.older = nil
		}
	}
	if number <= max(o.latest[user], o.older[user]) {
		return false
	}
	if o.latest == nil {
		o.latest = make(map[string]uint64)
	}
	o.latest[user] = number
	return true
}

// stalePresenceLocked reports whether e, a presence event, announces a
// change older than one the room has delivered for the same user. r.mu
// must be held.
func (r *room) stalePresenceLocked(e event) bool {
	if e.seq == 0 {
		return false
	}
	var frame struct {
		Username string `json:"username"`
	}
	if json.Unmarshal(e.payload, &frame) != nil {
		return false
	}
	return !r.presenceOrder.fresh(frame.Username, e.seq, time.Now())
}
