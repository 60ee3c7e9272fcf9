// Package brokertest is the conformance suite every partyline.Broker
// passes: the memory broker and Redis run the same tests against a real
// transport.
//
// A Broker may drop or reorder events (the hub fills gaps from the Store),
// but on a healthy local transport and a small, bounded load nothing is
// lost, so the suite demands every event. To show that an event did NOT
// arrive without sleeping, it publishes a marker event on a subscribed topic
// after it, from the same goroutine and node: a transport that delivers one
// publisher's events in order, as Redis Pub/Sub does, has delivered the
// first by the time the marker arrives.
package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// Backend describes the Broker implementation under test.
type Backend struct {
	// NewTransport creates a fresh transport private to t (an in-process
	// one, or a Redis key prefix) and returns how to make nodes on it.
	NewTransport func(t *testing.T) NewNode
	// Cluster reports that the nodes made by one NewNode reach each other,
	// as a cluster's do. Without it, the multi-node tests are skipped: the
	// memory broker serves a node that runs alone.
	Cluster bool
}

// NewNode returns a new, unstarted Broker: a node on the transport it was
// returned for. The suite starts and closes every Broker it makes.
type NewNode func(t *testing.T) partyline.Broker

// wait bounds every wait for an event.
const wait = 10 * time.Second

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("Delivered", func(t *testing.T) { testDelivered(t, b) })
	t.Run("PayloadBytes", func(t *testing.T) { testPayloadBytes(t, b) })
	t.Run("NeverSubscribed", func(t *testing.T) { testNeverSubscribed(t, b) })
	t.Run("Unsubscribed", func(t *testing.T) { testUnsubscribed(t, b) })
	t.Run("ManyTopics", func(t *testing.T) { testManyTopics(t, b) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrentPublishers(t, b) })
	t.Run("CloseStopsDelivery", func(t *testing.T) { testCloseStopsDelivery(t, b) })
	t.Run("PublishCount", func(t *testing.T) { testPublishCount(t, b) })
	if b.Cluster {
		t.Run("TwoNodes", func(t *testing.T) { testTwoNodes(t, b) })
		t.Run("SubscribeIsImmediate", func(t *testing.T) { testSubscribeIsImmediate(t, b) })
		t.Run("OnlyWhereNeeded", func(t *testing.T) { testOnlyWhereNeeded(t, b) })
		t.Run("ConcurrentPublishersTwoNodes", func(t *testing.T) { testConcurrentPublishersTwoNodes(t, b) })
		t.Run("CloseStopsDeliveryTwoNodes", func(t *testing.T) { testCloseStopsDeliveryTwoNodes(t, b) })
		t.Run("PublishCountTwoNodes", func(t *testing.T) { testPublishCountTwoNodes(t, b) })
	}
}

// Event is one HandleEvent call.
type Event struct {
	Topic   string
	Payload []byte
}

// Recorder is a BrokerHandler that records what it is given.
type Recorder struct {
	events     chan Event
	mu         sync.Mutex // guards the following
	reconnects int
}

// NewRecorder returns a Recorder that holds up to 100000 events.
func NewRecorder() *Recorder { return &Recorder{events: make(chan Event, 100000)} }

// HandleEvent implements partyline.BrokerHandler.
func (r *Recorder) HandleEvent(topic string, payload []byte) {
	select {
	case r.events <- Event{topic, payload}:
	default:
		panic("brokertest: recorder full")
	}
}

// HandleReconnect implements partyline.BrokerHandler.
func (r *Recorder) HandleReconnect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconnects++
}

// Reconnects returns how many times HandleReconnect was called.
func (r *Recorder) Reconnects() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// Next returns the next event, failing t if none comes within d.
func (r *Recorder) Next(t testing.TB, d time.Duration) Event {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
		return Event{}
	}
}

// Expect fails t unless the next event is topic with payload.
func (r *Recorder) Expect(t testing.TB, topic string, payload []byte) {
	t.Helper()
	e := r.Next(t, wait)
	if e.Topic != topic || !bytes.Equal(e.Payload, payload) {
		t.Fatalf("event = %q %q, want %q %q", e.Topic, e.Payload, topic, payload)
	}
}

// ExpectNone fails t if an event is pending.
func (r *Recorder) ExpectNone(t testing.TB) {
	t.Helper()
	select {
	case e := <-r.events:
		t.Fatalf("unexpected event %q %q", e.Topic, e.Payload)
	default:
	}
}

// node is a started Broker and what its handler received.
type node struct {
	partyline.Broker
	rec *Recorder
}

// start makes a node with newNode, starts it and closes it when t ends.
func start(t *testing.T, newNode NewNode) node {
	t.Helper()
	b := newNode(t)
	rec := NewRecorder()
	if err := b.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return node{b, rec}
}

// nodes starts n nodes on one fresh transport of b.
func nodes(t *testing.T, b Backend, n int) []node {
	t.Helper()
	newNode := b.NewTransport(t)
	list := make([]node, n)
	for i := range list {
		list[i] = start(t, newNode)
	}
	return list
}

// testContext returns a context that ends with t, bounded so a hanging
// Broker fails the test instead of stalling it.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// subscribe subscribes n to topics, failing t on error.
func (n node) subscribe(t *testing.T, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		if err := n.Subscribe(testContext(t), topic); err != nil {
			t.Fatalf("Subscribe(%q): %v", topic, err)
		}
	}
}

// unsubscribe unsubscribes n from topic, failing t on error.
func (n node) unsubscribe(t *testing.T, topic string) {
	t.Helper()
	if err := n.Unsubscribe(testContext(t), topic); err != nil {
		t.Fatalf("Unsubscribe(%q): %v", topic, err)
	}
}

// publish publishes payload to topic through n, failing t on error.
func (n node) publish(t testing.TB, topic string, payload []byte) {
	t.Helper()
	if err := n.Publish(context.Background(), topic, payload); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// publishCount publishes payload to topic through n, which must be a
// partyline.PublishCounter, and returns the count, failing t on error.
func (n node) publishCount(t testing.TB, topic string, payload []byte) int {
	t.Helper()
	count, err := n.Broker.(partyline.PublishCounter).PublishCount(context.Background(), topic, payload)
	if err != nil {
		t.Fatalf("PublishCount(%q): %v", topic, err)
	}
	return count
}

// counting skips t unless b's brokers are partyline.PublishCounters.
func counting(t *testing.T, b partyline.Broker) {
	t.Helper()
	if _, ok := b.(partyline.PublishCounter); !ok {
		t.Skipf("%T is not a partyline.PublishCounter", b)
	}
}

// payload returns a distinct payload for publisher w's i-th event.
func payload(w, i int) []byte { return fmt.Appendf(nil, "w%d-i%d", w, i) }
