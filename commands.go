package partyline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/partyline/partyline/internal/wire"
)

// typingInterval is the least time between two relayed typing indicators of
// one connection in one room.
const typingInterval = 2 * time.Second

// Default and largest page of a history frame.
const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 100
)

// ctx is the context of a client's request. It is not cancelled when the
// connection closes: a message being committed is finished and acked. Only
// a forced shutdown cancels it.
func (c *Conn) ctx() context.Context { return c.srv.hub.inFlight }

// handle decodes and answers one client message. It returns false when the
// connection must stop reading. A panic in a handler closes the connection
// with 1011 instead of skipping its cleanup.
func (c *Conn) handle(frame []byte) (keepReading bool) {
	c.roomsMu.Lock()
	defer c.roomsMu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			c.logger().Error("panic while handling a message", "panic", p, "stack", string(debug.Stack()))
			c.close(closeInternalError, "internal error")
			keepReading = false
		}
	}()
	in, err := wire.Decode(frame)
	if errors.Is(err, wire.ErrInvalidUTF8) {
		c.close(CloseInvalidData, "invalid UTF-8")
		return false
	}
	now := c.srv.opts.Now()
	if c.limiter == nil {
		c.limiter = newRateLimiter(c.srv.opts.RateLimit, c.srv.opts.RateBurst, now) // nil: no limit
	}
	if ok, abusive := c.limiter.allow(now); !ok {
		if abusive {
			c.close(CloseRateLimit, "rate limit exceeded")
			return false
		}
		c.sendError(newError(CodeRateLimited, "too many messages; slow down"), in.ID)
		return true
	}
	if err != nil {
		c.sendError(newError(CodeBadRequest, err.Error()), in.ID)
		return true
	}
	c.srv.opts.Metrics.MessageIn(in.Type)
	if err := c.dispatch(in); err != nil {
		c.sendError(err, in.ID)
	}
	return true
}

// dispatch runs the handler of the message's type.
func (c *Conn) dispatch(in wire.Inbound) error {
	switch in.Type {
	case "chat":
		return c.chat(in)
	case "join":
		return c.joinCommand(in)
	case "leave":
		return c.leave(in)
	case "direct":
		return c.direct(in)
	case "typing":
		return c.typing(in)
	case "presence":
		return c.presence(in)
	case "history":
		return c.history(in)
	case "refresh":
		return c.refresh(in)
	case "ping":
		c.send(wire.AppendPong(nil))
		c.ack(in.ID)
		return nil
	default:
		return newError(CodeUnknownType, fmt.Sprintf("unknown message type %q", in.Type))
	}
}

// chat stores a message and delivers it to the room.
func (c *Conn) chat(in wire.Inbound) error {
	name := in.Room
	if name == "" {
		name = c.defaultRoom()
	}
	if _, err := c.member(name); err != nil {
		return err
	}
	if err := checkContent(in.Content, in.Data); err != nil {
		return err
	}
	content, err := c.srv.askPublish(c.ctx(), c.username, name, Content{Text: in.Content, Data: in.Data})
	if err != nil {
		return err
	}
	m, err := c.srv.hub.commit(c.ctx(), Message{Room: name, Username: c.username, Content: content.Text, Data: content.Data})
	if err != nil {
		return err
	}
	// With the in-process broker the sender's copy of the message is queued
	// during announce; corked, it leaves with the ack in one write. Other
	// brokers deliver later, over the network: nothing to gain, and a slow
	// broker must not hold up the sender's other frames.
	if _, local := c.srv.opts.Broker.(*MemoryBroker); local {
		defer c.queue.uncork(c.queue.cork())
	}
	c.srv.hub.announce(c.ctx(), m)
	if in.ID != nil {
		c.send(wire.AppendAck(nil, in.ID, m.Seq, m.Timestamp))
	}
	return nil
}

// defaultRoom is where plain-text frames and room-less chat go: the only
// room, or else the first room of the URL still joined.
func (c *Conn) defaultRoom() string {
	if len(c.rooms) == 1 {
		return c.rooms[0].room.name
	}
	for _, name := range c.urlRooms {
		if c.rooms.find(name) >= 0 {
			return name
		}
	}
	return ""
}

