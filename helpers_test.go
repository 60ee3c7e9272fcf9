package partyline_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// waitTime bounds every wait of a test.
const waitTime = wstest.Wait

// testServer is a partyline Server behind a real loopback HTTP server.
type testServer struct {
	*partyline.Server
	http *httptest.Server
	url  string // ws://127.0.0.1:port
}

// startServer serves opts on loopback and shuts the server down at the end
// of the test.
func startServer(t testing.TB, opts partyline.Options) *testServer {
	t.Helper()
	srv, err := partyline.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	// Every method reaches the Server, which answers those it does not
	// serve itself (405 method_not_allowed).
	for _, pattern := range []string{"/ws", "/ws/{room}", "/sse", "/sse/{room}", "POST /sse/{session}"} {
		mux.Handle(pattern, srv)
	}
	hs := httptest.NewServer(mux)
	shutDownAtEnd(t, srv, hs)
	return &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// shutDownAtEnd shuts srv down, then hs, when the test ends.
func shutDownAtEnd(t testing.TB, srv *partyline.Server, hs *httptest.Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
}

// dial connects to path (e.g. "/ws?username=alice&room=lobby") and reads
// the welcome frame.
func (ts *testServer) dial(t testing.TB, path string) *wstest.Client {
	t.Helper()
	c := ts.dialRaw(t, path, nil)
	if f := c.Next(); f.Str("type") != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c
}

// dialRaw connects without reading anything.
func (ts *testServer) dialRaw(t testing.TB, path string, header http.Header) *wstest.Client {
	t.Helper()
	return wstest.Dial(t, ts.url+path, header)
}

// refusal dials path expecting an HTTP refusal; it returns the status and
// the error code of the JSON body.
func (ts *testServer) refusal(t testing.TB, path string, header http.Header) (int, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(ts.url+path, header)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s succeeded, want a refusal", path)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, with no HTTP response", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("dial %s: refusal body is not JSON: %v", path, err)
	}
	if body.Error.Message == "" {
		t.Errorf("dial %s: refusal %q has no message", path, body.Error.Code)
	}
	return resp.StatusCode, body.Error.Code
}

// waitUntil polls cond until it holds, failing the test after waitTime.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
