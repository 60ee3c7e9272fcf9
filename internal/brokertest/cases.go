package brokertest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// settle is how long the tests that cannot use a marker (the node under
// test is closed) watch for a stray event.
const settle = 300 * time.Millisecond

func testDelivered(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	n.subscribe(t, "room:lobby")
	n.publish(t, "room:lobby", []byte("hello"))
	n.rec.Expect(t, "room:lobby", []byte("hello"))
	n.publish(t, "room:lobby", []byte("again"))
	n.rec.Expect(t, "room:lobby", []byte("again"))
}

func testPayloadBytes(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	n.subscribe(t, "user:bob")
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	payloads := [][]byte{
		{},
		[]byte("{\"type\":\"chat\"}\n{\"type\":\"typing\"}"),
		{0, 0xff, '\r', '\n', 0xc3}, // NUL, invalid UTF-8, newlines
		all,
		bytes.Repeat([]byte("0123456789abcdef"), 4096), // 64 KiB
	}
	for _, p := range payloads {
		n.publish(t, "user:bob", p)
	}
	var kept [][]byte
	for i, p := range payloads {
		e := n.rec.Next(t, wait)
		if e.Topic != "user:bob" || !bytes.Equal(e.Payload, p) {
			t.Fatalf("event %d = %q, %d bytes; want %q, %d bytes", i, e.Topic, len(e.Payload), "user:bob", len(p))
		}
		kept = append(kept, e.Payload)
	}
	// The handler may keep payloads: later events must not overwrite them.
	for range 10 {
		n.publish(t, "user:bob", bytes.Repeat([]byte{'x'}, 300))
		n.rec.Next(t, wait)
	}
	for i, p := range payloads {
		if !bytes.Equal(kept[i], p) {
			t.Fatalf("payload %d changed after later events", i)
		}
	}
}

func testNeverSubscribed(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	n.subscribe(t, "room:mark")
	n.publish(t, "room:other", []byte("stray"))
	n.publish(t, "user:other", []byte("stray"))
	n.publish(t, "room:mark", []byte("marker"))
	n.rec.Expect(t, "room:mark", []byte("marker"))
	n.rec.ExpectNone(t)
}

func testUnsubscribed(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	n.subscribe(t, "room:mark", "room:a")
	n.publish(t, "room:a", []byte("one"))
	n.rec.Expect(t, "room:a", []byte("one"))
	n.unsubscribe(t, "room:a")
	n.publish(t, "room:a", []byte("two"))
	n.publish(t, "room:mark", []byte("marker"))
	n.rec.Expect(t, "room:mark", []byte("marker"))
	n.rec.ExpectNone(t)

	// Unsubscribing a topic never subscribed is not an error.
	n.unsubscribe(t, "room:never")

	// Subscribing again resumes delivery.
	n.subscribe(t, "room:a")
	n.publish(t, "room:a", []byte("three"))
	n.rec.Expect(t, "room:a", []byte("three"))
}

func testManyTopics(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	var topics []string
	for i := range 50 {
		topics = append(topics, fmt.Sprintf("room:r%d", i), fmt.Sprintf("user:u%d", i))
	}
	n.subscribe(t, topics...)
	for _, topic := range topics {
		n.publish(t, topic, []byte(topic))
	}
	got := collect(t, n.rec, len(topics))
	for _, topic := range topics {
		if got[topic+" "+topic] != 1 {
			t.Fatalf("topic %q: got its event %d times, want 1", topic, got[topic+" "+topic])
		}
	}
}

func testConcurrentPublishers(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	n.subscribe(t, "room:busy")
	want := publishConcurrently(t, "room:busy", []node{n}, 8, 100)
	checkAll(t, n.rec, want)
}

func testCloseStopsDelivery(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	n.subscribe(t, "room:a")
	n.publish(t, "room:a", []byte("before"))
	n.rec.Expect(t, "room:a", []byte("before"))
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n.Publish(t.Context(), "room:a", []byte("after")) // may fail: closed
	time.Sleep(settle)
	n.rec.ExpectNone(t)
}

func testTwoNodes(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, c := ns[0], ns[1]
	a.subscribe(t, "room:lobby")
	c.subscribe(t, "room:lobby")
	a.publish(t, "room:lobby", []byte("from a"))
	a.rec.Expect(t, "room:lobby", []byte("from a")) // the publisher too
	c.rec.Expect(t, "room:lobby", []byte("from a"))
	c.publish(t, "room:lobby", []byte("from c"))
	a.rec.Expect(t, "room:lobby", []byte("from c"))
	c.rec.Expect(t, "room:lobby", []byte("from c"))
}

// testSubscribeIsImmediate checks that an event published on another node
// right after Subscribe returns is delivered: the hub reads the room's last
// seq after subscribing and counts on every later event.
func testSubscribeIsImmediate(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, c := ns[0], ns[1]
	for i := range 20 {
		topic := fmt.Sprintf("room:r%d", i)
		a.subscribe(t, topic)
		c.publish(t, topic, []byte("right after"))
		a.rec.Expect(t, topic, []byte("right after"))
	}
}

func testOnlyWhereNeeded(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, c := ns[0], ns[1]
	a.subscribe(t, "room:x", "user:ann")
	c.subscribe(t, "room:y")
	a.publish(t, "room:y", []byte("for c"))
	c.rec.Expect(t, "room:y", []byte("for c"))
	c.publish(t, "user:ann", []byte("for a"))
	a.rec.Expect(t, "user:ann", []byte("for a"))
	c.publish(t, "room:z", []byte("for nobody"))
	// Markers: each node's own subscribed topic, published after the rest
	// by the same publisher.
	a.publish(t, "room:x", []byte("marker a"))
	a.rec.Expect(t, "room:x", []byte("marker a"))
	c.publish(t, "room:y", []byte("marker c"))
	c.rec.Expect(t, "room:y", []byte("marker c"))
	a.publish(t, "room:x", []byte("marker a2")) // after c's stray events too
	a.rec.Expect(t, "room:x", []byte("marker a2"))
	a.rec.ExpectNone(t)
	c.rec.ExpectNone(t)
}

