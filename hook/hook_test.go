package hook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/hook"
	"github.com/partyline/partyline/internal/wstest"
	"github.com/partyline/partyline/webhook"
)

const secret = "hook-secret"

// backend is the application's backend: one real HTTP server whose hooks
// the test scripts. Every request's signature is verified.
type backend struct {
	*httptest.Server
	mu       sync.Mutex
	handlers map[string]handler          // by path
	bodies   map[string][]map[string]any // what each hook was asked
	unsigned int
	// hung is closed when the test ends, freeing handlers that hang
	// past the hook timeout (see hang), so the server can close.
	hung chan struct{}
}

func newBackend(t *testing.T) *backend {
	b := &backend{handlers: map[string]handler{}, bodies: map[string][]map[string]any{}, hung: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var asked map[string]any
		json.Unmarshal(body, &asked)
		b.mu.Lock()
		if webhook.Verify([]byte(secret), r.Header.Get(webhook.SignatureHeader), body, time.Now(), time.Minute) != nil {
			b.unsigned++
		}
		b.bodies[r.URL.Path] = append(b.bodies[r.URL.Path], asked)
		handler := b.handlers[r.URL.Path]
		b.mu.Unlock()
		if handler == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		handler(w, asked)
	}))
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(b.hung) }) // before Close, which waits for the handlers
	t.Cleanup(func() {
		if b.unsigned > 0 {
			t.Errorf("%d hook requests had no valid signature", b.unsigned)
		}
	})
	return b
}

// hang makes a handler answer only once the test ends: past any hook
// timeout.
func (b *backend) hang() { <-b.hung }

// handler answers one hook call; asked is its decoded body.
type handler func(w http.ResponseWriter, asked map[string]any)

// on scripts the answer of the hook at path.
func (b *backend) on(path string, status int, body string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers[path] = func(w http.ResponseWriter, _ map[string]any) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// asked returns what the hook at path was asked, in order.
func (b *backend) asked(path string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bodies[path]
}

// hookedServer is a partyline Server asking b, on loopback.
type hookedServer struct {
	*partyline.Server
	url   string
	store *partyline.MemoryStore
}

func startHooked(t *testing.T, b *backend, opts hook.Options) *hookedServer {
	t.Helper()
	opts.Secret = []byte(secret)
	opts.Timeout = time.Second // room for a busy machine, well within the tests' waits
	hooks, err := hook.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	store := partyline.NewMemoryStore(0)
	srv, err := partyline.New(partyline.Options{Store: store, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("/ws/{room}", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return &hookedServer{Server: srv, url: "ws" + strings.TrimPrefix(hs.URL, "http"), store: store}
}

// dial connects and reads the welcome.
func (s *hookedServer) dial(t *testing.T, path string, header http.Header) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, s.url+path, header)
	if f := c.Next(); f.Str("type") != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c
}

// refusal dials path expecting an HTTP refusal; it returns the status and
// the error code.
func (s *hookedServer) refusal(t *testing.T, path string, header http.Header) (int, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.url+path, header)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s succeeded, want a refusal", path)
	}
	defer resp.Body.Close()
	var body struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Code
}

func TestConnectHookIdentifiesACookieSession(t *testing.T) {
	b := newBackend(t)
	b.on("/connect", http.StatusOK, `{"username":"alice","rooms":["team:*","lobby"],"join":["team:red"]}`)
	srv := startHooked(t, b, hook.Options{ConnectURL: b.URL + "/connect"})
	header := http.Header{"Cookie": {"session=s3cr3t"}, "X-Other": {"not passed"}}
	c := wstest.Dial(t, srv.url+"/ws/lobby?username=mallory&x=1", header)
	welcome := c.Next()
	if welcome.Str("username") != "alice" || strings.Join(welcome.Strings("rooms"), ",") != "lobby,team:red" {
		t.Fatalf("welcome = %v, want alice in lobby and team:red", welcome)
	}
	c.Expect("joined")
	c.Expect("online_users")
	if f := c.Expect("joined"); f.Str("room") != "team:red" {
		t.Fatalf("second joined = %v, want team:red from the hook", f)
	}
	asked := b.asked("/connect")[0]
	headers, _ := asked["headers"].(map[string]any)
	query, _ := asked["query"].(map[string]any)
	if headers["Cookie"] != "session=s3cr3t" || headers["X-Other"] != nil || query["x"] != "1" || asked["remote_addr"] == "" {
		t.Errorf("connect hook was asked %v", asked)
	}
	c.Send(map[string]any{"type": "join", "room": "design", "id": 1})
	if e := c.WaitFor("error"); e.Str("code") != "forbidden" {
		t.Errorf("join outside the hook's rooms = %v, want forbidden", e)
	}
}

