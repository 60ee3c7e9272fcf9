package partyline

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster commands act on every connection of a user, on every node, and
// answer with a count summed over the nodes: how many connections a kick
// closed (SPEC §11.3).
//
// The requesting node publishes a command event on the user's topic, with a
// request number and its node id. Every node subscribed to that topic —
// those where the user has connections — acts on its own connections of the
// user, on a goroutine of the hub's, and publishes a reply with its count on
// the requester's topic node:<id>, to which the requester subscribes before
// its first command. The requester sums the replies until it has one from
// each node that the broker says received the command (PublishCounter), or
// until commandWait has passed, and then answers with the sum it has. So a
// node the broker counted that never replies — one shutting down, or
// unsubscribing from the user's topic at that moment, or a client other than
// a node listening on the channel — delays the answer by commandWait without
// losing the other nodes' counts. With a Broker that is no PublishCounter,
// every command waits commandWait. When the broker cannot take the command,
// the requesting node acts on its own connections alone and answers with
// their count and the broker's error.

// nodeTopicPrefix starts the topic on which a node receives replies.
const nodeTopicPrefix = "node:"

// commandWait bounds how long a cluster command waits for the nodes'
// replies (docs/protocol.md, appendix).
const commandWait = 2 * time.Second

// inputWait bounds instead how long an input command waits when the broker
// counted the nodes it reached: the node holding the stream replies once
// it has handled the message, which may take the publish hook's time and
// then the store's, while the others reply at once. So a message that is
// slow to handle is not answered as if no node held its session.
const inputWait = 30 * time.Second

// commands is the hub's record of its cluster commands awaiting replies.
// Its zero value is ready to use.
type commands struct {
	nodeOnce  sync.Once
	nodeID    string
	listening atomic.Bool // this node is subscribed to its node topic

	mu      sync.Mutex // guards the following
	last    uint64     // the last request number given out
	pending map[uint64]*tally
}

// tally collects the replies to one command.
type tally struct {
	replied map[string]bool // the nodes that replied, each counted once
	sum     int
	changed chan struct{} // signalled on each reply
}

// node returns this node's id, the address of its replies.
func (c *commands) node() string {
	c.nodeOnce.Do(func() { c.nodeID = randomID() })
	return c.nodeID
}

// open registers a new command and returns its request number and tally.
func (c *commands) open() (uint64, *tally) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = make(map[uint64]*tally)
	}
	c.last++
	t := &tally{replied: make(map[string]bool), changed: make(chan struct{}, 1)}
	c.pending[c.last] = t
	return c.last, t
}

// close forgets a command; replies that arrive later are dropped.
func (c *commands) close(request uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, request)
}

// record adds a node's reply to its command's tally, once per node.
func (c *commands) record(reply event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.pending[reply.request]
	if t == nil || t.replied[reply.node] {
		return
	}
	t.replied[reply.node] = true
	t.sum += int(reply.count)
	signal(t.changed)
}

// total returns the sum of t's replies and how many nodes replied.
func (c *commands) total(t *tally) (sum, replies int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.sum, len(t.replied)
}

// command has every node act on its connections of user (and room, for
// commands about one; the session, with the payload, for an input) and
// returns the sum of the nodes' counts, waiting for them at most
// commandWait. When the broker cannot take the command, this node acts
// alone and returns its own count with the error.
func (h *hub) command(ctx context.Context, user string, kind commandKind, room string, payload []byte) (int, error) {
	e := event{kind: eventCommand, command: kind, node: h.commands.node(), room: room, payload: payload}
	if err := h.listenForReplies(ctx); err != nil {
		return h.act(user, e), err
	}
	request, t := h.commands.open()
	defer h.commands.close(request)
	e.request = request
	receivers, err := h.publishCounted(ctx, userTopicPrefix+user, e)
	if err != nil {
		return h.act(user, e), err
	}
	wait := commandWait
	if kind == commandInput && receivers > 0 {
		wait = inputWait
	}
	return h.tallied(ctx, t, receivers, wait), nil
}

