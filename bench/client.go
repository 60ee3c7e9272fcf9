package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// client is one bench connection. Its reader goroutine (read) owns the
// socket's read side; its publisher goroutine, if any, the write side;
// pongs and the final close frame go through WriteControl, which gorilla
// allows concurrently with both.
type client struct {
	id        int
	room      int // index into run.rooms, or -1
	publisher bool
	ws        *websocket.Conn
	ready     atomic.Bool    // its "joined" (or, without a room, "welcome") arrived
	outside   *atomic.Uint64 // counts deliveries of messages sent outside the window
	frames    *atomic.Uint64 // counts messages received
}

// read is the client's reader goroutine: it scans every server message for
// stamps and records each in-window delivery's latency into h. It runs
// until the connection fails or is closed, without allocating per message
// (gorilla's NextReader itself allocates 8 bytes per frame).
func (r *run) read(c *client, h *Histogram) {
	defer r.readers.Done()
	sc := newFrameScanner(scanBufferSize)
	var now, from, to int64
	record := func(stamp int64) {
		if stamp >= from && stamp < to {
			h.Record(now - stamp)
		} else {
			c.outside.Add(1)
		}
	}
	for {
		typ, rd, err := c.ws.NextReader()
		if err != nil {
			r.noteClosed(err)
			return
		}
		c.frames.Add(1)
		if typ != websocket.TextMessage {
			continue
		}
		sc.reset()
		for {
			n, err := rd.Read(sc.space())
			if n > 0 {
				now, from, to = r.now(), r.winStart.Load(), r.winEnd.Load()
				r.inspect(c, sc.chunk(n))
				sc.scan(n, record)
			}
			if err != nil {
				break // io.EOF ends the message; other errors return from NextReader
			}
		}
	}
}

// inspect notes error frames in chunk, and the frame that makes c ready:
// "joined" for a connection with a room, "welcome" for one without.
func (r *run) inspect(c *client, chunk []byte) {
	if n := bytes.Count(chunk, errorType); n > 0 {
		r.noteErrorFrames(n, chunk)
	}
	if c.ready.Load() {
		return
	}
	mark := joinedType
	if c.room < 0 {
		mark = welcomeType
	}
	if bytes.Contains(chunk, mark) {
		c.ready.Store(true)
		r.ready.Add(1)
	}
}

// handlePing answers the server's ping as gorilla's default handler does,
// counting it when it falls in the window.
func (r *run) handlePing(ws *websocket.Conn) func(string) error {
	return func(data string) error {
		if ns := r.now(); ns >= r.winStart.Load() && ns < r.winEnd.Load() {
			r.pings.Add(1)
		}
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil
		}
		return err
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
	for r.send(c, frame, digits, members) {
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
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		r.noteSendError(err)
		return false
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
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		key = strconv.Itoa(ce.Code)
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
