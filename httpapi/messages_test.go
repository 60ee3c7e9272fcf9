package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
)

// publishedMany is the answer of POST /api/messages.
type publishedMany struct {
	Messages []publishedIn `json:"messages"`
}

// publishedIn is one message of publishedMany.
type publishedIn struct {
	Room      string `json:"room"`
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// publishMany posts body to /api/messages and checks the 201.
func (ts *testServer) publishMany(t testing.TB, body string) publishedMany {
	t.Helper()
	resp := ts.do(t, "POST", "/api/messages", body)
	if resp.status != http.StatusCreated {
		t.Fatalf("POST /api/messages %s: status %d %s, want 201", body, resp.status, resp.body)
	}
	var p publishedMany
	resp.decode(t, &p)
	return p
}

// roomsJSON returns a JSON list of n rooms named r0, r1, ….
func roomsJSON(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("r%d", i)
	}
	b, _ := json.Marshal(names)
	return string(b)
}

func TestPublishManyDeliversToEachRoomInOrder(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)
	bob := ts.dial(t, "/ws/dev?username=bob", 1)
	ts.publish(t, "lobby", `{"content":"before"}`)
	alice.WaitFor("chat")

	got := ts.publishMany(t, `{"rooms":["dev","lobby","news"],"content":"deploy done","data":{"build":7},"username":"ci"}`)
	if len(got.Messages) != 3 {
		t.Fatalf("answer %+v, want 3 messages", got)
	}
	for i, want := range []struct {
		room string
		seq  uint64
	}{{"dev", 1}, {"lobby", 2}, {"news", 1}} {
		m := got.Messages[i]
		if m.Room != want.room || m.Seq != want.seq || m.ID == "" || m.Timestamp <= 0 {
			t.Errorf("messages[%d] = %+v, want room %s, seq %d, an id and a timestamp", i, m, want.room, want.seq)
		}
	}
	if a, b := got.Messages[0].ID, got.Messages[1].ID; a == b {
		t.Errorf("dev and lobby messages share the id %q", a)
	}
	for _, tc := range []struct {
		name string
		f    map[string]any
		m    publishedIn
	}{
		{"bob in dev", bob.WaitFor("chat"), got.Messages[0]},
		{"alice in lobby", alice.WaitFor("chat"), got.Messages[1]},
	} {
		data, _ := json.Marshal(tc.f["data"])
		if tc.f["room"] != tc.m.Room || tc.f["seq"] != float64(tc.m.Seq) || tc.f["id"] != tc.m.ID ||
			tc.f["timestamp"] != float64(tc.m.Timestamp) || tc.f["username"] != "ci" ||
			tc.f["content"] != "deploy done" || string(data) != `{"build":7}` {
			t.Errorf("%s got %v, want the chat of %+v from ci with data {\"build\":7}", tc.name, tc.f, tc.m)
		}
	}
	var h historyAnswer
	ts.do(t, "GET", "/api/rooms/news/messages", "").decode(t, &h)
	if len(h.Messages) != 1 || h.Messages[0]["id"] != got.Messages[2].ID {
		t.Errorf("news history = %+v, want the one message %s", h.Messages, got.Messages[2].ID)
	}
}

func TestPublishManyUpToTheLimit(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	got := ts.publishMany(t, `{"rooms":`+roomsJSON(partyline.MaxPublishRooms)+`,"content":"all"}`)
	if len(got.Messages) != partyline.MaxPublishRooms {
		t.Fatalf("%d messages, want %d", len(got.Messages), partyline.MaxPublishRooms)
	}
	for i, m := range got.Messages {
		if m.Room != fmt.Sprintf("r%d", i) || m.Seq != 1 {
			t.Fatalf("messages[%d] = %+v, want room r%d, seq 1", i, m, i)
		}
	}
}

func TestPublishManyChecksEverythingFirst(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, tc := range []struct{ body, code, mention string }{
		{`{"rooms":[],"content":"x"}`, partyline.CodeBadRequest, "1 to 100 rooms"},
		{`{"content":"x"}`, partyline.CodeBadRequest, "1 to 100 rooms"},
		{`{"rooms":null,"content":"x"}`, partyline.CodeBadRequest, "1 to 100 rooms"},
		{`{"rooms":` + roomsJSON(partyline.MaxPublishRooms+1) + `,"content":"x"}`, partyline.CodeBadRequest, "not 101"},
		{`{"rooms":["ok","b","ok"],"content":"x"}`, partyline.CodeBadRequest, `"ok" twice`},
		{`{"rooms":["ok","bad room"],"content":"x"}`, partyline.CodeInvalidRoom, `rooms[1] "bad room"`},
		{`{"rooms":["ok",""],"content":"x"}`, partyline.CodeInvalidRoom, `rooms[1] ""`},
		{`{"rooms":["ok","` + strings.Repeat("r", 65) + `"],"content":"x"}`, partyline.CodeInvalidRoom, "rooms[1]"},
		{`{"rooms":["ok"]}`, partyline.CodeBadRequest, "content or data"},
		{`{"rooms":["ok"],"content":"","data":null}`, partyline.CodeBadRequest, "content or data"},
		{`{"rooms":["ok"],"content":"x","username":"no spaces"}`, partyline.CodeInvalidUsername, "username"},
		{`{"rooms":"ok","content":"x"}`, partyline.CodeBadRequest, `"rooms"`},
		{`{"rooms":[1],"content":"x"}`, partyline.CodeBadRequest, `"rooms"`},
		{`{"rooms":["ok"],"content":"x","room":"ok"}`, partyline.CodeBadRequest, "unknown field"},
		{`not json`, partyline.CodeBadRequest, "JSON"},
	} {
		resp := ts.do(t, "POST", "/api/messages", tc.body)
		if resp.status != http.StatusBadRequest || resp.errorCode(t) != tc.code || !strings.Contains(resp.message(), tc.mention) {
			t.Errorf("POST /api/messages %.80s: %d %s, want 400 %s mentioning %s", tc.body, resp.status, resp.body, tc.code, tc.mention)
		}
	}
	if info := ts.roomInfo(t, "ok"); info.LastSeq != 0 {
		t.Errorf("room ok has last_seq %d after refused requests, want 0: nothing stored", info.LastSeq)
	}
	if resp := ts.do(t, "GET", "/api/messages", ""); resp.status != http.StatusMethodNotAllowed || resp.header.Get("Allow") != "POST" {
		t.Errorf("GET /api/messages: %d Allow %q, want 405 Allow POST", resp.status, resp.header.Get("Allow"))
	}
}
