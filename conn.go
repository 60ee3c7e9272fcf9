package partyline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/partyline/partyline/internal/wire"
	"github.com/partyline/partyline/internal/ws"
)

// Conn is one client's WebSocket connection. Its reader handles the
// client's messages in order (reader.go). Every other goroutine reaches the
// client by pushing prepared frames onto its bounded queue, which never
// blocks: a full queue evicts the connection. One writer at a time drains
// the queue (writer.go).
//
// Every idle connection is one, so its fields are packed: see
// TestConnSize.
type Conn struct {
	srv      *Server
	raw      net.Conn        // the socket: &sock, or the upgraded connection itself
	rawConn  syscall.RawConn // for non-blocking reads and writes; nil for TLS and off Unix
	sock     polledSocket    // the socket once the server's poller watches it (socket.go)
	ip       string          // the client's, for the per-IP limit
	session  string
	username string
	urlRooms []string
	queue    sendQueue

	readState     atomic.Int32 // readIdle, readRunning… (reader.go)
	hangup        atomic.Bool  // the poller saw the peer close or fail
	pinged        atomic.Bool  // a ping is on its way; the next arrival is likely its pong
	heartbeatSlot int32        // owned by the heartbeat
	heard         atomic.Int64 // when the client last sent a frame (monotonic)

	// Owned by the reader.
	reader  *ws.Reader        // the frame parser while one is needed, from the pool (parser)
	resume  map[string]uint64 // a stream's rooms to join with since; nil after the welcome
	mayJoin []string          // the identity's rooms (Identity.Rooms): nil means every room
	limiter *rateLimiter      // made at the first message: until then its bucket stays full
	// rooms is the reader's; roomsMu lets a server-side join or leave
	// (serverJoin) change it between two messages, and roomsGone, set by
	// cleanup, says the connection is in no room for good.
	roomsMu     sync.Mutex
	rooms       memberships
	roomsGone   bool
	stopReading bool
	peerClosed  bool        // the client's close frame has arrived; the writer reads it after readerDone
	stream      bool        // a stream (sse.go): its client sends nothing on it; set before serving
	deflate     bool        // permessage-deflate was negotiated; set before serving
	closeCode   uint16      // set with closeReason (below); here, it fits the padding
	expiry      *time.Timer // closes the connection when its token expires
	idle        *time.Timer // closes the connection when it sends nothing

	// Owned by whoever holds the writer role (see writer.go), with the
	// writer it took from the pool.
	wire framing  // how messages are framed for the client's wire
	lag  lagState // what the kernel may still hold (lag.go)

	tasks      sync.WaitGroup // replays running for this connection
	readerDone latch          // the reader has ended for good
	writerDone latch          // the writer that sends the close has finished

	closing     latch // fired by the first close or evict, which then sets closeCode (0: the peer or the network closed first) and closeReason
	closeReason string
}

// canJoin reports whether the connection's identity may join room.
func (c *Conn) canJoin(room string) bool { return Identity{Rooms: c.mayJoin}.CanJoin(room) }

// membership is a connection's place in a room.
type membership struct {
	room *room
	sub  *subscription
}

// memberships are a connection's rooms, in the order it joined them. A
// slice, not a map: most connections are in one room or a few, which a
// map would take hundreds of bytes to index, and Options.MaxRooms bounds
// the scan of a lookup.
type memberships []membership

// find returns the index of the membership of the room called name, or -1.
func (ms memberships) find(name string) int {
	for i, m := range ms {
		if m.room.name == name {
			return i
		}
	}
	return -1
}

// remove drops the membership of the room called name, if any.
func (ms *memberships) remove(name string) {
	if i := ms.find(name); i >= 0 {
		*ms = slices.Delete(*ms, i, i+1)
	}
	if len(*ms) == 0 {
		*ms = nil
	}
}

// newConn wraps an upgraded connection.
func newConn(s *Server, raw net.Conn, a admission) *Conn {
	c := &Conn{
		srv:      s,
		raw:      raw,
		ip:       a.ip,
		session:  randomID(),
		username: a.identity.Username,
		urlRooms: a.rooms,
		mayJoin:  a.identity.Rooms,
		wire:     webSocketFraming{},
	}
	c.queue.init(c, s.opts.SendQueue, s.opts.MaxLag)
	c.readState.Store(readRunning) // serve is the first reader
	c.heard.Store(monotonic())
	if !c.adopt(raw) {
		if sc, ok := raw.(syscall.Conn); ok && rawIO {
			if rc, err := sc.SyscallConn(); err == nil {
				c.rawConn = rc
			}
		}
	}
	return c
}

// turnAway ends a connection that shutdown keeps from being served: it
// writes the close and closes the socket.
func (c *Conn) turnAway() {
	c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteWait))
	c.raw.Write(c.wire.closing(CloseGoingAway, "server shutting down"))
	c.closeSocket()
}

// logger returns the server's logger with the connection's attributes. It is
// built when needed, so a connection that logs nothing costs nothing.
func (c *Conn) logger() *slog.Logger {
	return c.srv.log.With("session", loggedSession(c.session), "user", c.username)
}

