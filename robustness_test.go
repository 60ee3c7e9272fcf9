package partyline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// chatAtRate sends chats on c at perSecond of clock's time, each once the
// previous one is answered, for d of that time or until the server closes
// the connection. It returns how many were refused with rate_limited, and
// the close code and when it came (0 and d when it did not).
func chatAtRate(t *testing.T, clock *fakeClock, c *wstest.Client, perSecond int, d time.Duration) (refused, code int, at time.Duration) {
	t.Helper()
	step := time.Second / time.Duration(perSecond)
	for at = 0; at < d; at += step {
		clock.Advance(step)
		c.Send(map[string]any{"type": "chat", "content": "flood", "id": at.String()})
		for answered := false; !answered; {
			f, err := c.Read(waitTime)
			var closed *websocket.CloseError
			switch {
			case errors.As(err, &closed):
				return refused, closed.Code, at
			case err != nil:
				t.Fatalf("at %v of %d chats/s: %v", at, perSecond, err)
			case f.Str("type") == "ack":
				answered = true
			case f.Str("type") == "error" && f.Str("code") == "rate_limited":
				refused++
				answered = true
			case f.Str("type") == "error":
				t.Fatalf("at %v of %d chats/s: %v, want ack or rate_limited", at, perSecond, f)
			}
		}
	}
	return refused, 0, d
}

// TestSustainedFloodIsClosed: a client five times over the limit is
// closed with 4008 within seconds, although one chat in five gets through.
func TestSustainedFloodIsClosed(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	c := ts.dial(t, "/ws?username=flood&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	refused, code, at := chatAtRate(t, clock, c, 5*partyline.DefaultRateLimit, time.Minute)
	if code != partyline.CloseRateLimit || at > 3*time.Second {
		t.Fatalf("100 chats/s against 20/s: closed with %d after %v and %d refusals, want 4008 within 3s", code, at, refused)
	}
}

// TestSlightlyOverTheLimitIsNotClosed: a client 10% over the limit gets
// rate_limited now and then, more than the burst in all, and stays open.
func TestSlightlyOverTheLimitIsNotClosed(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	c := ts.dial(t, "/ws?username=eager&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	refused, code, _ := chatAtRate(t, clock, c, 22, time.Minute)
	if code != 0 {
		t.Fatalf("22 chats/s against 20/s: closed with %d after %d refusals, want open", code, refused)
	}
	if refused <= partyline.DefaultRateBurst {
		t.Fatalf("22 chats/s for a minute: %d refusals, want more than the burst of %d", refused, partyline.DefaultRateBurst)
	}
}

// stall holds up the backend calls a test picks until it ends.
type stall struct {
	entered chan struct{} // signalled when a call is held up
	release chan struct{} // closed by end
	once    sync.Once
}

func newStall() *stall {
	return &stall{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// hold blocks until the stall ends, past the call's deadline too, so that
// nothing else ends it before the test has seen what it holds up.
func (s *stall) hold() {
	signal(s.entered)
	<-s.release
}

// await waits for a call to be held up.
func (s *stall) await(t *testing.T) {
	t.Helper()
	select {
	case <-s.entered:
	case <-time.After(waitTime):
		t.Fatal("the stalled call was never made")
	}
}

// end lets the calls held up, and any to come, go on.
func (s *stall) end() { s.once.Do(func() { close(s.release) }) }

// signal wakes a waiter on c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// stallingPresence is a memory presence whose Add of one user to one room
// is held up, as by a slow Redis.
type stallingPresence struct {
	*partyline.MemoryPresence
	room, user string
	stall      *stall
}

func (p *stallingPresence) Add(ctx context.Context, room, user string) (bool, error) {
	if room == p.room && user == p.user {
		p.stall.hold()
	}
	return p.MemoryPresence.Add(ctx, room, user)
}

// stallingBroker is a memory broker whose Subscribe of one topic is held
// up, as by a slow Redis.
type stallingBroker struct {
	*partyline.MemoryBroker
	topic string
	stall *stall
}

func (b *stallingBroker) Subscribe(ctx context.Context, topic string) error {
	if topic == b.topic {
		b.stall.hold()
	}
	return b.MemoryBroker.Subscribe(ctx, topic)
}

// TestConnectionStormsDoNotWaitForASlowUser: while one user's connect is
// stuck in a backend call, other users connect, get their welcome, join
// rooms and disconnect without waiting for it.
func TestConnectionStormsDoNotWaitForASlowUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string // of the slow user's connection
		last string // the frame the slow user gets once the call returns
		opts func(*stall) partyline.Options
	}{
		{"presence of the user", "/ws?username=slow", "welcome", func(s *stall) partyline.Options {
			return partyline.Options{Presence: &stallingPresence{partyline.NewMemoryPresence(), "", "slow", s}}
		}},
		{"subscription to the user", "/ws?username=slow", "welcome", func(s *stall) partyline.Options {
			return partyline.Options{Broker: &stallingBroker{partyline.NewMemoryBroker(), "user:slow", s}}
		}},
		{"subscription to a room", "/ws?username=slow&room=slow", "joined", func(s *stall) partyline.Options {
			return partyline.Options{Broker: &stallingBroker{partyline.NewMemoryBroker(), "room:slow", s}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStall()
			ts := startServer(t, tc.opts(s))
			t.Cleanup(s.end) // before the shutdown, registered earlier
			slow := ts.dialRaw(t, tc.path, nil)
			s.await(t)
			bob := ts.dial(t, "/ws?username=bob&room=lobby")
			bob.Expect("joined")
			ts.dial(t, "/ws?username=carol")
			bob.Conn.Close()
			waitUntil(t, "bob's disconnect", func() bool { return ts.Stats().Connections == 2 })
			s.end()
			slow.WaitFor(tc.last)
		})
	}
}

// stallingLog is a slog handler whose records with a message containing
// match are held up, as by a slow log sink; it drops every record.
type stallingLog struct {
	match string
	stall *stall
}

func (h *stallingLog) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}

func (h *stallingLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.stall.hold()
	}
	return nil
}

func (h *stallingLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stallingLog) WithGroup(string) slog.Handler      { return h }

// TestEvictionLogDoesNotStallTheRoom: while the eviction of a slow consumer
// is being logged, to a sink that does not return, the other subscribers of
// its room still get the next message.
func TestEvictionLogDoesNotStallTheRoom(t *testing.T) {
	s := newStall()
	ts := startServer(t, partyline.Options{
		SendQueue: 4,
		WriteWait: time.Second, // the slow consumer's blocked write ends, and the eviction is logged, within it
		Store:     partyline.NewMemoryStore(8),
		Logger:    slog.New(&stallingLog{match: "slow consumer", stall: s}),
	})
	t.Cleanup(s.end) // before the shutdown, registered earlier
	slow := ts.dialSmallBuffer(t, "/ws?username=slow&room=lobby")
	slow.Expect("welcome")
	slow.Expect("joined") // and reads nothing more
	fast := ts.dial(t, "/ws?username=fast&room=lobby")
	fast.Expect("joined")
	fast.Expect("online_users")
	publish := func(content string) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: content})
			done <- err
		}()
		return done
	}
	payload := strings.Repeat("x", 64<<10) // large, so the slow client's socket fills quickly
	evicting := false