// listenForReplies subscribes this node to its node topic, once.
func (h *hub) listenForReplies(ctx context.Context) error {
	if h.commands.listening.Load() {
		return nil
	}
	topic := nodeTopicPrefix + h.commands.node()
	if err := h.subscribe(ctx, topic); err != nil {
		return err
	}
	if h.commands.listening.Swap(true) {
		h.unsubscribe(topic) // another command subscribed meanwhile; one reference is enough
	}
	return nil
}

// publishCounted hands e to the broker and returns how many nodes the
// broker handed it to, or -1 when the Broker cannot count.
func (h *hub) publishCounted(ctx context.Context, topic string, e event) (int, error) {
	e.at = time.Now().UnixNano()
	payload := e.marshal()
	n, err := brokerCall(h, ctx, "publish", func(ctx context.Context, b Broker) (int, error) {
		return publishCount(ctx, b, topic, payload)
	})
	if err != nil {
		h.srv.log.Warn("broker publish failed; acting on this node only", "topic", topic, "err", err)
		return 0, err
	}
	return n, nil
}

// publishCount publishes payload through b and returns how many nodes
// received it, or -1 when b is no PublishCounter.
func publishCount(ctx context.Context, b Broker, topic string, payload []byte) (int, error) {
	if counter, ok := b.(PublishCounter); ok {
		return counter.PublishCount(ctx, topic, payload)
	}
	return -1, b.Publish(ctx, topic, payload)
}

// tallied waits until receivers nodes have replied to t (when receivers is
// negative, until wait passes), or until wait passes, ctx ends or the hub
// stops, and returns the sum of the replies.
func (h *hub) tallied(ctx context.Context, t *tally, receivers int, wait time.Duration) int {
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		sum, replies := h.commands.total(t)
		if receivers >= 0 && replies >= receivers {
			return sum
		}
		select {
		case <-t.changed:
			continue
		case <-timeout.C:
		case <-ctx.Done():
		case <-h.quit:
		}
		sum, _ = h.commands.total(t)
		return sum
	}
}

// handleCommandEvent routes a command or a reply from the broker: a
// command for a user is carried out on a goroutine of its own, since it
// may call the backends, and a reply to this node goes to its tally.
func (h *hub) handleCommandEvent(topic string, e event) {
	if e.kind == eventReply {
		if topic == nodeTopicPrefix+h.commands.node() {
			h.commands.record(e)
		}
		return
	}
	user, ok := strings.CutPrefix(topic, userTopicPrefix)
	if !ok || !h.startTask() {
		return
	}
	go func() {
		defer h.tasks.Done()
		h.reply(e, h.act(user, e))
	}()
}

// act carries out command e on this node's connections of user and returns
// how many it acted on.
func (h *hub) act(user string, e event) int {
	switch e.command {
	case commandKick:
		return h.kick(user)
	case commandJoin, commandLeave:
		return h.moveUser(user, e.room, e.command == commandJoin)
	case commandInput:
		return h.input(user, e.room, e.payload)
	default:
		return 0 // parseEvent admits no other
	}
}

// moveUser joins (or makes leave) this node's connections of user to room
// and returns how many joined (or left).
func (h *hub) moveUser(user, room string, join bool) int {
	n := 0
	for _, c := range h.userConns(user) {
		moved := c.serverLeave
		if join {
			moved = c.serverJoin
		}
		if moved(room) {
			n++
		}
	}
	return n
}

// kick closes this node's connections of user with 4003 and returns how
// many of them were not closing already.
func (h *hub) kick(user string) int {
	n := 0
	for _, c := range h.userConns(user) {
		if !c.isClosing() {
			n++
		}
		c.close(CloseKicked, "disconnected by the server")
	}
	return n
}

// reply sends this node's count for command e to the node that asked.
func (h *hub) reply(e event, count int) {
	ctx, cancel := h.backendContext()
	defer cancel()
	h.publish(ctx, nodeTopicPrefix+e.node, event{
		kind: eventReply, command: e.command, request: e.request, node: h.commands.node(), count: uint64(count),
	})
}
