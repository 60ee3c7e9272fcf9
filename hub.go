package partyline

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Broker topic prefixes.
const (
	roomTopicPrefix = "room:"
	userTopicPrefix = "user:"
)

// backendTimeout bounds every call to the Store, Broker and Presence made on
// a client's behalf, so a backend outage answers unavailable, never hangs.
const backendTimeout = 5 * time.Second

// hub is the registry: which rooms and users have connections on this node,
// and the broker subscriptions they need. It receives the broker's events
// and routes them to rooms and users.
type hub struct {
	srv    *Server
	events *recorder // nil without webhooks

	reconnected chan struct{} // signalled when the broker has reconnected

	// inFlight is the parent of the Store, Broker and Presence calls made
	// for clients and by the hub; abort cancels it (see bound).
	inFlight     context.Context
	cancelFlight context.CancelFunc
	abortedUntil atomic.Int64   // after abort: when the calls made since must end, Unix nanoseconds
	ownDeadline  sharedDeadline // bounds the calls made with inFlight as parent

	// taskMu guards stopped and quit's closing. Every tasks.Add is made
	// under it, and stop sets stopped under it before it waits, so no
	// background work starts behind stop's back.
	taskMu  sync.Mutex
	stopped bool           // no more tasks start
	quit    chan struct{}  // closed by stop
	tasks   sync.WaitGroup // background work: gap fills, resyncs, re-announcing

	announceMu  sync.Mutex // guards the following
	unannounced map[string]bool
	announcing  bool // announceLoop is running

	// diffMu guards diffs: the presence changes of large rooms waiting for
	// their room's next presence_diff, for each room whose diff goroutine
	// runs (presence_diff.go).
	diffMu sync.Mutex
	diffs  map[string]*presenceDiff

	// userLocks serializes each user's connects and disconnects on this
	// node, across their Broker and Presence calls; other users' go on.
	userLocks keyedMutex

	// topicLocks serializes each topic's broker (un)subscriptions, and
	// only that topic's: the Broker contract wants no concurrent calls for
	// one topic.
	topicLocks keyedMutex
	subsMu     sync.Mutex     // guards subs; never held across a call
	subs       map[string]int // references per subscribed topic

	mu    sync.RWMutex // guards the following
	rooms map[string]*room
	users map[string][]*Conn // a user's connections on this node

	commands commands // cluster commands awaiting replies, under a lock of their own
}

func newHub(srv *Server) *hub {
	inFlight, cancel := context.WithCancel(context.Background())
	return &hub{
		srv:          srv,
		inFlight:     inFlight,
		cancelFlight: cancel,
		quit:         make(chan struct{}),
		reconnected:  make(chan struct{}, 1),
		subs:         make(map[string]int),
		rooms:        make(map[string]*room),
		users:        make(map[string][]*Conn),
	}
}

// subscribe takes a reference on topic, subscribing the broker on the first.
func (h *hub) subscribe(ctx context.Context, topic string) error {
	unlock := h.topicLocks.lock(topic)
	defer unlock()
	if h.subscribers(topic, 0) == 0 {
		_, err := brokerCall(h, ctx, "subscribe", func(ctx context.Context, b Broker) (struct{}, error) {
			return struct{}{}, b.Subscribe(ctx, topic)
		})
		if err != nil {
			return err
		}
	}
	h.subscribers(topic, 1)
	return nil
}

// unsubscribe drops a reference on topic, unsubscribing on the last.
func (h *hub) unsubscribe(topic string) {
	unlock := h.topicLocks.lock(topic)
	defer unlock()
	if h.subscribers(topic, -1) > 0 {
		return
	}
	_, err := brokerCall(h, h.inFlight, "unsubscribe", func(ctx context.Context, b Broker) (struct{}, error) {
		return struct{}{}, b.Unsubscribe(ctx, topic)
	})
	if err != nil {
		h.srv.log.Warn("broker unsubscribe failed", "topic", topic, "err", err)
	}
}

// subscribers adds delta to topic's references and returns them.
func (h *hub) subscribers(topic string, delta int) int {
	h.subsMu.Lock()
	defer h.subsMu.Unlock()
	n := h.subs[topic] + delta
	if n == 0 {
		delete(h.subs, topic)
	} else {
		h.subs[topic] = n
	}
	return n
}

// acquireRoom returns the named room, created and ready, holding a
// reference that the caller gives back with releaseRoom.
func (h *hub) acquireRoom(ctx context.Context, name string) (*room, error) {
	h.mu.Lock()
	r := h.rooms[name]
	if r == nil {
		r = newRoom(h, name)
		h.rooms[name] = r
	}
	r.refs++
	h.mu.Unlock()
	if err := r.init(ctx); err != nil {
		h.releaseRoom(r)
		return nil, err
	}
	return r, nil
}

