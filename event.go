package partyline

import (
	"encoding/binary"
	"errors"
)

// eventKind says what an event between nodes carries.
type eventKind byte

const (
	eventChat     eventKind = iota + 1 // a committed chat message of a room
	eventPresence                      // user_joined or user_left of a room
	eventTyping                        // a typing indicator of a room
	eventDirect                        // a direct message to a user
	eventKick                          // close every connection of a user
)

// event is what travels over the Broker. The frame is already encoded, so
// a message is encoded once for the whole cluster and every subscriber.
type event struct {
	kind   eventKind
	seq    uint64 // chat: the message's seq
	at     int64  // Unix nanoseconds when it was published, for latency
	except string // a session that must not receive it (the sender's)
	frame  []byte // the server frame, a complete WebSocket frame (wsframe.go)
}

var errBadEvent = errors.New("partyline: malformed broker event")

// marshal encodes e as kind, seq, at, except and frame.
func (e event) marshal() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(e.except)+len(e.frame))
	b = append(b, byte(e.kind))
	b = binary.AppendUvarint(b, e.seq)
	b = binary.AppendVarint(b, e.at)
	b = binary.AppendUvarint(b, uint64(len(e.except)))
	b = append(b, e.except...)
	return append(b, e.frame...)
}

// parseEvent decodes an event; the frame aliases b.
func parseEvent(b []byte) (event, error) {
	var e event
	if len(b) < 1 || b[0] < byte(eventChat) || b[0] > byte(eventKick) {
		return e, errBadEvent
	}
	e.kind = eventKind(b[0])
	b = b[1:]
	var n int
	if e.seq, n = binary.Uvarint(b); n <= 0 {
		return e, errBadEvent
	}
	b = b[n:]
	if e.at, n = binary.Varint(b); n <= 0 {
		return e, errBadEvent
	}
	b = b[n:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > uint64(len(b)-n) {
		return e, errBadEvent
	}
	b = b[n:]
	e.except, e.frame = string(b[:size]), b[size:]
	return e, nil
}