func TestConnectHookRefuses(t *testing.T) {
	b := newBackend(t)
	srv := startHooked(t, b, hook.Options{ConnectURL: b.URL + "/connect"})
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		slow       bool
		wantStatus int
		wantCode   string
	}{
		{"401", http.StatusUnauthorized, ``, false, 401, "unauthorized"},
		{"403", http.StatusForbidden, ``, false, 403, "forbidden"},
		{"403 in HTML", http.StatusForbidden, `<html>Forbidden</html>`, false, 403, "forbidden"},
		{"join outside its rooms", http.StatusOK, `{"username":"alice","rooms":["lobby"],"join":["x"]}`, false, 503, "unavailable"},
		{"bad room to join", http.StatusOK, `{"username":"alice","join":["no spaces"]}`, false, 503, "unavailable"},
		{"bad rooms entry", http.StatusOK, `{"username":"alice","rooms":["*"]}`, false, 503, "unavailable"},
		{"500", http.StatusInternalServerError, `{"username":"alice"}`, false, 503, "unavailable"},
		{"bad JSON", http.StatusOK, `{"username":`, false, 503, "unavailable"},
		{"bad username", http.StatusOK, `{"username":"no spaces allowed"}`, false, 503, "unavailable"},
		{"redirect", http.StatusFound, ``, false, 503, "unavailable"},
		{"timeout", http.StatusOK, `{"username":"alice"}`, true, 503, "unavailable"},
	} {
		b.mu.Lock()
		b.handlers["/connect"] = func(w http.ResponseWriter, _ map[string]any) {
			if tc.slow {
				b.hang() // beyond the hook timeout
			}
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}
		b.mu.Unlock()
		if status, code := srv.refusal(t, "/ws?username=alice", nil); status != tc.wantStatus || code != tc.wantCode {
			t.Errorf("%s: refusal %d %s, want %d %s", tc.name, status, code, tc.wantStatus, tc.wantCode)
		}
	}
}

func TestJoinHook(t *testing.T) {
	b := newBackend(t)
	b.mu.Lock()
	b.handlers["/join"] = func(w http.ResponseWriter, asked map[string]any) {
		if asked["room"] == "secret" {
			w.WriteHeader(http.StatusForbidden)
		}
	}
	b.mu.Unlock()
	srv := startHooked(t, b, hook.Options{JoinURL: b.URL + "/join"})
	if status, code := srv.refusal(t, "/ws/secret?username=alice", nil); status != 403 || code != "forbidden_room" {
		t.Errorf("URL room refused by the join hook: %d %s, want 403 forbidden_room", status, code)
	}
	c := srv.dial(t, "/ws/lobby?username=alice", nil)
	c.Expect("joined")
	c.Send(map[string]any{"type": "join", "room": "secret", "id": 1})
	if e := c.WaitFor("error"); e.Str("code") != "forbidden" || e.Str("id") != "" && e.Num("id") != 1 {
		t.Errorf("join refused by the hook = %v, want forbidden", e)
	}
	c.Send(map[string]any{"type": "join", "room": "open", "id": 2})
	if f := c.WaitFor("joined"); f.Str("room") != "open" {
		t.Errorf("join allowed by the hook = %v", f)
	}
	asked := b.asked("/join")
	if len(asked) != 4 || asked[3]["username"] != "alice" || asked[3]["room"] != "open" {
		t.Errorf("join hook was asked %v", asked)
	}
}

func TestPublishHook(t *testing.T) {
	b := newBackend(t)
	b.mu.Lock()
	b.handlers["/publish"] = func(w http.ResponseWriter, asked map[string]any) {
		switch asked["content"] {
		case "darn":
			io.WriteString(w, `{"content":"d**n","data":{"moderated":true}}`)
		case "spam":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":{"message":"no spam here"}}`)
		case "rude", "crude":
			// Not the JSON the table describes: refused all the same.
			http.Error(w, map[string]string{"rude": "Forbidden", "crude": `{"error":"nope"}`}[asked["content"].(string)], http.StatusForbidden)
		case "slow":
			b.hang()
		case "broken":
			w.WriteHeader(http.StatusBadGateway)
		case "emptied":
			io.WriteString(w, `{"content":""}`) // nothing left to post
		}
	}
	b.mu.Unlock()
	srv := startHooked(t, b, hook.Options{PublishURL: b.URL + "/publish"})
	alice := srv.dial(t, "/ws/lobby?username=alice", nil)
	alice.Expect("joined")
	bob := srv.dial(t, "/ws/lobby?username=bob", nil)
	bob.Expect("joined")

	for i, content := range []string{"spam", "rude", "crude", "slow", "broken", "emptied"} {
		alice.Send(map[string]any{"type": "chat", "content": content, "id": i})
		want := map[string]string{"spam": "forbidden", "rude": "forbidden", "crude": "forbidden", "slow": "unavailable", "broken": "unavailable", "emptied": "unavailable"}[content]
		e := alice.WaitFor("error")
		if e.Str("code") != want || content == "spam" && e.Str("message") != "no spam here" {
			t.Errorf("chat %q = %v, want %s", content, e, want)
		}
	}
	if last, _ := srv.store.LastSeq(context.Background(), "lobby"); last != 0 {
		t.Fatalf("refused chats were stored: last seq %d", last)
	}
	alice.Send(map[string]any{"type": "chat", "content": "darn", "id": 9})
	chat := bob.WaitFor("chat")
	if chat.Str("content") != "d**n" || chat.Num("seq") != 1 {
		t.Errorf("rewritten chat = %v, want d**n at seq 1", chat)
	}
	if data, _ := json.Marshal(chat["data"]); string(data) != `{"moderated":true}` {
		t.Errorf("rewritten data = %s", data)
	}
	history, _ := srv.store.History(context.Background(), "lobby", partyline.HistoryQuery{Limit: 10})
	if len(history) != 1 || history[0].Content != "d**n" {
		t.Errorf("history = %v, want the rewritten message", history)
	}
	if _, err := srv.Publish(context.Background(), "lobby", partyline.Publication{Content: "spam"}); partyline.ErrorCode(err) != partyline.CodeForbidden {
		t.Errorf("Publish refused by the hook = %v, want forbidden", err)
	}
	many, err := srv.PublishMany(context.Background(), []string{"lobby", "other"}, partyline.Publication{Content: "darn"})
	if err != nil || len(many) != 2 || many[0].Content != "d**n" || many[1].Content != "d**n" {
		t.Errorf("PublishMany through the hook = %v, %v, want both rewritten", many, err)
	}
	if _, err := srv.PublishMany(context.Background(), []string{"quiet", "lobby"}, partyline.Publication{Content: "spam"}); partyline.ErrorCode(err) != partyline.CodeForbidden {
		t.Errorf("PublishMany refused by the hook = %v, want forbidden", err)
	}
	if last, _ := srv.store.LastSeq(context.Background(), "quiet"); last != 0 {
		t.Errorf("a refused PublishMany stored %d messages", last)
	}
	if asked := b.asked("/publish"); asked[len(asked)-1]["username"] != "system" {
		t.Errorf("publish hook for an API message was asked %v", asked[len(asked)-1])
	}
}

