package partyline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// streamServer serves opts' WebSocket and SSE transports on loopback and
// returns the server and its http:// URL.
func streamServer(t *testing.T, opts partyline.Options) (*partyline.Server, string) {
	t.Helper()
	ts := startServer(t, opts)
	return ts.Server, ts.http.URL
}

// sseEvent is one event of a stream, or a comment.
type sseEvent struct {
	id      string
	hasID   bool
	data    wstest.Frame
	comment string
}

// stream is an SSE client: a goroutine reads its events into a channel.
type stream struct {
	t       *testing.T
	base    string
	session string
	events  chan sseEvent
	body    io.Closer
	ended   chan struct{} // closed when the response body ends
}

// openStream opens base+path with header and reads its welcome.
func openStream(t *testing.T, base, path string, header http.Header) *stream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s %q, want a 200 event stream", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &stream{t: t, base: base, events: make(chan sseEvent, 1000), body: resp.Body, ended: make(chan struct{})}
	go s.read(resp.Body)
	t.Cleanup(func() { s.body.Close() })
	welcome := s.next()
	if welcome.data.Str("type") != "welcome" {
		t.Fatalf("first event %v, want welcome", welcome.data)
	}
	s.session = welcome.data.Str("session")
	return s
}

// read parses events: lines up to a blank one (text/event-stream).
func (s *stream) read(body io.Reader) {
	defer close(s.ended)
	lines := bufio.NewScanner(body)
	var e sseEvent
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == "":
			if e.data != nil || e.comment != "" {
				s.events <- e
			}
			e = sseEvent{}
		case strings.HasPrefix(line, ":"):
			e.comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "id: "):
			e.id, e.hasID = line[len("id: "):], true
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[len("data: "):]), &e.data); err != nil {
				s.t.Errorf("event data %q is not one JSON object: %v", line, err)
			}
		default:
			s.t.Errorf("unexpected line %q in the stream", line)
		}
	}
}

// next returns the next event that is not a comment.
func (s *stream) next() sseEvent {
	s.t.Helper()
	for {
		select {
		case e := <-s.events:
			if e.comment == "" {
				return e
			}
		case <-time.After(waitTime):
			s.t.Fatal("no event within the wait")
		}
	}
}

// waitFor skips events until one of type kind.
func (s *stream) waitFor(kind string) sseEvent {
	s.t.Helper()
	for {
		if e := s.next(); e.data.Str("type") == kind {
			return e
		}
	}
}

// post sends one client message and returns the status and error code.
func (s *stream) post(session string, body string, header http.Header) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/sse/"+session, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var refusal struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&refusal)
	return resp.StatusCode, refusal.Error.Code
}

// send posts a message that must be accepted.
func (s *stream) send(v any) {
	s.t.Helper()
	b, _ := json.Marshal(v)
	if status, code := s.post(s.session, string(b), nil); status != http.StatusAccepted {
		s.t.Fatalf("POST %s: %d %s, want 202", b, status, code)
	}
}

func TestStreamChat(t *testing.T) {
	_, base := streamServer(t, partyline.Options{})
	alice := openStream(t, base, "/sse/lobby?username=alice", nil)
	if !strings.HasPrefix(alice.session, "alice~") || len(alice.session) != len("alice~")+32 {
		t.Errorf("session %q, want alice~ and 128 random bits", alice.session)
	}
	joined := alice.next()
	if joined.data.Str("type") != "joined" || !joined.hasID || joined.id != "lobby=0" {
		t.Fatalf("after welcome: %v id %q, want joined with id lobby=0", joined.data, joined.id)
	}
	if users := alice.next(); users.data.Str("type") != "online_users" || users.hasID {
		t.Fatalf("after joined: %v (id %v), want online_users without an id", users.data, users.hasID)
	}

	alice.send(map[string]any{"type": "join", "room": "design"})
	if e := alice.waitFor("joined"); e.id != "design=0,lobby=0" {
		t.Errorf("joined design with id %q, want design=0,lobby=0", e.id)
	}
	alice.send(map[string]any{"type": "chat", "room": "lobby", "content": "hello", "id": 1})
	chat := alice.waitFor("chat")
	if chat.data.Str("content") != "hello" || chat.id != "design=0,lobby=1" {
		t.Errorf("chat %v with id %q, want hello with id design=0,lobby=1", chat.data, chat.id)
	}
	if ack := alice.waitFor("ack"); ack.data.Num("seq") != 1 {
		t.Errorf("ack %v, want seq 1", ack.data)
	}
	alice.send(map[string]any{"type": "leave", "room": "design"})
	if left := alice.waitFor("left"); left.id != "lobby=1" {
		t.Errorf("left with id %q, want lobby=1", left.id)
	}
	// A WebSocket client in the same room sees the stream's user.
	_, ws := dialWS(t, base, "/ws/lobby?username=bob")
	ws.WaitFor("joined")
	if status, _ := alice.post(alice.session, "plain text works too", nil); status != http.StatusAccepted {
		t.Fatalf("POST of plain text: %d, want 202", status)
	}
	if f := ws.WaitFor("chat"); f.Str("username") != "alice" || f.Str("content") != "plain text works too" {
		t.Errorf("bob got %v", f)
	}
}