publishing:
	for range 1000 {
		select {
		case err := <-publish(payload):
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			fast.Expect("chat")
		case <-s.entered:
			evicting = true
			break publishing
		case <-time.After(waitTime):
			t.Fatal("Publish did not return, and no eviction was logged")
		}
	}
	if !evicting { // the writer logs once its blocked write gives up: wait for it
		select {
		case <-s.entered:
		case <-time.After(waitTime):
			t.Fatal("1000 messages of 64 KiB, and the slow consumer's eviction was never logged")
		}
	}
	// The log is stuck; the room must not be.
	publish("after")
	for {
		if f := fast.Expect("chat"); f.Str("content") == "after" {
			break
		}
	}
}

// failingBroker is a memory broker that cannot publish, as when Redis is
// down. It signals failed at each attempt.
type failingBroker struct {
	*partyline.MemoryBroker
	failed chan struct{}
}

func (b *failingBroker) Publish(context.Context, string, []byte) error {
	signal(b.failed)
	return fmt.Errorf("broker down: %w", partyline.ErrUnavailable)
}

// TestPublishRacingShutdown: a message published while the server shuts
// down, whose broker fails, starts no background work behind Shutdown's
// back (under -race, a re-announcement counted while Shutdown waits for
// the hub's work is reported).
func TestPublishRacingShutdown(t *testing.T) {
	for range 20 {
		broker := &failingBroker{partyline.NewMemoryBroker(), make(chan struct{}, 1)}
		srv, err := partyline.New(partyline.Options{Broker: broker})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		published := make(chan error, 1)
		go func() {
			_, err := srv.Publish(context.Background(), "lobby", partyline.Publication{Content: "during shutdown"})
			published <- err
		}()
		<-broker.failed
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		cancel()
		if err := <-published; err != nil {
			t.Fatalf("Publish: %v (the store took it; the broker's failure is not the caller's)", err)
		}
	}
}

func TestNewRefusesBadLimits(t *testing.T) {
	for _, tc := range []struct {
		opts partyline.Options
		want string
	}{
		{partyline.Options{RateLimit: math.Inf(1)}, "rate-limit"},
		{partyline.Options{RateLimit: math.NaN()}, "rate-limit"},
		{partyline.Options{MaxConnectionsPerIP: -3}, "max-connections-per-ip"},
		{partyline.Options{MaxConnections: -1}, "max-connections must"},
	} {
		srv, err := partyline.New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): error %v, want one naming %s", tc.opts, err, tc.want)
		}
		if srv != nil {
			srv.Shutdown(context.Background())
		}
	}
}
