// Package partyline is an embeddable real-time messaging hub: a WebSocket
// server with rooms, presence, direct messages, typing indicators, durable
// history and gap-free resume (the contract is docs/protocol.md).
//
// # The data path
//
// A chat message travels: the sender's reader goroutine (conn.go, commands.go)
// → Store.Append, which commits it and assigns the room's next seq → an event
// with the frame already encoded (event.go) → Broker.Publish → on every node
// subscribed to the room, hub.HandleEvent (hub.go) → room.handle (room.go),
// which delivers in seq order, buffering early arrivals and filling gaps from
// the Store → a non-blocking push of the same encoded bytes onto each
// subscriber's bounded queue (queue.go) → that connection's writer, which
// drains everything queued and writes it as one newline-separated batch.
// On one node the memory broker hands events straight back, so the path is
// the same as in a cluster. Nothing is delivered before it is committed.
//
// # Goroutines
//
// Each connection has two goroutines: its reader, which is the HTTP
// handler's own goroutine and handles the client's messages in order, and
// its writer, the only goroutine that writes to the socket (data, pings and
// the close frame). A join with since adds a replay goroutine for the time it
// takes to catch up. All three are bound to Conn.serve, which returns only
// when they have ended; Server.Shutdown waits for every serve. Rooms run
// short-lived gap-fill timers, counted by the hub so Shutdown waits for them.
// No goroutine is started per message or per delivery.
//
// # Who owns what
//
// The hub owns the registry of rooms and users on this node; a room owns its
// subscribers, its last delivered seq and its pending events; a connection's
// reader owns its memberships, identity and rate limiter. Fan-out never
// waits on a client: a full queue evicts the connection (close 4009).
//
// # Lock order
//
// hub.userPresenceMu → hub.subMu → hub.mu; room.initMu → hub.subMu;
// room.presenceMu → room.mu → sendQueue.mu. Broker.Publish may be called with
// room.presenceMu held and delivers under room.mu, so a Broker must never
// call back into the hub synchronously while holding a lock of its own that
// Publish also takes.
package partyline
