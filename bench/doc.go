// Package bench is `partyline bench`, a load generator for partyline or any
// server speaking its WebSocket protocol (SPEC §4, §9).
//
// A run dials its connections in parallel (from several loopback source
// addresses when the server is on loopback), waits until each has joined
// its room, starts the publishers, warms up, then measures for a window and
// drains what is still in flight. Every chat message it sends carries its
// send time in its content (see chatFrame), so each delivery's latency is
// measured end to end.
//
// Goroutines: one reader per connection (client.read), which scans each
// message in place for stamps and records latencies into a shared, sharded
// histogram without allocating; one per publishing connection
// (run.publish), the only writer of its data frames; one progress printer.
// Run waits for all of them before it returns.
//
// Counting: only messages stamped inside the window count — sent,
// expected (sent × the room's members) and delivered — so warm-up traffic
// and deliveries still in flight when the window closes do not skew the
// ratio; server and bench CPU are sampled at the window's two ends.
package bench