func testConcurrentPublishersTwoNodes(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	for _, n := range ns {
		n.subscribe(t, "room:busy")
	}
	want := publishConcurrently(t, "room:busy", ns, 8, 100)
	for _, n := range ns {
		checkAll(t, n.rec, want)
	}
}

func testCloseStopsDeliveryTwoNodes(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, c := ns[0], ns[1]
	a.subscribe(t, "room:a")
	c.subscribe(t, "room:a")
	c.publish(t, "room:a", []byte("before"))
	a.rec.Expect(t, "room:a", []byte("before"))
	c.rec.Expect(t, "room:a", []byte("before"))
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.publish(t, "room:a", []byte("after"))
	c.rec.Expect(t, "room:a", []byte("after"))
	time.Sleep(settle)
	a.rec.ExpectNone(t)
}

// publishConcurrently has publishers goroutines publish perPublisher
// events each to topic, publisher w through nodes[w%len(nodes)], and
// returns the payloads published.
func publishConcurrently(t *testing.T, topic string, nodes []node, publishers, perPublisher int) map[string]int {
	t.Helper()
	var wg sync.WaitGroup
	for w := range publishers {
		wg.Go(func() {
			n := nodes[w%len(nodes)]
			for i := range perPublisher {
				if err := n.Publish(t.Context(), topic, payload(w, i)); err != nil {
					t.Errorf("publisher %d: Publish #%d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := make(map[string]int)
	for w := range publishers {
		for i := range perPublisher {
			want[topic+" "+string(payload(w, i))]++
		}
	}
	return want
}

// checkAll fails t unless rec receives exactly the events in want.
func checkAll(t *testing.T, rec *Recorder, want map[string]int) {
	t.Helper()
	total := 0
	for _, n := range want {
		total += n
	}
	got := collect(t, rec, total)
	if !maps.Equal(got, want) {
		var missing []string
		for k := range want {
			if got[k] != want[k] {
				missing = append(missing, fmt.Sprintf("%s: got %d, want %d", k, got[k], want[k]))
			}
		}
		slices.Sort(missing)
		t.Fatalf("events differ (%d kinds), e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	rec.ExpectNone(t)
}

// collect receives n events from rec, within wait in all, and counts them
// by "topic payload".
func collect(t *testing.T, rec *Recorder, n int) map[string]int {
	t.Helper()
	got := make(map[string]int)
	deadline := time.Now().Add(wait)
	for i := range n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("received %d of %d events within %v", i, n, wait)
		}
		e := rec.Next(t, left)
		got[e.Topic+" "+string(e.Payload)]++
	}
	return got
}

// testPublishCount checks that PublishCount reports whether this node
// received the event, and delivers like Publish.
func testPublishCount(t *testing.T, b Backend) {
	n := nodes(t, b, 1)[0]
	counting(t, n.Broker)
	if got := n.publishCount(t, "user:ann", []byte("nobody")); got != 0 {
		t.Fatalf("PublishCount to a topic nobody subscribes = %d, want 0", got)
	}
	n.subscribe(t, "user:ann")
	if got := n.publishCount(t, "user:ann", []byte("counted")); got != 1 {
		t.Fatalf("PublishCount to a topic this node subscribes = %d, want 1", got)
	}
	n.rec.Expect(t, "user:ann", []byte("counted"))
	// Unsubscribe stops delivery at once, but the transport may count the
	// node a little longer (PublishCounter allows it: Redis until it has
	// processed the UNSUBSCRIBE); never for good.
	n.unsubscribe(t, "user:ann")
	deadline := time.Now().Add(wait)
	for got := n.publishCount(t, "user:ann", []byte("gone")); got != 0; got = n.publishCount(t, "user:ann", []byte("gone")) {
		if time.Now().After(deadline) {
			t.Fatalf("PublishCount after Unsubscribe = %d for %s, want 0", got, wait)
		}
		time.Sleep(time.Millisecond)
	}
	n.subscribe(t, "room:mark")
	n.publish(t, "room:mark", []byte("marker"))
	n.rec.Expect(t, "room:mark", []byte("marker")) // no "gone" came first
	n.rec.ExpectNone(t)
}

// testPublishCountTwoNodes checks that PublishCount counts every node
// subscribed to the topic, the publisher's own included or not.
func testPublishCountTwoNodes(t *testing.T, b Backend) {
	ns := nodes(t, b, 3)
	a, c, d := ns[0], ns[1], ns[2]
	counting(t, a.Broker)
	a.subscribe(t, "user:ann")
	c.subscribe(t, "user:ann")
	if got := d.publishCount(t, "user:ann", []byte("from d")); got != 2 {
		t.Fatalf("PublishCount from a third node to a topic two nodes subscribe = %d, want 2", got)
	}
	if got := a.publishCount(t, "user:ann", []byte("from a")); got != 2 {
		t.Fatalf("PublishCount from a subscribed node = %d, want 2 (itself and the other)", got)
	}
	for _, n := range []node{a, c} {
		n.rec.Expect(t, "user:ann", []byte("from d"))
		n.rec.Expect(t, "user:ann", []byte("from a"))
	}
}
