package partyline

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline/internal/wire"
)

// maxBatchBytes caps one outbound WebSocket message; a writer with more
// queued splits it over several messages.
const maxBatchBytes = 32 << 10

// Conn is one client's WebSocket connection. Its reader runs on the HTTP
// handler's goroutine and handles the client's messages in order; its writer
// goroutine is the only one that writes data, pings and the close frame. All
// other goroutines reach the client by pushing encoded frames onto its
// bounded queue, which never blocks: a full queue evicts the connection.
type Conn struct {
	srv      *Server
	ws       *websocket.Conn
	session  string
	username string
	urlRooms []string
	queue    *sendQueue

	// Owned by the reader goroutine.
	identity Identity
	limiter  *rateLimiter
	rooms    map[string]membership
	expiry   *time.Timer // closes the connection when its token expires
	idle     *time.Timer // closes the connection when it sends nothing

	pinger *time.Timer // asks the writer for a ping every ping interval

	tasks      sync.WaitGroup // replays running for this connection
	readerDone chan struct{}
	writerDone chan struct{} // closed by the writer that sends the close

	closeOnce   sync.Once
	closing     chan struct{} // closed by close; then the fields below are set
	closeCode   int           // 0: the peer or the network closed first
	closeReason string
}

// membership is a connection's place in a room.
type membership struct {
	room *room
	sub  *subscription
}

func newConn(s *Server, ws *websocket.Conn, a admission) *Conn {
	session := randomID()
	return &Conn{
		srv:        s,
		ws:         ws,
		session:    session,
		username:   a.identity.Username,
		urlRooms:   a.rooms,
		identity:   a.identity,
		queue:      newSendQueue(s.opts.SendQueue),
		limiter:    newRateLimiter(s.opts.RateLimit, s.opts.RateBurst, s.opts.Now()),
		rooms:      make(map[string]membership),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		closing:    make(chan struct{}),
	}
}

// logger returns the server's logger with the connection's attributes. It is
// built when needed, so a connection that logs nothing costs nothing.
func (c *Conn) logger() *slog.Logger {
	return c.srv.log.With("session", c.session, "user", c.username)
}

// randomID returns 16 random hex characters.
func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve runs the connection until it closes, then cleans up after it: it
// returns only when the writer and every replay have stopped.
func (c *Conn) serve() {
	c.logger().Debug("connection opened", "rooms", c.urlRooms)
	c.startTimers()
	c.send(wire.AppendWelcome(nil, c.username, c.session, orEmpty(c.urlRooms), c.srv.opts.ServerName))
	if err := c.srv.hub.addUserConn(c.ctx(), c); err != nil {
		c.sendError(err, nil)
		c.close(closeInternalError, "service unavailable")
	} else {
		for _, name := range c.urlRooms {
			if err := c.join(name, nil); err != nil {
				c.sendError(err, nil)
			}
		}
		c.readLoop()
	}
	close(c.readerDone)
	c.close(0, "")
	c.tasks.Wait()
	<-c.writerDone
	c.cleanup()
}

// cleanup leaves every room and unregisters the user's connection.
func (c *Conn) cleanup() {
	c.stopTimers()
	rooms := make([]string, 0, len(c.rooms))
	for name, m := range c.rooms {
		rooms = append(rooms, name)
		m.room.exit(c)
		c.srv.hub.releaseRoom(m.room)
		delete(c.rooms, name)
	}
	c.srv.hub.removeUserConn(c)
	c.logger().Debug("connection closed", "rooms", rooms, "code", c.closeCode, "reason", c.closeReason)
}

// readLoop reads and handles client messages until the connection fails or
// a handler decides to close it.
func (c *Conn) readLoop() {
	c.ws.SetReadLimit(c.srv.opts.MaxMessageSize)
	c.ws.SetReadDeadline(time.Now().Add(c.srv.opts.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.srv.opts.PongWait))
	})
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.srv.opts.Metrics.Refused(CodeTooLarge) // gorilla has sent close 1009
			}
			return
		}
		if c.idle != nil {
			c.idle.Reset(c.srv.opts.IdleTimeout)
		}
		if kind == websocket.BinaryMessage {
			c.close(CloseUnsupported, "binary frames are not supported")
			return
		}
		if !c.handle(data) {
			return
		}
	}
}

