package partyline

import (
	"encoding/binary"

	"github.com/partyline/partyline/internal/ws"
)

// WebSocket framing of what the server writes (RFC 6455 §5.2): server
// frames are unmasked, so a frame is a 2 to 10 byte header and the payload.
// A message's frame is built once and written as it is to every subscriber
// (framing.go).
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

// appendTextHeader appends the header of an unmasked text frame with an
// n-byte payload, n < 65536.
func appendTextHeader(b []byte, n int) []byte {
	if n <= 125 {
		return append(b, finBit|opText, byte(n))
	}
	return binary.BigEndian.AppendUint16(append(b, finBit|opText, 126), uint16(n))
}
