package bench

import (
	"bytes"
	"math"
	"strconv"
)

// A stamped payload is the content of every chat message the bench sends:
// stampMark, then the send time as stampDigits zero-padded decimal
// nanoseconds since the run's epoch, then padding to the payload size. Only
// JSON-safe ASCII, so any server relays it byte for byte.
const (
	stampMark   = '#'
	stampDigits = 19
	stampLen    = 1 + stampDigits
	stampPad    = 'x'
	// maxSpace bounds the whitespace accepted around the ':' of a
	// "content" field.
	maxSpace = 4

	contentText = `"content"`
)

var (
	contentKey  = []byte(contentText)
	errorType   = []byte(`"type":"error"`)
	joinedType  = []byte(`"joined"`)
	welcomeType = []byte(`"welcome"`)
)

// chatFrame builds the client chat frame for room with a stamped content of
// payload bytes, and returns it with the offset of the stamp's digits.
func chatFrame(room string, payload int) (frame []byte, digits int) {
	payload = max(payload, stampLen)
	frame = append(frame, `{"type":"chat","room":`...)
	frame = strconv.AppendQuote(frame, room)
	frame = append(frame, `,"content":"`...)
	digits = len(frame) + 1
	frame = append(frame, stampMark)
	frame = append(frame, bytes.Repeat([]byte{'0'}, stampDigits)...)
	frame = append(frame, bytes.Repeat([]byte{stampPad}, payload-stampLen)...)
	frame = append(frame, `"}`...)
	return frame, digits
}

// putStamp writes ns (>= 0) as stampDigits zero-padded decimal digits into
// the start of b without allocating.
func putStamp(b []byte, ns int64) {
	u := uint64(max(ns, 0))
	for i := stampDigits - 1; i >= 0; i-- {
		b[i] = byte('0' + u%10)
		u /= 10
	}
}

// parseStamp reads a stamp (mark and digits) from the start of b.
func parseStamp(b []byte) (ns int64, ok bool) {
	if len(b) < stampLen || b[0] != stampMark {
		return 0, false
	}
	var u uint64 // 19 digits always fit
	for _, c := range b[1:stampLen] {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// Results of nextStamp.
const (
	scanField   = iota // a "content" field was read; stamp >= 0 if it held a stamp
	scanNone           // no field starts before n; the rest may begin a key
	scanPartial        // a field starts at n but b ends before its stamp
)

// nextStamp looks for the next "content" field in b, one JSON object or a
// "\n"-separated batch of them (possibly cut short). It returns what it
// found, how many bytes of b it consumed, and the stamp the field holds (-1
// if none). It does not allocate.
func nextStamp(b []byte) (stamp int64, n int, status int) {
	k := bytes.Index(b, contentKey)
	if k < 0 {
		return -1, max(len(b)-len(contentKey)+1, 0), scanNone
	}
	i := skipSpace(b, k+len(contentKey))
	switch {
	case i == len(b):
		return -1, k, scanPartial
	case b[i] != ':':
		return -1, i, scanField
	}
	i = skipSpace(b, i+1)
	switch {
	case i == len(b):
		return -1, k, scanPartial
	case b[i] != '"':
		return -1, i, scanField
	}
	i++
	if len(b)-i < stampLen {
		if i < len(b) && b[i] != stampMark {
			return -1, i, scanField
		}
		return -1, k, scanPartial
	}
	ns, ok := parseStamp(b[i:])
	if !ok {
		return -1, i, scanField
	}
	return ns, i + stampLen, scanField
}

// skipSpace skips up to maxSpace JSON whitespace bytes from b[i:].
func skipSpace(b []byte, i int) int {
	for end := min(i+maxSpace, len(b)); i < end; i++ {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return i
		}
	}
	return i
}

// forEachStamp calls fn with each stamp in msg, a whole server message or
// a "\n"-separated batch of them.
func forEachStamp(msg []byte, fn func(stamp int64)) {
	for {
		stamp, n, status := nextStamp(msg)
		if status != scanField {
			return
		}
		msg = msg[n:]
		if stamp >= 0 {
			fn(stamp)
		}
	}
}
