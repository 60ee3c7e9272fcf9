// Package bench is `partyline bench`, a load generator for partyline or any
// server speaking its WebSocket protocol (SPEC §4, §9).
//
// A run dials its connections in parallel (from several loopback source
// addresses when the server is on loopback), waits until each has joined
// its room, starts the publishers, warms up, then measures for a window and
// drains what is still in flight. Every chat message it sends carries its
// send time in its content (see chatFrame), so each delivery's latency is
// measured end to end. The joins scenario (joins.go) stops after the
// joins: it publishes nothing and counts, by type, the presence frames the
// join storm brings until they stop.
//
// The bench shares its machine with the server it measures, so it reads
// cheaply: it does the WebSocket handshake itself (wsconn.go) and owns the
// socket from there. On Linux a few pollers, one per GOMAXPROCS, each read
// their share of the connections from one epoll set into one buffer
// (poller_linux.go, on internal/poller like the server's connections);
// elsewhere, over TLS, or if a poller fails, a connection has a reader
// goroutine of its own (client.readLoop). Either way the frames are parsed
// where they were read (frame.go) and each message scanned in place for
// stamps, whose latencies go into a shared, sharded histogram, without
// allocating. With --compression the connections offer permessage-deflate
// with no context takeover (inflate.go); a compressed message is inflated
// alone, by a pooled flate reader into its buffer, and scanned there — the
// one step of the read path that allocates, inside compress/flate, and
// costs (BenchmarkParseCompressedFrames: about 8 µs for a 1 KB chat, 40
// times a plain one's parse).
//
// Goroutines: the pollers' (one each, while it has connections) or the
// readers; one per publishing connection (run.publish), the writer of its
// chat frames; one progress printer; in the overload scenario, a reader per
// slow subscriber (slowReadLoop) and one per evicted connection waiting to
// resume (overload.go). A connection's writes — chats, pongs from its
// reader, the final close — are serialized by its wsConn. Run waits for all
// of them before it returns, and closes the pollers' epoll sets.
//
// Counting: only messages stamped inside the window count — sent,
// expected (sent × the room's members) and delivered — so warm-up traffic
// and deliveries still in flight when the window closes do not skew the
// ratio; server and bench CPU, and the bytes the connections have read
// from their sockets, are sampled at the window's two ends.
package bench
