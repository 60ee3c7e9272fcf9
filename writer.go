package partyline

import (
	"io"
	"net"
	"sync"
	"time"
)

// The write path. A connection has at most one writer at a time: whoever
// claims the role from its queue. The goroutine that queues a message on a
// connection with no writer (a room's fan-out, the reader answering its
// client, the heartbeat) claims the role and puts the connection on the
// flush list (flush.go), whose goroutine writes it without blocking: on a
// healthy connection a delivery costs one send, or less when several
// messages wait, and on Linux the sends to up to 64 connections share one
// system call (sendbatch_linux.go). (A replay's push, paced, writes at
// once, on its own goroutine: queue.go's pushPaced.) When the socket would
// block, or the close is due, the role passes to a writer goroutine that
// may wait (up to the write wait); it ends when the queue is empty.
//
// The writer frames what it takes from the queue for its wire
// (framing.go): a connection that has fallen behind has several messages
// queued, and they leave in one write. Only this file writes.

// send queues a JSON payload for the client.
func (c *Conn) send(payload []byte) { c.queue.push(newMessage(payload)) }

// writer is the state of a connection's writer role: what it has taken
// from the queue and not yet written. The goroutine that claims the role
// takes one from a pool, and it goes back when the role is given back or
// the close is sent, so an idle connection holds none.
type writer struct {
	c        *Conn
	taken    []*message // messages taken from the queue, being framed
	pending  [][]byte   // frames not yet written; pending[0] may be cut short
	space    mergeSpace // what pending's frames built for this client hold
	closeDue bool       // the close frame is next
	writeErr error      // the socket failed; nothing more is written
}

var writers = sync.Pool{New: func() any { return new(writer) }}

// write is called by the goroutine that has just claimed the writer role.
// A connection written with system calls of its own waits its turn on the
// flush list (flush.go); others get a writer goroutine, at once or after
// the write delay. A held write, one that waits out the delay, is urged
// if the queue fills halfway meanwhile (urge).
func (c *Conn) write() {
	delay := c.srv.opts.WriteDelay
	switch {
	case delay > 0 && c.rawConn != nil:
		c.srv.flushes.add(c, c.queue.hold())
	case delay > 0:
		hold := c.queue.hold()
		time.AfterFunc(delay, func() {
			if c.takeHeld(hold) {
				c.flush()
			}
		})
	case c.rawConn != nil:
		c.srv.flushes.add(c, 0)
	default:
		c.flush()
	}
}

// urge writes at once a connection held for the write delay, whose queue
// has filled halfway or whose close is due: on the process's flush list,
// without a delay, or on a writer goroutine. The held turn, when it comes,
// writes nothing (takeHeld). So a write delay never makes a connection a
// slow consumer.
func (c *Conn) urge() {
	if c.rawConn != nil {
		flushes.add(c, 0)
		return
	}
	c.flush()
}

// takeHeld reports whether the write held under hold is still on, and
// ends it; false when an urge has written the connection since.
func (c *Conn) takeHeld(hold uint32) bool { return c.queue.takeHeld(hold) }

// flush writes what is queued without blocking where the connection can,
// and hands the rest to a writer goroutine.
func (c *Conn) flush() {
	w := writers.Get().(*writer)
	w.c = c
	if c.rawConn != nil && w.writeWithoutBlocking() {
		return
	}
	w.handOff()
}

// handOff gives the writer role, and what w has not written, to a writer
// goroutine, which may wait on the socket.
func (w *writer) handOff() {
	w.c.queue.stall()
	go w.writeLoop()
}

// done puts w back in the pool, written and cleared, keeping its slices'
// capacity for the next writer.
func (w *writer) done() {
	*w = writer{taken: w.taken[:0], pending: w.pending[:0], space: w.space}
	writers.Put(w)
}

// writeWithoutBlocking writes what is queued as far as the socket takes it
// at once. It returns true when everything is written and the role is
// released; false when frames remain in w.pending or the close is due,
// which are the writer goroutine's to finish.
func (w *writer) writeWithoutBlocking() bool {
	for {
		if !w.takeQueued() {
			w.done()
			return true
		}
		if w.closeDue || !w.writePendingNow() {
			return false
		}
	}
}

