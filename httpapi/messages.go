package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/partyline/partyline"
)

// publishManyBody is the body of POST /api/messages.
type publishManyBody struct {
	Rooms    []string        `json:"rooms"`
	Content  string          `json:"content"`
	Data     json.RawMessage `json:"data"`
	Username string          `json:"username"`
}

// publishedMessage is one message of the answer of POST /api/messages.
type publishedMessage struct {
	Room      string `json:"room"`
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// publishMany stores one message in each of the rooms, in their order, and
// delivers each like a client's chat.
func (h *handler) publishMany(w http.ResponseWriter, r *http.Request) {
	var body publishManyBody
	if !h.decodeBody(w, r, &body) {
		return
	}
	messages, err := h.srv.PublishMany(r.Context(), body.Rooms, partyline.Publication{
		Username: body.Username, Content: body.Content, Data: absentIfNull(body.Data),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writePublishedMany(w, messages)
}

// writePublishedMany answers 201 with the rooms, seqs, ids and timestamps
// of messages.
func writePublishedMany(w http.ResponseWriter, messages []partyline.Message) {
	out := make([]publishedMessage, len(messages))
	for i, m := range messages {
		out[i] = publishedMessage{Room: m.Room, Seq: m.Seq, ID: m.ID, Timestamp: m.Timestamp}
	}
	writeJSON(w, http.StatusCreated, struct {
		Messages []publishedMessage `json:"messages"`
	}{out})
}
