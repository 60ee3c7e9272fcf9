package partyline

import (
	"sync"

	"github.com/partyline/partyline/internal/ws"
)

// A framing turns a connection's messages into the bytes of its wire: a
// WebSocket's frames, compressed or not, or a stream of server-sent events.
// It runs in the connection's writer role (writer.go), one call at a time,
// so it may keep state of the connection's own.
type framing interface {
	// appendFrames appends to out the bytes that carry msgs, in order.
	// What it builds for this connection alone it builds in space, whose
	// buffers are held until those bytes are written.
	appendFrames(out [][]byte, msgs []*message, space *mergeSpace) [][]byte
	// ping returns what the heartbeat writes to keep the wire alive.
	ping() []byte
	// closing returns what tells the client that the server closes the
	// connection with code and reason.
	closing(code int, reason string) []byte
}

// webSocketFraming frames messages as uncompressed WebSocket text frames. A
// message alone is its own frame, built once for every subscriber. Several
// queued for the connection, when it has fallen behind, leave merged: one
// text frame whose payload is theirs separated by '\n', which clients split
// (docs/protocol.md §4). Sent as they are, each would cost the client a
// frame to parse and, on the way, a slice of a segment.
type webSocketFraming struct{}

func (webSocketFraming) appendFrames(out [][]byte, msgs []*message, space *mergeSpace) [][]byte {
	return appendMerged(out, msgs, space, maxMergedPayload)
}

// appendMerged appends msgs as uncompressed frames, merging the messages
// that follow one another into frames of at most limit payload bytes.
func appendMerged(out [][]byte, msgs []*message, space *mergeSpace, limit int) [][]byte {
	for len(msgs) > 0 {
		n, size := mergeable(msgs, limit)
		if n < 2 {
			out = append(out, msgs[0].webSocketFrame())
			msgs = msgs[1:]
			continue
		}
		b := space.reserve(4 + size)
		b = ws.AppendHeader(b, ws.FinBit|ws.OpText, size)
		for i, m := range msgs[:n] {
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, m.payload...)
		}
		out = append(out, space.commit(b))
		msgs = msgs[n:]
	}
	return out
}

func (webSocketFraming) ping() []byte { return ws.PingFrame() }

func (webSocketFraming) closing(code int, reason string) []byte { return ws.CloseFrame(code, reason) }

// webSocketFrame returns m as an uncompressed WebSocket frame.
func (m *message) webSocketFrame() []byte {
	if m.control {
		return m.payload
	}
	return m.framedAs(formatWebSocket, ws.TextFrame)
}

// deflateFraming frames messages for a WebSocket with permessage-deflate
// (docs/protocol.md §12.2): a message of at least minSize bytes is
// compressed, once for every compressed subscriber; shorter ones, for
// which deflate saves little, go uncompressed, merged when several are
// queued into frames that stay below minSize, so that every frame of
// minSize bytes or more is compressed.
type deflateFraming struct{ minSize int }

func (f deflateFraming) appendFrames(out [][]byte, msgs []*message, space *mergeSpace) [][]byte {
	for len(msgs) > 0 {
		n := 0
		for n < len(msgs) && (msgs[n].control || len(msgs[n].payload) < f.minSize) {
			n++
		}
		out = appendMerged(out, msgs[:n], space, min(f.minSize-1, maxMergedPayload))
		if n < len(msgs) {
			out = append(out, msgs[n].framedAs(formatDeflate, compressedFrame))
			n++
		}
		msgs = msgs[n:]
	}
	return out
}

func (deflateFraming) ping() []byte { return ws.PingFrame() }

func (deflateFraming) closing(code int, reason string) []byte { return ws.CloseFrame(code, reason) }

// compressedFrame is a text frame carrying payload compressed.
func compressedFrame(payload []byte) []byte { return ws.AppendCompressedText(nil, payload) }

// maxMergedPayload bounds the payload of a merged frame: it fits a 4-byte
// header and, with it, one merge buffer.
const maxMergedPayload = mergeBufferSize - 4

// mergeable returns how many messages at the head of msgs fit one merged
// frame of at most limit payload bytes, and the merged payload's size,
// separators included. A control frame is merged with nothing.
func mergeable(msgs []*message, limit int) (n, size int) {
	size = -1
	for ; n < len(msgs); n++ {
		next := size + 1 + len(msgs[n].payload)
		if msgs[n].control || next > limit {
			break
		}
		size = next
	}
	return n, size
}

// mergeBufferSize is the size of the buffers that merged frames are built
// in, taken from mergeBuffers for as long as a write is pending.
const mergeBufferSize = 64 << 10

var mergeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, mergeBufferSize); return &b }}

// mergeSpace is the pooled buffers in which one connection's writer builds
// what is its alone: merged frames, SSE ids. A buffer's backing array is
// never reallocated, so what was built in it stays valid until release.
type mergeSpace struct {
	held []*[]byte
}

// reserve returns an empty slice with room for n bytes at the end of a
// held buffer, taking a new one when the last has less room, or of its
// own when n is more than a buffer holds. What is appended to it must then
// be committed.
func (s *mergeSpace) reserve(n int) []byte {
	if n > mergeBufferSize {
		return make([]byte, 0, n)
	}
	if len(s.held) > 0 {
		if b := *s.held[len(s.held)-1]; cap(b)-len(b) >= n {
			return b[len(b):len(b)]
		}
	}
	b := mergeBuffers.Get().(*[]byte)
	*b = (*b)[:0]
	s.held = append(s.held, b)
	return *b
}

// commit keeps what was built in the slice reserve returned, and returns
// it, capped so that appending to it cannot overwrite what follows. What
// outgrew its reservation was moved by append, and holds no buffer.
func (s *mergeSpace) commit(built []byte) []byte {
	if n := len(s.held); n > 0 && len(built) > 0 {
		last := s.held[n-1]
		if free := (*last)[len(*last):cap(*last)]; len(free) >= len(built) && &free[0] == &built[0] {
			*last = (*last)[:len(*last)+len(built)]
		}
	}
	return built[:len(built):len(built)]
}

// release gives the held buffers back, once what was built in them is
// written.
func (s *mergeSpace) release() {
	for _, b := range s.held {
		mergeBuffers.Put(b)
	}
	clear(s.held)
	s.held = s.held[:0]
}
