package ws

import (
	"compress/flate"
	"io"
	"math"
	"sync"
)

// The Reader's side of permessage-deflate: compressed messages inflated
// alone, within the Reader's limit.

// EnableDeflate makes r accept compressed messages, as a connection where
// permessage-deflate was negotiated (Negotiated.Deflate) must: call it
// before the first Feed. A text or binary message whose first frame has
// RSV1 set is then inflated once complete, alone (no context takeover), and
// handed over inflated; RSV1 on a control frame or a continuation frame
// stays a protocol error (1002), as do RSV2 and RSV3.
//
// The Reader's limit applies to the inflated message: inflating stops as
// soon as the output passes it, and the message is refused with
// CloseTooBig, so a small frame that inflates to gigabytes costs no more
// than limit bytes. The compressed bytes are bounded too, by a little more
// than the limit (compressedLimit), and refused as soon as a header makes
// them too many. A text message must be UTF-8 once inflated. Compressed
// bytes that do not inflate are refused with CloseInvalidData (1007), as
// most servers do.
func (r *Reader) EnableDeflate() {
	r.deflate = true
}

// startsCompressedMessage reports whether a frame with first byte first is
// the first frame of a compressed message: RSV1 alone set, on a text or
// binary frame, with deflate enabled. A new message inside a fragmented one
// is refused by checkOpcode.
func (r *Reader) startsCompressedMessage(first byte) bool {
	op := first & 0x0F
	return r.deflate && first&RsvBits == Rsv1Bit && (op == OpText || op == OpBinary)
}

// payloadLimit is how many payload bytes the data message of frame h may
// have as it is sent: the Reader's limit, or compressedLimit of it for a
// compressed message.
func (r *Reader) payloadLimit(h header) int64 {
	if h.compressed || h.op == OpContinuation && r.compressed {
		return compressedLimit(r.limit)
	}
	return r.limit
}

// inflateAndDeliver inflates a whole compressed message and hands it to
// handle, once a text one is checked to be UTF-8.
func (r *Reader) inflateAndDeliver(op byte, compressed []byte, handle func(op byte, payload []byte) bool) (bool, error) {
	f := getInflater()
	defer f.release() // after handle: the message lies in f.out
	message, err := f.inflate(compressed, r.limit)
	if err != nil {
		return false, err
	}
	return deliver(op, message, handle)
}

// Inflate inflates one whole permessage-deflate message (RFC 7692 §7.2.2,
// no context takeover) and calls use with it, as a Reader does: past limit
// bytes it fails with a CloseTooBig error, having inflated limit+1 bytes at
// most, and bytes that do not inflate fail with a CloseInvalidData one. The
// message lies in a pooled buffer, valid only while use runs. For a client
// that reads frames its own way (the bench).
func Inflate(compressed []byte, limit int64, use func(message []byte) error) error {
	f := getInflater()
	defer f.release()
	message, err := f.inflate(compressed, limit)
	if err != nil {
		return err
	}
	return use(message)
}

// compressedLimit is how many compressed bytes a Reader with limit takes
// for one message before it refuses the message as too big, without
// inflating it: a message that fits once inflated fits compressed too, with
// slack for what DEFLATE adds to incompressible data (5 bytes a stored
// block of up to 64 KB) and for an encoder's empty blocks.
func compressedLimit(limit int64) int64 {
	const most = math.MaxInt - maxHeader // what a Reader's limit may be
	slack := limit/64 + 256
	if limit > most-slack {
		return most
	}
	return limit + slack
}

// inflateTail is appended to a message's compressed bytes to inflate them:
// syncTail, then a final empty stored block, so that the flate reader ends
// with io.EOF where the message ends instead of asking for more.
const inflateTail = syncTail + "\x01\x00\x00\xff\xff"

// inflaters are the flate readers of every Reader with deflate enabled.
var inflaters sync.Pool // of *inflater

// inflater is a pooled flate reader, its input and its output buffer.
type inflater struct {
	in    inflateInput
	flate io.ReadCloser // also a flate.Resetter
	out   []byte
}

// getInflater borrows an inflater from the pool, or makes one.
func getInflater() *inflater {
	if f, ok := inflaters.Get().(*inflater); ok {
		return f
	}
	f := &inflater{}
	f.flate = flate.NewReader(&f.in)
	return f
}

// release returns f to the pool, holding no reference to the message.
func (f *inflater) release() {
	f.in = inflateInput{}
	if cap(f.out) > maxPooledBuffer {
		f.out = nil
	}
	inflaters.Put(f)
}

// inflate inflates one message's compressed bytes (RFC 7692 §7.2.2) into
// f.out and returns them, valid until f is released. It stops as soon as
// the output passes limit bytes and returns the CloseTooBig error, having
// taken limit+1 bytes at most from the flate reader, which decodes no
// further ahead of what it hands over than its 32 KB window. Data that is
// not DEFLATE returns a CloseInvalidData error.
func (f *inflater) inflate(compressed []byte, limit int64) ([]byte, error) {
	f.in = inflateInput{data: compressed, tail: inflateTail}
	if err := f.flate.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, corrupt()
	}
	most := int(limit) + 1 // fits: a Reader's limit is below math.MaxInt
	out := f.out[:0]
	for {
		if len(out) == cap(out) {
			if len(out) == most {
				return nil, tooBig()
			}
			out = growBounded(out, most)
			f.out = out
		}
		n, err := f.flate.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		switch {
		case int64(len(out)) > limit:
			return nil, tooBig()
		case err == io.EOF:
			return out, nil
		case err != nil:
			return nil, corrupt()
		}
	}
}

// growBounded returns b with more capacity: double, at least 512 bytes, at
// most most.
func growBounded(b []byte, most int) []byte {
	grown := make([]byte, len(b), min(max(2*cap(b), 512), most))
	copy(grown, b)
	return grown
}

// corrupt is the error for compressed bytes that do not inflate. Most
// servers close with 1007 for it, as for text that is not UTF-8: the
// payload is not what the negotiated extension says it is.
func corrupt() error {
	return invalidData("compressed message does not inflate")
}

// inflateInput is a message's compressed bytes followed by inflateTail. It
// is an io.ByteReader, so that flate reads it directly instead of through a
// bufio.Reader of its own, and reads no byte before it needs it.
type inflateInput struct {
	data []byte
	tail string
}

// ReadByte implements io.ByteReader.
func (in *inflateInput) ReadByte() (byte, error) {
	switch {
	case len(in.data) > 0:
		b := in.data[0]
		in.data = in.data[1:]
		return b, nil
	case len(in.tail) > 0:
		b := in.tail[0]
		in.tail = in.tail[1:]
		return b, nil
	}
	return 0, io.EOF
}

// Read implements io.Reader.
func (in *inflateInput) Read(p []byte) (int, error) {
	n := copy(p, in.data)
	in.data = in.data[n:]
	if n < len(p) {
		k := copy(p[n:], in.tail)
		in.tail = in.tail[k:]
		n += k
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}
