package partyline_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

func TestJoinAndLeaveAnnouncePresence(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
	alice.Expect("online_users")
	bob := ts.dial(t, "/ws?username=bob")
	bob.Send(map[string]any{"type": "join", "room": "lobby", "id": 7})
	if f := bob.Expect("joined"); f.Str("room") != "lobby" || f.Num("seq") != 0 {
		t.Fatalf("joined = %v, want lobby at seq 0", f)
	}
	if f := bob.Expect("online_users"); f.Str("content") != "alice,bob" {
		t.Fatalf("online_users = %v, want alice,bob", f)
	}
	if f := bob.Expect("ack"); f["id"] != float64(7) {
		t.Fatalf("ack = %v, want the numeric id 7 echoed", f)
	}
	if f := alice.Expect("user_joined"); f.Str("username") != "bob" {
		t.Fatalf("alice got %v, want user_joined bob", f)
	}
	bob.Send(map[string]any{"type": "leave", "room": "lobby", "id": "x"})
	if f := bob.Expect("left"); f.Str("room") != "lobby" {
		t.Fatalf("left = %v, want lobby", f)
	}
	bob.Expect("ack")
	if f := alice.Expect("user_left"); f.Str("username") != "bob" || f.Str("content") != "bob left the room" {
		t.Fatalf("alice got %v, want user_left bob", f)
	}
	bob.Send(map[string]any{"type": "chat", "room": "lobby", "content": "still here?", "id": "late"})
	if f := bob.Expect("error"); f.Str("code") != "not_joined" || f.Str("id") != "late" {
		t.Fatalf("chat after leave = %v, want not_joined echoing id late", f)
	}
}

func TestPresenceIsPerUserAcrossDevices(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.Expect("joined")
	bob.Expect("online_users")
	phone := ts.dial(t, "/ws?username=alice&room=lobby")
	phone.Expect("joined")
	phone.Expect("online_users")
	bob.Expect("user_joined")
	laptop := ts.dial(t, "/ws?username=alice&room=lobby")
	laptop.Expect("joined")
	if f := laptop.Expect("online_users"); f.Str("content") != "alice,bob" {
		t.Fatalf("second device's online_users = %v, want alice,bob once each", f)
	}
	phone.Conn.Close()
	laptop.Send(map[string]any{"type": "ping"})
	laptop.Expect("pong") // the phone's departure has been handled or is in flight
	bob.Send(map[string]any{"type": "presence", "room": "lobby"})
	if f := bob.Expect("online_users"); f.Str("content") != "alice,bob" {
		t.Fatalf("after one of alice's devices left: %v, want alice still online (no user_left)", f)
	}
	laptop.Conn.Close()
	if f := bob.Expect("user_left"); f.Str("username") != "alice" {
		t.Fatalf("after alice's last device left: %v, want user_left alice", f)
	}
}

func TestDirectMessages(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	alicePhone := ts.dial(t, "/ws?username=alice")
	aliceLaptop := ts.dial(t, "/ws?username=alice")
	bob := ts.dial(t, "/ws?username=bob")
	bobTablet := ts.dial(t, "/ws?username=bob")
	bob.Send(map[string]any{"type": "direct", "to": "alice", "content": "psst", "data": map[string]any{"k": 1}, "id": "d1"})
	for name, c := range map[string]*wstest.Client{"alice's phone": alicePhone, "alice's laptop": aliceLaptop, "bob's tablet": bobTablet} {
		f := c.Expect("direct")
		if f.Str("from") != "bob" || f.Str("to") != "alice" || f.Str("content") != "psst" || f.Str("id") == "" || f.Num("timestamp") == 0 {
			t.Errorf("%s got %v, want bob's direct to alice", name, f)
		}
	}
	if f := bob.Expect("ack"); f.Str("id") != "d1" {
		t.Fatalf("sender got %v, want only the ack (not its own message)", f)
	}
	bob.Send(map[string]any{"type": "direct", "to": "nobody", "content": "hello?", "id": "d2"})
	if f := bob.Expect("error"); f.Str("code") != "user_offline" || f.Str("id") != "d2" {
		t.Fatalf("direct to an offline user: %v, want user_offline", f)
	}
}

// TestDirectRightAfterWelcome: a connection is registered for its user by
// the time its welcome is out, so a direct message sent the moment it
// arrives reaches it.
func TestDirectRightAfterWelcome(t *testing.T) {
	ts := startServer(t, partyline.Options{RateLimit: -1})
	alice := ts.dial(t, "/ws?username=alice")
	ts.dial(t, "/ws?username=bob") // bob stays online throughout
	for i := range 300 {
		bob := ts.dial(t, "/ws?username=bob")
		alice.Send(map[string]any{"type": "direct", "to": "bob", "content": strconv.Itoa(i)})
		if f := bob.Expect("direct"); f.Str("content") != strconv.Itoa(i) {
			t.Fatalf("bob's new connection got %v, want direct %d", f, i)
		}
		bob.Conn.Close()
	}
}

