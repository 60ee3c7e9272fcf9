package partyline

import (
	"context"
	"encoding/json"
	"math"
)

// Message is one chat message of a room, as stored and as delivered.
type Message struct {
	// Room is the room the message was sent to.
	Room string `json:"room"`
	// Seq is the message's place in its room: 1, 2, 3, … with no gap.
	// The Store assigns it.
	Seq uint64 `json:"seq"`
	// ID is the server-assigned message id, unique across the cluster.
	ID string `json:"id"`
	// Username is the sender; "system" for API messages by default.
	Username string `json:"username"`
	// Content is the message text.
	Content string `json:"content"`
	// Data is optional application JSON, nil when absent.
	Data json.RawMessage `json:"data,omitempty"`
	// Timestamp is the server's Unix time in milliseconds.
	Timestamp int64 `json:"timestamp"`
}

// HistoryQuery selects a page of a room's history, in ascending seq.
//
// With Forward set, the page is the first Limit messages with seq > After
// (After 0: from the oldest retained). Otherwise it is the newest Limit
// messages with seq < Before, or the newest Limit overall when Before is 0.
type HistoryQuery struct {
	Forward bool
	After   uint64
	Before  uint64
	Limit   int
}

// Page selects q's page from messages, which are ascending and contiguous
// in seq, as a Store keeping them in memory holds a room's: a subslice of
// messages, nil when the page is empty.
func (q HistoryQuery) Page(messages []Message) []Message {
	if len(messages) == 0 || q.Limit <= 0 {
		return nil
	}
	first := messages[0].Seq
	index := func(seq uint64) int { // position of seq, clamped to [0, len]
		switch {
		case seq < first:
			return 0
		case seq-first >= uint64(len(messages)):
			return len(messages)
		}
		return int(seq - first)
	}
	if q.Forward {
		if q.After == math.MaxUint64 {
			return nil
		}
		from := index(q.After + 1)
		return messages[from:min(from+q.Limit, len(messages))]
	}
	to := len(messages)
	if q.Before > 0 {
		to = index(q.Before)
	}
	return messages[max(0, to-q.Limit):to]
}

// Store makes messages durable and assigns each room's seq. It is the single
// source of truth for order: brokers may drop or reorder, the Store may not.
//
// Implementations must be safe for concurrent use. Every method returns an
// error wrapping ErrUnavailable when the backing storage cannot answer.
type Store interface {
	// Append commits msg to msg.Room and returns it with Seq set to one more
	// than the room's previous message. It returns only after the commit is
	// durable: a message it returned survives a crash. Concurrent appends to
	// one room, from this process or others sharing the storage, receive
	// distinct consecutive seqs, and a returned seq implies every lower seq of
	// the room is committed too.
	Append(ctx context.Context, msg Message) (Message, error)
	// History returns one page of a room's retained messages (see
	// HistoryQuery), ascending by seq; an empty slice for an unknown room.
	History(ctx context.Context, room string, q HistoryQuery) ([]Message, error)
	// LastSeq returns the room's highest seq, or 0 for a room with none.
	LastSeq(ctx context.Context, room string) (uint64, error)
	// Close releases the store's resources.
	Close() error
}

// Ephemeral is implemented by a Store whose history does not outlive its
// process, such as MemoryStore: Epoch names this life of it, a value the
// Server sends in every welcome, so that a client that sees another knows
// that every room's seqs started over.
type Ephemeral interface {
	Epoch() string
}

// Pinger is implemented by a Store, Broker or Presence that can tell whether
// its backing service answers. /ready calls it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Connector is implemented by a Store, Broker or Presence that connects to
// its service in the background, such as one whose service was down when
// the program started. Connected reports at once, without network I/O,
// whether it has connected: nil once it has, else an error wrapping
// ErrUnavailable. While one has not, the Server refuses WebSocket
// connections before the upgrade with 503 unavailable.
type Connector interface {
	Connected() error
}
