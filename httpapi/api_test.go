package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
	"github.com/partyline/partyline/internal/wstest"
)

// published is the answer of POST /api/rooms/{room}/messages.
type published struct {
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// publish posts body to room and checks the 201.
func (ts *testServer) publish(t testing.TB, room, body string) published {
	t.Helper()
	resp := ts.do(t, "POST", "/api/rooms/"+room+"/messages", body)
	if resp.status != http.StatusCreated {
		t.Fatalf("publish %s to %s: status %d %s, want 201", body, room, resp.status, resp.body)
	}
	var p published
	resp.decode(t, &p)
	return p
}

func TestPublishIsDeliveredWithSeq(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)

	p := ts.publish(t, "lobby", `{"content":"hello","data":{"k":[1,2]},"username":"bot"}`)
	if p.Seq != 1 || p.ID == "" || p.Timestamp <= 0 {
		t.Fatalf("publish answer = %+v, want seq 1, an id and a timestamp", p)
	}
	f := alice.WaitFor("chat")
	if f.Num("seq") != 1 || f.Str("id") != p.ID || f.Str("username") != "bot" ||
		f.Str("content") != "hello" || f.Str("room") != "lobby" || int64(f.Num("timestamp")) != p.Timestamp {
		t.Errorf("delivered %v, want seq 1, id %q, username bot, content hello, timestamp %d", f, p.ID, p.Timestamp)
	}
	if data, _ := json.Marshal(f["data"]); string(data) != `{"k":[1,2]}` {
		t.Errorf("delivered data = %s, want {\"k\":[1,2]}", data)
	}

	p = ts.publish(t, "lobby", `{"content":"second"}`)
	f = alice.WaitFor("chat")
	if p.Seq != 2 || f.Num("seq") != 2 || f.Str("username") != "system" {
		t.Errorf("second publish: answer seq %d, delivered %v; want seq 2 from system", p.Seq, f)
	}
	if _, ok := f["data"]; ok {
		t.Errorf("delivered %v has data, want none", f)
	}
}

func TestPublishDataOnly(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.publish(t, "lobby", `{"data":{"temp":21.5}}`)
	f := alice.WaitFor("chat")
	if data, _ := json.Marshal(f["data"]); string(data) != `{"temp":21.5}` || f.Str("content") != "" {
		t.Errorf("delivered %v, want data {\"temp\":21.5} and no content", f)
	}
}

// historyAnswer is the answer of GET /api/rooms/{room}/messages.
type historyAnswer struct {
	Room     string           `json:"room"`
	Messages []map[string]any `json:"messages"`
}

func (h historyAnswer) seqs() []uint64 {
	seqs := []uint64{}
	for _, m := range h.Messages {
		n, _ := m["seq"].(float64)
		seqs = append(seqs, uint64(n))
	}
	return seqs
}

