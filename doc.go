// Package partyline is an embeddable real-time messaging hub: a WebSocket
// server with rooms, presence, direct messages, typing indicators, durable
// history and gap-free resume (the contract is docs/protocol.md).
//
// # The data path
//
// A chat message travels: the sender's reader (reader.go, commands.go)
// → Store.Append, which commits it and assigns the room's next seq → an
// event carrying its JSON payload (event.go), encoded once for the whole
// cluster → Broker.Publish → on every node subscribed to the room,
// hub.HandleEvent (hub.go), which wraps the payload in one message
// (message.go) → room.handle (room.go), which delivers in seq order,
// buffering early arrivals and filling gaps from the Store → for each
// subscriber, a non-blocking push of the same message onto its bounded
// queue (queue.go), which, when no writer is busy with that connection,
// puts the connection on the flush list (flush.go), whose goroutines write
// each connection in turn with a non-blocking send(2) (writer.go): what
// piles up for a connection while it waits its turn leaves in one write.
// (A replay's push writes at once instead: queue.go's pushPaced.) The hub,
// rooms and commands know no wire format: a connection's framing
// (framing.go) turns the messages its writer takes into the bytes of its
// wire — WebSocket frames, or server-sent events (sse.go) — and what it
// builds from a message alone it builds once, for every subscriber of that
// format. A room delivers in passes (fanout.go): events that arrive while
// a pass runs wait in its inbox and the next pass delivers them together,
// each subscriber's share in one write, merged into one frame; so a room
// that falls behind its publishers pays a write per subscriber per pass,
// not per message. On one node the memory broker hands events straight
// back, so the path is the same as in a cluster. Nothing is delivered
// before it is committed.
//
// # Goroutines
//
// An idle connection has no goroutine. On Linux the upgrade hands the socket
// to the poller (internal/poller: one epoll set, itself waited on through the
// runtime's network poller), in place of the runtime's network poller, which
// would keep a poll descriptor and a netFD per socket (socket.go); ServeHTTP
// starts a goroutine that welcomes the client and joins the rooms of its URL,
// and ends. When bytes arrive the poller starts a reader for that connection,
// which reads and handles them in order until the socket is drained, and ends
// (reader.go); at most one reader runs per connection. The first arrival after
// a ping is read by the poller itself, and a lone pong is handled there with
// no reader at all. TLS connections, and all connections on other systems,
// keep a reader goroutine that blocks in Read. A stream's client (sse.go)
// sends nothing on it: its messages arrive as POST requests, each handled on
// the request's goroutine, or on a command goroutine of the node holding the
// stream, in turn under the connection's roomsMu; its reader only watches for
// the end. One heartbeat goroutine per Server pings every connection
// (heartbeat.go), and a cluster command (a kick, a server-side join, a
// stream's message) runs on a goroutine of the hub's, counted like its gap
// fills, on each node it reaches (command.go). Writing needs no goroutine of a
// connection's own while the socket takes what is written at once: the flush
// goroutines, at most one per CPU but one and only while connections wait
// for them, write every connection, on Linux up to 64 at a time with one
// io_uring submission (sendbatch_linux.go). Readers and flush goroutines
// are pooled (goroutines.go): one that has done its work waits, with the
// stack it has grown, for the next, and ends after a second or two with
// none. Only when the socket would block, or for the close handshake, does
// a writer goroutine run, until the queue is empty. A join with since adds
// a replay goroutine for the time it takes to catch up. The goroutine that
// hands a room an event delivers that pass itself; if more events arrived
// meanwhile, a delivery goroutine takes over the room's passes until its
// inbox is empty, so a publisher never waits for fan-outs other than its
// own. The last reader of a connection waits for its writer and replays
// before it cleans up, and Server.Shutdown waits for every connection.
// Rooms run short-lived gap-fill timers and delivery goroutines, and the
// hub a re-announce loop after broker failures and, for each large room
// whose members come and go on this node, a diff goroutine that announces
// their changes in one presence_diff a second and ends after a quiet second
// (presence_diff.go), all counted so that Shutdown waits for them.
//
// # Who owns what
//
// The hub owns the registry of rooms and users on this node; a room owns its
// subscribers, its last delivered seq and its pending events; a connection's
// reader owns its memberships, identity and rate limiter; whoever holds a
// connection's writer role (claimed from its queue) owns what is being
// written. Fan-out never waits on a client: a full queue evicts the
// connection (close 4009), and so does one that lags: whose oldest
// undelivered byte, queued or unsent in the kernel, has waited longer than
// Options.MaxLag (lag.go).
//
// # Lock order
//
// No node-wide lock is held across a call to the Store, Broker or
// Presence. Each user's connects and disconnects on this node are
// serialized by the user's own lock (hub.userLocks), each topic's broker
// subscriptions by the topic's (hub.topicLocks), and each room's joins and
// leaves by the room's (room.initMu, room.presenceMu), so a slow backend
// call holds up only the user, topic or room it is for. A connection's
// roomsMu, held while one of its messages is handled (and while its URL's
// rooms are joined, or the server joins or leaves it), comes before every
// lock below, since handling a message may take any of them. Locks are
// taken in these orders:
//
//	Conn.roomsMu → (any lock below)
//	hub.userLocks[user] → hub.topicLocks["user:"+user] → hub.subsMu
//	hub.userLocks[user] → hub.mu → sendQueue.mu
//	room.initMu → hub.topicLocks["room:"+room] → hub.subsMu
//	room.initMu → room.mu → sendQueue.mu
//	room.presenceMu → hub.mu
//	room.presenceMu → room.inboxMu
//	room.presenceMu → room.mu → sendQueue.mu
//	room.presenceMu → hub.diffMu → hub.taskMu
//	room.mu → hub.taskMu
//	hub.announceMu → hub.taskMu
//
// The last lock of each line, and every other lock (Server.mu, the
// commands' table, a keyedMutex's table, the heartbeat's, the poller's and
// the webhook recorder's) is a leaf: nothing else is taken while it is
// held. room.presenceMu → hub.mu, room.inboxMu and room.mu are the
// in-process broker's: Broker.Publish may be called with room.presenceMu
// held, and the memory broker delivers at once, through hub.HandleEvent
// and room.handle. So a Broker must never call back into the hub
// synchronously while holding a lock of its own that Publish also takes.
package partyline
