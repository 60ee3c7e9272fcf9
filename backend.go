package partyline

import (
	"context"
	"time"
)

// Every call to the Store, Broker or Presence goes through backendCall, by
// way of storeCall, brokerCall or presenceCall, which
//
//   - bounds it with h.bound(ctx): backendTimeout, cut short by a forced
//     shutdown (unless the backend is inProcess);
//   - times it into the backend's latency metric (StoreLatency,
//     BrokerLatency, PresenceLatency) under op, a lower-case name such as
//     "last_seq";
//   - maps a failure to unavailable(backend, err), which passes on an
//     *Error of another code as the backend returned it.
//
// ctx is the parent: the client's or the caller's context for a call made
// on their behalf, h.inFlight for the hub's own work (gap fills, resyncs,
// replays, re-announcing, leaving a closed connection's presence). f gets
// the bounded context and the backend; a call to one of its optional
// abilities (RoomLister, Counter, IdempotentStore, PublishCounter) goes
// through here too, under the op it stands for.
//
// Not made here, on purpose: Broker.Start and the Presence's StartExpiry
// and StartRestore, which take no context and start work that lasts as
// long as the Server (server.go); Server.Ready's pings, a probe bounded by
// its caller's context, whose error names the backend rather than
// answering unavailable; and the webhook recorder's EventLog calls
// (notify.go), bounded there, retried rather than answered to anyone, and
// made by the webhook sender too, outside the Server.

// inProcess reports whether backend is one of the backends that answer
// from memory, in the calling goroutine, waiting for nothing a deadline
// could cut short: MemoryStore, MemoryBroker and MemoryPresence themselves,
// not a type that wraps one. backendCall does not bound their calls, which
// spares a timer for each (1.3% of the server's CPU with 10,000 messages a
// second).
func inProcess(backend any) bool {
	switch backend.(type) {
	case *MemoryStore, *MemoryBroker, *MemoryPresence:
		return true
	}
	return false
}

// storeCall runs one Store call: see backendCall.
func storeCall[T any](h *hub, ctx context.Context, op string, f func(context.Context, Store) (T, error)) (T, error) {
	return backendCall(h, ctx, "store", h.srv.opts.Store, h.srv.opts.Metrics.StoreLatency, op, f)
}

// brokerCall runs one Broker call: see backendCall.
func brokerCall[T any](h *hub, ctx context.Context, op string, f func(context.Context, Broker) (T, error)) (T, error) {
	return backendCall(h, ctx, "broker", h.srv.opts.Broker, h.srv.opts.Metrics.BrokerLatency, op, f)
}

// presenceCall runs one Presence call: see backendCall.
func presenceCall[T any](h *hub, ctx context.Context, op string, f func(context.Context, Presence) (T, error)) (T, error) {
	return backendCall(h, ctx, "presence", h.srv.opts.Presence, h.srv.opts.Metrics.PresenceLatency, op, f)
}

// backendCall runs f on the backend named name, bounded by h.bound(ctx)
// unless it is inProcess, timed into observe under op; a failure is
// unavailable(name, err), and the zero T with it.
func backendCall[B, T any](h *hub, ctx context.Context, name string, backend B, observe func(op string, d time.Duration, err error), op string, f func(context.Context, B) (T, error)) (T, error) {
	if !inProcess(backend) {
		var cancel context.CancelFunc
		ctx, cancel = h.bound(ctx)
		defer cancel()
	}
	start := time.Now()
	v, err := f(ctx, backend)
	observe(op, time.Since(start), err)
	if err != nil {
		var zero T
		return zero, unavailable(name, err)
	}
	return v, nil
}