// releaseRoom gives back a reference; the last one removes the room.
func (h *hub) releaseRoom(r *room) {
	h.mu.Lock()
	r.refs--
	gone := r.refs == 0
	if gone {
		delete(h.rooms, r.name)
	}
	h.mu.Unlock()
	if gone {
		r.dispose()
	}
}

func (h *hub) room(name string) *room {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rooms[name]
}

// roomNames returns the rooms with connections on this node, sorted.
func (h *hub) roomNames() []string {
	h.mu.RLock()
	names := make([]string, 0, len(h.rooms))
	for name := range h.rooms {
		names = append(names, name)
	}
	h.mu.RUnlock()
	slices.Sort(names)
	return names
}

// roomConnections counts this node's connections subscribed to room.
func (h *hub) roomConnections(name string) int {
	if r := h.room(name); r != nil {
		return r.connections()
	}
	return 0
}

// addUserConn registers c under its user. The user's first connection on
// this node subscribes to the user's topic and enters the "" presence room.
// welcome runs once the user is online everywhere, before the connection
// can receive anything addressed to the user.
func (h *hub) addUserConn(ctx context.Context, c *Conn, welcome func()) error {
	unlock := h.userLocks.lock(c.username)
	defer unlock()
	if !h.hasConns(c.username) {
		if err := h.userOnline(ctx, c.username); err != nil {
			return err
		}
	}
	// Queued under h.mu, so that the welcome comes before any frame for the
	// user can reach c, and none sent once the client has it misses c. It
	// is written later, by a flush goroutine (flush.go).
	h.mu.Lock()
	welcome()
	h.users[c.username] = append(h.users[c.username], c)
	h.mu.Unlock()
	return nil
}

// removeUserConn undoes addUserConn.
func (h *hub) removeUserConn(c *Conn) {
	unlock := h.userLocks.lock(c.username)
	defer unlock()
	h.mu.Lock()
	conns := h.users[c.username]
	i := slices.Index(conns, c)
	if i < 0 {
		h.mu.Unlock()
		return
	}
	conns = slices.Delete(conns, i, i+1)
	last := len(conns) == 0
	if last {
		delete(h.users, c.username)
	} else {
		h.users[c.username] = conns
	}
	h.mu.Unlock()
	if last {
		h.userOffline(c.username)
	}
}

// hasConns reports whether user has connections registered on this node.
func (h *hub) hasConns(user string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[user]) > 0
}

// userOnline subscribes to the user's topic and enters the user in the ""
// presence room, as their first connection on this node arrives. The
// caller holds the user's lock.
func (h *hub) userOnline(ctx context.Context, user string) error {
	if err := h.subscribe(ctx, userTopicPrefix+user); err != nil {
		return err
	}
	first, err := presenceCall(h, ctx, "add", func(ctx context.Context, p Presence) (bool, error) {
		return p.Add(ctx, "", user)
	})
	if err != nil {
		h.unsubscribe(userTopicPrefix + user)
		return err
	}
	if first {
		h.events.joined("", user)
	}
	return nil
}

// userOffline undoes userOnline as the user's last connection on this node
// leaves. The caller holds the user's lock.
func (h *hub) userOffline(user string) {
	last, err := presenceCall(h, h.inFlight, "remove", func(ctx context.Context, p Presence) (bool, error) {
		return p.Remove(ctx, "", user)
	})
	if err != nil {
		h.srv.log.Warn("presence remove failed", "user", user, "err", err)
	} else if last {
		h.events.left("", user)
	}
	h.unsubscribe(userTopicPrefix + user)
}

// userConns returns the user's connections on this node.
func (h *hub) userConns(user string) []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.users[user])
}

// publish hands an event to the broker. If the broker cannot take it, the
// event is delivered on this node only, so local clients still get it; other
// nodes catch up on chat from the store.
func (h *hub) publish(ctx context.Context, topic string, e event) error {
	e.at = time.Now().UnixNano()
	payload := e.marshal()
	_, err := brokerCall(h, ctx, "publish", func(ctx context.Context, b Broker) (struct{}, error) {
		return struct{}{}, b.Publish(ctx, topic, payload)
	})
	if err != nil {
		h.srv.log.Warn("broker publish failed; delivering locally", "topic", topic, "err", err)
		h.HandleEvent(topic, payload)
		if room, ok := strings.CutPrefix(topic, roomTopicPrefix); ok && e.kind == eventChat {
			h.announceLater(room)
		}
		return err
	}
	return nil
}

// newMessageID returns 24 random hex characters: a message id, unique
// across the cluster. They come from the runtime's generator (ChaCha8,
// seeded by the system), as unpredictable as an id needs and a fraction of
// the cost of crypto/rand, whose deep stack grew every reader's.
func newMessageID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	return hex.EncodeToString(b[:])
}

