package partyline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"
)

// Webhook event types (docs/protocol.md §11.1).
const (
	EventMessage           = "message"
	EventUserJoined        = "user_joined"
	EventUserLeft          = "user_left"
	EventRoomOccupied      = "room_occupied"
	EventRoomVacated       = "room_vacated"
	EventUserOnline        = "user_online"
	EventUserOffline       = "user_offline"
	EventDirectUndelivered = "direct_undelivered"
)

// EventTypes lists every webhook event type, in the order of the protocol.
var EventTypes = []string{
	EventMessage, EventUserJoined, EventUserLeft, EventRoomOccupied,
	EventRoomVacated, EventUserOnline, EventUserOffline, EventDirectUndelivered,
}

// WebhookEvent is one event told to the application's backend. Its JSON
// form carries id, type, timestamp and the fields of its type only.
type WebhookEvent struct {
	// ID is unique and stable across retries: receivers deduplicate by it.
	ID        string
	Type      string
	Timestamp int64 // Unix milliseconds
	Room      string
	Username  string
	// Message events.
	Seq       uint64
	MessageID string
	// direct_undelivered events.
	From, To string
	// Message and direct_undelivered events.
	Content string
	Data    json.RawMessage
}

// MarshalJSON writes the event with the fields of its type.
func (e WebhookEvent) MarshalJSON() ([]byte, error) {
	type base struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		Timestamp int64  `json:"timestamp"`
	}
	b := base{e.ID, e.Type, e.Timestamp}
	switch e.Type {
	case EventMessage:
		return json.Marshal(struct {
			base
			Room      string          `json:"room"`
			Seq       uint64          `json:"seq"`
			MessageID string          `json:"message_id"`
			Username  string          `json:"username"`
			Content   string          `json:"content"`
			Data      json.RawMessage `json:"data,omitempty"`
		}{b, e.Room, e.Seq, e.MessageID, e.Username, e.Content, e.Data})
	case EventUserJoined, EventUserLeft:
		return json.Marshal(struct {
			base
			Room     string `json:"room"`
			Username string `json:"username"`
		}{b, e.Room, e.Username})
	case EventRoomOccupied, EventRoomVacated:
		return json.Marshal(struct {
			base
			Room string `json:"room"`
		}{b, e.Room})
	case EventUserOnline, EventUserOffline:
		return json.Marshal(struct {
			base
			Username string `json:"username"`
		}{b, e.Username})
	default: // direct_undelivered
		return json.Marshal(struct {
			base
			From    string          `json:"from"`
			To      string          `json:"to"`
			Content string          `json:"content"`
			Data    json.RawMessage `json:"data,omitempty"`
		}{b, e.From, e.To, e.Content, e.Data})
	}
}

// NewWebhookEvent returns an event of the given type at now with a fresh id.
// The caller fills in the fields of its type.
func NewWebhookEvent(typ string, now time.Time) WebhookEvent {
	var b [12]byte
	rand.Read(b[:])
	return WebhookEvent{ID: "evt_" + hex.EncodeToString(b[:]), Type: typ, Timestamp: now.UnixMilli()}
}

// MessageEvent is the message event of a committed message. Its id derives
// from the message id, so it is the same whoever records it.
func MessageEvent(m Message) WebhookEvent {
	return WebhookEvent{
		ID: "evt_" + m.ID, Type: EventMessage, Timestamp: m.Timestamp,
		Room: m.Room, Seq: m.Seq, MessageID: m.ID, Username: m.Username,
		Content: m.Content, Data: m.Data,
	}
}

// WebhookRoute is one webhook URL and the event types it is sent.
type WebhookRoute struct {
	URL string
	// Types lists the event types the URL gets; nil means every type.
	Types []string
}

// Wants reports whether the route is sent events of type typ.
func (r WebhookRoute) Wants(typ string) bool {
	return r.Types == nil || slices.Contains(r.Types, typ)
}

// PendingEvent is an event recorded for one URL and not yet acknowledged.
type PendingEvent struct {
	// Pos orders a URL's events: the order in which they were recorded.
	Pos int64
	// Recorded is when the event was recorded, for giving up on it.
	Recorded time.Time
	// Body is the event's JSON (WebhookEvent.MarshalJSON).
	Body json.RawMessage
}

