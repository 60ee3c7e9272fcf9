package ws

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// testKey is the masking key of the frames the tests build.
var testKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a client frame: first is its first byte (FIN, RSV and
// opcode); the payload is masked with testKey and its length takes the
// shortest encoding.
func frame(first byte, payload string) []byte {
	return encodeFrame(first, []byte(payload), 0, &testKey)
}

// encodeFrame builds a client frame with the length in lengthBytes bytes (0:
// the shortest encoding, or 2 or 8), masked with key, or unmasked if key is
// nil.
func encodeFrame(first byte, payload []byte, lengthBytes int, key *[4]byte) []byte {
	b := []byte{first, 0}
	n := len(payload)
	switch {
	case lengthBytes == 8 || lengthBytes == 0 && n > 0xFFFF:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case lengthBytes == 2 || lengthBytes == 0 && n > 125:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = byte(n)
	}
	if key == nil {
		return append(b, payload...)
	}
	b[1] |= 0x80
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= key[i&3]
	}
	return b
}

// closePayload is a close frame's payload: code and reason.
func closePayload(code uint16, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, code)) + reason
}

// join concatenates frames.
func join(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

// message is what a Reader handed over.
type message struct {
	op      byte
	payload string
}

func (m message) String() string { return fmt.Sprintf("%#x %q", m.op, m.payload) }

// feed feeds each piece to r in turn and returns the messages handed over
// and the first error.
func feed(r *Reader, pieces ...[]byte) ([]message, error) {
	var got []message
	handle := func(op byte, payload []byte) bool {
		got = append(got, message{op, string(payload)})
		return true
	}
	for _, piece := range pieces {
		if err := r.Feed(piece, handle); err != nil {
			return got, err
		}
	}
	return got, nil
}

// split cuts b into pieces of size n (the last may be shorter), each a
// copy.
func split(b []byte, n int) [][]byte {
	var pieces [][]byte
	for len(b) > 0 {
		k := min(n, len(b))
		pieces = append(pieces, append([]byte(nil), b[:k]...))
		b = b[k:]
	}
	return pieces
}

// closeCode is err's close code, 0 for nil, -1 for an error that is not a
// *CloseError.
func closeCode(err error) int {
	var ce *CloseError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		return ce.Code
	default:
		return -1
	}
}
