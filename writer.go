package partyline

import (
	"net"
	"time"
)

// The write path. A connection has at most one writer at a time: whoever
// claims the role from its queue. The goroutine that queues a frame on a
// connection with no writer — a room's fan-out, the reader answering its
// client, the ping timer — claims the role and writes straight to the socket
// without blocking, so on a healthy connection a delivery costs one write
// syscall and no goroutine hand-off. When the socket would block, or the
// close handshake is due, the role passes to a writer goroutine that may
// wait (up to the write wait); it ends when the queue is empty.
//
// Frames are complete WebSocket frames (wsframe.go), prepared once per
// fan-out. A connection that has fallen behind has several queued: they
// leave merged, as few text frames as the merge buffer holds per write
// (prepare). Only this file writes.

// send queues a JSON frame for the client.
func (c *Conn) send(payload []byte) { c.sendFrame(textFrame(payload)) }

// sendFrame queues a prepared frame without blocking. A full or lagging
// queue means the client cannot keep up: it is evicted with 4009.
func (c *Conn) sendFrame(frame []byte) {
	slow, claimed := c.queue.push(frame)
	if slow {
		c.evict()
	}
	if claimed {
		c.write()
	}
}

// sendFrames queues one fan-out pass's frames for the client, which leave
// together, merged into one frame (mergeText).
func (c *Conn) sendFrames(frames [][]byte) {
	slow, claimed := c.queue.pushAll(frames)
	if slow {
		c.evict()
	}
	if claimed {
		c.write()
	}
}

// uncork writes what was queued since cork claimed the writer role.
func (c *Conn) uncork(corked bool) {
	if corked {
		c.write()
	}
}

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

// takeQueued moves the queue's frames and ping into c.pending. It returns
// false when there was nothing, which releases the writer role: from then
// on the writer's fields belong to the next writer, so it touches none. A
// connection found lagging (lag.go) is evicted here: what was taken is
// dropped and the close is next.
func (c *Conn) takeQueued() bool {
	pending, w := c.queue.take(c.pending)
	if w.idle {
		return false
	}
	c.pending = pending
	if c.lagging(w) {
		c.evict()
		c.clearPending()
		c.closeDue = true
		return true
	}
	if w.ping {
		c.pending = append(c.pending, pingFrame)
	}
	c.closeDue = c.closeDue || w.closing
	return true
}

// writePendingNow writes c.pending with non-blocking system calls, all
// frames at once where there are several. It reports whether all was
// written; what was not stays in c.pending, its first frame cut where the
// socket filled up.
func (c *Conn) writePendingNow() bool {
	for len(c.pending) > 0 {
		frames := c.pending[:c.prepare()]
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

// prepare merges the text frames at the head of c.pending into as few
// frames as the merge buffer holds (mergeText), when the buffer is free,
// and returns how many frames of c.pending the next write takes: those up
// to the last merged one, so that what follows is merged in turn once the
// buffer is written; or, with nothing merged, all of them.
func (c *Conn) prepare() int {
	if c.inBuffer == 0 && len(c.pending) > 1 {
		start := 0
		if c.cut {
			start = 1 // a frame's tail: not a frame to merge
		}
		if c.merged == nil {
			c.merged = mergeBuffers.Get().(*[]byte)
		}
		rest, buf, through := mergeText(c.pending[start:], (*c.merged)[:0])
		c.pending, *c.merged = c.pending[:start+len(rest)], buf
		if through > 0 {
			c.inBuffer = start + through
		}
	}
	if c.inBuffer > 0 {
		return c.inBuffer
	}
	return min(len(c.pending), maxIovecs)
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
	cut := i < len(c.pending) && (n > 0 || c.cut && i == 0)
	c.drop(i)
	if len(c.pending) > 0 {
		c.pending[0] = c.pending[0][n:]
	}
	c.cut = cut
}

// drop removes the first k frames of c.pending, written.
func (c *Conn) drop(k int) {
	remaining := copy(c.pending, c.pending[k:])
	clear(c.pending[remaining:])
	c.pending = c.pending[:remaining]
	c.inBuffer = max(c.inBuffer-k, 0)
	c.cut = false
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
		k := c.prepare()
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
	if c.merged != nil {
		mergeBuffers.Put(c.merged)
		c.merged = nil
	}
	c.inBuffer, c.cut = 0, false
}

// closeHandshakeWait is how long the writer waits for the client to answer
// its close frame before it drops the TCP connection.
const closeHandshakeWait = time.Second

// writeClose sends the close frame unless writing already failed, waits
// briefly for the reader to see the client's answer, and closes the socket.
// It logs an eviction, which the writer goroutine can afford to wait for.
//
// A slow consumer reads its close frame only after the backlog the kernel
// holds for it. It is given the write wait to get there (less if the
// server shuts down), and the socket is half-closed meanwhile: were it
// closed, the kernel would answer what the client still sends (pongs to
// the pings it reads late) with a reset, which discards what the client
// has yet to read, the close frame and its "retry after" included.
func (c *Conn) writeClose() {
	defer close(c.writerDone)
	if c.closeCode == CloseSlowConsumer {
		c.logger().Info("evicted slow consumer")
	}
	if c.closeCode != 0 && c.writeErr == nil {
		c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
		if _, err := c.raw.Write(closeFrame(c.closeCode, c.closeReason)); err == nil {
			wait, stopping := closeHandshakeWait, (<-chan struct{})(nil)
			if half, ok := c.raw.(interface{ CloseWrite() error }); ok && c.closeCode == CloseSlowConsumer {
				half.CloseWrite()
				wait, stopping = max(wait, c.srv.opts.WriteWait), c.srv.stopping
			}
			select {
			case <-c.readerDone:
			case <-time.After(wait):
			case <-stopping:
			}
		}
	}
	c.closeSocket()
}

// closeSocket closes the TCP connection. A reader waiting on the poller is
// woken to see it and end. Close returns once the descriptor is closed, so
// a registration that raced with it is undone here, and a new connection
// given the same descriptor number is left alone.
func (c *Conn) closeSocket() {
	c.raw.Close()
	if c.fd >= 0 {
		c.srv.poller.Remove(c.fd, (*polledConn)(c))
	}
	c.readable()
}