// commit gives msg its id and time and stores it, which assigns its seq:
// the first step of a chat message's way (doc.go), and announce the second.
func (h *hub) commit(ctx context.Context, msg Message) (Message, error) {
	msg.ID = newMessageID()
	msg.Timestamp = h.srv.opts.Now().UnixMilli()
	stored, err := storeCall(h, ctx, "append", func(ctx context.Context, store Store) (Message, error) {
		return store.Append(ctx, msg)
	})
	if err != nil {
		return Message{}, err
	}
	h.events.committed()
	return stored, nil
}

// announce hands a committed message to the broker for delivery. A broker
// failure is not the sender's: the message is committed, and the hub
// delivers it once the broker takes it.
func (h *hub) announce(ctx context.Context, stored Message) {
	h.publish(ctx, roomTopicPrefix+stored.Room, chatEvent(stored))
}

// announceLater remembers that a room's latest chat did not reach the
// other nodes. Until a publish goes through, the room's latest stored
// message is announced again every second and after the broker reconnects;
// from it the other nodes fill the gap out of the store.
func (h *hub) announceLater(room string) {
	h.announceMu.Lock()
	defer h.announceMu.Unlock()
	if h.unannounced == nil {
		h.unannounced = make(map[string]bool)
	}
	h.unannounced[room] = true
	if !h.announcing && h.startTask() {
		h.announcing = true
		go h.announceLoop()
	}
}

// announceLoop retries until every room is announced or the hub stops.
func (h *hub) announceLoop() {
	defer h.tasks.Done()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-ticker.C:
		case <-h.reconnected:
		}
		if h.reannounce() {
			return
		}
	}
}

// reannounce publishes each unannounced room's latest message once more.
// It reports whether none is left, in which case the loop must end.
func (h *hub) reannounce() (done bool) {
	h.announceMu.Lock()
	rooms := make([]string, 0, len(h.unannounced))
	for room := range h.unannounced {
		rooms = append(rooms, room)
	}
	h.announceMu.Unlock()
	for _, room := range rooms {
		if h.announceLatest(room) {
			h.announceMu.Lock()
			delete(h.unannounced, room)
			h.announceMu.Unlock()
		}
	}
	h.announceMu.Lock()
	defer h.announceMu.Unlock()
	if len(h.unannounced) == 0 {
		h.announcing = false
		return true
	}
	return false
}

// announceLatest publishes the room's latest stored message to the broker.
func (h *hub) announceLatest(room string) bool {
	latest, err := storeCall(h, h.inFlight, "history", func(ctx context.Context, store Store) ([]Message, error) {
		return store.History(ctx, room, HistoryQuery{Limit: 1})
	})
	if err != nil {
		return false
	}
	if len(latest) == 0 {
		return true
	}
	e := chatEvent(latest[0])
	e.at = time.Now().UnixNano()
	payload := e.marshal()
	_, err = brokerCall(h, h.inFlight, "publish", func(ctx context.Context, b Broker) (struct{}, error) {
		return struct{}{}, b.Publish(ctx, roomTopicPrefix+room, payload)
	})
	return err == nil
}

// HandleEvent implements BrokerHandler: it routes an event to the room or
// the user it is for.
func (h *hub) HandleEvent(topic string, payload []byte) {
	e, err := parseEvent(payload)
	if err != nil {
		h.srv.log.Warn("dropping malformed broker event", "topic", topic, "err", err)
		return
	}
	if e.kind.isCommand() {
		h.handleCommandEvent(topic, e)
		return
	}
	if name, ok := strings.CutPrefix(topic, roomTopicPrefix); ok {
		if r := h.room(name); r != nil {
			e.msg = e.deliverable(name)
			r.handle(e)
		}
		return
	}
	if user, ok := strings.CutPrefix(topic, userTopicPrefix); ok {
		e.msg = e.deliverable("")
		for _, c := range h.userConns(user) {
			if c.session == e.except {
				continue
			}
			if e.kind == eventKick {
				c.close(CloseKicked, "disconnected by the server")
			} else {
				c.queue.push(e.msg)
			}
		}
	}
}

// presenceSettle is how long after the broker reconnects the rooms tell
// their members who is online: time for the nodes' presence to be put back
// if Redis lost it (redis.Presence retries its heartbeat within a second).
const presenceSettle = 2 * time.Second

