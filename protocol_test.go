package partyline_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
)

func TestJoinAndLeaveAnnouncePresence(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.expect("joined")
	alice.expect("online_users")
	bob := ts.dial(t, "/ws?username=bob")
	bob.send(map[string]any{"type": "join", "room": "lobby", "id": 7})
	if f := bob.expect("joined"); f.str("room") != "lobby" || f.num("seq") != 0 {
		t.Fatalf("joined = %v, want lobby at seq 0", f)
	}
	if f := bob.expect("online_users"); f.str("content") != "alice,bob" {
		t.Fatalf("online_users = %v, want alice,bob", f)
	}
	if f := bob.expect("ack"); f["id"] != float64(7) {
		t.Fatalf("ack = %v, want the numeric id 7 echoed", f)
	}
	if f := alice.expect("user_joined"); f.str("username") != "bob" {
		t.Fatalf("alice got %v, want user_joined bob", f)
	}
	bob.send(map[string]any{"type": "leave", "room": "lobby", "id": "x"})
	if f := bob.expect("left"); f.str("room") != "lobby" {
		t.Fatalf("left = %v, want lobby", f)
	}
	bob.expect("ack")
	if f := alice.expect("user_left"); f.str("username") != "bob" || f.str("content") != "bob left the room" {
		t.Fatalf("alice got %v, want user_left bob", f)
	}
	bob.send(map[string]any{"type": "chat", "room": "lobby", "content": "still here?", "id": "late"})
	if f := bob.expect("error"); f.str("code") != "not_joined" || f.str("id") != "late" {
		t.Fatalf("chat after leave = %v, want not_joined echoing id late", f)
	}
}

func TestPresenceIsPerUserAcrossDevices(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.expect("joined")
	bob.expect("online_users")
	phone := ts.dial(t, "/ws?username=alice&room=lobby")
	phone.expect("joined")
	phone.expect("online_users")
	bob.expect("user_joined")
	laptop := ts.dial(t, "/ws?username=alice&room=lobby")
	laptop.expect("joined")
	if f := laptop.expect("online_users"); f.str("content") != "alice,bob" {
		t.Fatalf("second device's online_users = %v, want alice,bob once each", f)
	}
	phone.ws.Close()
	laptop.send(map[string]any{"type": "ping"})
	laptop.expect("pong") // the phone's departure has been handled or is in flight
	bob.send(map[string]any{"type": "presence", "room": "lobby"})
	if f := bob.expect("online_users"); f.str("content") != "alice,bob" {
		t.Fatalf("after one of alice's devices left: %v, want alice still online (no user_left)", f)
	}
	laptop.ws.Close()
	if f := bob.expect("user_left"); f.str("username") != "alice" {
		t.Fatalf("after alice's last device left: %v, want user_left alice", f)
	}
}

func TestDirectMessages(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	alicePhone := ts.dial(t, "/ws?username=alice")
	aliceLaptop := ts.dial(t, "/ws?username=alice")
	bob := ts.dial(t, "/ws?username=bob")
	bobTablet := ts.dial(t, "/ws?username=bob")
	bob.send(map[string]any{"type": "direct", "to": "alice", "content": "psst", "data": map[string]any{"k": 1}, "id": "d1"})
	for name, c := range map[string]*client{"alice's phone": alicePhone, "alice's laptop": aliceLaptop, "bob's tablet": bobTablet} {
		f := c.expect("direct")
		if f.str("from") != "bob" || f.str("to") != "alice" || f.str("content") != "psst" || f.str("id") == "" || f.num("timestamp") == 0 {
			t.Errorf("%s got %v, want bob's direct to alice", name, f)
		}
	}
	if f := bob.expect("ack"); f.str("id") != "d1" {
		t.Fatalf("sender got %v, want only the ack (not its own message)", f)
	}
	bob.send(map[string]any{"type": "direct", "to": "nobody", "content": "hello?", "id": "d2"})
	if f := bob.expect("error"); f.str("code") != "user_offline" || f.str("id") != "d2" {
		t.Fatalf("direct to an offline user: %v, want user_offline", f)
	}
}