func TestHistoryPages(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for i := 1; i <= 10; i++ {
		ts.publish(t, "news", fmt.Sprintf(`{"content":"m%d","username":"ed"}`, i))
	}
	seqRange := func(from, to uint64) []uint64 {
		var s []uint64
		for n := from; n <= to; n++ {
			s = append(s, n)
		}
		return s
	}
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"", seqRange(1, 10)},
		{"?limit=3", seqRange(8, 10)},
		{"?before=8&limit=3", seqRange(5, 7)},
		{"?before=2", seqRange(1, 1)},
		{"?before=1", nil},
		{"?before=0&limit=2", seqRange(9, 10)},
		{"?after=0&limit=3", seqRange(1, 3)},
		{"?after=3&limit=2", seqRange(4, 5)},
		{"?after=8", seqRange(9, 10)},
		{"?after=10", nil},
		{"?after=2&before=5", seqRange(3, 4)},
		{"?limit=1000", seqRange(1, 10)},
	} {
		resp := ts.do(t, "GET", "/api/rooms/news/messages"+tc.query, "")
		if resp.status != http.StatusOK {
			t.Fatalf("history%s: status %d %s", tc.query, resp.status, resp.body)
		}
		var h historyAnswer
		resp.decode(t, &h)
		if h.Messages == nil {
			t.Errorf("history%s: messages is %s, want a list", tc.query, resp.body)
		}
		if got := h.seqs(); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("history%s: seqs %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestHistoryMessageFields(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	p := ts.publish(t, "news", `{"content":"a","username":"ed","data":[1]}`)
	ts.publish(t, "news", `{"content":"b"}`)
	var h historyAnswer
	ts.do(t, "GET", "/api/rooms/news/messages", "").decode(t, &h)
	if h.Room != "news" || len(h.Messages) != 2 {
		t.Fatalf("history = %+v, want room news with 2 messages", h)
	}
	m := h.Messages[0]
	if m["type"] != "chat" || m["room"] != "news" || m["username"] != "ed" || m["content"] != "a" ||
		m["id"] != p.ID || m["timestamp"] != float64(p.Timestamp) || m["seq"] != float64(1) {
		t.Errorf("first message = %v, want the chat fields of %+v", m, p)
	}
	if data, _ := json.Marshal(m["data"]); string(data) != "[1]" {
		t.Errorf("first message data = %s, want [1]", data)
	}
	if _, ok := h.Messages[1]["data"]; ok {
		t.Errorf("second message = %v, want no data field", h.Messages[1])
	}
}

func TestHistoryOfEmptyRoomIsAnEmptyList(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	resp := ts.do(t, "GET", "/api/rooms/quiet/messages", "")
	if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != `{"room":"quiet","messages":[]}` {
		t.Errorf("empty history: %d %s, want 200 {\"room\":\"quiet\",\"messages\":[]}", resp.status, resp.body)
	}
}

// TestAnswerThatCannotBeEncoded: a stored message whose data is not JSON
// (written by an older version, or by hand) makes history answer a whole
// error, not a 200 cut short.
func TestAnswerThatCannotBeEncoded(t *testing.T) {
	store := partyline.NewMemoryStore(0)
	if _, err := store.Append(t.Context(), partyline.Message{Room: "r", Username: "u", Content: "x", Data: json.RawMessage(`{broken`)}); err != nil {
		t.Fatal(err)
	}
	ts := startServerWith(t, partyline.Options{Store: store}, httpapi.Options{})
	resp := ts.do(t, "GET", "/api/rooms/r/messages", "")
	var body struct{ Error struct{ Code string } }
	if err := json.Unmarshal(resp.body, &body); err != nil || resp.status != http.StatusServiceUnavailable || body.Error.Code != "unavailable" {
		t.Errorf("history with data that is not JSON: %d %q, want 503 unavailable", resp.status, resp.body)
	}
}

func TestHistoryBadQueries(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, tc := range []struct{ path, code string }{
		{"/api/rooms/news/messages?limit=1001", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?limit=0", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?limit=-5", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?limit=ten", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?before=x", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?before=-1", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?after=", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?after=1.5", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?after=99999999999999999999999", partyline.CodeBadRequest},
		{"/api/rooms/news/messages?limit=%zz", partyline.CodeBadRequest},
		{"/api/rooms/-bad/messages", partyline.CodeInvalidRoom},
		{"/api/rooms/" + strings.Repeat("r", 65) + "/messages", partyline.CodeInvalidRoom},
	} {
		resp := ts.do(t, "GET", tc.path, "")
		if resp.status != http.StatusBadRequest || resp.errorCode(t) != tc.code {
			t.Errorf("GET %s: %d %s, want 400 %s", tc.path, resp.status, resp.body, tc.code)
		}
	}
}

func TestRooms(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	resp := ts.do(t, "GET", "/api/rooms", "")
	if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != `{"rooms":[]}` {
		t.Fatalf("no rooms: %d %s, want 200 {\"rooms\":[]}", resp.status, resp.body)
	}
	ts.dial(t, "/ws/lobby?username=alice", 1)
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.dial(t, "/ws?username=bob&room=lobby&room=dev", 2)
	ts.publish(t, "lobby", `{"content":"x"}`)
	ts.publish(t, "lobby", `{"content":"y"}`)
	alice.WaitFor("chat")
	if f := alice.WaitFor("chat"); f.Num("seq") != 2 { // the room has taken both in
		t.Fatalf("second chat = %v, want seq 2", f)
	}

	var got struct{ Rooms []partyline.RoomInfo }
	ts.do(t, "GET", "/api/rooms", "").decode(t, &got)
	want := []partyline.RoomInfo{
		{Room: "dev", Users: 1, Connections: 1, LastSeq: 0},
		{Room: "lobby", Users: 2, Connections: 3, LastSeq: 2},
	}
	if !slices.Equal(got.Rooms, want) {
		t.Errorf("rooms = %+v, want %+v", got.Rooms, want)
	}
}

func TestRoomUsers(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	resp := ts.do(t, "GET", "/api/rooms/lobby/users", "")
	if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != `{"room":"lobby","users":[]}` {
		t.Fatalf("empty room: %d %s, want 200 {\"room\":\"lobby\",\"users\":[]}", resp.status, resp.body)
	}
	ts.dial(t, "/ws/lobby?username=zoe", 1)
	ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.dial(t, "/ws/other?username=bob", 1)
	var got struct {
		Room  string
		Users []string
	}
	ts.do(t, "GET", "/api/rooms/lobby/users", "").decode(t, &got)
	if got.Room != "lobby" || !slices.Equal(got.Users, []string{"alice", "zoe"}) {
		t.Errorf("users = %+v, want lobby [alice zoe]", got)
	}
	if resp := ts.do(t, "GET", "/api/rooms/bad%20room/users", ""); resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeInvalidRoom {
		t.Errorf("invalid room: %d %s, want 400 invalid_room", resp.status, resp.body)
	}
}

func TestDirectToOnlineUser(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	phone := ts.dial(t, "/ws?username=bob", 0)
	laptop := ts.dial(t, "/ws?username=bob", 0)
	resp := ts.do(t, "POST", "/api/users/bob/messages", `{"content":"your order shipped","data":{"order":7},"from":"shop"}`)
	if resp.status != http.StatusAccepted {
		t.Fatalf("direct to bob: %d %s, want 202", resp.status, resp.body)
	}
	for name, c := range map[string]*wstest.Client{"phone": phone, "laptop": laptop} {
		f := c.WaitFor("direct")
		if f.Str("from") != "shop" || f.Str("to") != "bob" || f.Str("content") != "your order shipped" || f.Str("id") == "" || f.Num("timestamp") == 0 {
			t.Errorf("%s got %v, want a direct from shop to bob", name, f)
		}
		if data, _ := json.Marshal(f["data"]); string(data) != `{"order":7}` {
			t.Errorf("%s got data %s, want {\"order\":7}", name, data)
		}
	}

	ts.do(t, "POST", "/api/users/bob/messages", `{"content":"hi"}`)
	if f := phone.WaitFor("direct"); f.Str("from") != "system" {
		t.Errorf("direct without from: %v, want from system", f)
	}
}

func TestDirectToOfflineUser(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	resp := ts.do(t, "POST", "/api/users/carol/messages", `{"content":"hi"}`)
	if resp.status != http.StatusNotFound || resp.errorCode(t) != partyline.CodeUserOffline {
		t.Errorf("direct to offline carol: %d %s, want 404 user_offline", resp.status, resp.body)
	}
}

func TestDirectBadRequests(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	ts.dial(t, "/ws?username=bob", 0)
	for _, tc := range []struct{ path, body, code string }{
		{"/api/users/bob/messages", `{"content":"hi","from":"no spaces"}`, partyline.CodeInvalidUsername},
		{"/api/users/-bob/messages", `{"content":"hi"}`, partyline.CodeInvalidUsername},
		{"/api/users/bob/messages", `{"content":""}`, partyline.CodeBadRequest},
		{"/api/users/bob/messages", `{"content":"hi","to":"eve"}`, partyline.CodeBadRequest},
		{"/api/users/bob/messages", `{"content":1}`, partyline.CodeBadRequest},
		{"/api/users/bob/messages", `not json`, partyline.CodeBadRequest},
	} {
		resp := ts.do(t, "POST", tc.path, tc.body)
		if resp.status != http.StatusBadRequest || resp.errorCode(t) != tc.code {
			t.Errorf("POST %s %s: %d %s, want 400 %s", tc.path, tc.body, resp.status, resp.body, tc.code)
		}
	}
}

func TestDisconnectClosesEveryConnectionWith4003(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	phone := ts.dial(t, "/ws/lobby?username=bob", 1)
	laptop := ts.dial(t, "/ws?username=bob", 0)
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)

	resp := ts.do(t, "DELETE", "/api/users/bob/connections", "")
	var got struct{ Closed *int }
	resp.decode(t, &got)
	if resp.status != http.StatusOK || got.Closed == nil || *got.Closed != 2 {
		t.Fatalf("disconnect bob: %d %s, want 200 {\"closed\":2}", resp.status, resp.body)
	}
	for name, c := range map[string]*wstest.Client{"phone": phone, "laptop": laptop} {
		if code := c.CloseCode(); code != partyline.CloseKicked {
			t.Errorf("bob's %s closed with %d, want %d", name, code, partyline.CloseKicked)
		}
	}
	if f := alice.WaitFor("user_left"); f.Str("username") != "bob" {
		t.Errorf("alice got %v, want bob's user_left", f)
	}

	resp = ts.do(t, "DELETE", "/api/users/bob/connections", "")
	if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != `{"closed":0}` {
		t.Errorf("disconnect offline bob: %d %s, want 200 {\"closed\":0}", resp.status, resp.body)
	}
	if resp := ts.do(t, "DELETE", "/api/users/b%20b/connections", ""); resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeInvalidUsername {
		t.Errorf("disconnect invalid user: %d %s, want 400 invalid_username", resp.status, resp.body)
	}
}