// dialWS opens a WebSocket to the server at base.
func dialWS(t *testing.T, base, path string) (string, *wstest.Client) {
	t.Helper()
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(base, "http")+path, nil)
	if f := c.Next(); f.Str("type") != "welcome" {
		t.Fatalf("first frame %v, want welcome", f)
	}
	return path, c
}

// TestStreamResumes reconnects with the last event id: every room in it is
// joined with since, and nothing is lost or repeated.
func TestStreamResumes(t *testing.T) {
	srv, base := streamServer(t, partyline.Options{})
	ctx := context.Background()
	first := openStream(t, base, "/sse?username=alice&room=lobby&room=design", nil)
	for range 2 { // the URL's rooms are joined after the welcome: publish once they are
		first.waitFor("joined")
	}
	for range 2 {
		srv.Publish(ctx, "lobby", partyline.Publication{Content: "before"})
	}
	var last sseEvent
	for range 2 {
		last = first.waitFor("chat")
	}
	if last.id != "design=0,lobby=2" {
		t.Fatalf("last id %q, want design=0,lobby=2", last.id)
	}
	first.body.Close()
	for i := range 3 {
		srv.Publish(ctx, "lobby", partyline.Publication{Content: fmt.Sprint("missed ", i)})
	}
	srv.Publish(ctx, "design", partyline.Publication{Content: "missed in design"})

	again := openStream(t, base, "/sse?username=alice", http.Header{"Last-Event-Id": {last.id}})
	seen := map[string][]uint64{}
	for len(seen["lobby"]) < 3 || len(seen["design"]) < 1 {
		e := again.next()
		switch e.data.Str("type") {
		case "joined":
			if e.data["recovered"] != true {
				t.Errorf("rejoined %v without recovery", e.data)
			}
		case "chat":
			room := e.data.Str("room")
			seen[room] = append(seen[room], e.data.Num("seq"))
		}
	}
	if fmt.Sprint(seen["lobby"]) != "[3 4 5]" || fmt.Sprint(seen["design"]) != "[1]" {
		t.Errorf("after resuming: %v, want lobby 3 4 5 and design 1", seen)
	}
	// The query parameter serves a client that cannot set the header.
	third := openStream(t, base, "/sse?username=carol&last_event_id=lobby%3D5", nil)
	if e := third.waitFor("joined"); e.data.Str("room") != "lobby" || e.data["recovered"] != true {
		t.Errorf("joined %v, want lobby recovered", e.data)
	}
}