func TestTypingIsRelayedAndThrottled(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
	alice.Expect("online_users")
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.Expect("joined")
	bob.Expect("online_users")
	alice.Expect("user_joined")
	bob.Send(map[string]any{"type": "typing", "room": "lobby"})
	if f := alice.Expect("typing"); f.Str("username") != "bob" || f.Str("room") != "lobby" {
		t.Fatalf("typing = %v, want bob in lobby", f)
	}
	bob.Send(map[string]any{"type": "typing", "room": "lobby"}) // within 2 s: dropped
	clock.Advance(2 * time.Second)
	bob.Send(map[string]any{"type": "typing", "room": "lobby", "id": "t3"})
	bob.Expect("ack") // bob never sees his own typing
	alice.Expect("typing")
	alice.Send(map[string]any{"type": "ping"})
	alice.Expect("pong") // the throttled second indicator never arrived before this
}

func TestHistoryAndPresenceFrames(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	for i := 1; i <= 5; i++ {
		c.Send(map[string]any{"type": "chat", "content": fmt.Sprint("m", i)})
		c.Expect("chat")
	}
	c.Send(map[string]any{"type": "history", "room": "lobby", "before": 5, "limit": 2})
	h := c.Expect("history")
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 || wstest.Frame(msgs[0].(map[string]any)).Num("seq") != 3 || wstest.Frame(msgs[1].(map[string]any)).Num("seq") != 4 {
		t.Fatalf("history before 5 limit 2 = %v, want seqs 3 and 4", h)
	}
	c.Send(map[string]any{"type": "history", "room": "lobby"})
	if msgs, _ := c.Expect("history")["messages"].([]any); len(msgs) != 5 {
		t.Fatalf("history with defaults has %d messages, want 5", len(msgs))
	}
	c.Send(map[string]any{"type": "history", "room": "empty-room"})
	if f := c.Expect("error"); f.Str("code") != "not_joined" {
		t.Fatalf("history of a room not joined = %v, want not_joined", f)
	}
	c.Send(map[string]any{"type": "join", "room": "empty-room"})
	c.Expect("joined")
	c.Expect("online_users")
	c.Send(map[string]any{"type": "history", "room": "empty-room"})
	if h := c.Next(); h.Str("type") != "history" || h["messages"] == nil {
		t.Fatalf("history of an empty room = %v, want messages []", h)
	}
	c.Send(map[string]any{"type": "history", "room": "lobby", "limit": 101})
	if f := c.Expect("error"); f.Str("code") != "bad_request" {
		t.Fatalf("limit 101 = %v, want bad_request", f)
	}
}

func TestChatCarriesDataAndServerFields(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	c.Send(map[string]any{"type": "chat", "room": "lobby", "content": "<b>hi</b>", "data": map[string]any{"x": []int{1, 2}},
		"username": "mallory", "timestamp": 1, "seq": 99})
	f := c.Expect("chat")
	data, _ := f["data"].(map[string]any)
	if f.Str("username") != "alice" || f.Num("seq") != 1 || f.Num("timestamp") < 1e12 || data == nil || f.Str("content") != "<b>hi</b>" {
		t.Fatalf("chat = %v, want alice's data message with server-set username, seq and timestamp", f)
	}
}

func TestStoredDataOutlivesItsFrame(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	// Flat frames, whose data and id the decoder takes without
	// json.Unmarshal; the second is read into the buffer that held the first.
	c.SendText(`{"type":"chat","content":"x","data":"ORIGINALDATA","id":"a"}`)
	c.Expect("chat")
	c.Expect("ack")
	c.SendText(`{"type":"chat","content":"y","data":12345678,"id":"bbbbbbbbbb"}`)
	c.Expect("chat")
	c.Expect("ack")
	c.Send(map[string]any{"type": "history", "room": "lobby"})
	msgs, _ := c.Expect("history")["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("history has %d messages, want 2", len(msgs))
	}
	first, second := wstest.Frame(msgs[0].(map[string]any)), wstest.Frame(msgs[1].(map[string]any))
	if first.Str("data") != "ORIGINALDATA" || second.Num("data") != 12345678 {
		t.Errorf("history = %v, %v; want the data each chat was sent with", first, second)
	}
}