func TestServerSideSubscriptions(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	phone := ts.dial(t, "/ws?username=bob", 0)
	laptop := ts.dial(t, "/ws/news?username=bob", 1)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"PUT", "/api/users/bob/rooms/news", http.StatusOK, `{"connections":1}`}, // the laptop is in already
		{"PUT", "/api/users/nobody/rooms/news", http.StatusOK, `{"connections":0}`},
		{"DELETE", "/api/users/bob/rooms/news", http.StatusOK, `{"connections":2}`},
		{"DELETE", "/api/users/bob/rooms/news", http.StatusOK, `{"connections":0}`},
		{"PUT", "/api/users/bob/rooms/bad%20room", http.StatusBadRequest, ""},
		{"PUT", "/api/users/b%20b/rooms/news", http.StatusBadRequest, ""},
	} {
		resp := ts.do(t, tc.method, tc.path, "")
		if resp.status != tc.status || tc.body != "" && strings.TrimSpace(string(resp.body)) != tc.body {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, resp.status, resp.body, tc.status, tc.body)
		}
	}
	if f := phone.WaitFor("joined"); f.Str("room") != "news" {
		t.Errorf("bob's phone got %v, want joined news", f)
	}
	for name, c := range map[string]*wstest.Client{"phone": phone, "laptop": laptop} {
		if f := c.WaitFor("left"); f.Str("room") != "news" {
			t.Errorf("bob's %s got %v, want left news", name, f)
		}
	}
}
