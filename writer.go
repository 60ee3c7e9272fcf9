package partyline

import (
	"io"
	"net"
	"time"
)

// The write path. A connection has at most one writer at a time: whoever
// claims the role from its queue. The goroutine that queues a message on a
// connection with no writer (a room's fan-out, the reader answering its
// client, the heartbeat) claims the role and writes straight to the socket
// without blocking, so on a healthy connection a delivery costs one write
// syscall and no goroutine hand-off. When the socket would block, or the
// close is due, the role passes to a writer goroutine that may wait (up to
// the write wait); it ends when the queue is empty.
//
// The writer frames what it takes from the queue for its wire
// (framing.go): a connection that has fallen behind has several messages
// queued, and they leave in one write. Only this file writes.

// send queues a JSON payload for the client.
func (c *Conn) send(payload []byte) { c.queue.push(newMessage(payload)) }

// write is called by the goroutine that has just claimed the writer role.
func (c *Conn) write() {
	if c.rawConn != nil && c.writeWithoutBlocking() {
		return
	}
	go c.writeLoop()
}

// writeWithoutBlocking writes what is queued as far as the socket takes it
// at once. It returns true when everything is written and the role is
// released; false when frames remain in c.pending or the close is due,
// which are the writer goroutine's to finish.
func (c *Conn) writeWithoutBlocking() bool {
	for {
		if !c.takeQueued() {
			return true
		}
		if c.closeDue || !c.writePendingNow() {
			return false
		}
	}
}

// takeQueued frames the queued messages, and the ping, into c.pending. It
// returns false when there was nothing, which releases the writer role:
// from then on the writer's fields belong to the next writer, so it touches
// none. A connection found lagging (lag.go) is evicted here: what was taken
// is dropped and the close is next.
func (c *Conn) takeQueued() bool {
	msgs, w := c.queue.take(c.taken)
	if w.idle {
		return false
	}
	if c.lagging(w) {
		c.evict()
		c.clearPending()
		c.closeDue = true
	} else {
		c.pending = c.wire.appendFrames(c.pending, msgs, &c.space)
		if w.ping {
			c.pending = append(c.pending, c.wire.ping())
		}
		c.closeDue = c.closeDue || w.closing
	}
	clear(msgs)
	c.taken = msgs[:0]
	if cap(msgs) > 64 {
		c.taken = nil // a burst does not pin its memory on a quiet connection
	}
	return true
}

// writePendingNow writes c.pending with non-blocking system calls, all
// frames at once where there are several. It reports whether all was
// written; what was not stays in c.pending, its first frame cut where the
// socket filled up.
func (c *Conn) writePendingNow() bool {
	for len(c.pending) > 0 {
		frames := c.pending[:min(len(c.pending), maxIovecs)]
		want := totalLen(frames)
		n := c.writeNow(frames)
		c.advance(n)
		if n < want {
			return false
		}
	}
	c.clearPending()
	return true
}

// maxIovecs is how many frames one writev takes (Linux's IOV_MAX).
const maxIovecs = 1024

// writeNow makes one non-blocking write of frames and returns how many
// bytes the socket took. Any failure, would-block included, leaves the rest
// to the writer goroutine, whose blocking write reports real errors.
func (c *Conn) writeNow(frames [][]byte) int {
	n := 0
	err := c.rawConn.Write(func(fd uintptr) bool {
		if len(frames) == 1 {
			n, _ = sysWrite(fd, frames[0])
		} else {
			n = writev(fd, frames)
		}
		return true // never wait here
	})
	if err != nil || n < 0 {
		return 0
	}
	c.lag.written += int64(n)
	return n
}

// advance drops the first n written bytes from c.pending.
func (c *Conn) advance(n int) {
	i := 0
	for i < len(c.pending) && n >= len(c.pending[i]) {
		n -= len(c.pending[i])
		i++
	}
	c.drop(i)
	if len(c.pending) > 0 {
		c.pending[0] = c.pending[0][n:]
	}
}

// drop removes the first k frames of c.pending, written.
func (c *Conn) drop(k int) {
	remaining := copy(c.pending, c.pending[k:])
	clear(c.pending[remaining:])
	c.pending = c.pending[:remaining]
}