func TestTypingIsRelayedAndThrottled(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.expect("joined")
	alice.expect("online_users")
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.expect("joined")
	bob.expect("online_users")
	alice.expect("user_joined")
	bob.send(map[string]any{"type": "typing", "room": "lobby"})
	if f := alice.expect("typing"); f.str("username") != "bob" || f.str("room") != "lobby" {
		t.Fatalf("typing = %v, want bob in lobby", f)
	}
	bob.send(map[string]any{"type": "typing", "room": "lobby"}) // within 2 s: dropped
	clock.Advance(2 * time.Second)
	bob.send(map[string]any{"type": "typing", "room": "lobby", "id": "t3"})
	bob.expect("ack") // bob never sees his own typing
	alice.expect("typing")
	alice.send(map[string]any{"type": "ping"})
	alice.expect("pong") // the throttled second indicator never arrived before this
}

func TestHistoryAndPresenceFrames(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.expect("joined")
	c.expect("online_users")
	for i := 1; i <= 5; i++ {
		c.send(map[string]any{"type": "chat", "content": fmt.Sprint("m", i)})
		c.expect("chat")
	}
	c.send(map[string]any{"type": "history", "room": "lobby", "before": 5, "limit": 2})
	h := c.expect("history")
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 || frame(msgs[0].(map[string]any)).num("seq") != 3 || frame(msgs[1].(map[string]any)).num("seq") != 4 {
		t.Fatalf("history before 5 limit 2 = %v, want seqs 3 and 4", h)
	}
	c.send(map[string]any{"type": "history", "room": "lobby"})
	if msgs, _ := c.expect("history")["messages"].([]any); len(msgs) != 5 {
		t.Fatalf("history with defaults has %d messages, want 5", len(msgs))
	}
	c.send(map[string]any{"type": "history", "room": "empty-room"})
	if f := c.expect("error"); f.str("code") != "not_joined" {
		t.Fatalf("history of a room not joined = %v, want not_joined", f)
	}
	c.send(map[string]any{"type": "join", "room": "empty-room"})
	c.expect("joined")
	c.expect("online_users")
	c.send(map[string]any{"type": "history", "room": "empty-room"})
	if h := c.next(); h.str("type") != "history" || h["messages"] == nil {
		t.Fatalf("history of an empty room = %v, want messages []", h)
	}
	c.send(map[string]any{"type": "history", "room": "lobby", "limit": 101})
	if f := c.expect("error"); f.str("code") != "bad_request" {
		t.Fatalf("limit 101 = %v, want bad_request", f)
	}
}

func TestChatCarriesDataAndServerFields(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.expect("joined")
	c.expect("online_users")
	c.send(map[string]any{"type": "chat", "room": "lobby", "content": "<b>hi</b>", "data": map[string]any{"x": []int{1, 2}},
		"username": "mallory", "timestamp": 1, "seq": 99})
	f := c.expect("chat")
	data, _ := f["data"].(map[string]any)
	if f.str("username") != "alice" || f.num("seq") != 1 || f.num("timestamp") < 1e12 || data == nil || f.str("content") != "<b>hi</b>" {
		t.Fatalf("chat = %v, want alice's data message with server-set username, seq and timestamp", f)
	}
}

func TestBadInputGetsErrors(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.expect("joined")
	c.expect("online_users")
	for _, tc := range []struct {
		frame string
		code  string
	}{
		{`{"type":"dance","id":"u"}`, "unknown_type"},
		{`{"type":"chat","content":42,"id":"u"}`, "bad_request"},
		{`{"type":"chat","content":"x","id":"` + strings.Repeat("i", 65) + `"}`, "bad_request"},
		{`{"content":"no type","id":"u"}`, "bad_request"},
		{`{"type":"join","room":"bad room","id":"u"}`, "invalid_room"},
		{`{"type":"join","room":"lobby","since":"yesterday","id":"u"}`, "bad_request"},
		{`{"type":"chat","room":"other","content":"x","id":"u"}`, "not_joined"},
		{`{"type":"typing","room":"other","id":"u"}`, "not_joined"},
		{`{"type":"presence","room":"other","id":"u"}`, "not_joined"},
		{`{"type":"direct","to":"bad name!","content":"x","id":"u"}`, "bad_request"},
		{`{"type":"refresh","token":"x","id":"u"}`, "bad_request"},
	} {
		c.sendText(tc.frame)
		f := c.expect("error")
		if f.str("code") != tc.code || f.str("message") == "" {
			t.Errorf("%s: got %v, want error %s with a message", tc.frame, f, tc.code)
		}
		if strings.Contains(tc.frame, `"id":"u"`) && f.str("id") != "u" {
			t.Errorf("%s: error %v does not echo id u", tc.frame, f)
		}
	}
}

