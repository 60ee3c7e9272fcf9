package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

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
// delivers each like a client's chat; with an Idempotency-Key, once.
func (h *handler) publishMany(w http.ResponseWriter, r *http.Request) {
	key, once, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var body publishManyBody
	if !h.decodeBody(w, r, &body) {
		return
	}
	pub := partyline.Publication{Username: body.Username, Content: body.Content, Data: absentIfNull(body.Data)}
	var messages []partyline.Message
	if once {
		var replayed bool
		messages, replayed, err = h.srv.PublishOnce(r.Context(), key, body.Rooms, pub)
		if err == nil && replayed {
			w.Header().Set(replayedHeader, "true")
		}
	} else {
		messages, err = h.srv.PublishMany(r.Context(), body.Rooms, pub)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writePublishedMany(w, messages)
}

// The idempotency headers of docs/protocol.md §11.3.
const (
	keyHeader      = "Idempotency-Key"
	replayedHeader = "Idempotent-Replayed"
)

// idempotencyKey returns the request's Idempotency-Key, and whether it has
// one. The key itself is checked by Server.PublishOnce.
func idempotencyKey(r *http.Request) (key string, ok bool, err error) {
	switch values := r.Header.Values(keyHeader); len(values) {
	case 0:
		return "", false, nil
	case 1:
		return values[0], true, nil
	default:
		return "", false, badRequest("send one Idempotency-Key header, not " + strconv.Itoa(len(values)))
	}
}

// publishOnce publishes pub to room once per key: a repeat of the key
// answers the first request's result, marked Idempotent-Replayed. The key
// decides, so it may replay a result of POST /api/messages; one of a
// single message is answered as this endpoint's, one of several is refused.
func (h *handler) publishOnce(w http.ResponseWriter, r *http.Request, key, room string, pub partyline.Publication) {
	messages, replayed, err := h.srv.PublishOnce(r.Context(), key, []string{room}, pub)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(messages) != 1 {
		h.fail(w, r, badRequest(fmt.Sprintf("this Idempotency-Key was first used to publish to %d rooms with POST /api/messages; repeat that request, or use a new key", len(messages))))
		return
	}
	if replayed {
		w.Header().Set(replayedHeader, "true")
	}
	writePublished(w, messages[0])
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
