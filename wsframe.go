package partyline

import (
	"encoding/binary"
	"sync"

	"github.com/partyline/partyline/internal/ws"
)

// WebSocket framing of what the server writes (RFC 6455 §5.2): server
// frames are unmasked, so a frame is a 2 to 10 byte header and the payload.
// Frames are prepared once and written as they are to every subscriber.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
	finBit  = 0x80
)

// pingFrame is an empty ping.
var pingFrame = []byte{finBit | opPing, 0}

// textFrame prepares a complete text frame carrying payload.
func textFrame(payload []byte) []byte {
	return ws.AppendFrame(make([]byte, 0, 10+len(payload)), finBit|opText, payload, nil)
}

// controlFrame prepares a ping, pong or close frame; payload is at most 125
// bytes.
func controlFrame(op byte, payload []byte) []byte {
	return ws.AppendFrame(make([]byte, 0, 2+len(payload)), finBit|op, payload[:min(len(payload), 125)], nil)
}

// closeFrame prepares a close frame with code and reason.
func closeFrame(code int, reason string) []byte {
	payload := binary.BigEndian.AppendUint16(nil, uint16(code))
	return controlFrame(opClose, append(payload, reason...))
}

// Merging. A connection that has fallen behind has several text frames
// queued; sent as they are, each costs the client a frame to parse and, on
// the way, a slice of a segment. The writer joins them instead into one
// text frame whose payload is theirs separated by '\n', which clients split
// (docs/protocol.md §4): the server's objects contain no raw newline, JSON
// escapes them. Control frames (ping, close) and anything else keep their
// place between the merged frames.

// mergeBufferSize bounds what one write merges: the merged frames are built
// in one buffer of this size, taken from mergeBuffers while the write is
// pending. Its payloads then fit a 4-byte header.
const mergeBufferSize = 64 << 10

var mergeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, mergeBufferSize); return &b }}

// mergeText rewrites frames in place so that each run of two or more
// unfragmented text frames becomes one text frame built in buf, and returns
// the frames, buf extended by what the merged frames use, and through: how
// many of the returned frames lead up to the last one built in buf (0 if
// none). A run is cut where the next frame would overflow buf's capacity or
// a 64 KB payload; frames that cannot be merged stay as they are. buf's
// backing array is never reallocated, so the merged frames stay valid
// while buf is unused.
func mergeText(frames [][]byte, buf []byte) (_ [][]byte, _ []byte, through int) {
	out := frames[:0]
	for i := 0; i < len(frames); {
		j, size := i, -1 // size: the merged payload's length, separators included
		for ; j < len(frames) && isText(frames[j]); j++ {
			n := size + 1 + len(textPayload(frames[j]))
			if n > 0xFFFF || len(buf)+4+n > cap(buf) {
				break
			}
			size = n
		}
		if j-i < 2 {
			out = append(out, frames[i])
			i++
			continue
		}
		start := len(buf)
		buf = appendTextHeader(buf, size)
		for k := i; k < j; k++ {
			if k > i {
				buf = append(buf, '\n')
			}
			buf = append(buf, textPayload(frames[k])...)
		}
		out = append(out, buf[start:len(buf):len(buf)])
		through = len(out)
		i = j
	}
	clear(frames[len(out):])
	return out, buf, through
}

// isText reports whether frame is a whole, unfragmented text frame as the
// server prepares them: FIN, no reserved bits, unmasked.
func isText(frame []byte) bool {
	return len(frame) >= 2 && frame[0] == finBit|opText && frame[1]&0x80 == 0
}

// textPayload returns the payload of a frame isText accepts.
func textPayload(frame []byte) []byte {
	switch frame[1] & 0x7F {
	case 126:
		return frame[4:]
	case 127:
		return frame[10:]
	}
	return frame[2:]
}

// appendTextHeader appends the header of an unmasked text frame with an
// n-byte payload, n < 65536.
func appendTextHeader(b []byte, n int) []byte {
	if n <= 125 {
		return append(b, finBit|opText, byte(n))
	}
	return binary.BigEndian.AppendUint16(append(b, finBit|opText, 126), uint16(n))
}
