package ws

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// IsPong reports whether b is exactly one complete, masked pong frame: the
// commonest arrival on a quiet connection, which a Reader holding nothing
// (Buffered returns 0) always accepts.
func IsPong(b []byte) bool {
	const header = 6 // two bytes and the masking key
	if len(b) < header || b[0] != FinBit|OpPong || b[1]&MaskBit == 0 {
		return false
	}
	length := int(b[1] & 0x7f)
	return length <= 125 && len(b) == header+length
}

// AppendFrame appends one frame to b: first is its first byte (FIN, RSV and
// opcode), and the payload's length takes the shortest encoding. With key
// the payload is masked, as a client sends it; with a nil key it is not, as
// a server sends it.
func AppendFrame(b []byte, first byte, payload []byte, key *[4]byte) []byte {
	if key == nil {
		return append(AppendHeader(b, first, len(payload)), payload...)
	}
	b = appendLength(append(b, first), MaskBit, len(payload))
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	unmask(*key, b[start:]) // masking is the same XOR
	return b
}

// maxHeader is the longest frame header a client sends: 2 bytes, a 64-bit
// length and the masking key.
const maxHeader = 14

// header is a client frame's header.
type header struct {
	fin    bool
	op     byte
	size   int   // bytes of the header, 6 to 14; 0 while incomplete
	length int64 // bytes of the payload
	mask   [4]byte

	// compressed is RSV1 on a message's first frame, with deflate enabled.
	compressed bool
}

// header parses the frame header at the start of b and checks it against
// the Reader's state: the message under way and the limit. It checks each
// field as soon as b holds it, so a bad frame is refused however its bytes
// were split; h.size is 0 when b does not hold the whole header yet.
func (r *Reader) header(b []byte) (h header, err error) {
	if len(b) == 0 {
		return h, nil
	}
	h.fin, h.op = b[0]&FinBit != 0, b[0]&0x0F
	h.compressed = r.startsCompressedMessage(b[0])
	if b[0]&RsvBits != 0 && !h.compressed {
		return h, protocolError("reserved bits set")
	}
	if err := r.checkOpcode(h.fin, h.op); err != nil {
		return h, err
	}
	if len(b) < 2 {
		return h, nil
	}
	if b[1]&MaskBit == 0 {
		return h, protocolError("unmasked client frame")
	}
	size, length := 2, int64(b[1]&0x7F)
	switch length {
	case 126:
		size = 4
	case 127:
		size = 10
	}
	if len(b) < size {
		return h, nil
	}
	switch size {
	case 4:
		length = int64(binary.BigEndian.Uint16(b[2:]))
	case 10:
		n := binary.BigEndian.Uint64(b[2:])
		if n>>63 != 0 {
			return h, protocolError("length with the top bit set")
		}
		length = int64(n)
	}
	// Lengths may take more bytes than they need (RFC 6455 §5.2 says they
	// must not, but gorilla/websocket and most servers accept them).
	switch {
	case h.op >= OpClose && length > 125:
		return h, protocolError("control frame longer than 125 bytes")
	case h.op < OpClose && length > r.payloadLimit(h)-int64(r.kept):
		return h, tooBig()
	}
	if len(b) < size+4 {
		return h, nil
	}
	copy(h.mask[:], b[size:])
	h.size, h.length = size+4, length
	return h, nil
}

// checkOpcode refuses unknown opcodes, fragmented control frames and data
// frames out of turn: a continuation with no message under way, or a new
// message while one is.
func (r *Reader) checkOpcode(fin bool, op byte) error {
	switch {
	case op == OpContinuation && r.messageOp == 0:
		return protocolError("continuation with no message started")
	case (op == OpText || op == OpBinary) && r.messageOp != 0:
		return protocolError("new message inside a fragmented message")
	case op == OpClose || op == OpPing || op == OpPong:
		if !fin {
			return protocolError("fragmented control frame")
		}
	case op > OpBinary:
		return protocolError("unknown opcode " + strconv.Itoa(int(op)))
	}
	return nil
}

// unmask XORs b with the masking key, in place; b starts at the first byte
// of a payload.
func unmask(key [4]byte, b []byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// checkClose checks a close frame's payload: empty, or a code that may be
// sent and a UTF-8 reason (RFC 6455 §5.5.1, §7.4).
func checkClose(payload []byte) error {
	switch {
	case len(payload) == 0:
		return nil
	case len(payload) == 1:
		return protocolError("close payload of 1 byte")
	case !sendable(int(binary.BigEndian.Uint16(payload))):
		return protocolError("invalid close code " + strconv.Itoa(int(binary.BigEndian.Uint16(payload))))
	case !utf8.Valid(payload[2:]):
		return invalidData("close reason is not utf-8")
	}
	return nil
}

// sendable reports whether an endpoint may send close code: one defined by
// RFC 6455 or registered with IANA (1000–1003, 1007–1014), or one for
// libraries and applications (3000–4999). 1004 is reserved; 1005, 1006 and
// 1015 only ever describe a closure.
func sendable(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}
