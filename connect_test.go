package partyline_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

func TestRefusalsBeforeUpgrade(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxRooms: 2})
	long := strings.Repeat("a", 33)
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/ws", 400, "missing_username"},
		{"/ws?room=lobby", 400, "missing_username"},
		{"/ws?username=-alice", 400, "invalid_username"},
		{"/ws?username=" + long, 400, "invalid_username"},
		{"/ws?username=al%20ice", 400, "invalid_username"},
		{"/ws?username=alice&room=bad%20room", 400, "invalid_room"},
		{"/ws/..bad?username=alice", 400, "invalid_room"},
		{"/ws?username=alice&room=a&room=b&room=c", 400, "too_many_rooms"},
	} {
		status, code := ts.refusal(t, tc.path, nil)
		if status != tc.status || code != tc.code {
			t.Errorf("dial %s: got %d %s, want %d %s", tc.path, status, code, tc.status, tc.code)
		}
	}
}

func TestOriginCheck(t *testing.T) {
	t.Run("default is the request's own host", func(t *testing.T) {
		ts := startServer(t, partyline.Options{})
		status, code := ts.refusal(t, "/ws?username=alice", http.Header{"Origin": {"http://evil.example"}})
		if status != 403 || code != "forbidden_origin" {
			t.Fatalf("foreign origin: got %d %s, want 403 forbidden_origin", status, code)
		}
		own := "http://" + strings.TrimPrefix(ts.http.URL, "http://")
		c := ts.dialRaw(t, "/ws?username=alice", http.Header{"Origin": {own}})
		c.Expect("welcome")
	})
	t.Run("configured list", func(t *testing.T) {
		ts := startServer(t, partyline.Options{AllowedOrigins: []string{"https://app.example"}})
		ts.dialRaw(t, "/ws?username=alice", http.Header{"Origin": {"https://app.example"}}).Expect("welcome")
		if status, _ := ts.refusal(t, "/ws?username=bob", http.Header{"Origin": {"https://other.example"}}); status != 403 {
			t.Fatalf("unlisted origin: got %d, want 403", status)
		}
	})
	t.Run("star allows any", func(t *testing.T) {
		ts := startServer(t, partyline.Options{AllowedOrigins: []string{"*"}})
		ts.dialRaw(t, "/ws?username=alice", http.Header{"Origin": {"https://anything.example"}}).Expect("welcome")
	})
}

func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxConnectionsPerIP: 2, MaxConnections: 3})
	a := ts.dial(t, "/ws?username=a")
	ts.dial(t, "/ws?username=b")
	if status, code := ts.refusal(t, "/ws?username=c", nil); status != 429 || code != "too_many_connections" {
		t.Fatalf("third connection from one IP: got %d %s, want 429 too_many_connections", status, code)
	}
	a.Conn.Close()
	waitUntil(t, "the closed connection to free its slot", func() bool { return ts.Stats().Connections == 1 })
	ts.dial(t, "/ws?username=c")
}

func TestShutdownRefusesAndClosesWithGoingAway(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(ctx) }()
	if code := c.CloseCode(); code != partyline.CloseGoingAway {
		t.Fatalf("close code = %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if status, code := ts.refusal(t, "/ws?username=bob", nil); status != 503 || code != "shutting_down" {
		t.Fatalf("dial during shutdown: got %d %s, want 503 shutting_down", status, code)
	}
}

// stuckStore is a memory store whose appends hang until their context ends,
// as on a database that stopped answering.
type stuckStore struct {
	*partyline.MemoryStore
	entered chan struct{}
}

func (s *stuckStore) Append(ctx context.Context, m partyline.Message) (partyline.Message, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return partyline.Message{}, ctx.Err()
}

// carefulPresence is a memory presence that, like one over the network,
// fails calls whose context has ended.
type carefulPresence struct{ *partyline.MemoryPresence }

func (p carefulPresence) Remove(ctx context.Context, room, user string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return p.MemoryPresence.Remove(ctx, room, user)
}

// TestForcedShutdownCancelsBackendCallsInFlight: when the grace runs out,
// a call stuck in the store is cancelled rather than waited for, and the
// connection's cleanup, which comes after, still removes its presence.
func TestForcedShutdownCancelsBackendCallsInFlight(t *testing.T) {
	store := &stuckStore{MemoryStore: partyline.NewMemoryStore(0), entered: make(chan struct{}, 1)}
	presence := carefulPresence{partyline.NewMemoryPresence()}
	ts := startServer(t, partyline.Options{Store: store, Presence: presence})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	c.Send(map[string]any{"type": "chat", "content": "into the void", "id": "a"})
	<-store.entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	// Without the cancel, Shutdown waits for the append's own 5 s timeout.
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("Shutdown took %v: it waited for the stuck append to time out", waited)
	}
	for {
		f, err := c.Read(waitTime)
		if err != nil {
			break // closed
		}
		if f.Str("type") == "ack" {
			t.Fatalf("got %v for a message that was never committed", f)
		}
	}
	if users, _ := presence.Users(context.Background(), "lobby"); len(users) != 0 {
		t.Fatalf("after the shutdown, lobby still shows %v online", users)
	}
}

// hungPresence is a memory presence whose removals hang, as over a Redis
// that stopped answering, until their context ends.
type hungPresence struct{ *partyline.MemoryPresence }

