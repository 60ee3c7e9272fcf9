package partyline

import (
	"context"
	"fmt"
)

// MaxPublishRooms is the most rooms one PublishMany may name.
const MaxPublishRooms = 100

// PublishMany stores one message per room, in the order of rooms, and
// delivers each exactly like Publish. It returns the stored messages in
// that order. Everything is checked before anything is stored: rooms must
// name 1 to MaxPublishRooms distinct valid rooms (else an error with code
// bad_request, or invalid_room naming the bad one), and the username,
// content and data must be as Publish wants them.
//
// The messages are committed one after another, not atomically: when the
// store fails midway, PublishMany returns the messages committed before the
// failure, which are delivered, with the error.
func (s *Server) PublishMany(ctx context.Context, rooms []string, p Publication) ([]Message, error) {
	messages, err := s.newMessages(rooms, p)
	if err != nil {
		return nil, err
	}
	stored := make([]Message, 0, len(messages))
	for _, msg := range messages {
		m, err := s.publish(ctx, msg)
		if err != nil {
			return stored, err
		}
		stored = append(stored, m)
	}
	return stored, nil
}

// newMessages checks a publication to rooms and returns its messages, one
// per room in the order of rooms, without id, time or seq.
func (s *Server) newMessages(rooms []string, p Publication) ([]Message, error) {
	if p.Username == "" {
		p.Username = "system"
	}
	if len(rooms) == 0 || len(rooms) > MaxPublishRooms {
		return nil, newError(CodeBadRequest, fmt.Sprintf("rooms must name 1 to %d rooms, not %d", MaxPublishRooms, len(rooms)))
	}
	seen := make(map[string]struct{}, len(rooms))
	for i, room := range rooms {
		if !ValidRoom(room) {
			return nil, newError(CodeInvalidRoom, fmt.Sprintf("rooms[%d] %q is not a valid room name: room names must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", i, room))
		}
		if _, dup := seen[room]; dup {
			return nil, newError(CodeBadRequest, fmt.Sprintf("rooms names %q twice; name each room once", room))
		}
		seen[room] = struct{}{}
	}
	if !ValidUsername(p.Username) {
		return nil, newError(CodeInvalidUsername, "not a valid username")
	}
	if err := checkContent(p.Content, p.Data); err != nil {
		return nil, err
	}
	messages := make([]Message, len(rooms))
	for i, room := range rooms {
		messages[i] = Message{Room: room, Username: p.Username, Content: p.Content, Data: p.Data}
	}
	return messages, nil
}
