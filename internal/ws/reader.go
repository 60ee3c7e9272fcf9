package ws

import (
	"math"
	"unicode/utf8"
)

// Reader parses the frames a client sends, from bytes fed to it as they
// arrive, in pieces of any size. The zero value is not usable; see NewReader.
//
// Between Feeds a Reader holds only the bytes of an incomplete frame or
// message, in a slice sized for them, and no buffer at all when idle. A
// Reader is used by one goroutine at a time.
//
// A Reader refuses compressed messages (RSV1) unless EnableDeflate was
// called, when permessage-deflate was negotiated.
type Reader struct {
	limit int64 // a frame's end, header included, must fit in an int
	// buf is what must outlive a Feed, or nil: buf[:kept] is the unmasked
	// payload of an unfinished fragmented message, and buf[kept:] the start
	// of a frame whose end has not arrived, as received.
	buf  []byte
	kept int
	// messageOp is the opcode of the unfinished fragmented message, or 0,
	// and compressed whether that message is compressed.
	messageOp  byte
	compressed bool
	deflate    bool // compressed messages are accepted: see EnableDeflate
	done       bool
}

// NewReader returns a Reader that refuses messages longer than limit bytes
// (the sum of a fragmented message's frames) with CloseTooBig.
func NewReader(limit int64) *Reader {
	r := new(Reader)
	r.Reset(limit)
	return r
}

// Reset makes r as NewReader(limit) returns it, dropping whatever it held,
// so that a Reader can be pooled: a connection needs one only while its
// bytes are parsed, and not between Feeds when it is Resting.
func (r *Reader) Reset(limit int64) {
	*r = Reader{limit: min(limit, math.MaxInt-maxHeader)}
}

// Resting reports whether the Reader holds nothing that the next Feed
// needs: no part of a frame, no message under way, and it is not done. A
// resting Reader may be Reset with nothing lost.
func (r *Reader) Resting() bool {
	return len(r.buf) == 0 && r.messageOp == 0 && !r.done
}

// Buffered returns how many bytes the Reader holds between Feeds: an
// incomplete frame or the fragments of an incomplete message.
func (r *Reader) Buffered() int {
	return len(r.buf)
}

// Feed parses data and calls handle, in order, for each complete data
// message (op OpText or OpBinary, fragments joined) and each control frame
// (OpClose, OpPing, OpPong, with its payload). Feed may modify data (it
// unmasks in place). payload is valid only during the call. When handle
// returns false, Feed stops and returns nil, and the Reader is done: later
// Feeds return nil without calling handle. A protocol violation returns a
// *CloseError (and the Reader is done too).
//
// A close frame is checked (its code may be sent, its reason is UTF-8) and
// handed over raw, code and reason; a text message is checked to be UTF-8
// once joined. A message too big is refused as soon as the header that
// makes it so is read, before its payload arrives.
//
// With EnableDeflate, a compressed message is handed over inflated, exactly
// as if it had been sent uncompressed; its payload then lies in a pooled
// buffer rather than in data, valid only during the call like any payload.
func (r *Reader) Feed(data []byte, handle func(op byte, payload []byte) bool) error {
	if r.done {
		return nil
	}
	more := true
	var err error
	if len(r.buf) > r.kept {
		data, more, err = r.finishHeld(data, handle)
	}
	for more && err == nil && len(data) > 0 {
		var h header
		if h, err = r.header(data); err != nil {
			break
		}
		if h.size == 0 || int64(len(data)-h.size) < h.length {
			r.hold(data, h)
			return nil
		}
		end := h.size + int(h.length)
		payload := data[h.size:end]
		unmask(h.mask, payload)
		more, err = r.frame(h, payload, handle)
		data = data[end:]
	}
	if err != nil || !more {
		return r.stop(err)
	}
	return nil
}