func TestBadInputGetsErrors(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	for _, tc := range []struct {
		frame string
		code  string
	}{
		{`{"type":"dance","id":"u"}`, "unknown_type"},
		{`{"type":"chat","content":42,"id":"u"}`, "bad_request"},
		{`{"type":"chat","content":"x","id":"` + strings.Repeat("i", 65) + `"}`, "bad_request"},
		{`{"content":"no type","id":"u"}`, "bad_request"},
		{`{"type":5,"type":"ping","id":"u"}`, "bad_request"}, // as json.Unmarshal, every occurrence counts
		{`{"type":"join","room":"bad room","id":"u"}`, "invalid_room"},
		{`{"type":"join","room":"lobby","since":"yesterday","id":"u"}`, "bad_request"},
		{`{"type":"chat","room":"other","content":"x","id":"u"}`, "not_joined"},
		{`{"type":"typing","room":"other","id":"u"}`, "not_joined"},
		{`{"type":"presence","room":"other","id":"u"}`, "not_joined"},
		{`{"type":"direct","to":"bad name!","content":"x","id":"u"}`, "bad_request"},
		{`{"type":"refresh","token":"x","id":"u"}`, "bad_request"},
	} {
		c.SendText(tc.frame)
		f := c.Expect("error")
		if f.Str("code") != tc.code || f.Str("message") == "" {
			t.Errorf("%s: got %v, want error %s with a message", tc.frame, f, tc.code)
		}
		if strings.Contains(tc.frame, `"id":"u"`) && f.Str("id") != "u" {
			t.Errorf("%s: error %v does not echo id u", tc.frame, f)
		}
	}
}

func TestTooManyRoomsOnJoin(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxRooms: 1})
	c := ts.dial(t, "/ws?username=alice&room=one")
	c.Expect("joined")
	c.Expect("online_users")
	c.Send(map[string]any{"type": "join", "room": "two", "id": 1})
	if f := c.Expect("error"); f.Str("code") != "too_many_rooms" {
		t.Fatalf("join beyond max rooms = %v, want too_many_rooms", f)
	}
}

func TestCloseCodes(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxMessageSize: 1024})
	for _, tc := range []struct {
		name string
		send func(*wstest.Client)
		code int
	}{
		{"binary frame", func(c *wstest.Client) { c.Conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2}) }, 1003},
		{"invalid UTF-8", func(c *wstest.Client) { c.Conn.WriteMessage(websocket.TextMessage, []byte{'{', 0xff, '}'}) }, 1007},
		{"too large", func(c *wstest.Client) { c.SendText(strings.Repeat("x", 1025)) }, 1009},
	} {
		c := ts.dial(t, "/ws?username=alice")
		tc.send(c)
		if code := c.CloseCode(); code != tc.code {
			t.Errorf("%s: close code %d, want %d", tc.name, code, tc.code)
		}
	}
}

func TestRateLimit(t *testing.T) {
	clock := newFakeClock() // frozen: no tokens come back
	ts := startServer(t, partyline.Options{Now: clock.Now, RateLimit: 1, RateBurst: 3})
	c := ts.dial(t, "/ws?username=alice")
	for i := range 3 {
		c.Send(map[string]any{"type": "ping", "id": i})
		c.Expect("pong")
		c.Expect("ack")
	}
	for i := range 3 {
		c.Send(map[string]any{"type": "ping", "id": 10 + i})
		if f := c.Expect("error"); f.Str("code") != "rate_limited" || f.Num("id") != uint64(10+i) {
			t.Fatalf("message beyond the burst = %v, want rate_limited echoing its id", f)
		}
	}
	c.Send(map[string]any{"type": "ping"})
	if code := c.CloseCode(); code != partyline.CloseRateLimit {
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
	for _, c := range []*wstest.Client{a, b} {
		if code := c.CloseCode(); code != partyline.CloseKicked {
			t.Fatalf("kicked connection closed with %d, want 4003", code)
		}
	}
	other.Send(map[string]any{"type": "ping"})
	other.Expect("pong")
}

func TestPublishFromGo(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice&room=news")
	c.Expect("joined")
	c.Expect("online_users")
	m, err := ts.Publish(t.Context(), "news", partyline.Publication{Content: "extra!"})
	if err != nil || m.Seq != 1 || m.ID == "" || m.Username != "system" {
		t.Fatalf("Publish = %+v, %v; want seq 1 from system", m, err)
	}
	if f := c.Expect("chat"); f.Str("username") != "system" || f.Str("id") != m.ID {
		t.Fatalf("delivered %v, want the published message", f)
	}
	if _, err := ts.Publish(t.Context(), "bad room", partyline.Publication{Content: "x"}); partyline.ErrorCode(err) != "invalid_room" {
		t.Fatalf("Publish to a bad room: %v, want invalid_room", err)
	}
}

func TestRoomsAndUsersFromGo(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	a := ts.dial(t, "/ws?username=alice&room=lobby&room=news")
	a.Expect("joined")
	ts.dial(t, "/ws?username=alice&room=lobby")
	ts.dial(t, "/ws?username=bob&room=lobby")
	ts.Publish(t.Context(), "news", partyline.Publication{Content: "x"})
	waitUntil(t, "three connections in lobby, one in news", func() bool {
		rooms, _ := ts.Rooms(t.Context())
		return len(rooms) == 2 && rooms[0].Connections == 3 && rooms[1].Connections == 1
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
