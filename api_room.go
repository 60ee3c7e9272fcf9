package partyline

import (
	"context"
	"time"
)

// Room returns the counts of one room, cheap however many users it has:
// Users counts its online users on every node (without listing them when
// the Presence is a Counter), Connections counts the connections of this
// node subscribed to it, as Rooms does, and LastSeq is its latest stored
// seq. A room with nobody in it and nothing stored answers zeros.
func (s *Server) Room(ctx context.Context, room string) (RoomInfo, error) {
	if !ValidRoom(room) {
		return RoomInfo{}, newError(CodeInvalidRoom, "not a valid room name")
	}
	users, err := s.countUsers(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	last, err := s.lastSeq(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	return RoomInfo{Room: room, Users: users, Connections: s.roomConnections(room), LastSeq: last}, nil
}

// countUsers returns how many users are online in room on any node.
func (s *Server) countUsers(ctx context.Context, room string) (int, error) {
	ctx, cancel := s.hub.bound(ctx)
	defer cancel()
	var n int
	var err error
	if c, ok := s.opts.Presence.(Counter); ok {
		n, err = c.Count(ctx, room)
	} else {
		var users []string
		users, err = s.opts.Presence.Users(ctx, room)
		n = len(users)
	}
	if err != nil {
		return 0, unavailable("presence", err)
	}
	return n, nil
}

// lastSeq returns room's latest stored seq, 0 for a room with none.
func (s *Server) lastSeq(ctx context.Context, room string) (uint64, error) {
	ctx, cancel := s.hub.bound(ctx)
	defer cancel()
	start := time.Now()
	last, err := s.opts.Store.LastSeq(ctx, room)
	s.opts.Metrics.StoreLatency("last_seq", time.Since(start), err)
	if err != nil {
		return 0, unavailable("store", err)
	}
	return last, nil
}

// roomConnections counts this node's connections subscribed to room.
func (s *Server) roomConnections(room string) int {
	r := s.hub.room(room)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}
