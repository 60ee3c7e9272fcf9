package partyline

import "context"

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
	return RoomInfo{Room: room, Users: users, Connections: s.hub.roomConnections(room), LastSeq: last}, nil
}

// countUsers returns how many users are online in room on any node.
func (s *Server) countUsers(ctx context.Context, room string) (int, error) {
	if c, ok := s.opts.Presence.(Counter); ok {
		return presenceCall(s.hub, ctx, "count", func(ctx context.Context, _ Presence) (int, error) {
			return c.Count(ctx, room)
		})
	}
	users, err := presenceCall(s.hub, ctx, "users", func(ctx context.Context, p Presence) ([]string, error) {
		return p.Users(ctx, room)
	})
	return len(users), err
}

// lastSeq returns room's latest stored seq, 0 for a room with none.
func (s *Server) lastSeq(ctx context.Context, room string) (uint64, error) {
	return storeCall(s.hub, ctx, "last_seq", func(ctx context.Context, store Store) (uint64, error) {
		return store.LastSeq(ctx, room)
	})
}