func (p hungPresence) Remove(ctx context.Context, room, user string) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// TestForcedShutdownBoundsTheCallsAfter: when the grace runs out while a
// room's many members wait in turn to leave a presence that hangs, their
// removals share the one second left to calls after the abort, instead of
// taking a second each.
func TestForcedShutdownBoundsTheCallsAfter(t *testing.T) {
	ts := startServer(t, partyline.Options{Presence: hungPresence{partyline.NewMemoryPresence()}})
	const members = 20
	for i := range members {
		c := ts.dial(t, fmt.Sprintf("/ws?username=u%d&room=lobby", i))
		c.Expect("joined")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	// A second each would be members seconds.
	if took := time.Since(start); took > members*time.Second/4 {
		t.Fatalf("Shutdown took %v with %d members leaving a hung presence", took, members)
	}
}

// TestRoomsCalledLikeTransports: /ws/sse is a WebSocket to the room sse,
// and /ws/ws one to the room ws.
func TestRoomsCalledLikeTransports(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	for _, room := range []string{"sse", "ws"} {
		c := ts.dialRaw(t, "/ws/"+room+"?username=alice", nil)
		c.Expect("welcome")
		if f := c.Expect("joined"); f.Str("room") != room {
			t.Errorf("/ws/%s: joined %v, want the room %s", room, f, room)
		}
	}
}

// TestWelcomeEpoch: with a store whose history ends with the process, the
// welcome names its life, the same on every connection; with one that
// outlives it, the welcome names none.
func TestWelcomeEpoch(t *testing.T) {
	ts := startServer(t, partyline.Options{Store: partyline.NewMemoryStore(0)})
	a := ts.dialRaw(t, "/ws?user=alice", nil).Expect("welcome")
	b := ts.dialRaw(t, "/ws?user=bob", nil).Expect("welcome")
	if a.Str("epoch") == "" || a.Str("epoch") != b.Str("epoch") {
		t.Fatalf("welcomes' epochs %q and %q, want one, the same", a.Str("epoch"), b.Str("epoch"))
	}
	durable := startServer(t, partyline.Options{Store: struct{ partyline.Store }{partyline.NewMemoryStore(0)}})
	if w := durable.dialRaw(t, "/ws?user=alice", nil).Expect("welcome"); w["epoch"] != nil {
		t.Fatalf("welcome %v from a store that is not Ephemeral, want no epoch", w)
	}
}

func TestWelcomeAndURLRooms(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dialRaw(t, "/ws/first?user=alice&room=second&room=first", nil)
	w := c.Expect("welcome")
	if w.Str("username") != "alice" || w.Str("session") == "" || w.Str("server") == "" {
		t.Fatalf("welcome = %v, want username alice, a session and a server", w)
	}
	if got := strings.Join(w.Strings("rooms"), ","); got != "first,second" {
		t.Fatalf("welcome rooms = %q, want first,second (path room first, no repeat)", got)
	}
	for _, room := range []string{"first", "second"} {
		if f := c.Expect("joined"); f.Str("room") != room {
			t.Fatalf("joined %v, want room %s", f, room)
		}
		if f := c.Expect("online_users"); f.Str("room") != room || f.Str("content") != "alice" {
			t.Fatalf("online_users %v, want room %s with alice", f, room)
		}
	}
}

func TestDefaultRoom(t *testing.T) {
	ts := startServer(t, partyline.Options{DefaultRoom: "everyone"})
	c := ts.dialRaw(t, "/ws?username=alice", nil)
	if w := c.Expect("welcome"); strings.Join(w.Strings("rooms"), ",") != "everyone" {
		t.Fatalf("welcome = %v, want rooms [everyone]", w)
	}
	c.Expect("joined")
	c.Expect("online_users")
	c.SendText("hello, plain text")
	if f := c.Expect("chat"); f.Str("room") != "everyone" || f.Str("content") != "hello, plain text" {
		t.Fatalf("plain-text chat = %v, want it in everyone", f)
	}
	named := ts.dialRaw(t, "/ws?username=bob&room=elsewhere", nil)
	if w := named.Expect("welcome"); strings.Join(w.Strings("rooms"), ",") != "elsewhere" {
		t.Fatalf("a URL naming a room got %v, want only that room", w)
	}
}

// connectingBroker is a memory broker that has not connected until told.
type connectingBroker struct {
	*partyline.MemoryBroker
	up atomic.Bool
}

// Connected implements partyline.Connector.
func (b *connectingBroker) Connected() error {
	if !b.up.Load() {
		return fmt.Errorf("not connected yet: %w", partyline.ErrUnavailable)
	}
	return nil
}

// TestRefusedUntilTheBackendsConnect: while a backend reports that it has
// not connected, WebSocket requests are refused before the upgrade with
// 503 unavailable; once it has, they are served.
func TestRefusedUntilTheBackendsConnect(t *testing.T) {
	broker := &connectingBroker{MemoryBroker: partyline.NewMemoryBroker()}
	ts := startServer(t, partyline.Options{Broker: broker})
	if status, code := ts.refusal(t, "/ws?username=alice&room=lobby", nil); status != http.StatusServiceUnavailable || code != partyline.CodeUnavailable {
		t.Fatalf("dial before the broker connected = %d %s, want 503 %s", status, code, partyline.CodeUnavailable)
	}
	broker.up.Store(true)
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
}