func TestIdempotentRetryDoesNotAskAgain(t *testing.T) {
	b := newBackend(t)
	srv := startHooked(t, b, hook.Options{PublishURL: b.URL + "/publish"})
	pub := partyline.Publication{Content: "hi"}
	first, replayed, err := srv.PublishOnce(t.Context(), "k1", []string{"lobby"}, pub)
	if err != nil || replayed {
		t.Fatalf("PublishOnce = %v, %v, %v; want a new message", first, replayed, err)
	}
	// The backend has changed its mind, or is down: the message is stored
	// all the same, and a retry must learn so.
	for _, status := range []int{http.StatusForbidden, http.StatusInternalServerError} {
		b.on("/publish", status, ``)
		again, replayed, err := srv.PublishOnce(t.Context(), "k1", []string{"lobby"}, pub)
		if err != nil || !replayed || len(again) != 1 || again[0].ID != first[0].ID {
			t.Errorf("retry with the hook answering %d = %v, %v, %v; want the first message replayed", status, again, replayed, err)
		}
	}
	if n := len(b.asked("/publish")); n != 1 {
		t.Errorf("the publish hook was asked %d times, want once: a replay stores nothing to ask about", n)
	}
}

func TestHookReusesConnections(t *testing.T) {
	var mu sync.Mutex
	clients := map[string]bool{} // the addresses calls came from: one a connection
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		clients[r.RemoteAddr] = true
	}))
	defer b.Close()
	hooks, err := hook.New(hook.Options{PublishURL: b.URL + "/publish", Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	const concurrent, rounds = 10, 5
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				if _, err := hooks.Publish(t.Context(), "alice", "lobby", partyline.Content{Text: "hi"}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// The standard library's default keeps 2 idle connections a host: 42.
	mu.Lock()
	defer mu.Unlock()
	if n := len(clients); n > concurrent {
		t.Errorf("%d calls, %d at a time, opened %d connections, want at most %d", concurrent*rounds, concurrent, n, concurrent)
	}
}

func TestHookLogsNoCredentials(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more
	var logged strings.Builder
	var mu sync.Mutex
	hooks, err := hook.New(hook.Options{
		PublishURL: strings.Replace(closed.URL, "http://", "http://user:hunter2@", 1) + "/publish?token=TOPSECRET",
		Secret:     []byte(secret),
		Logger:     slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = hooks.Publish(t.Context(), "alice", "lobby", partyline.Content{Text: "hi"})
	if partyline.ErrorCode(err) != partyline.CodeUnavailable {
		t.Fatalf("Publish with the backend down = %v, want unavailable", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, secret := range []string{"TOPSECRET", "hunter2"} {
		if strings.Contains(logged.String(), secret) || strings.Contains(fmt.Sprint(errors.Unwrap(err)), secret) {
			t.Errorf("%q leaked: logged %q, error %v", secret, logged.String(), errors.Unwrap(err))
		}
	}
	if !strings.Contains(logged.String(), "hook refused") {
		t.Errorf("logged %q, want why the hook refused", logged.String())
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, opts := range map[string]hook.Options{
		"no secret":    {ConnectURL: "http://backend/connect"},
		"relative URL": {JoinURL: "/join", Secret: []byte("s")},
		"ftp URL":      {PublishURL: "ftp://backend/publish", Secret: []byte("s")},
	} {
		if _, err := hook.New(opts); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}
