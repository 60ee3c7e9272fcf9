package partyline

import "context"

// Broker carries events between the nodes of a cluster. It is a transport
// only: it may drop, duplicate or reorder events, because rooms deliver in seq
// order and fill gaps from the Store. On one node the memory broker loops
// events back, so a message takes the same path as in a cluster.
//
// Topics are opaque strings chosen by the hub ("room:lobby", "user:bob").
// A node subscribes only to the topics its own connections need.
//
// Implementations must be safe for concurrent use.
type Broker interface {
	// Start registers the handler that receives every event of every
	// subscribed topic. It is called once, before any other method.
	Start(h BrokerHandler) error
	// Publish sends payload to every node subscribed to topic, this one
	// included. It returns an error wrapping ErrUnavailable when the event
	// could not be handed to the transport.
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe starts delivery of topic's events to the handler. Calls for
	// one topic are never concurrent: the hub serializes them.
	Subscribe(ctx context.Context, topic string) error
	// Unsubscribe stops delivery of topic's events.
	Unsubscribe(ctx context.Context, topic string) error
	// Close stops the broker; no handler call starts after it returns.
	Close() error
}

// PublishCounter is implemented by a Broker that can tell how many nodes an
// event reached. The hub uses it to know how many replies a cluster command
// will get (command.go).
type PublishCounter interface {
	// PublishCount is Publish that also returns how many nodes were handed
	// the event: those subscribed to topic, this one included. It may count
	// a node that is going away or unsubscribing and never handles the
	// event, never the other way round.
	PublishCount(ctx context.Context, topic string, payload []byte) (int, error)
}

// BrokerHandler receives a Broker's events.
type BrokerHandler interface {
	// HandleEvent is called with one event of a subscribed topic. It must not
	// block for long: the hub only enqueues. The handler may keep payload, so
	// the broker must not reuse or modify it after the call.
	HandleEvent(topic string, payload []byte)
	// HandleReconnect is called after the broker lost its connection and
	// subscribed again: events may have been missed, so rooms resynchronise
	// from the Store.
	HandleReconnect()
}