func TestTooManyRoomsOnJoin(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxRooms: 1})
	c := ts.dial(t, "/ws?username=alice&room=one")
	c.expect("joined")
	c.expect("online_users")
	c.send(map[string]any{"type": "join", "room": "two", "id": 1})
	if f := c.expect("error"); f.str("code") != "too_many_rooms" {
		t.Fatalf("join beyond max rooms = %v, want too_many_rooms", f)
	}
}

func TestCloseCodes(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxMessageSize: 1024})
	for _, tc := range []struct {
		name string
		send func(*client)
		code int
	}{
		{"binary frame", func(c *client) { c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}) }, 1003},
		{"invalid UTF-8", func(c *client) { c.ws.WriteMessage(websocket.TextMessage, []byte{'{', 0xff, '}'}) }, 1007},
		{"too large", func(c *client) { c.sendText(strings.Repeat("x", 1025)) }, 1009},
	} {
		c := ts.dial(t, "/ws?username=alice")
		tc.send(c)
		if code := c.closeCode(); code != tc.code {
			t.Errorf("%s: close code %d, want %d", tc.name, code, tc.code)
		}
	}
}

func TestRateLimit(t *testing.T) {
	clock := newFakeClock() // frozen: no tokens come back
	ts := startServer(t, partyline.Options{Now: clock.Now, RateLimit: 1, RateBurst: 3})
	c := ts.dial(t, "/ws?username=alice")
	for i := range 3 {
		c.send(map[string]any{"type": "ping", "id": i})
		c.expect("pong")
		c.expect("ack")
	}
	for i := range 3 {
		c.send(map[string]any{"type": "ping", "id": 10 + i})
		if f := c.expect("error"); f.str("code") != "rate_limited" || f.num("id") != uint64(10+i) {
			t.Fatalf("message beyond the burst = %v, want rate_limited echoing its id", f)
		}
	}
	c.send(map[string]any{"type": "ping"})
	if code := c.closeCode(); code != partyline.CloseRateLimit {
		t.Fatalf("close code = %d, want 4008 after a burst of refusals", code)
	}
}

func TestKick(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	a := ts.dial(t, "/ws?username=alice&room=lobby")
	b := ts.dial(t, "/ws?username=alice")
	other := ts.dial(t, "/ws?username=bob")
	n, err := ts.Disconnect(t.Context(), "alice")
	if err != nil || n != 2 {
		t.Fatalf("Disconnect = %d, %v; want 2, nil", n, err)
	}
	for _, c := range []*client{a, b} {
		if code := c.closeCode(); code != partyline.CloseKicked {
			t.Fatalf("kicked connection closed with %d, want 4003", code)
		}
	}
	other.send(map[string]any{"type": "ping"})
	other.expect("pong")
}

func TestPublishFromGo(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=news")
	c.expect("joined")
	c.expect("online_users")
	m, err := ts.Publish(t.Context(), "news", partyline.Publication{Content: "extra!"})
	if err != nil || m.Seq != 1 || m.ID == "" || m.Username != "system" {
		t.Fatalf("Publish = %+v, %v; want seq 1 from system", m, err)
	}
	if f := c.expect("chat"); f.str("username") != "system" || f.str("id") != m.ID {
		t.Fatalf("delivered %v, want the published message", f)
	}
	if _, err := ts.Publish(t.Context(), "bad room", partyline.Publication{Content: "x"}); partyline.ErrorCode(err) != "invalid_room" {
		t.Fatalf("Publish to a bad room: %v, want invalid_room", err)
	}
}

func TestRoomsAndUsersFromGo(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	a := ts.dial(t, "/ws?username=alice&room=lobby&room=news")
	a.expect("joined")
	ts.dial(t, "/ws?username=alice&room=lobby")
	ts.dial(t, "/ws?username=bob&room=lobby")
	ts.Publish(t.Context(), "news", partyline.Publication{Content: "x"})
	waitUntil(t, "three connections in lobby", func() bool {
		rooms, _ := ts.Rooms(t.Context())
		return len(rooms) == 2 && rooms[0].Connections == 3
	})
	rooms, err := ts.Rooms(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []partyline.RoomInfo{{Room: "lobby", Users: 2, Connections: 3}, {Room: "news", Users: 1, Connections: 1, LastSeq: 1}}
	if fmt.Sprint(rooms) != fmt.Sprint(want) {
		t.Fatalf("Rooms = %+v, want %+v", rooms, want)
	}
	if users, err := ts.RoomUsers(t.Context(), "lobby"); err != nil || strings.Join(users, ",") != "alice,bob" {
		t.Fatalf("RoomUsers(lobby) = %v, %v; want alice,bob", users, err)
	}
}
