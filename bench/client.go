package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// client is one bench connection. Its publisher goroutine, if any, writes
// its chat frames; whoever reads it — its poller, or without one its own
// reader goroutine (readLoop) — owns parser and answers pings. Writes are
// serialized by the wsConn.
type client struct {
	id        int
	user      string
	room      int // index into run.rooms, or -1
	publisher bool
	slow      bool // overload: read by slowReadLoop, at most SlowRate bytes/s
	conn      *wsConn
	ready     atomic.Bool    // its "joined" (or, without a room, "welcome") arrived
	lat       *Histogram     // records its in-window deliveries' latencies
	replayLat *Histogram     // overload: the same, for what a resume replayed
	outside   *atomic.Uint64 // counts deliveries of messages sent outside the window
	frames    *atomic.Uint64 // counts messages received
	wire      *atomic.Uint64 // counts the bytes read from its socket
	parser    frameParser    // owned by the reader

	// Overload: a resumed connection replaces this one (successor), having
	// joined with since = lastSeq; seqs up to replayUntil are its replay.
	lastSeq, replayUntil uint64 // owned by the reader
	resuming             bool   // waiting for the joined that ends a resume's join
	successor            atomic.Pointer[client]
}

// latest returns the connection that now stands for c: c, or the last of
// the connections that resumed it.
func (c *client) latest() *client {
	for {
		next := c.successor.Load()
		if next == nil {
			return c
		}
		c = next
	}
}

// startReading hands c to a poller, or starts its reader goroutine when
// there is none or the poller refuses it. It first handles the bytes that
// came with the handshake; if they end the connection, c is not read.
func (r *run) startReading(c *client) {
	pending := c.conn.pending
	c.conn.pending = nil
	if err := r.receive(c, pending); err != nil {
		r.ended(c, err)
		return
	}
	if c.slow {
		r.readers.Add(1)
		go r.slowReadLoop(c)
		return
	}
	if c.conn.raw != nil && len(r.pollers) > 0 {
		if r.pollers[c.id%len(r.pollers)].add(c) == nil {
			return
		}
	}
	r.readers.Add(1)
	go r.readLoop(c)
}

// readLoop is c's reader goroutine, used without a poller: it reads until
// the connection fails or ends.
func (r *run) readLoop(c *client) {
	defer r.readers.Done()
	buf := make([]byte, readBufferSize)
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			if err := r.receive(c, buf[:n]); err != nil {
				r.ended(c, err)
				return
			}
		}
		if err != nil {
			r.ended(c, err)
			return
		}
	}
}

// receive handles data just read from c's socket: every frame it
// completes. It returns an error when the connection is over: the server
// closed it or broke the protocol. It does not allocate, unless data ends
// inside a frame or holds a close frame, an error message or a compressed
// message (see inflater.inflate).
func (r *run) receive(c *client, data []byte) error {
	c.wire.Add(uint64(len(data)))
	now := r.now()
	return c.parser.feed(data, func(fin bool, op byte, payload []byte) error {
		return r.handleFrame(c, fin, op, payload, now)
	})
}

// handleFrame handles one server frame read at now: a message's stamps
// and marks, a ping, a close.
func (r *run) handleFrame(c *client, fin bool, op byte, payload []byte, now int64) error {
	switch {
	case !fin || op == ws.OpContinuation:
		return errFragmented
	case op == ws.OpText:
		c.frames.Add(1)
		r.inspect(c, payload)
		if r.cfg.Scenario == Joins {
			r.countTypes(payload, now)
			break
		}
		if r.cfg.Scenario == Overload {
			r.recordOverload(c, payload, now)
			break
		}
		from, to := r.winStart.Load(), r.winEnd.Load()
		forEachStamp(payload, func(stamp int64) {
			if stamp >= from && stamp < to {
				c.lat.Record(now - stamp)
			} else {
				c.outside.Add(1)
			}
		})
	case op == ws.OpBinary:
		c.frames.Add(1)
	case op == ws.OpPing:
		if now >= r.winStart.Load() && now < r.winEnd.Load() {
			r.pings.Add(1)
		}
		// A failed pong shows in the next read, if the connection broke.
		_ = c.conn.writeFrame(ws.OpPong, payload, pongWriteTimeout)
	case op == ws.OpPong:
	case op == ws.OpClose:
		code, reason := ws.ParseClose(payload)
		_ = c.conn.writeFrame(ws.OpClose, payload[:min(len(payload), 2)], closeWriteTimeout)
		return &closeError{code: code, reason: reason}
	default:
		return fmt.Errorf("bench: server frame with unknown opcode %#x", op)
	}
	return nil
}

// inspect notes error messages in msg, a server message (or a batch of
// them), and the one that makes c ready: "joined" for a connection with a
// room, "welcome" for one without.
func (r *run) inspect(c *client, msg []byte) {
	if n := bytes.Count(msg, errorType); n > 0 {
		r.noteErrorFrames(n, msg)
	}
	if c.ready.Load() {
		return
	}
	mark := joinedType
	if c.room < 0 {
		mark = welcomeType
	}
	if bytes.Contains(msg, mark) {
		c.ready.Store(true)
		r.ready.Add(1)
		r.lastReady.Store(r.now())
	}
}

// publish is a publisher's goroutine: it sends a stamped chat message to
// room every interval, starting after phase, until ctx ends, the window
// closes or a write fails. members is how many connections each message
// should reach.
func (r *run) publish(ctx context.Context, c *client, room string, members uint64, interval, phase time.Duration) {
	defer r.publishers.Done()
	frame, digits := chatFrame(room, r.cfg.Payload)
	select {
	case <-ctx.Done():
		return
	case <-time.After(phase):
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for r.send(c.latest(), frame, digits, members) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// send stamps frame with the current time and writes it; it reports
// whether to go on.
func (r *run) send(c *client, frame []byte, digits int, members uint64) bool {
	ns := r.now()
	if ns >= r.winEnd.Load() {
		return false
	}
	putStamp(frame[digits:], ns)
	if err := c.conn.writeFrame(ws.OpText, frame, chatWriteTimeout); err != nil {
		r.noteSendError(err)
		// Overload: an evicted publisher goes on once it has resumed.
		return r.cfg.Scenario == Overload && !r.closing.Load()
	}
	if ns >= r.winStart.Load() {
		r.sent.Add(1)
		r.expected.Add(members)
	}
	return true
}

// noteClosed counts a connection that ended before the bench closed it,
// by close code, or "eof"/"error".
func (r *run) noteClosed(err error) {
	if r.closing.Load() {
		return
	}
	key := "error"
	var ce *closeError
	switch {
	case errors.As(err, &ce):
		key = strconv.Itoa(ce.code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		key = "eof"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed[key]++
	if r.firstClose == "" {
		r.firstClose = err.Error()
	}
}

func (r *run) noteErrorFrames(n int, frame []byte) {
	r.errorFrames.Add(uint64(n))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstError == "" {
		r.firstError = string(frame[:min(len(frame), 200)])
	}
}

func (r *run) noteSendError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sendErrors++
	if r.firstSendError == "" {
		r.firstSendError = err.Error()
	}
}