// EventLog is implemented by a Store that keeps webhook events durably: the
// outbox of docs/protocol.md §11.1. Each event is recorded once for every
// route that wants its type, in the same transaction as what it reports,
// and stays until the sender acknowledges it for that URL. Presence events
// are decided here too, so that in a cluster sharing the store each is
// decided once, whichever node saw the change.
//
// Implementations must be safe for concurrent use, also from several
// processes sharing the storage, and return errors wrapping ErrUnavailable
// when the storage cannot answer.
type EventLog interface {
	// SetWebhookRoutes says which URLs get which event types. It is called
	// once, before any other method and before the Store's first Append;
	// from then on every committed message records its message event
	// (MessageEvent) for each route that wants it, in the transaction that
	// commits the message. With no routes, nothing is recorded.
	SetWebhookRoutes(routes []WebhookRoute)

	// RecordEvent records e for every route that wants its type.
	RecordEvent(ctx context.Context, e WebhookEvent) error

	// PresenceJoined records that user is online in room cluster-wide
	// (room "" is the whole server). If the user was leaving (PresenceLeft,
	// not yet swept), the leave is called off and nothing is recorded: a
	// flap is silent. If the user was already present, nothing changes.
	// Otherwise it records user_joined, preceded by room_occupied when the
	// room had no member (for room "": user_online alone), all at now.
	PresenceJoined(ctx context.Context, room, user string, now time.Time) error
	// PresenceLeft marks user as leaving room, to be decided at due by
	// SweepPresence. A user not present, or already leaving, is left as is.
	PresenceLeft(ctx context.Context, room, user string, due time.Time) error
	// SweepPresence removes every member whose leave is due at now and
	// records user_left for each, followed by room_vacated when the room has
	// no member left (for room "": user_offline alone), all at now.
	// Concurrent sweeps, from any process, decide each leave once.
	SweepPresence(ctx context.Context, now time.Time) error
	// PresentUsers returns every (room, user) present and not leaving, for
	// reconciling with the Presence after a crash.
	PresentUsers(ctx context.Context) ([]RoomUser, error)
	// DueLeaves returns every (room, user) whose leave is due at now, which
	// SweepPresence would decide, sorted.
	DueLeaves(ctx context.Context, now time.Time) ([]RoomUser, error)

	// PendingEvents returns up to limit of url's unacknowledged events,
	// oldest first.
	PendingEvents(ctx context.Context, url string, limit int) ([]PendingEvent, error)
	// AckEvents forgets url's events at the given positions.
	AckEvents(ctx context.Context, url string, pos []int64) error
	// CountPending returns how many events wait for url.
	CountPending(ctx context.Context, url string) (int, error)
	// LeaseSender makes owner the only sender of url's events until until,
	// if no other owner holds an unexpired lease at now. It reports whether
	// owner holds the lease. An owner renews its lease by calling it again.
	LeaseSender(ctx context.Context, url, owner string, now, until time.Time) (bool, error)
}

// RoomUser is one user in one room ("" for the whole server).
type RoomUser struct {
	Room, User string
}

// IdempotencyWindow is how long an idempotency key is remembered.
const IdempotencyWindow = 24 * time.Hour

// IdempotentStore is implemented by a Store that remembers idempotency
// keys, for POST /api/rooms/{room}/messages and POST /api/messages.
type IdempotentStore interface {
	// AppendOnce commits messages (each to its own Room) in one transaction
	// together with key, as Append would, and returns them with their seqs.
	// If key was committed within IdempotencyWindow before now, by this
	// process or another sharing the storage, it commits nothing and
	// returns the messages committed with the key then, with replayed set.
	AppendOnce(ctx context.Context, key string, messages []Message, now time.Time) (stored []Message, replayed bool, err error)
	// Recall returns the messages committed with key within
	// IdempotencyWindow before now, with ok set; ok is false when key is
	// not known, or older. A retry is answered from it before the publish
	// hook is asked about a message that would not be stored.
	Recall(ctx context.Context, key string, now time.Time) (stored []Message, ok bool, err error)
}
