package redis_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/brokertest"
	"github.com/partyline/partyline/redis"
)

// outageTimeout is the command timeout of the brokers behind a proxy.
const outageTimeout = 500 * time.Millisecond

// startBroker starts a Broker of c and closes it when t ends.
func startBroker(t *testing.T, c *redis.Client) (*redis.Broker, *brokertest.Recorder) {
	t.Helper()
	b := c.Broker()
	rec := brokertest.NewRecorder()
	if err := b.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, rec
}

// mustPublish publishes payload to topic through b, failing t on error.
func mustPublish(t *testing.T, b partyline.Broker, topic, payload string) {
	t.Helper()
	if err := b.Publish(t.Context(), topic, []byte(payload)); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// checkUnavailable fails t unless err wraps partyline.ErrUnavailable and
// came within limit.
func checkUnavailable(t *testing.T, what string, err error, took, limit time.Duration) {
	t.Helper()
	if !errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("%s while Redis is cut: err = %v, want one wrapping ErrUnavailable", what, err)
	}
	if took > limit {
		t.Errorf("%s while Redis is cut took %v, want at most %v", what, took, limit)
	}
}

// timed runs f and returns its error and how long it took.
func timed(f func() error) (error, time.Duration) {
	start := time.Now()
	err := f()
	return err, time.Since(start)
}

