package partyline

import (
	"encoding/binary"
	"errors"

	"github.com/partyline/partyline/internal/ws"
)

// eventKind says what an event between nodes carries.
type eventKind byte

const (
	eventChat     eventKind = iota + 1 // a committed chat message of a room
	eventPresence                      // user_joined or user_left of a room
	eventTyping                        // a typing indicator of a room
	eventDirect                        // a direct message to a user
	eventKick                          // close every connection of a user (nodes before commands send it)
	eventCommand                       // a cluster command to every connection of a user (command.go)
	eventReply                         // a node's answer to a cluster command

	lastEventKind = eventReply
)

// commandKind says what a cluster command asks of a user's connections.
type commandKind byte

const (
	commandKick  commandKind = iota + 1 // close them with 4003
	commandJoin                         // subscribe them to a room
	commandLeave                        // unsubscribe them from a room
	commandInput                        // hand a stream's client message to its session (sse.go)

	lastCommandKind = commandInput
)

// event is what travels over the Broker. The payload is already encoded,
// so a message is encoded once for the whole cluster and every subscriber.
type event struct {
	kind    eventKind
	seq     uint64   // chat: the message's seq
	at      int64    // Unix nanoseconds when it was published, for latency
	except  string   // a session that must not receive it (the sender's)
	payload []byte   // the server frame's JSON (docs/protocol.md §4)
	msg     *message // the payload as the receiving node delivers it (deliverable)

	// Only a command or a reply carries the following.
	command commandKind
	request uint64 // the requester's number for the command, echoed by replies
	node    string // command: the node to reply to; reply: the node replying
	room    string // command: the room it concerns, if any; for an input, the session
	count   uint64 // reply: how many connections the node acted on
}

var errBadEvent = errors.New("partyline: malformed broker event")

// marshal encodes e as kind, seq, at, except, then for a command or a
// reply command, request, node, room and count, then the payload as a
// WebSocket text frame. The events of the older kinds are encoded as before
// commands existed, and the payload travels framed as it did when nodes
// delivered the frame itself, so that nodes of either version understand
// each other during a rolling upgrade.
func (e event) marshal() []byte {
	b := make([]byte, 0, 12+5*binary.MaxVarintLen64+len(e.except)+len(e.node)+len(e.room)+len(e.payload))
	b = append(b, byte(e.kind))
	b = binary.AppendUvarint(b, e.seq)
	b = binary.AppendVarint(b, e.at)
	b = appendString(b, e.except)
	if e.kind.isCommand() {
		b = append(b, byte(e.command))
		b = binary.AppendUvarint(b, e.request)
		b = appendString(b, e.node)
		b = appendString(b, e.room)
		b = binary.AppendUvarint(b, e.count)
	}
	return ws.AppendFrame(b, ws.FinBit|ws.OpText, e.payload, nil)
}

// isCommand reports whether events of kind k carry the command fields.
func (k eventKind) isCommand() bool { return k == eventCommand || k == eventReply }

// appendString appends s with its length before it.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// parseEvent decodes an event; the payload aliases b.
func parseEvent(b []byte) (event, error) {
	var e event
	if len(b) < 1 || b[0] < byte(eventChat) || b[0] > byte(lastEventKind) {
		return e, errBadEvent
	}
	e.kind = eventKind(b[0])
	d := decoder{b: b[1:]}
	e.seq = d.uvarint()
	e.at = d.varint()
	e.except = d.string()
	if e.kind.isCommand() {
		e.command = commandKind(d.byte())
		e.request = d.uvarint()
		e.node = d.string()
		e.room = d.string()
		e.count = d.uvarint()
		if e.command < commandKick || e.command > lastCommandKind {
			d.bad = true
		}
	}
	if d.bad {
		return event{}, errBadEvent
	}
	payload, ok := unframe(d.b)
	if !ok {
		return event{}, errBadEvent
	}
	e.payload = payload
	return e, nil
}

// unframe returns the payload of the text frame that marshal made of it;
// an empty b is an empty payload.
func unframe(b []byte) (payload []byte, ok bool) {
	if len(b) == 0 {
		return b, true
	}
	if len(b) < 2 || b[0] != ws.FinBit|ws.OpText {
		return nil, false
	}
	n, head := uint64(b[1]), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return nil, false
		}
		n, head = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return nil, false
		}
		n, head = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n != uint64(len(b)-head) {
		return nil, false
	}
	return b[head:], true
}

// deliverable returns the event's payload as a message for a room's or a
// user's connections: a chat message moves their resume point in room.
func (e event) deliverable(room string) *message {
	if e.kind == eventChat {
		return markedMessage(e.payload, markSeq, room, e.seq)
	}
	return newMessage(e.payload)
}

// decoder reads an event's fields in turn; after the first that does not
// fit, bad is set and every read returns a zero value.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	return d.advance(v, n)
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	return int64(d.advance(uint64(v), n))
}

// advance consumes n bytes holding v, or marks d bad when n is not positive.
func (d *decoder) advance(v uint64, n int) uint64 {
	if d.bad || n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// string reads a length and that many bytes.
func (d *decoder) string() string {
	size := d.uvarint()
	if d.bad || size > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:size])
	d.b = d.b[size:]
	return s
}