// finishHeld adds to the held start of a frame what data has of the rest,
// and handles the frame if that completes it. It returns what is left of
// data, and whether to go on.
func (r *Reader) finishHeld(data []byte, handle func(op byte, payload []byte) bool) ([]byte, bool, error) {
	// The header is at most 14 bytes: gather it on the stack to parse it.
	var b [maxHeader]byte
	n := copy(b[:], r.buf[r.kept:])
	n += copy(b[n:], data)
	h, err := r.header(b[:n])
	if err != nil {
		return nil, false, err
	}
	if h.size == 0 {
		r.hold(data, h)
		return nil, true, nil
	}
	rest := h.size + int(h.length) - (len(r.buf) - r.kept)
	if len(data) < rest {
		r.hold(data, h)
		return nil, true, nil
	}
	r.hold(data[:rest], h)
	payload := r.buf[r.kept+h.size:]
	unmask(h.mask, payload)
	more, err := r.frame(h, payload, handle)
	// The frame's bytes are handled: keep only the message so far, if any.
	if r.buf = r.buf[:r.kept]; r.kept == 0 {
		r.buf = nil
	}
	return data[rest:], more, err
}

// hold keeps data, the start of a frame or more of it, after what the
// Reader holds. h is the frame's header, or what is parsed of it: the buffer
// grows by doubling up to the end of the frame, or of the longest header
// while the header is incomplete, never beyond.
func (r *Reader) hold(data []byte, h header) {
	end := r.kept + maxHeader
	if h.size > 0 {
		end = r.kept + h.size + int(h.length)
	}
	r.buf = appendBounded(r.buf, data, end)
}

// frame handles one complete frame whose payload is unmasked: a control
// frame or a whole message goes to handle now, a fragment joins the message
// under way.
func (r *Reader) frame(h header, payload []byte, handle func(op byte, payload []byte) bool) (bool, error) {
	if h.op >= OpClose {
		if h.op == OpClose {
			if err := checkClose(payload); err != nil {
				return false, err
			}
		}
		return handle(h.op, payload), nil
	}
	if h.fin && r.messageOp == 0 {
		return r.deliverMessage(h.op, h.compressed, payload, handle)
	}
	if r.messageOp == 0 {
		r.messageOp, r.compressed = h.op, h.compressed
	}
	// A fragment's payload may sit in r.buf already, after the message so
	// far: append moves it down over its header, with no allocation.
	r.buf = appendBounded(r.buf[:r.kept], payload, int(r.payloadLimit(h)))
	r.kept = len(r.buf)
	if !h.fin {
		return true, nil
	}
	op, compressed, message := r.messageOp, r.compressed, r.buf
	r.buf, r.kept, r.messageOp, r.compressed = nil, 0, 0, false
	return r.deliverMessage(op, compressed, message, handle)
}

// deliverMessage hands a whole data message to handle, inflated first if
// it is compressed.
func (r *Reader) deliverMessage(op byte, compressed bool, message []byte, handle func(op byte, payload []byte) bool) (bool, error) {
	if compressed {
		return r.inflateAndDeliver(op, message, handle)
	}
	return deliver(op, message, handle)
}

// deliver hands a whole data message to handle, once a text one is checked
// to be UTF-8.
func deliver(op byte, message []byte, handle func(op byte, payload []byte) bool) (bool, error) {
	if op == OpText && !utf8.Valid(message) {
		return false, invalidData("text message is not utf-8")
	}
	return handle(op, message), nil
}

// stop ends the Reader after an error, or when handle has asked to stop:
// later Feeds do nothing, and whatever was held is released.
func (r *Reader) stop(err error) error {
	r.done = true
	r.buf, r.kept, r.messageOp, r.compressed = nil, 0, 0, false
	return err
}

// appendBounded appends p to b. When b must grow, it at least doubles, up
// to bound (the most b will hold), never beyond; the first time, it takes
// just what p needs.
func appendBounded(b, p []byte, bound int) []byte {
	n := len(b) + len(p)
	if n > cap(b) {
		grown := make([]byte, len(b), min(max(2*cap(b), n), max(bound, n)))
		copy(grown, b)
		b = grown
	}
	return append(b, p...)
}