// takeQueued frames the queued messages, and the ping, into w.pending. It
// returns false when there was nothing, which releases the writer role:
// from then on the connection belongs to the next writer, so w touches it
// no more. A connection found lagging (lag.go) is evicted here: what was
// taken is dropped and the close is next.
func (w *writer) takeQueued() bool {
	c := w.c
	msgs, got := c.queue.take(w.taken)
	if got.idle {
		return false
	}
	if c.lagging(got) {
		c.evict()
		w.clearPending()
		w.closeDue = true
	} else {
		w.pending = c.wire.appendFrames(w.pending, msgs, &w.space)
		if got.ping {
			w.pending = append(w.pending, c.wire.ping())
		}
		w.closeDue = w.closeDue || got.closing
	}
	clear(msgs)
	w.taken = msgs[:0]
	if cap(msgs) > 64 {
		w.taken = nil // a burst does not pin its memory
	}
	return true
}

// writePendingNow writes w.pending with non-blocking system calls, all
// frames at once where there are several. It reports whether all was
// written; what was not stays in w.pending, its first frame cut where the
// socket filled up.
func (w *writer) writePendingNow() bool {
	for len(w.pending) > 0 {
		frames := w.pending[:min(len(w.pending), maxIovecs)]
		want := totalLen(frames)
		n := w.c.writeNow(frames)
		w.advance(n)
		if n < want {
			return false
		}
	}
	w.clearPending()
	return true
}

// maxIovecs is how many frames one writev takes (Linux's IOV_MAX).
const maxIovecs = 1024

// writeNow makes one non-blocking write of frames and returns how many
// bytes the socket took. Any failure, would-block included, leaves the rest
// to the writer goroutine, whose blocking write reports real errors.
func (c *Conn) writeNow(frames [][]byte) int {
	n := rawWrite(c.rawConn, frames)
	if n < 0 {
		return 0
	}
	c.lag.written += int64(n)
	return n
}

// advance drops the first n written bytes from w.pending.
func (w *writer) advance(n int) {
	i := 0
	for i < len(w.pending) && n >= len(w.pending[i]) {
		n -= len(w.pending[i])
		i++
	}
	w.drop(i)
	if len(w.pending) > 0 {
		w.pending[0] = w.pending[0][n:]
	}
}

// drop removes the first k frames of w.pending, written.
func (w *writer) drop(k int) {
	remaining := copy(w.pending, w.pending[k:])
	clear(w.pending[remaining:])
	w.pending = w.pending[:remaining]
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
func (w *writer) writeLoop() {
	for {
		if err := w.writePending(); err != nil && w.writeErr == nil {
			w.writeErr = err
			w.c.close(0, "") // the next take brings the close
		}
		if w.closeDue {
			w.c.writeClose(w.writeErr != nil)
			w.done()
			return
		}
		if !w.takeQueued() {
			w.done()
			return
		}
	}
}

// writePending writes w.pending, waiting at most the write wait; after a
// failure it only drops them.
func (w *writer) writePending() error {
	defer w.clearPending()
	if len(w.pending) == 0 || w.writeErr != nil {
		return nil
	}
	c := w.c
	c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
	defer c.raw.SetWriteDeadline(time.Time{}) // direct writes must not inherit it
	for len(w.pending) > 0 {
		k := min(len(w.pending), maxIovecs)
		buffers := net.Buffers(w.pending[:k]) // WriteTo empties w.pending[:k]
		n, err := buffers.WriteTo(c.raw)
		c.lag.written += n
		if err != nil {
			return err
		}
		w.drop(k)
	}
	return nil
}

func (w *writer) clearPending() {
	clear(w.pending)
	w.pending = w.pending[:0]
	if cap(w.pending) > 64 {
		w.pending = nil // a burst does not pin its memory
	}
	w.space.release()
}

// writeClose sends the close unless writing already failed, gives the
// client time to read it, and closes the socket. It logs an eviction,
// which the writer goroutine can afford to wait for.
func (c *Conn) writeClose(failed bool) {
	defer c.writerDone.fire()
	if c.closeCode == CloseSlowConsumer {
		c.logger().Info("evicted slow consumer")
	}
	if c.closeCode != 0 && !failed {
		c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
		if _, err := c.raw.Write(c.wire.closing(int(c.closeCode), c.closeReason)); err == nil {
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
	if c.stream || c.closeCode == CloseSlowConsumer || unread {
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

// closeSocket closes the TCP connection, and takes a polled socket out of
// the poller. A reader waiting on the poller is woken to see it and end.
func (c *Conn) closeSocket() {
	c.raw.Close()
	c.leavePoller()
	c.readable()
}
