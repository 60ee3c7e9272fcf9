package partyline

import (
	"sync"

	"github.com/partyline/partyline/internal/ws"
)

// A message is what the hub hands a connection: the payload of one server
// frame, one JSON object or several separated by '\n' (docs/protocol.md
// §4), encoded once and shared by every subscriber of a fan-out. The hub,
// rooms and commands know no wire format: each connection's framing
// (framing.go) turns messages into the bytes of its wire. What a framing
// builds from the payload alone, such as a WebSocket frame, a compressed
// one or SSE's data lines, it builds once per message, for the first
// subscriber of that format, and shares with the rest (framed).
type message struct {
	payload []byte
	// control says the payload is a complete WebSocket control frame (a
	// pong), written as it is.
	control bool

	// mark says how the message moves a connection's resume point in room
	// (SSE's Last-Event-ID): a chat or a joined sets it to seq, a left
	// removes the room.
	mark mark
	room string
	seq  uint64

	framed [formats]lazyBytes
}

// mark is what a message means for the resume point of its room.
type mark byte

const (
	markNone mark = iota
	markSeq       // chat or joined: the connection has the room up to seq
	markLeft      // left: the connection is no longer in the room
)

// format is a wire format: one way of framing a message.
type format byte

const (
	formatWebSocket format = iota // a text frame
	formatDeflate                 // a text frame compressed with permessage-deflate
	formatSSE                     // server-sent events' data lines

	formats = iota
)

// lazyBytes is bytes built at most once, by whoever needs them first.
type lazyBytes struct {
	once sync.Once
	b    []byte
}

// newMessage wraps a payload that moves no resume point.
func newMessage(payload []byte) *message { return &message{payload: payload} }

// pong is the answer to a client's ping with payload.
func pong(payload []byte) *message {
	return &message{payload: ws.ControlFrame(ws.OpPong, payload), control: true}
}

// markedMessage wraps a payload that moves the resume point of room.
func markedMessage(payload []byte, m mark, room string, seq uint64) *message {
	return &message{payload: payload, mark: m, room: room, seq: seq}
}

// framedAs returns the message in format f, which build makes from the
// payload the first time any connection asks for it.
func (m *message) framedAs(f format, build func(payload []byte) []byte) []byte {
	l := &m.framed[f]
	l.once.Do(func() { l.b = build(m.payload) })
	return l.b
}
