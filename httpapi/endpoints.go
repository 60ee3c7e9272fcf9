package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/partyline/partyline"
)

// publishBody is the body of POST /api/rooms/{room}/messages.
type publishBody struct {
	Content  string          `json:"content"`
	Data     json.RawMessage `json:"data"`
	Username string          `json:"username"`
}

// publish stores a message in the room and delivers it like a client's
// chat; with an Idempotency-Key, once (see publishOnce).
func (h *handler) publish(w http.ResponseWriter, r *http.Request) {
	key, once, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var body publishBody
	if !h.decodeBody(w, r, &body) {
		return
	}
	room := r.PathValue("room")
	pub := partyline.Publication{Username: body.Username, Content: body.Content, Data: absentIfNull(body.Data)}
	if once {
		h.publishOnce(w, r, key, room, pub)
		return
	}
	msg, err := h.srv.Publish(r.Context(), room, pub)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writePublished(w, msg)
}

// writePublished answers 201 with msg's seq, id and timestamp.
func writePublished(w http.ResponseWriter, msg partyline.Message) {
	writeJSON(w, http.StatusCreated, struct {
		Seq       uint64 `json:"seq"`
		ID        string `json:"id"`
		Timestamp int64  `json:"timestamp"`
	}{msg.Seq, msg.ID, msg.Timestamp})
}

// listRooms lists the rooms with connections on this node.
func (h *handler) listRooms(w http.ResponseWriter, r *http.Request) {
	rooms, err := h.srv.Rooms(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if rooms == nil {
		rooms = []partyline.RoomInfo{}
	}
	writeJSON(w, http.StatusOK, struct {
		Rooms []partyline.RoomInfo `json:"rooms"`
	}{rooms})
}

// roomInfo answers a room's counts: users, this node's connections and its
// latest seq; zeros for a room nobody is in.
func (h *handler) roomInfo(w http.ResponseWriter, r *http.Request) {
	info, err := h.srv.Room(r.Context(), r.PathValue("room"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// roomUsers lists the users online in a room.
func (h *handler) roomUsers(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	users, err := h.srv.RoomUsers(r.Context(), room)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if users == nil {
		users = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		Room  string   `json:"room"`
		Users []string `json:"users"`
	}{room, users})
}

// roomHistory answers one page of a room's stored messages.
func (h *handler) roomHistory(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	page, err := parseHistoryQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	messages, err := h.srv.History(r.Context(), room, page.query)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]chatMessage, 0, len(messages))
	for _, m := range messages {
		if page.query.Forward && page.before > 0 && m.Seq >= page.before {
			break // ascending: the rest are past the upper bound too
		}
		out = append(out, newChatMessage(m))
	}
	writeJSON(w, http.StatusOK, struct {
		Room     string        `json:"room"`
		Messages []chatMessage `json:"messages"`
	}{room, out})
}

// chatMessage is a stored message as the chat frame of docs/protocol.md §4
// shows it.
type chatMessage struct {
	Type      string          `json:"type"`
	Room      string          `json:"room"`
	Username  string          `json:"username"`
	Content   string          `json:"content"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp int64           `json:"timestamp"`
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
}

func newChatMessage(m partyline.Message) chatMessage {
	return chatMessage{
		Type: "chat", Room: m.Room, Username: m.Username, Content: m.Content,
		Data: m.Data, Timestamp: m.Timestamp, Seq: m.Seq, ID: m.ID,
	}
}

// directBody is the body of POST /api/users/{user}/messages.
type directBody struct {
	Content string          `json:"content"`
	Data    json.RawMessage `json:"data"`
	From    string          `json:"from"`
}

// sendDirect delivers a direct message to every connection of a user.
func (h *handler) sendDirect(w http.ResponseWriter, r *http.Request) {
	user, ok := pathUser(w, r)
	if !ok {
		return
	}
	var body directBody
	if !h.decodeBody(w, r, &body) {
		return
	}
	if body.From != "" && !partyline.ValidUsername(body.From) {
		writeError(w, partyline.CodeInvalidUsername, "from must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
		return
	}
	err := h.srv.SendDirect(r.Context(), partyline.DirectMessage{
		From: body.From, To: user, Content: body.Content, Data: absentIfNull(body.Data),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		To string `json:"to"`
	}{user})
}

// disconnect closes every connection of a user with 4003.
func (h *handler) disconnect(w http.ResponseWriter, r *http.Request) {
	user, ok := pathUser(w, r)
	if !ok {
		return
	}
	n, err := h.srv.Disconnect(r.Context(), user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Closed int `json:"closed"`
	}{n})
}

// joinUser subscribes every connection of a user to a room.
func (h *handler) joinUser(w http.ResponseWriter, r *http.Request) {
	h.moveUser(w, r, h.srv.JoinUser)
}

// leaveUser unsubscribes every connection of a user from a room.
func (h *handler) leaveUser(w http.ResponseWriter, r *http.Request) {
	h.moveUser(w, r, h.srv.LeaveUser)
}

// moveUser answers {"connections":N} for a JoinUser or LeaveUser.
func (h *handler) moveUser(w http.ResponseWriter, r *http.Request, move func(ctx context.Context, user, room string) (int, error)) {
	user, ok := pathUser(w, r)
	if !ok {
		return
	}
	n, err := move(r.Context(), user, r.PathValue("room"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Connections int `json:"connections"`
	}{n})
}

// pathUser returns the {user} of the path, or answers 400 invalid_username.
func pathUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	user := r.PathValue("user")
	if !partyline.ValidUsername(user) {
		writeError(w, partyline.CodeInvalidUsername, "user must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
		return "", false
	}
	return user, true
}

// absentIfNull treats "data": null as no data.
func absentIfNull(data json.RawMessage) json.RawMessage {
	if string(data) == "null" {
		return nil
	}
	return data
}