func totalLen(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// writeLoop is the writer goroutine. It holds the role until the queue is
// empty, waiting on the socket as needed, or until it has sent the close.
func (c *Conn) writeLoop() {
	for {
		if err := c.writePending(); err != nil && c.writeErr == nil {
			c.writeErr = err
			c.close(0, "") // the next take brings the close
		}
		if c.closeDue {
			c.writeClose()
			return
		}
		if !c.takeQueued() {
			return
		}
	}
}

// writePending writes c.pending, waiting at most the write wait; after a
// failure it only drops them.
func (c *Conn) writePending() error {
	defer c.clearPending()
	if len(c.pending) == 0 || c.writeErr != nil {
		return nil
	}
	c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
	defer c.raw.SetWriteDeadline(time.Time{}) // direct writes must not inherit it
	for len(c.pending) > 0 {
		k := min(len(c.pending), maxIovecs)
		buffers := net.Buffers(c.pending[:k]) // WriteTo empties c.pending[:k]
		n, err := buffers.WriteTo(c.raw)
		c.lag.written += n
		if err != nil {
			return err
		}
		c.drop(k)
	}
	return nil
}

func (c *Conn) clearPending() {
	clear(c.pending)
	c.pending = c.pending[:0]
	if cap(c.pending) > 64 {
		c.pending = nil // a burst does not pin its memory on a quiet connection
	}
	c.space.release()
}

// writeClose sends the close unless writing already failed, gives the
// client time to read it, and closes the socket. It logs an eviction,
// which the writer goroutine can afford to wait for.
func (c *Conn) writeClose() {
	defer c.writerDone.fire()
	if c.closeCode == CloseSlowConsumer {
		c.logger().Info("evicted slow consumer")
	}
	if c.closeCode != 0 && c.writeErr == nil {
		c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
		if _, err := c.raw.Write(c.wire.closing(c.closeCode, c.closeReason)); err == nil {
			c.awaitPeer()
		}
	}
	c.closeSocket()
}

// awaitPeer waits, briefly, for the client to read the close and end its
// side: a WebSocket client answers with a close frame of its own, which
// the reader sees; a stream's client (sse.go) sees the end of the stream.
//
// Closing the socket while the client still sends would make the kernel
// answer with a reset, which discards what the client has yet to read, the
// close included. So the socket is half-closed (a FIN) when what the
// client sends next would otherwise arrive unread: for a stream, whose
// end is its close; for a slow consumer, which reads the close only after
// the backlog the kernel holds for it and meanwhile answers the pings it
// reads late (it is given the write wait to get there, less if the
// server shuts down); and when the reader has stopped before the
// client's close, midway through a message it refused (1003, 1009) or
// for abuse, in which case the writer reads and drops what still comes.
// After the client's close the client sends nothing more: the socket is
// closed at once, as RFC 6455 wants the server to.
func (c *Conn) awaitPeer() {
	wait, stopping := closeHandshakeWait, (<-chan struct{})(nil)
	if c.closeCode == CloseSlowConsumer {
		wait, stopping = max(wait, c.srv.opts.WriteWait), c.srv.stopping
	}
	unread := c.readerDone.fired() && !c.peerClosed
	if c.reader == nil || c.closeCode == CloseSlowConsumer || unread {
		if half, ok := c.raw.(interface{ CloseWrite() error }); ok {
			half.CloseWrite()
		}
	}
	if unread {
		c.raw.SetReadDeadline(time.Now().Add(wait))
		io.CopyN(io.Discard, c.raw, drainLimit)
		return
	}
	select {
	case <-c.readerDone.done():
	case <-time.After(wait):
	case <-stopping:
	}
}

// drainLimit bounds what the writer reads and drops after the reader has
// ended; a client that sends more gets a reset.
const drainLimit = 1 << 20

// closeHandshakeWait is how long the writer waits for the client to answer
// its close before it drops the TCP connection.
const closeHandshakeWait = time.Second

// closeSocket closes the TCP connection. A reader waiting on the poller is
// woken to see it and end. A polled socket leaves the poller as its
// descriptor is closed (socket_linux.go).
func (c *Conn) closeSocket() {
	c.raw.Close()
	c.readable()
}