func TestBrokerOutage(t *testing.T) {
	u := testURL(t)
	prefix := newPrefix(t, u)
	px := newProxy(t, hostOf(t, u))
	b, rec := startBroker(t, open(t, withHost(t, u, px.addr), redis.Options{Prefix: prefix, Timeout: outageTimeout}))
	other, _ := startBroker(t, open(t, u, redis.Options{Prefix: prefix}))
	ctx := t.Context()
	if err := b.Subscribe(ctx, "room:a"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	mustPublish(t, other, "room:a", "before")
	rec.Expect(t, "room:a", []byte("before"))
	if n := rec.Reconnects(); n != 0 {
		t.Fatalf("HandleReconnect called %d times before any outage", n)
	}

	px.cut()
	limit := outageTimeout + time.Second
	err, took := timed(func() error { return b.Publish(context.Background(), "room:a", []byte("x")) })
	checkUnavailable(t, "Publish", err, took, limit)
	err, took = timed(func() error { return b.Subscribe(context.Background(), "room:b") })
	checkUnavailable(t, "Subscribe", err, took, limit)
	err, took = timed(func() error { return b.Ping(context.Background()) })
	checkUnavailable(t, "Ping", err, took, limit)
	mustPublish(t, other, "room:a", "missed") // may be lost: the broker is cut off

	px.restore()
	if !waitFor(10*time.Second, func() bool { return rec.Reconnects() > 0 }) {
		t.Fatal("HandleReconnect not called within 10s of Redis coming back")
	}
	if n := rec.Reconnects(); n != 1 {
		t.Errorf("HandleReconnect called %d times for one outage, want 1", n)
	}
	mustPublish(t, other, "room:b", "not subscribed") // its Subscribe failed
	mustPublish(t, other, "room:a", "after")
	expectSkipping(t, rec, "room:a", "after", "missed")
	mustPublish(t, b, "room:a", "own")
	rec.Expect(t, "room:a", []byte("own"))
	rec.ExpectNone(t)
}

// TestBrokerDeadConnection checks the health check: a PubSub connection
// that goes silent without closing is replaced.
func TestBrokerDeadConnection(t *testing.T) {
	u := testURL(t)
	prefix := newPrefix(t, u)
	px := newProxy(t, hostOf(t, u))
	b, rec := startBroker(t, open(t, withHost(t, u, px.addr), redis.Options{Prefix: prefix, Timeout: outageTimeout}))
	other, _ := startBroker(t, open(t, u, redis.Options{Prefix: prefix}))
	if err := b.Subscribe(t.Context(), "room:a"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	px.freeze()
	if !waitFor(15*time.Second, func() bool { return rec.Reconnects() > 0 }) {
		t.Fatal("HandleReconnect not called within 15s of the connection going silent")
	}
	mustPublish(t, other, "room:a", "after")
	rec.Expect(t, "room:a", []byte("after"))
}

// expectSkipping fails t unless rec's next event is topic with payload,
// allowing one event with the skippable payload before it.
func expectSkipping(t *testing.T, rec *brokertest.Recorder, topic, payload, skippable string) {
	t.Helper()
	e := rec.Next(t, 10*time.Second)
	if string(e.Payload) == skippable {
		e = rec.Next(t, 10*time.Second)
	}
	if e.Topic != topic || !bytes.Equal(e.Payload, []byte(payload)) {
		t.Fatalf("event = %q %q, want %q %q", e.Topic, e.Payload, topic, payload)
	}
}

func TestBrokerStartAndClose(t *testing.T) {
	u := testURL(t)
	c := open(t, u, redis.Options{Prefix: newPrefix(t, u)})
	b := c.Broker()
	if err := b.Subscribe(t.Context(), "room:a"); err == nil {
		t.Error("Subscribe before Start succeeded, want an error")
	}
	rec := brokertest.NewRecorder()
	if err := b.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := b.Start(rec); err == nil {
		t.Error("second Start succeeded, want an error")
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Subscribe(t.Context(), "room:a"); err == nil {
		t.Error("Subscribe after Close succeeded, want an error")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := redis.Open(ctx, "http://127.0.0.1:6379", redis.Options{}); err == nil {
		t.Error("Open with an http URL succeeded")
	}
	if _, err := redis.Open(ctx, "redis://127.0.0.1:6379/0", redis.Options{PresenceTTL: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "PresenceTTL") {
		t.Errorf("Open with PresenceTTL 1ms: err = %v, want one naming PresenceTTL", err)
	}
	// Nothing listens on port 1 of loopback.
	err, took := timed(func() error {
		_, err := redis.Open(ctx, "redis://127.0.0.1:1/0", redis.Options{Timeout: outageTimeout})
		return err
	})
	checkUnavailable(t, "Open", err, took, outageTimeout+time.Second)
}

// TestOpenRefused: when Redis answers but refuses the connection's set-up
// (here a database number out of range), Open fails with an error that
// does not wrap ErrUnavailable: waiting will not mend it.
func TestOpenRefused(t *testing.T) {
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/100000"
	_, err = redis.Open(t.Context(), u.String(), redis.Options{})
	if err == nil || errors.Is(err, partyline.ErrUnavailable) || !strings.Contains(err.Error(), "DB index is out of range") {
		t.Fatalf("Open on database 100000: %v, want Redis's refusal, not wrapping ErrUnavailable", err)
	}
}

// TestNoGoroutineLeak checks that closing a Client and what it made brings
// the goroutine count back to where it was.
func TestNoGoroutineLeak(t *testing.T) {
	u := testURL(t)
	exercise(t, u) // the first use may start go-redis's lasting goroutines
	base := runtime.NumGoroutine()
	exercise(t, u)
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= base }) {
		var buf strings.Builder
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), base, buf.String())
	}
}

// exercise uses a Client's Broker and Presence, then closes them all.
func exercise(t *testing.T, u string) {
	t.Helper()
	ctx := t.Context()
	prefix := newPrefix(t, u)
	c, err := redis.Open(ctx, u, redis.Options{Prefix: prefix, PresenceTTL: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b := c.Broker()
	rec := brokertest.NewRecorder()
	b.Start(rec)
	b.Subscribe(ctx, "room:a")
	mustPublish(t, b, "room:a", "x")
	rec.Expect(t, "room:a", []byte("x"))
	p := c.Presence()
	p.StartExpiry(func(room, user string) {})
	if _, err := p.Add(ctx, "room", "bob"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a few heartbeats and reaps
	if err := b.Close(); err != nil {
		t.Errorf("Broker.Close: %v", err)
	}
	if err := c.Close(); err != nil { // closes p too
		t.Errorf("Client.Close: %v", err)
	}
}