// member returns the connection's membership of a room it has joined.
func (c *Conn) member(name string) (membership, error) {
	if name == "" {
		return membership{}, newError(CodeNotJoined, "no room given and no default room joined")
	}
	i := c.rooms.find(name)
	if i < 0 {
		return membership{}, newError(CodeNotJoined, "not joined to "+name)
	}
	return c.rooms[i], nil
}

// checkContent checks a message's content and data. Data from a client's
// frame is valid JSON already; from Go it may not be, and it must be, to
// be stored, delivered and told to webhooks.
func checkContent(content string, data json.RawMessage) error {
	switch {
	case content == "" && data == nil:
		return newError(CodeBadRequest, "content or data is required")
	case data != nil && !json.Valid(data):
		return newError(CodeBadRequest, "data must be JSON")
	}
	return nil
}

func (c *Conn) joinCommand(in wire.Inbound) error {
	if c.rooms.find(in.Room) < 0 && ValidRoom(in.Room) && c.canJoin(in.Room) {
		if err := c.srv.askJoin(c.ctx(), c.username, in.Room); err != nil {
			return err
		}
	}
	if err := c.join(in.Room, in.Since); err != nil {
		return err
	}
	c.ack(in.ID)
	return nil
}

// join subscribes the connection to a room: joined and online_users first,
// then, with since, the replay of what it missed, then live messages.
func (c *Conn) join(name string, since *uint64) error {
	switch {
	case !ValidRoom(name):
		return newError(CodeInvalidRoom, "room names must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
	case !c.canJoin(name):
		return newError(CodeForbidden, "not allowed to join "+name)
	}
	if i := c.rooms.find(name); i >= 0 {
		return c.rejoin(i, since)
	}
	if len(c.rooms) >= c.srv.opts.MaxRooms {
		return newError(CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection", c.srv.opts.MaxRooms))
	}
	r, err := c.srv.hub.acquireRoom(c.ctx(), name)
	if err != nil {
		return err
	}
	sub, err := r.enter(c.ctx(), c, since)
	if err != nil {
		c.srv.hub.releaseRoom(r)
		return err
	}
	c.rooms = append(c.rooms, membership{room: r, sub: sub})
	c.startReplay(r, sub)
	return nil
}

// startReplay starts the replay of a subscription that recovers.
func (c *Conn) startReplay(r *room, sub *subscription) {
	if !sub.recovering {
		return
	}
	c.tasks.Add(1)
	go func() {
		defer c.tasks.Done()
		r.replay(c, sub)
	}()
}

// rejoin answers a join of a room the connection is already in, its i-th,
// with a fresh joined and online_users; with since, it then delivers the
// room from there, as a join with since does, without announcing the user
// again.
func (c *Conn) rejoin(i int, since *uint64) error {
	m := c.rooms[i]
	users, count, err := m.room.onlineUsers(c.ctx())
	if err != nil {
		return err
	}
	if since == nil {
		m.room.rejoined(c, users, count)
		return nil
	}
	sub, err := m.room.resume(c.ctx(), c, m.sub, *since, users, count)
	if err != nil {
		// The replay under way, if any, has stopped: what follows it
		// cannot be delivered without a gap.
		c.sendError(newError(CodeUnavailable, "recovery of "+m.room.name+" failed: store unavailable"), nil)
		c.close(closeInternalError, "recovery failed")
		return nil
	}
	c.rooms[i].sub = sub
	c.startReplay(m.room, sub)
	return nil
}

func (c *Conn) leave(in wire.Inbound) error {
	if err := c.leaveRoom(in.Room); err != nil {
		return err
	}
	c.ack(in.ID)
	return nil
}

// leaveRoom unsubscribes the connection from a room it is in and tells the
// client with left.
func (c *Conn) leaveRoom(name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	c.rooms.remove(name)
	m.room.exit(c)
	if m.sub.replayDone != nil {
		<-m.sub.replayDone // nothing of the room may follow left
	}
	c.srv.hub.releaseRoom(m.room)
	c.queue.push(markedMessage(wire.AppendLeft(nil, name), markLeft, name, 0))
	return nil
}

// serverJoin joins the connection to a room on the server's initiative
// (PUT /api/users/{user}/rooms/{room}), as a join frame would, and reports
// whether it joined: not when it was in the room already, or is closing.
func (c *Conn) serverJoin(name string) bool {
	c.roomsMu.Lock()
	defer c.roomsMu.Unlock()
	if c.rooms.find(name) >= 0 || c.roomsGone || c.isClosing() {
		return false
	}
	if err := c.join(name, nil); err != nil {
		c.sendError(err, nil)
		return false
	}
	return true
}

// serverLeave is serverJoin's opposite: it reports whether the connection
// left the room.
func (c *Conn) serverLeave(name string) bool {
	c.roomsMu.Lock()
	defer c.roomsMu.Unlock()
	if c.roomsGone {
		return false
	}
	return c.leaveRoom(name) == nil
}

func (c *Conn) direct(in wire.Inbound) error {
	if err := checkContent(in.Content, in.Data); err != nil {
		return err
	}
	err := c.srv.sendDirect(c.ctx(), DirectMessage{From: c.username, To: in.To, Content: in.Content, Data: in.Data}, c.session)
	if err != nil {
		return err
	}
	c.ack(in.ID)
	return nil
}

// typing relays a typing indicator, at most one per typingInterval per room.
func (c *Conn) typing(in wire.Inbound) error {
	m, err := c.member(in.Room)
	if err != nil {
		return err
	}
	if m.room.mayRelayTyping(m.sub, c.srv.opts.Now()) {
		e := event{kind: eventTyping, except: c.session, payload: wire.AppendTyping(nil, in.Room, c.username)}
		c.srv.hub.publish(c.ctx(), m.room.topic, e)
	}
	c.ack(in.ID)
	return nil
}

func (c *Conn) presence(in wire.Inbound) error {
	m, err := c.member(in.Room)
	if err != nil {
		return err
	}
	users, count, err := m.room.onlineUsers(c.ctx())
	if err != nil {
		return err
	}
	c.send(wire.AppendOnlineUsers(nil, in.Room, users, count))
	c.ack(in.ID)
	return nil
}

func (c *Conn) history(in wire.Inbound) error {
	if _, err := c.member(in.Room); err != nil {
		return err
	}
	limit := in.Limit
	if limit == 0 {
		limit = defaultHistoryLimit
	}
	if limit > maxHistoryLimit {
		return newError(CodeBadRequest, fmt.Sprintf("limit must be between 1 and %d", maxHistoryLimit))
	}
	messages, err := c.srv.History(c.ctx(), in.Room, HistoryQuery{Before: in.Before, Limit: limit})
	if err != nil {
		return err
	}
	c.send(wire.AppendHistory(nil, in.Room, toWire(messages)))
	c.ack(in.ID)
	return nil
}

// refresh replaces the connection's token before it expires.
func (c *Conn) refresh(in wire.Inbound) error {
	auth := c.srv.opts.Authenticator
	if auth == nil {
		return newError(CodeBadRequest, "refresh needs JWT authentication, which is not enabled")
	}
	id, err := auth.Authenticate(c.ctx(), in.Token)
	if err != nil {
		return &Error{Code: CodeForbidden, Message: "refresh refused: " + ErrorMessage(err), Err: err}
	}
	if id.Username != c.username {
		return newError(CodeForbidden, "refresh token is for another user")
	}
	c.mayJoin = id.Rooms
	c.setExpiry(id.Expires)
	c.ack(in.ID)
	return nil
}

func (c *Conn) ack(id json.RawMessage) {
	if id != nil {
		c.send(wire.AppendAck(nil, id, 0, 0))
	}
}

// sendError sends an error frame, echoing id when the message had one.
func (c *Conn) sendError(err error, id json.RawMessage) {
	code := ErrorCode(err)
	c.srv.opts.Metrics.Refused(code)
	if code == CodeUnavailable {
		c.logger().Warn("request failed", "err", err)
	}
	c.send(wire.AppendError(nil, code, ErrorMessage(err), id))
}

func toWire(messages []Message) []wire.Chat {
	chats := make([]wire.Chat, len(messages))
	for i, m := range messages {
		chats[i] = wire.Chat(m)
	}
	return chats
}