// loggedSession is what the log shows of a session: a stream's is a secret
// handle for sending (sse.go), so only enough of it to tell streams apart.
func loggedSession(session string) string {
	if user, secret, ok := strings.Cut(session, sessionSeparator); ok && len(secret) > 8 {
		return user + sessionSeparator + secret[:8] + "…"
	}
	return session
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

// serve is the connection's first reader: it welcomes the client, joins
// the rooms of its URL and handles early as the first bytes from the
// client; then it hands reading over to the poller, or reads on until the
// connection ends. The client's token expires at expires (zero: never).
func (c *Conn) serve(early []byte, expires time.Time) {
	if c.debugging() {
		c.logger().Debug("connection opened", "rooms", c.urlRooms)
	}
	c.startTimers(expires)
	if !c.welcome() || len(early) > 0 && !c.consume(early) {
		c.endReading()
		return
	}
	if !c.polled() {
		c.readLoop()
		return
	}
	c.readAvailable(readBuffers.Get().(*[]byte), 0, false)
}

// ready is the poller telling the connection that bytes have arrived, or
// that the client has gone (hangup).
func (c *Conn) ready(hangup bool) {
	if hangup {
		c.hangup.Store(true) // before arrived: its reader must see it
	}
	c.arrived()
}

// welcome registers the user's connection, sends the welcome and joins the
// rooms of the URL. It returns false when the connection is closing.
func (c *Conn) welcome() bool {
	welcome := func() {
		c.send(wire.AppendWelcome(nil, wire.Welcome{
			Username: c.username, Session: c.session, Rooms: orEmpty(c.urlRooms),
			Server: c.srv.opts.ServerName, MaxMessageSize: c.srv.opts.MaxMessageSize, Epoch: c.srv.epoch,
		}))
	}
	if err := c.srv.hub.addUserConn(c.ctx(), c, welcome); err != nil {
		welcome()
		c.sendError(err, nil)
		c.close(closeInternalError, "service unavailable")
		return false
	}
	c.roomsMu.Lock()
	defer c.roomsMu.Unlock()
	for _, name := range c.urlRooms {
		var since *uint64
		if seq, ok := c.resume[name]; ok {
			since = &seq
		}
		if err := c.join(name, since); err != nil {
			c.sendError(err, nil)
		}
	}
	c.resume = nil
	return true
}

// cleanup leaves every room, unregisters the user's connection and frees
// its slot.
func (c *Conn) cleanup() {
	c.stopTimers()
	c.roomsMu.Lock()
	c.roomsGone = true
	c.roomsMu.Unlock()
	rooms := make([]string, 0, len(c.rooms))
	for _, m := range c.rooms {
		rooms = append(rooms, m.room.name)
		m.room.exit(c)
		c.srv.hub.releaseRoom(m.room)
	}
	c.rooms = nil
	c.srv.hub.removeUserConn(c)
	if c.debugging() {
		c.logger().Debug("connection closed", "rooms", rooms, "code", c.closeCode, "reason", c.closeReason)
	}
	c.srv.untrack(c)
}

// startTimers starts heartbeats and arms the idle timeout and the token
// expiry.
func (c *Conn) startTimers(expires time.Time) {
	c.srv.heartbeat.add(c)
	if d := c.srv.opts.IdleTimeout; d > 0 {
		c.idle = time.AfterFunc(d, func() { c.close(CloseNormal, "idle timeout") })
	}
	c.setExpiry(expires)
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
	c.srv.heartbeat.remove(c)
	for _, t := range []*time.Timer{c.idle, c.expiry} {
		if t != nil {
			t.Stop()
		}
	}
}

// evict closes a slow consumer. What is queued is dropped: the client
// resumes from the store with since. It runs on the fan-out path, under the
// room's lock, so the writer logs the eviction, not evict (writeClose).
func (c *Conn) evict() {
	if !c.closing.fire() {
		return
	}
	c.srv.opts.Metrics.Evicted()
	c.closeCode, c.closeReason = CloseSlowConsumer, slowConsumerReason(c.srv.opts.MaxLag)
	c.queue.requestClose(true)
}

// close asks the writer to send a close frame with code and reason after
// what is already queued, and to end the connection. Code 0 ends it at once
// without a close frame. Only the first call counts.
func (c *Conn) close(code int, reason string) {
	if !c.closing.fire() {
		return
	}
	c.closeCode, c.closeReason = uint16(code), reason
	c.queue.requestClose(code == 0)
}

// isClosing reports whether the connection has begun to close.
func (c *Conn) isClosing() bool { return c.closing.fired() }

// A latch is a one-shot event in a connection's life, such as the end of
// its reader, which costs a pointer until someone has to wait for it: the
// channel is made by the first wait that comes before the event. Most
// events of a connection happen with nobody waiting, and an idle
// connection waits for none.
type latch struct {
	p atomic.Pointer[chan struct{}] // nil, a waiter's channel, or firedLatch
}

// firedLatch is what a latch holds once its event has happened.
var firedLatch = func() *chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return &ch
}()

// fire marks the event as happened and wakes whoever waits for it. It
// reports false if the event had happened already: only the first call
// counts.
func (l *latch) fire() bool {
	for {
		p := l.p.Load()
		if p == firedLatch {
			return false
		}
		if l.p.CompareAndSwap(p, firedLatch) {
			if p != nil {
				close(*p)
			}
			return true
		}
	}
}

// done returns a channel that is closed once the event has happened.
func (l *latch) done() <-chan struct{} {
	for {
		if p := l.p.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if l.p.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// fired reports whether the event has happened.
func (l *latch) fired() bool { return l.p.Load() == firedLatch }

// heartbeat is the connection's turn in the heartbeat: it drops a client
// not heard from within wait, and pings the others. A stream's client
// answers no ping: it is dropped when writing to it fails or lags.
func (c *Conn) heartbeat(now int64, wait time.Duration) {
	if c.stream {
		c.queue.requestPing()
		return
	}
	if time.Duration(now-c.heard.Load()) > wait {
		c.close(0, "") // dropped, as a dead network would
		return
	}
	c.pinged.Store(true)
	c.queue.requestPing()
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
