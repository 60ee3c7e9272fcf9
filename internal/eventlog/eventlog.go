// Package eventlog holds the dialect-free part of a SQL Store's
// partyline.EventLog and partyline.IdempotentStore: which URLs get which
// events, which events a presence change records, a message event split
// around its seq for SQL to complete, and how AppendOnce's result is kept.
// Each Store keeps its own SQL text and driver calls.
package eventlog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"time"

	"github.com/partyline/partyline"
)

// Routes lists, by event type, the URLs that want it, in route order. The
// zero value has no routes.
type Routes map[string][]string

// NewRoutes returns the Routes of routes.
func NewRoutes(routes []partyline.WebhookRoute) Routes {
	r := make(Routes)
	for _, typ := range partyline.EventTypes {
		for _, route := range routes {
			if route.Wants(typ) {
				r[typ] = append(r[typ], route.URL)
			}
		}
	}
	return r
}

// Row is one event recorded for one URL.
type Row struct {
	URL  string
	Body []byte
}

// Rows returns the rows that record events, event by event and, for each,
// URL by URL: the order in which they are to be inserted. An event no URL
// wants has no row and is not marshalled.
func (r Routes) Rows(events ...partyline.WebhookEvent) ([]Row, error) {
	var rows []Row
	for _, e := range events {
		urls := r[e.Type]
		if len(urls) == 0 {
			continue
		}
		body, err := e.MarshalJSON()
		if err != nil {
			return nil, err
		}
		for _, url := range urls {
			rows = append(rows, Row{url, body})
		}
	}
	return rows, nil
}

// JoinedEvents returns the events user joining room at now records, as a
// new member; first says the room had no member before. For room "", the
// whole server, it is user_online alone.
func JoinedEvents(room, user string, first bool, now time.Time) []partyline.WebhookEvent {
	if room == "" {
		e := partyline.NewWebhookEvent(partyline.EventUserOnline, now)
		e.Username = user
		return []partyline.WebhookEvent{e}
	}
	var events []partyline.WebhookEvent
	if first {
		e := partyline.NewWebhookEvent(partyline.EventRoomOccupied, now)
		e.Room = room
		events = append(events, e)
	}
	e := partyline.NewWebhookEvent(partyline.EventUserJoined, now)
	e.Room, e.Username = room, user
	return append(events, e)
}

// LeftEvents returns the events the leaves of users from room, decided at
// now, record; vacated says no member is left. For room "" they are
// user_offline alone.
func LeftEvents(room string, users []string, vacated bool, now time.Time) []partyline.WebhookEvent {
	var events []partyline.WebhookEvent
	for _, user := range users {
		typ := partyline.EventUserLeft
		if room == "" {
			typ = partyline.EventUserOffline
		}
		e := partyline.NewWebhookEvent(typ, now)
		e.Room, e.Username = room, user
		events = append(events, e)
	}
	if vacated && room != "" {
		e := partyline.NewWebhookEvent(partyline.EventRoomVacated, now)
		e.Room = room
		events = append(events, e)
	}
	return events
}

// ByRoom sorts pairs by room and user and yields each room's users in
// turn, rooms in name order.
func ByRoom(pairs []partyline.RoomUser) iter.Seq2[string, []string] {
	slices.SortFunc(pairs, func(a, b partyline.RoomUser) int {
		return cmp.Or(cmp.Compare(a.Room, b.Room), cmp.Compare(a.User, b.User))
	})
	return func(yield func(string, []string) bool) {
		for i := 0; i < len(pairs); {
			room := pairs[i].Room
			var users []string
			for ; i < len(pairs) && pairs[i].Room == room; i++ {
				users = append(users, pairs[i].User)
			}
			if !yield(room, users) {
				return
			}
		}
	}
}

// seqField is how the seq of a message event with seq 0 appears in its
// JSON. Nothing before it can contain it: the fields before are strings,
// whose quotes are escaped, and numbers.
var seqField = []byte(`,"seq":0,`)

// SplitMessageEvent returns the JSON of m's message event
// (partyline.MessageEvent) cut where its seq goes: head ends with
// `"seq":` and tail follows the number, so head, the decimal seq and tail
// together are the event of m with that seq. A Store that learns the seq
// only inside SQL joins them there.
func SplitMessageEvent(m partyline.Message) (head, tail []byte, err error) {
	m.Seq = 0
	body, err := partyline.MessageEvent(m).MarshalJSON()
	if err != nil {
		return nil, nil, err
	}
	i := bytes.Index(body, seqField)
	if i < 0 {
		return nil, nil, errors.New("eventlog: message event without a seq field")
	}
	cut := i + len(seqField) - len("0,")
	return body[:cut], body[cut+len("0"):], nil
}

// IsLive reports whether an idempotency key created at created is still
// remembered at now.
func IsLive(created, now time.Time) bool {
	return now.Sub(created) < partyline.IdempotencyWindow
}

// storedMessage is how EncodeMessages keeps a message: content and data as
// bytes, so they come back byte for byte, a nil Data as null.
type storedMessage struct {
	Room      string `json:"room"`
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	Username  string `json:"username"`
	Content   []byte `json:"content"`
	Data      []byte `json:"data"`
	Timestamp int64  `json:"timestamp"`
}

// EncodeMessages encodes the messages an idempotency key committed, for
// DecodeMessages to return exactly.
func EncodeMessages(messages []partyline.Message) ([]byte, error) {
	stored := make([]storedMessage, len(messages))
	for i, m := range messages {
		stored[i] = storedMessage{m.Room, m.Seq, m.ID, m.Username, []byte(m.Content), m.Data, m.Timestamp}
	}
	return json.Marshal(stored)
}

// DecodeMessages decodes what EncodeMessages encoded.
func DecodeMessages(encoded []byte) ([]partyline.Message, error) {
	var stored []storedMessage
	if err := json.Unmarshal(encoded, &stored); err != nil {
		return nil, err
	}
	messages := make([]partyline.Message, len(stored))
	for i, m := range stored {
		messages[i] = partyline.Message{Room: m.Room, Seq: m.Seq, ID: m.ID, Username: m.Username,
			Content: string(m.Content), Timestamp: m.Timestamp}
		if m.Data != nil {
			messages[i].Data = slices.Clip(m.Data)
		}
	}
	return messages, nil
}
