package partyline

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/partyline/partyline/internal/wire"
)

// Publication is a message published from Go or the HTTP API.
type Publication struct {
	// Username is the sender shown to clients; "system" when empty.
	Username string
	Content  string
	Data     json.RawMessage
}

// Publish stores a message in room and delivers it exactly like a client's
// chat. It returns the stored message with its seq, id and timestamp.
func (s *Server) Publish(ctx context.Context, room string, p Publication) (Message, error) {
	if p.Username == "" {
		p.Username = "system"
	}
	if err := checkNames(room, p.Username); err != nil {
		return Message{}, err
	}
	if err := checkContent(p.Content, p.Data); err != nil {
		return Message{}, err
	}
	content, err := s.askPublish(ctx, p.Username, room, Content{Text: p.Content, Data: p.Data})
	if err != nil {
		return Message{}, err
	}
	return s.publish(ctx, Message{Room: room, Username: p.Username, Content: content.Text, Data: content.Data})
}

// publish commits msg, then hands it to the broker for delivery: durability
// before delivery (docs/protocol.md §5.2).
func (s *Server) publish(ctx context.Context, msg Message) (Message, error) {
	stored, err := s.hub.commit(ctx, msg)
	if err != nil {
		return Message{}, err
	}
	s.hub.announce(ctx, stored)
	return stored, nil
}

// DirectMessage is a private message to every connection of a user.
type DirectMessage struct {
	// From is the sender; "system" when empty.
	From, To string
	Content  string
	Data     json.RawMessage
}

// SendDirect delivers a direct message to every connection of d.To on any
// node. It returns an error with code user_offline when d.To has none.
func (s *Server) SendDirect(ctx context.Context, d DirectMessage) error {
	if d.From == "" {
		d.From = "system"
	}
	if !ValidUsername(d.From) {
		return newError(CodeInvalidUsername, "from must be a valid username")
	}
	if err := checkContent(d.Content, d.Data); err != nil {
		return err
	}
	return s.sendDirect(ctx, d, "")
}

// sendDirect delivers d to the recipient's connections and to the sender's
// other connections (all but session).
func (s *Server) sendDirect(ctx context.Context, d DirectMessage, session string) error {
	if !ValidUsername(d.To) {
		return newError(CodeBadRequest, "to must be a valid username")
	}
	online, err := presenceCall(s.hub, ctx, "contains", func(ctx context.Context, p Presence) (bool, error) {
		return p.Contains(ctx, "", d.To)
	})
	if err != nil {
		return err
	}
	if !online {
		s.hub.events.undelivered(d)
		return newError(CodeUserOffline, d.To+" is not online")
	}
	payload := wire.AppendDirect(nil, wire.Direct{
		From: d.From, To: d.To, Content: d.Content, Data: d.Data,
		Timestamp: s.opts.Now().UnixMilli(), ID: newMessageID(),
	})
	if err := s.hub.publish(ctx, userTopicPrefix+d.To, event{kind: eventDirect, except: session, payload: payload}); err != nil {
		return err
	}
	if d.From != d.To && session != "" {
		return s.hub.publish(ctx, userTopicPrefix+d.From, event{kind: eventDirect, except: session, payload: payload})
	}
	return nil
}

// Disconnect closes every connection of user, on every node, with close
// code 4003 and returns how many it closed. It waits at most two seconds
// for the other nodes' counts, then answers with those it has (command.go).
// When the broker cannot take the command, this node's connections are
// closed and the error wraps ErrUnavailable.
func (s *Server) Disconnect(ctx context.Context, user string) (int, error) {
	if !ValidUsername(user) {
		return 0, newError(CodeInvalidUsername, "not a valid username")
	}
	return s.hub.command(ctx, user, commandKick, "", nil)
}

// JoinUser subscribes every connection of user, on every node, to room, as
// if each had sent join (docs/protocol.md §11.3), after asking the join
// hook. It returns how many connections joined: those already in the room
// are not counted. The nodes' answers are awaited as Disconnect's are.
func (s *Server) JoinUser(ctx context.Context, user, room string) (int, error) {
	if err := checkNames(room, user); err != nil {
		return 0, err
	}
	if err := s.askJoin(ctx, user, room); err != nil {
		return 0, err
	}
	return s.hub.command(ctx, user, commandJoin, room, nil)
}

// LeaveUser unsubscribes every connection of user, on every node, from
// room, as if each had sent leave, and returns how many left.
func (s *Server) LeaveUser(ctx context.Context, user, room string) (int, error) {
	if err := checkNames(room, user); err != nil {
		return 0, err
	}
	return s.hub.command(ctx, user, commandLeave, room, nil)
}

// RoomInfo describes a room with online users.
type RoomInfo struct {
	Room string `json:"room"`
	// Users counts the room's online users on every node.
	Users int `json:"users"`
	// Connections counts the room's subscribed connections on this node.
	Connections int    `json:"connections"`
	LastSeq     uint64 `json:"last_seq"`
}

// Rooms lists the rooms with online users, sorted by name: those of the
// whole cluster when the Presence is a RoomLister, else this node's.
func (s *Server) Rooms(ctx context.Context) ([]RoomInfo, error) {
	names, err := s.roomNames(ctx)
	if err != nil {
		return nil, err
	}
	infos := make([]RoomInfo, 0, len(names))
	for _, name := range names {
		users, err := s.RoomUsers(ctx, name)
		if err != nil {
			return nil, err
		}
		info := RoomInfo{Room: name, Users: len(users), Connections: s.hub.roomConnections(name)}
		if info.LastSeq, err = s.lastSeq(ctx, name); err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// roomNames returns the cluster's rooms with online users, or this node's.
func (s *Server) roomNames(ctx context.Context) ([]string, error) {
	if lister, ok := s.opts.Presence.(RoomLister); ok {
		return presenceCall(s.hub, ctx, "rooms", func(ctx context.Context, _ Presence) ([]string, error) {
			return lister.Rooms(ctx)
		})
	}
	return s.hub.roomNames(), nil
}

// RoomUsers returns the users online in room, sorted.
func (s *Server) RoomUsers(ctx context.Context, room string) ([]string, error) {
	if !ValidRoom(room) {
		return nil, newError(CodeInvalidRoom, "not a valid room name")
	}
	users, err := presenceCall(s.hub, ctx, "users", func(ctx context.Context, p Presence) ([]string, error) {
		return p.Users(ctx, room)
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(users)
	return users, nil
}

// History returns a page of room's stored messages (see HistoryQuery).
func (s *Server) History(ctx context.Context, room string, q HistoryQuery) ([]Message, error) {
	if !ValidRoom(room) {
		return nil, newError(CodeInvalidRoom, "not a valid room name")
	}
	return storeCall(s.hub, ctx, "history", func(ctx context.Context, store Store) ([]Message, error) {
		return store.History(ctx, room, q)
	})
}

func checkNames(room, user string) error {
	if !ValidRoom(room) {
		return newError(CodeInvalidRoom, "not a valid room name")
	}
	if !ValidUsername(user) {
		return newError(CodeInvalidUsername, "not a valid username")
	}
	return nil
}
