package ws

import (
	"compress/flate"
	"slices"
	"sync"
)

// permessage-deflate (RFC 7692), with no context takeover either way: each
// message is compressed and inflated alone, so neither a connection nor a
// Reader keeps compression state between messages. The flate writers (here)
// and readers (inflate.go), costly to make, are pooled and shared by all
// connections.

// syncTail is what RFC 7692 §7.2.1 strips from a compressed message and
// §7.2.2 appends again before inflating: the end of an empty stored block,
// as a sync flush writes it.
const syncTail = "\x00\x00\xff\xff"

// compressionLevel is the level of every frame AppendCompressedText builds:
// BestSpeed, as most servers use for fan-out. BenchmarkCompressText, on
// chat-like JSON, measured it against DefaultCompression at 2.5 µs against
// 8 µs for 64 bytes (no smaller either way), 9.5 µs against 16.5 µs for
// 1 KB (frames 4% bigger: 33% of the payload against 32%), and 41 µs against
// 145 µs for 16 KB (frames 22% bigger: 21% against 17%). A message is
// compressed once per fan-out, on the publisher's path, so its time is
// latency every subscriber waits for, while the bytes saved by the default
// level are a few percent of what compression saves already.
const compressionLevel = flate.BestSpeed

// maxPooledBuffer is the largest buffer a pooled compressor or inflater
// keeps; a bigger one, for a rare big message, is dropped after it.
const maxPooledBuffer = 64 << 10

// compressors are the flate writers of AppendCompressedText.
var compressors = compressorPool{level: compressionLevel}

// AppendCompressedText appends to dst one complete, unmasked server frame
// (FIN, RSV1, OpText) holding payload compressed as permessage-deflate
// requires with no context takeover (RFC 7692 §7.2.1): raw DEFLATE of
// payload alone, sync-flushed, without the final 0x00 0x00 0xff 0xff. The
// frame is for a connection where Negotiated.Deflate is true; payload must
// be UTF-8 and is not checked.
//
// It may be called from many goroutines at once: each call borrows a flate
// writer from a pool. Compressing is worth it for payloads of a few hundred
// bytes and more; a short payload's frame may come out longer than the
// uncompressed frame would be.
func AppendCompressedText(dst, payload []byte) []byte {
	return compressors.appendFrame(dst, FinBit|Rsv1Bit|OpText, payload)
}

// compressorPool pools flate writers of one level (flate.NewWriter allocates
// hundreds of kilobytes; Reset allocates nothing).
type compressorPool struct {
	level int
	pool  sync.Pool // of *compressor
}

// compressor is a pooled flate writer and the buffer it writes to.
type compressor struct {
	flate *flate.Writer
	out   appendWriter
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

// Write implements io.Writer.
func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// maxServerHeader is the longest header of a server frame: 2 bytes and a
// 64-bit length, no masking key.
const maxServerHeader = 10

// appendFrame appends to dst a frame with first byte first and payload
// compressed. The payload is compressed into the compressor's own buffer
// first, so that dst, when it must grow, grows once, to the frame's exact
// length: a fanned-out frame waits in many queues, and is better not
// bigger than it needs.
func (p *compressorPool) appendFrame(dst []byte, first byte, payload []byte) []byte {
	c := p.get()
	c.out.b = c.out.b[:0]
	c.flate.Reset(&c.out)
	// Writes to an appendWriter never fail, so neither do these.
	c.flate.Write(payload)
	c.flate.Flush()
	compressed := c.out.b[:len(c.out.b)-len(syncTail)]
	dst = slices.Grow(dst, maxServerHeader+len(compressed))
	dst = AppendFrame(dst, first, compressed, nil)
	p.put(c)
	return dst
}

// put returns c to the pool, without its buffer if a rare big message made
// it big.
func (p *compressorPool) put(c *compressor) {
	if cap(c.out.b) > maxPooledBuffer {
		c.out.b = nil
	}
	p.pool.Put(c)
}

// get borrows a compressor from the pool, or makes one.
func (p *compressorPool) get() *compressor {
	if c, ok := p.pool.Get().(*compressor); ok {
		return c
	}
	w, err := flate.NewWriter(nil, p.level)
	if err != nil {
		panic("ws: flate level " + err.Error()) // the levels are constants
	}
	return &compressor{flate: w}
}