// startTimers arms the idle timeout and the token expiry.
func (c *Conn) startTimers() {
	c.pinger = time.AfterFunc(c.srv.opts.PingInterval, c.ping)
	if d := c.srv.opts.IdleTimeout; d > 0 {
		c.idle = time.AfterFunc(d, func() { c.close(CloseNormal, "idle timeout") })
	}
	c.setExpiry(c.identity.Expires)
}

// setExpiry schedules the token-expired close for expires; zero means never.
func (c *Conn) setExpiry(expires time.Time) {
	switch {
	case c.expiry != nil && expires.IsZero():
		c.expiry.Stop()
	case c.expiry != nil:
		c.expiry.Reset(expires.Sub(c.srv.opts.Now()))
	case !expires.IsZero():
		c.expiry = time.AfterFunc(expires.Sub(c.srv.opts.Now()), func() { c.close(CloseTokenExpired, "token expired") })
	}
}

func (c *Conn) stopTimers() {
	for _, t := range []*time.Timer{c.pinger, c.idle, c.expiry} {
		if t != nil {
			t.Stop()
		}
	}
}

// send queues a frame for the client without blocking. A full queue means
// the client cannot keep up: it is evicted with 4009.
func (c *Conn) send(frame []byte) {
	full, startWriter := c.queue.push(frame)
	if full {
		c.evict()
	}
	if startWriter {
		c.startWriter()
	}
}

// startWriter runs a writer; the queue ensures at most one at a time.
func (c *Conn) startWriter() { go c.writeLoop() }

// evict closes a slow consumer. What is queued is dropped: the client
// resumes from the store with since.
func (c *Conn) evict() {
	c.closeOnce.Do(func() {
		c.srv.opts.Metrics.Evicted()
		c.logger().Info("evicting slow consumer")
		c.closeCode, c.closeReason = CloseSlowConsumer, "slow consumer"
		close(c.closing)
		if c.queue.requestClose(true) {
			c.startWriter()
		}
	})
}

// close asks the writer to send a close frame with code and reason after
// what is already queued, and to end the connection. Code 0 ends it at once
// without a close frame. Only the first call counts.
func (c *Conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.closing)
		if c.queue.requestClose(code == 0) {
			c.startWriter()
		}
	})
}

// isClosing reports whether the connection has begun to close.
func (c *Conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// ping asks the writer for a ping and schedules the next one.
func (c *Conn) ping() {
	if c.queue.requestPing() {
		c.startWriter()
	}
	if !c.isClosing() {
		c.pinger.Reset(c.srv.opts.PingInterval)
	}
}

// writeLoop is the connection's only writer of data, pings and the close
// frame. It runs while the queue has work: each round drains everything
// queued and flushes it as one batch; it exits when the queue is empty, or
// after the close frame.
func (c *Conn) writeLoop() {
	var batch [][]byte
	for {
		var ping, closing, idle bool
		batch, ping, closing, idle = c.queue.take(batch[:0])
		if idle {
			return
		}
		err := c.writeFrames(batch)
		clear(batch)
		if err == nil && ping {
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.srv.opts.WriteWait))
		}
		if closing {
			c.writeClose(err)
			return
		}
		if err != nil {
			c.close(0, "") // the next round ends the connection
		}
	}
}

// writeFrames writes frames as newline-separated batches, one WebSocket
// message per maxBatchBytes.
func (c *Conn) writeFrames(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	c.ws.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
	for len(frames) > 0 {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		size := 0
		for len(frames) > 0 && (size == 0 || size+len(frames[0]) <= maxBatchBytes) {
			if size > 0 {
				w.Write(newline)
			}
			w.Write(frames[0])
			size += len(frames[0]) + 1
			frames = frames[1:]
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

var newline = []byte{'\n'}

// closeHandshakeWait is how long the writer waits for the client to answer
// its close frame before it drops the TCP connection.
const closeHandshakeWait = time.Second

// writeClose sends the close frame unless writing already failed, waits
// briefly for the reader to see the client's answer, and closes the socket.
func (c *Conn) writeClose(writeErr error) {
	defer close(c.writerDone)
	if c.closeCode != 0 && writeErr == nil {
		msg := websocket.FormatCloseMessage(c.closeCode, c.closeReason)
		if c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.srv.opts.WriteWait)) == nil {
			select {
			case <-c.readerDone:
			case <-time.After(closeHandshakeWait):
			}
		}
	}
	c.ws.Close()
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
