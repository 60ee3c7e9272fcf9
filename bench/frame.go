package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/partyline/partyline/internal/ws"
)

// The server's frames (RFC 6455 §5.2), unmasked, parsed where the bench
// reads them, and inflated there when compressed (inflate.go); internal/ws
// has the vocabulary, and builds the bench's own frames, masked
// (wsconn.go).

// maxFrame bounds a server frame's payload, so that a corrupt length cannot
// make the bench allocate without limit.
const maxFrame = 16 << 20

var errFragmented = errors.New("bench: the server sent a fragmented message (FIN=0), which the bench does not read")

// frameSize returns the size of the server frame that b begins: header and
// payload when b holds the whole header, else how long the header is known
// to be so far (more than len(b)). It fails on a frame the server must not
// send; with deflate (permessage-deflate negotiated), RSV1 is allowed on
// the first frame of a text or binary message, as RFC 7692 §6 has it.
func frameSize(b []byte, deflate bool) (int, error) {
	if len(b) < 2 {
		return 2, nil
	}
	switch rsv, op := b[0]&ws.RsvBits, b[0]&0x0F; {
	case rsv != 0 && !(deflate && rsv == ws.Rsv1Bit && (op == ws.OpText || op == ws.OpBinary)):
		return 0, fmt.Errorf("bench: server frame (opcode %#x) with reserved bits %#x", op, rsv)
	case b[1]&ws.MaskBit != 0:
		return 0, errors.New("bench: masked server frame")
	}
	head, n := headerSize(b[1]), int(b[1]&0x7F)
	if len(b) < head {
		return head, nil
	}
	switch head {
	case 4:
		n = int(binary.BigEndian.Uint16(b[2:]))
	case 10:
		u := binary.BigEndian.Uint64(b[2:])
		if u > maxFrame {
			return 0, fmt.Errorf("bench: server frame of %d bytes, over the bench's %d", u, maxFrame)
		}
		n = int(u)
	}
	if b[0]&0x08 != 0 && n > 125 { // a control frame
		return 0, fmt.Errorf("bench: server control frame of %d bytes, over 125", n)
	}
	return head + n, nil
}

// headerSize returns the size of an unmasked frame's header from its
// second byte.
func headerSize(b1 byte) int {
	switch b1 & 0x7F {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// frameParser splits one connection's byte stream into the server's
// frames. Bytes arrive in reads of any size; whole frames are handled where
// they lie, and only a frame cut by the end of a read is copied, into
// partial, until it is complete. With deflate, a compressed message (RSV1)
// is inflated into a pooled buffer and handled from there.
type frameParser struct {
	partial  []byte         // the start of a frame cut by the end of the last read; nil when none
	deflate  bool           // permessage-deflate was negotiated: RSV1 marks a compressed message
	inflated *atomic.Uint64 // with deflate, counts the messages inflated; may be nil
}

// feed handles every frame that data completes, in order, calling handle
// with each one's FIN bit, opcode and payload (valid only during the
// call), the payload inflated if the frame was compressed. It stops at the
// first error, from the stream, from inflating or from handle.
func (p *frameParser) feed(data []byte, handle func(fin bool, op byte, payload []byte) error) error {
	for len(p.partial) > 0 {
		size, err := frameSize(p.partial, p.deflate)
		if err != nil {
			return err
		}
		if len(p.partial) == size {
			frame := p.partial
			p.partial = nil // dropped: most connections never need it again
			if err := p.handleFrame(frame, handle); err != nil {
				return err
			}
			break
		}
		if len(data) == 0 {
			return nil
		}
		k := min(size-len(p.partial), len(data))
		p.partial = append(p.partial, data[:k]...)
		data = data[k:]
	}
	for len(data) > 0 {
		size, err := frameSize(data, p.deflate)
		if err != nil {
			return err
		}
		if len(data) < size {
			p.partial = append(make([]byte, 0, max(size, 16)), data...)
			return nil
		}
		if err := p.handleFrame(data[:size], handle); err != nil {
			return err
		}
		data = data[size:]
	}
	return nil
}

// handleFrame calls handle with the parts of one whole frame, its payload
// inflated if RSV1 marks it compressed. A compressed frame without FIN (the
// start of a fragmented message, which handle refuses) is passed on as it
// is: only a whole message inflates.
func (p *frameParser) handleFrame(frame []byte, handle func(fin bool, op byte, payload []byte) error) error {
	fin, op, payload := frame[0]&ws.FinBit != 0, frame[0]&0x0F, frame[headerSize(frame[1]):]
	if frame[0]&ws.Rsv1Bit == 0 || !fin {
		return handle(fin, op, payload)
	}
	return ws.Inflate(payload, maxFrame, func(msg []byte) error {
		if p.inflated != nil {
			p.inflated.Add(1)
		}
		return handle(fin, op, msg)
	})
}
