package partyline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline/internal/wire"
)

// Conn is one client's WebSocket connection. Its reader goroutine handles the
// client's messages in order. Every other goroutine reaches the client by
// pushing prepared frames onto its bounded queue, which never blocks: a full
// queue evicts the connection. One writer at a time drains the queue
// (writer.go).
type Conn struct {
	srv      *Server
	ws       *websocket.Conn // reads, and the handshake
	raw      net.Conn        // what writer.go writes to
	rawConn  syscall.RawConn // for non-blocking writes; nil for TLS
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

	// Owned by whoever holds the writer role (see writer.go).
	pending  [][]byte // frames taken from the queue, not yet written
	closeDue bool     // the close frame is next
	writeErr error    // the socket failed; nothing more is written

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

// newConn wraps an upgraded connection; raw is the socket under ws, which
// only writer.go writes to.
func newConn(s *Server, ws *websocket.Conn, raw net.Conn, a admission) *Conn {
	session := randomID()
	c := &Conn{
		srv:        s,
		ws:         ws,
		raw:        raw,
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
	if sc, ok := c.raw.(syscall.Conn); ok {
		c.rawConn, _ = sc.SyscallConn()
	}
	return c
}

// logger returns the server's logger with the connection's attributes. It is
// built when needed, so a connection that logs nothing costs nothing.
func (c *Conn) logger() *slog.Logger {
	return c.srv.log.With("session", c.session, "user", c.username)
}

// debugging reports whether debug lines are logged at all.
func (c *Conn) debugging() bool {
	return c.srv.log.Enabled(context.Background(), slog.LevelDebug)
}

// randomID returns 16 random hex characters: a session id.
func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newMessageID returns 24 random hex characters: a message id, unique
// across the cluster.
func newMessageID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve runs the connection until it closes, then cleans up after it: it
// returns only when the writer and every replay have stopped.
func (c *Conn) serve() {
	if c.debugging() {
		c.logger().Debug("connection opened", "rooms", c.urlRooms)
	}
	c.startTimers()
	welcome := func() {
		c.send(wire.AppendWelcome(nil, c.username, c.session, orEmpty(c.urlRooms), c.srv.opts.ServerName))
	}
	if err := c.srv.hub.addUserConn(c.ctx(), c, welcome); err != nil {
		welcome()
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
	if c.debugging() {
		c.logger().Debug("connection closed", "rooms", rooms, "code", c.closeCode, "reason", c.closeReason)
	}
}

// readLoop reads and handles client messages until the connection fails or
// a handler decides to close it. gorilla parses frames; the size limit and
// the answers to pings and closes are ours, so that writer.go stays the only
// writer.
func (c *Conn) readLoop() {
	c.ws.SetReadDeadline(time.Now().Add(c.srv.opts.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.srv.opts.PongWait))
	})
	c.ws.SetPingHandler(func(data string) error {
		c.sendFrame(controlFrame(opPong, []byte(data)))
		return nil
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = CloseNormal
		}
		c.close(code, "")
		return nil
	})
	buf := readBuffers.Get().(*bytes.Buffer)
	defer readBuffers.Put(buf)
	for {
		kind, r, err := c.ws.NextReader()
		if err != nil {
			c.closeOnProtocolError(err)
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(io.LimitReader(r, c.srv.opts.MaxMessageSize+1)); err != nil {
			return
		}
		if !c.accept(kind, buf.Bytes()) {
			return
		}
		if buf.Cap() > 64<<10 {
			*buf = bytes.Buffer{} // do not keep a huge message's buffer
		}
	}
}

// closeOnProtocolError answers a malformed frame (bad mask, reserved bits,
// oversized control frame…) with close 1002, which gorilla/websocket tried
// and failed to send itself (handshake.go).
func (c *Conn) closeOnProtocolError(err error) {
	var closeErr *websocket.CloseError
	var netErr net.Error
	if errors.As(err, &closeErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	if msg, ok := strings.CutPrefix(err.Error(), "websocket: "); ok {
		c.close(websocket.CloseProtocolError, msg)
	}
}

// readBuffers holds the buffers readers read messages into; a message is
// decoded before the next is read, so one buffer serves a reader at a time.
var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// accept checks one message's kind and size and handles it. It returns false
// when the connection must stop reading.
func (c *Conn) accept(kind int, data []byte) bool {
	if c.idle != nil {
		c.idle.Reset(c.srv.opts.IdleTimeout)
	}
	switch {
	case int64(len(data)) > c.srv.opts.MaxMessageSize:
		c.srv.opts.Metrics.Refused(CodeTooLarge)
		c.close(CloseTooLarge, "message too big")
		return false
	case kind == websocket.BinaryMessage:
		c.close(CloseUnsupported, "binary frames are not supported")
		return false
	}
	return c.handle(data)
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

// evict closes a slow consumer. What is queued is dropped: the client
// resumes from the store with since.
func (c *Conn) evict() {
	c.closeOnce.Do(func() {
		c.srv.opts.Metrics.Evicted()
		c.logger().Info("evicting slow consumer")
		c.closeCode, c.closeReason = CloseSlowConsumer, "slow consumer"
		close(c.closing)
		if c.queue.requestClose(true) {
			c.write()
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
			c.write()
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
		c.write()
	}
	if !c.isClosing() {
		c.pinger.Reset(c.srv.opts.PingInterval)
	}
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
