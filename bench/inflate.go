package bench

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// permessage-deflate (RFC 7692), the client's side, with --compression.
// The bench offers it with no context takeover either way and accepts only
// an answer that keeps it so: then each compressed message inflates alone,
// and no connection keeps a flate reader or a 32 KB window between
// messages. The flate readers are pooled, shared by all connections, and
// reset (flate.Resetter) for each message. The bench's own frames go
// uncompressed, which a client is free to do.

// deflateOffer is the Sec-WebSocket-Extensions value the bench sends with
// --compression.
const deflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// inflateTail follows a message's compressed bytes into the flate reader:
// the 0x00 0x00 0xff 0xff that the sender stripped (RFC 7692 §7.2.2), then
// a final empty stored block, so that the reader ends with io.EOF where the
// message ends instead of asking for more.
const inflateTail = "\x00\x00\xff\xff" + "\x01\x00\x00\xff\xff"

// inflateBuffer is the size of a new inflater's output buffer, which
// grows to the largest message it has inflated, up to maxPooledInflate.
const (
	inflateBuffer    = 4 << 10
	maxPooledInflate = 64 << 10
)

// acceptedDeflate reads the server's Sec-WebSocket-Extensions answer
// (header's) to an offer of deflateOffer, or to no offer when offered is
// false. It reports whether permessage-deflate is on, or fails when the
// server answered with an extension that was not offered, or with
// parameters that would make the bench keep a window between messages.
func acceptedDeflate(header http.Header, offered bool) (bool, error) {
	answer := strings.TrimSpace(strings.Join(header.Values("Sec-WebSocket-Extensions"), ","))
	switch {
	case answer == "":
		return false, nil
	case !offered:
		return false, fmt.Errorf("bench: bad handshake: extension %q, none offered", answer)
	case strings.Contains(answer, ","):
		return false, fmt.Errorf("bench: bad handshake: extensions %q, one offered", answer)
	}
	name, params, _ := strings.Cut(answer, ";")
	if !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
		return false, fmt.Errorf("bench: bad handshake: extension %q not offered", answer)
	}
	serverNoTakeover := false
	for _, param := range strings.Split(params, ";") {
		key, _, _ := strings.Cut(param, "=")
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "server_no_context_takeover":
			serverNoTakeover = true
		case "", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits":
			// A smaller server window inflates with a 32 KB one; the
			// client's own parameters concern frames the bench does not
			// compress.
		default:
			return false, fmt.Errorf("bench: bad handshake: permessage-deflate parameter %q not offered", strings.TrimSpace(param))
		}
	}
	if !serverNoTakeover {
		return false, fmt.Errorf("bench: bad handshake: %q without server_no_context_takeover, which was offered", answer)
	}
	return true, nil
}

// inflaters are the bench's flate readers, shared by all connections.
var inflaters sync.Pool // of *inflater

// inflater is a pooled flate reader, its input and its output buffer.
type inflater struct {
	in    compressedInput
	flate io.ReadCloser // also a flate.Resetter
	out   []byte
}

// getInflater borrows an inflater from the pool, or makes one.
func getInflater() *inflater {
	if f, ok := inflaters.Get().(*inflater); ok {
		return f
	}
	f := &inflater{out: make([]byte, 0, inflateBuffer)}
	f.flate = flate.NewReader(&f.in)
	return f
}

// release returns f to the pool, without its buffer if a rare big message
// made it big.
func (f *inflater) release() {
	f.in = compressedInput{}
	if cap(f.out) > maxPooledInflate {
		f.out = make([]byte, 0, inflateBuffer)
	}
	inflaters.Put(f)
}

var errInflatedTooBig = fmt.Errorf("bench: server message inflates to more than %d bytes", maxFrame)

// inflate inflates one message's compressed payload (RFC 7692 §7.2.2) into
// f's buffer and returns it, valid until f is released. It fails if the
// payload does not inflate or inflates to more than maxFrame bytes. It does
// not allocate once the buffer has grown to the message's size, except
// what compress/flate allocates itself: the link tables of a dynamic
// Huffman block whose codes are longer than 9 bits (BenchmarkInflate).
func (f *inflater) inflate(compressed []byte) ([]byte, error) {
	f.in = compressedInput{data: compressed, tail: inflateTail}
	if err := f.flate.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, fmt.Errorf("bench: inflate: %w", err)
	}
	out := f.out[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > maxFrame {
				return nil, errInflatedTooBig
			}
			grown := make([]byte, len(out), 2*cap(out))
			copy(grown, out)
			out, f.out = grown, grown
		}
		n, err := f.flate.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		switch {
		case len(out) > maxFrame:
			return nil, errInflatedTooBig
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return nil, fmt.Errorf("bench: server message does not inflate: %w", err)
		}
	}
}

// compressedInput is a message's compressed bytes followed by inflateTail.
// It is an io.ByteReader, so that flate reads it directly rather than
// through a bufio.Reader it would allocate.
type compressedInput struct {
	data []byte
	tail string
}

// ReadByte implements io.ByteReader.
func (in *compressedInput) ReadByte() (byte, error) {
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
func (in *compressedInput) Read(p []byte) (int, error) {
	n := copy(p, in.data)
	in.data = in.data[n:]
	k := copy(p[n:], in.tail)
	in.tail = in.tail[k:]
	if n+k == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n + k, nil
}
