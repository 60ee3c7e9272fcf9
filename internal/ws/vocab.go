package ws

import (
	"encoding/binary"
	"unicode/utf8"
)

// The WebSocket vocabulary that the server, its tests and the bench share:
// opcodes, header bits, close codes, and building the frames a server sends.
// A client's frames are built with AppendFrame and a masking key.

// Opcodes (RFC 6455 §5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Bits of a frame's first two bytes (RFC 6455 §5.2).
const (
	FinBit  byte = 0x80 // first byte: the frame ends its message
	Rsv1Bit byte = 0x40 // first byte: the message is compressed (permessage-deflate, RFC 7692 §6)
	RsvBits byte = 0x70 // first byte: RSV1, RSV2 and RSV3, all unset without an extension
	MaskBit byte = 0x80 // second byte: the payload is masked, as a client's must be
)

// Close codes (RFC 6455 §7.4.1). CloseNoStatus and CloseAbnormal are never
// sent: they describe a closure that came without a code, or without a
// close frame at all.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005
	CloseAbnormal        = 1006
	CloseInvalidData     = 1007 // text or close reason that is not UTF-8
	CloseTooBig          = 1009
	CloseInternalError   = 1011
)

// maxControlPayload is the longest payload of a control frame (RFC 6455
// §5.5).
const maxControlPayload = 125

// TextFrame returns a complete, unmasked text frame carrying payload.
func TextFrame(payload []byte) []byte {
	return AppendFrame(make([]byte, 0, 10+len(payload)), FinBit|OpText, payload, nil)
}

// ControlFrame returns an unmasked control frame (op is OpClose, OpPing or
// OpPong) carrying payload, cut to the 125 bytes a control frame may carry.
func ControlFrame(op byte, payload []byte) []byte {
	payload = payload[:min(len(payload), maxControlPayload)]
	return AppendFrame(make([]byte, 0, 2+len(payload)), FinBit|op, payload, nil)
}

// CloseFrame returns an unmasked close frame with code and reason (see
// ClosePayload).
func CloseFrame(code int, reason string) []byte {
	return ControlFrame(OpClose, ClosePayload(code, reason))
}

// ClosePayload returns the payload of a close frame: code, then as much of
// reason as fits in the 125 bytes of a control frame, cut before a UTF-8
// character rather than through it.
func ClosePayload(code int, reason string) []byte {
	if most := maxControlPayload - 2; len(reason) > most {
		cut := most
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code)), reason...)
}

// ParseClose returns the code and reason of a close frame's payload;
// CloseNoStatus and "" when it carries no code.
func ParseClose(payload []byte) (code int, reason string) {
	if len(payload) < 2 {
		return CloseNoStatus, ""
	}
	return int(binary.BigEndian.Uint16(payload)), string(payload[2:])
}

// pingFrame is PingFrame's, shared.
var pingFrame = []byte{FinBit | OpPing, 0}

// PingFrame returns an empty, unmasked ping frame: the same bytes to every
// caller, which must not modify them.
func PingFrame() []byte {
	return pingFrame[:len(pingFrame):len(pingFrame)] // an append copies
}

// AppendHeader appends to b the header of an unmasked frame whose first
// byte is first (FIN, RSV and opcode) and whose payload is n bytes long,
// its length in the shortest encoding.
func AppendHeader(b []byte, first byte, n int) []byte {
	return appendLength(append(b, first), 0, n)
}

// appendLength appends a header's second byte, mask and the length n, and
// the extended length when n needs one.
func appendLength(b []byte, mask byte, n int) []byte {
	switch {
	case n <= 125:
		return append(b, mask|byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, mask|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, mask|127), uint64(n))
	}
}
