package partyline

import (
	"encoding/binary"
	"sync"
	"syscall"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// The read path. A connection's bytes are parsed by a ws.Reader, taken
// from a pool while they are parsed (parsers), and handled in order by one
// goroutine at a time: the reader. On Linux a plain TCP connection has no
// reader while it is idle. The poller reports arrivals (arrived); readable
// starts a reader, on a goroutine of the reader pool (goroutines.go), that
// reads until the socket is drained and then ends. A lone pong after a
// ping needs no reader: the poller handles it. TLS
// connections, and all connections elsewhere, keep a reader of their own
// that blocks in Read.

// Reader states (Conn.readState).
const (
	readIdle    = iota // no reader is running
	readRunning        // a reader is running
	readAgain          // a reader is running, and more arrived since it began
	readDone           // reading has ended for good
)

// readBufferSize is how much one recv(2) takes from a socket. The buffers
// are pooled: a connection holds one only while it reads.
const readBufferSize = 8 << 10

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// parsers are frame parsers (ws.Reader) for connections whose bytes are
// being parsed. An idle connection holds none: only one whose client has
// sent part of a frame or of a fragmented message keeps its parser between
// reads. That spares every idle connection a parser, 48 bytes.
var parsers sync.Pool

// parser returns the connection's frame parser, taking one from the pool
// if it has none. Only the reader calls it.
func (c *Conn) parser() *ws.Reader {
	if c.reader == nil {
		r, _ := parsers.Get().(*ws.Reader)
		if r == nil {
			r = new(ws.Reader)
		}
		r.Reset(c.srv.opts.MaxMessageSize)
		if c.deflate {
			r.EnableDeflate()
		}
		c.reader = r
	}
	return c.reader
}

// restParser gives the connection's parser back to the pool when it holds
// nothing the next bytes need. The reader calls it before it gives its role
// back, since the next reader may start at once.
func (c *Conn) restParser() {
	if r := c.reader; r != nil && r.Resting() {
		c.reader = nil
		parsers.Put(r)
	}
}

// readable is the poller telling c that bytes have arrived, or the writer
// telling it that the socket is closed.
func (c *Conn) readable() {
	for {
		switch c.readState.Load() {
		case readIdle:
			if c.readState.CompareAndSwap(readIdle, readRunning) {
				readers.run(readTask{c: c, buf: readBuffers.Get().(*[]byte)})
				return
			}
		case readRunning:
			if c.readState.CompareAndSwap(readRunning, readAgain) {
				return
			}
		default:
			return
		}
	}
}

// arrived is the poller telling c that bytes have arrived. After a ping they
// are most likely the pong alone: the poller reads and handles it itself,
// rather than start a reader for six bytes. Anything else it has read goes
// to a reader. Only the first arrival after each ping is read here, so the
// poller's share of the reading stays bounded by the heartbeat's rate.
func (c *Conn) arrived() {
	if !c.pinged.Swap(false) || !c.readState.CompareAndSwap(readIdle, readRunning) {
		c.readable()
		return
	}
	buf := readBuffers.Get().(*[]byte)
	n, drained := 0, false
	if !c.hangup.Load() && (c.reader == nil || c.reader.Buffered() == 0) {
		n, drained = c.readFirst(*buf)
	}
	if n == 0 && drained {
		c.restParser()
		if c.readState.CompareAndSwap(readRunning, readIdle) {
			readBuffers.Put(buf)
			return
		}
	}
	readers.run(readTask{c: c, buf: buf, n: n, drained: drained})
}

// readFirst makes the poller's one read. It handles a lone pong, returning
// 0 and drained; otherwise it returns the bytes read for the reader to
// handle, and whether the socket is drained. After a failure or the end of
// the stream it returns 0, not drained: the reader's own read sees it again.
func (c *Conn) readFirst(buf []byte) (n int, drained bool) {
	n, err := c.readNow(buf)
	switch {
	case err == syscall.EAGAIN:
		return 0, true
	case err != nil || n == 0:
		return 0, false
	case ws.IsPong(buf[:n]):
		return 0, c.consume(buf[:n]) // a Reader holding nothing accepts it
	}
	return n, n < len(buf)
}

// readAvailable is the reader of a poller-driven connection: it handles the
// first n bytes of buf, reads and handles the rest of what has arrived until
// the socket is drained (unless it is already), then gives the role back,
// unless more arrived meanwhile. buf goes back to the pool when it ends.
func (c *Conn) readAvailable(buf *[]byte, n int, drained bool) {
	for {
		if c.stopReading || n > 0 && !c.consume((*buf)[:n]) || !drained && !c.readUntilDrained(*buf) {
			readBuffers.Put(buf)
			c.endReading()
			return
		}
		c.restParser()
		if c.readState.CompareAndSwap(readRunning, readIdle) {
			readBuffers.Put(buf)
			return
		}
		c.readState.Store(readRunning)
		n, drained = 0, false
	}
}

// readUntilDrained reads and handles until a read finds the socket empty.
// It returns false when reading must end: the client closed or failed, or
// a handler is closing the connection.
//
// A read shorter than the buffer means the socket was drained: what arrives
// next is a new event. Not after a hangup: the end of the stream may wait
// behind the bytes just read, and no event would come for it.
func (c *Conn) readUntilDrained(buf []byte) bool {
	for {
		n, err := c.readNow(buf)
		if n > 0 && !c.consume(buf[:n]) {
			return false
		}
		switch {
		case err == syscall.EAGAIN:
			return true
		case err == syscall.EINTR:
		case err != nil || n == 0:
			return false
		case n < len(buf) && !c.hangup.Load():
			return true
		}
	}
}

// readNow makes one non-blocking recv(2). Going through the RawConn keeps
// the descriptor from being closed, and its number reused, during the call.
func (c *Conn) readNow(buf []byte) (int, error) { return rawRead(c.rawConn, buf) }

// readLoop is the reader of a connection the poller does not serve: it
// blocks in Read until the connection ends.
func (c *Conn) readLoop() {
	buf := make([]byte, 2<<10)
	for {
		n, err := c.raw.Read(buf)
		if n > 0 && !c.consume(buf[:n]) || err != nil {
			break
		}
	}
	c.endReading()
}

// consume parses and handles bytes from the client. It returns false when
// the connection must stop reading. What a stream's client sends on the
// stream is not a message: it is dropped.
func (c *Conn) consume(data []byte) bool {
	if c.stream {
		return !c.stopReading
	}
	if err := c.parser().Feed(data, c.frame); err != nil {
		closeErr := err.(*ws.CloseError)
		if closeErr.Code == ws.CloseTooBig {
			c.srv.opts.Metrics.Refused(CodeTooLarge)
		}
		c.close(closeErr.Code, closeErr.Reason)
		return false
	}
	return !c.stopReading
}

// frame handles one message or control frame from the client. It returns
// false, and sets stopReading, when the connection must stop reading.
// Each is a sign of life (heartbeat); the bytes of a frame not yet whole
// are not, or a client could hold a connection by trickling them.
func (c *Conn) frame(op byte, payload []byte) bool {
	c.heard.Store(monotonic())
	keepReading := true
	switch op {
	case ws.OpText:
		keepReading = c.message(payload)
	case ws.OpBinary:
		c.close(CloseUnsupported, "binary frames are not supported")
		keepReading = false
	case ws.OpPing:
		c.queue.pushPong(pong(payload))
	case ws.OpClose:
		c.peerClosed = true
		code := CloseNormal // an empty close: no status received
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
		}
		c.close(code, "")
		keepReading = false
	}
	c.stopReading = !keepReading
	return keepReading
}

// message handles one text message.
func (c *Conn) message(data []byte) bool {
	if c.idle != nil {
		c.idle.Reset(c.srv.opts.IdleTimeout)
	}
	return c.handle(data)
}

// endReading runs when the reader ends for good: it closes the connection
// if that has not begun, waits for the writer and every replay to stop, and
// cleans up.
func (c *Conn) endReading() {
	c.readState.Store(readDone)
	if c.reader != nil {
		parsers.Put(c.reader) // parser resets it
		c.reader = nil
	}
	c.readerDone.fire()
	c.close(0, "")
	c.tasks.Wait()
	<-c.writerDone.done()
	c.cleanup()
}

// epoch is what monotonic counts from.
var epoch = time.Now()

// monotonic returns nanoseconds on the monotonic clock, which wall-clock
// jumps do not move.
func monotonic() int64 { return int64(time.Since(epoch)) }