// TestStreamRejoinDuringReplay: a join of a room whose replay is under
// way answers joined without moving the stream's resume point past what
// the replay has yet to bring; the replay's chats move it.
func TestStreamRejoinDuringReplay(t *testing.T) {
	store := &gatedStore{MemoryStore: partyline.NewMemoryStore(0), held: make(chan struct{}), release: make(chan struct{})}
	srv, base := streamServer(t, partyline.Options{Store: store})
	release := sync.OnceFunc(func() { close(store.release) })
	t.Cleanup(release) // before the server stops, which waits for the replay
	for i := range 10 {
		srv.Publish(t.Context(), "rq", partyline.Publication{Content: fmt.Sprint(i)})
	}
	s := openStream(t, base, "/sse?username=alice", http.Header{"Last-Event-Id": {"rq=0"}})
	if e := s.waitFor("joined"); e.data["recovered"] != true || e.id != "rq=0" {
		t.Fatalf("joined %v with id %q, want recovered with id rq=0", e.data, e.id)
	}
	select {
	case <-store.held:
	case <-time.After(waitTime):
		t.Fatal("the replay did not ask for its first page")
	}
	s.send(map[string]any{"type": "join", "room": "rq"})
	if e := s.waitFor("joined"); e.hasID && e.id != "rq=0" {
		t.Fatalf("joined again during the replay with id %q, which claims chats not yet sent", e.id)
	}
	release()
	for want := uint64(1); want <= 10; want++ {
		if e := s.waitFor("chat"); e.data.Num("seq") != want || e.id != fmt.Sprintf("rq=%d", want) {
			t.Fatalf("chat %v with id %q, want seq %d with id rq=%d", e.data, e.id, want, want)
		}
	}
}

func TestStreamRefusals(t *testing.T) {
	_, base := streamServer(t, partyline.Options{MaxMessageSize: 100})
	alice := openStream(t, base, "/sse?username=alice", nil)
	for _, tc := range []struct {
		name, session, body string
		status              int
		code                string
	}{
		{"an unknown session", "alice~" + strings.Repeat("0", 32), `{"type":"ping"}`, 404, "not_found"},
		{"a malformed session", "nobody", `{"type":"ping"}`, 404, "not_found"},
		{"another user's session", "bob" + alice.session[len("alice"):], `{"type":"ping"}`, 404, "not_found"},
		{"a body over the limit", alice.session, strings.Repeat("x", 101), 413, "too_large"},
	} {
		if status, code := alice.post(tc.session, tc.body, nil); status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/sse/lobby?username=alice", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("PUT /sse/lobby: %d, Allow %q; want 405, GET, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	for path, code := range map[string]string{
		"/sse?username=alice&last_event_id=lobby": "bad_request",
		"/sse?username=al%20ice":                  "invalid_username",
		"/sse/bad%20room?username=alice":          "invalid_room",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		var refusal struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&refusal)
		resp.Body.Close()
		if resp.StatusCode != 400 || refusal.Error.Code != code {
			t.Errorf("GET %s: %d %s, want 400 %s", path, resp.StatusCode, refusal.Error.Code, code)
		}
	}
}

// TestStreamCloses checks that the server's close is an event, then the
// end of the stream, and that the stream is pinged with comments.
func TestStreamCloses(t *testing.T) {
	srv, base := streamServer(t, partyline.Options{PingInterval: 50 * time.Millisecond, PongWait: 100 * time.Millisecond})
	alice := openStream(t, base, "/sse?username=alice", nil)
	for deadline := time.After(waitTime); ; {
		select {
		case e := <-alice.events:
			if e.comment != "ping" {
				continue
			}
		case <-deadline:
			t.Fatal("no ping comment")
		}
		break
	}
	time.Sleep(200 * time.Millisecond) // two pong waits: a stream answers no ping and must stay
	if n, err := srv.Disconnect(context.Background(), "alice"); n != 1 || err != nil {
		t.Fatalf("Disconnect: %d, %v; want 1", n, err)
	}
	closing := alice.waitFor("close")
	if closing.data.Num("code") != 4003 || closing.data.Str("reason") == "" {
		t.Errorf("close event %v, want 4003 with a reason", closing.data)
	}
	select {
	case <-alice.ended:
	case <-time.After(waitTime):
		t.Fatal("the stream did not end after its close event")
	}
}

func TestTransportsServedAreChosen(t *testing.T) {
	_, base := streamServer(t, partyline.Options{Transports: []string{partyline.TransportSSE}})
	resp, err := http.Get(base + "/ws?username=alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ws with only SSE served: %d, want 404", resp.StatusCode)
	}
	openStream(t, base, "/sse?username=alice", nil)
	if _, err := partyline.New(partyline.Options{Transports: []string{"carrier-pigeon"}}); err == nil {
		t.Error("New accepted an unknown transport")
	}
}