// HandleReconnect implements BrokerHandler: every room checks the store for
// messages the broker may have lost, and, once presence has settled, tells
// its members who is online, since presence changes announced meanwhile
// were lost with the broker's connection.
func (h *hub) HandleReconnect() {
	signal(h.reconnected)
	h.mu.RLock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.RUnlock()
	for _, r := range rooms {
		r.resync()
	}
	if !h.startTask() {
		return
	}
	go func() {
		defer h.tasks.Done()
		select {
		case <-time.After(presenceSettle):
		case <-h.quit:
			return
		}
		for _, r := range rooms {
			r.refreshPresence(nil)
		}
	}()
}

// presenceExpired announces that a dead node's user left room.
func (h *hub) presenceExpired(room, user string) {
	h.events.left(room, user)
	h.announcePresence(false, room, user)
}

// presenceRestored announces that a user dropped while their node was cut
// off is back in room.
func (h *hub) presenceRestored(room, user string) {
	h.events.joined(room, user)
	h.announcePresence(true, room, user)
}

func (h *hub) announcePresence(joined bool, room, user string) {
	if room == "" {
		return
	}
	ctx, cancel := h.backendContext()
	defer cancel()
	h.presenceChanged(ctx, presenceDecision{room: room, user: user, joined: joined}, "", -1)
}

// counts returns the number of rooms and users with connections here.
func (h *hub) counts() (rooms, users int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms), len(h.users)
}

// stopping reports whether stop has begun.
func (h *hub) stopping() bool {
	select {
	case <-h.quit:
		return true
	default:
		return false
	}
}

// startTask counts a background task that stop must wait for, and reports
// whether it may start: none does once stop has begun.
func (h *hub) startTask() bool {
	h.taskMu.Lock()
	defer h.taskMu.Unlock()
	if h.stopped {
		return false
	}
	h.tasks.Add(1)
	return true
}

// stop ends background work after the connections are gone.
func (h *hub) stop() {
	h.taskMu.Lock()
	if !h.stopped {
		h.stopped = true
		close(h.quit)
	}
	h.taskMu.Unlock()
	h.tasks.Wait()
}

// abortedBackendTimeout bounds the backend calls made after a forced
// shutdown has cancelled those in flight: all of them together, from the
// moment it did, so that however many a closing room makes in turn, they
// keep the process no longer.
const abortedBackendTimeout = time.Second

// abort cancels the backend calls in flight, as a forced shutdown does.
func (h *hub) abort() {
	h.abortedUntil.Store(time.Now().Add(abortedBackendTimeout).UnixNano())
	h.cancelFlight()
}

// bound bounds one backend call made for parent: it gets backendTimeout,
// and a forced shutdown cancels it while it runs. A call made after that,
// such as a closing connection's presence removal or a committed message's
// announcement, is still tried, until abortedBackendTimeout after the
// abort. The calls made with inFlight as parent, every client's chat among
// them, share a deadline (sharedDeadline).
func (h *hub) bound(parent context.Context) (context.Context, context.CancelFunc) {
	switch {
	case h.inFlight.Err() != nil:
		return context.WithDeadline(context.WithoutCancel(parent), time.Unix(0, h.abortedUntil.Load()))
	case parent == h.inFlight:
		return h.ownDeadline.context(parent), func() {}
	}
	return context.WithTimeout(parent, backendTimeout)
}

// A sharedDeadline is one context, bounded by backendTimeout, for all the
// calls a parent makes within a slice of that time (deadlineSlice): one
// timer a slice rather than one a call, which in rooms of ten with 10,000
// messages a second on SQLite cost 1.6% of the server's CPU. A call gets
// between backendTimeout - deadlineSlice and backendTimeout. Each context
// ends at its deadline, or with its parent, which releases it.
type sharedDeadline struct {
	mu      sync.Mutex // guards the following
	ctx     context.Context
	cancel  context.CancelFunc // ctx's; never called, as calls may hold ctx: its deadline ends it
	renewAt int64              // when a call gets a new ctx, on the monotonic clock
}

// deadlineSlice is how long calls share a sharedDeadline's context.
const deadlineSlice = backendTimeout / 20

// context returns the context of the current slice for parent, which must
// be the same on every call.
func (d *sharedDeadline) context(parent context.Context) context.Context {
	now := monotonic()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || now >= d.renewAt {
		d.ctx, d.cancel = context.WithTimeout(parent, backendTimeout)
		d.renewAt = now + int64(deadlineSlice)
	}
	return d.ctx
}

// backendContext bounds one backend call made on the hub's own account.
func (h *hub) backendContext() (context.Context, context.CancelFunc) {
	return h.bound(h.inFlight)
}

// unavailable wraps a backend failure as the unavailable protocol error.
func unavailable(backend string, err error) error {
	if e, ok := err.(*Error); ok && e.Code != CodeUnavailable {
		return err
	}
	return &Error{Code: CodeUnavailable, Message: backend + " unavailable", Err: err}
}
