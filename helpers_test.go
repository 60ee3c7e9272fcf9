package partyline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
)

// waitTime bounds every wait of a test.
const waitTime = 5 * time.Second

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
	mux.Handle("/ws", srv)
	mux.Handle("/ws/{room}", srv)
	hs := httptest.NewServer(mux)
	ts := &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return ts
}

// frame is one decoded server frame.
type frame map[string]any

func (f frame) str(key string) string { s, _ := f[key].(string); return s }

func (f frame) num(key string) uint64 { n, _ := f[key].(float64); return uint64(n) }

func (f frame) strings(key string) []string {
	list, ok := f[key].([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// client is a test WebSocket client that splits batched frames.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	pending []frame
}

// dial connects to path (e.g. "/ws?username=alice&room=lobby") and reads
// the welcome frame.
func (ts *testServer) dial(t testing.TB, path string) *client {
	t.Helper()
	c := ts.dialRaw(t, path, nil)
	if f := c.next(); f.str("type") != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c
}

// dialRaw connects without reading anything.
func (ts *testServer) dialRaw(t testing.TB, path string, header http.Header) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(ts.url+path, header)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", path, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
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

func (c *client) send(v any) {
	c.t.Helper()
	c.ws.SetWriteDeadline(time.Now().Add(waitTime))
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send %v: %v", v, err)
	}
}

func (c *client) sendText(s string) {
	c.t.Helper()
	c.ws.SetWriteDeadline(time.Now().Add(waitTime))
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// read returns the next frame or the read error.
func (c *client) read(timeout time.Duration) (frame, error) {
	for len(c.pending) == 0 {
		c.ws.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f frame
			if err := json.Unmarshal(line, &f); err != nil {
				return nil, err
			}
			c.pending = append(c.pending, f)
		}
	}
	f := c.pending[0]
	c.pending = c.pending[1:]
	return f, nil
}

func (c *client) next() frame {
	c.t.Helper()
	f, err := c.read(waitTime)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// expect reads the next frame and checks its type.
func (c *client) expect(kind string) frame {
	c.t.Helper()
	f := c.next()
	if f.str("type") != kind {
		c.t.Fatalf("got frame %v, want type %q", f, kind)
	}
	return f
}

// waitFor skips frames until one of the given type arrives.
func (c *client) waitFor(kind string) frame {
	c.t.Helper()
	deadline := time.Now().Add(waitTime)
	for time.Now().Before(deadline) {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", kind, err)
		}
		if f.str("type") == kind {
			return f
		}
	}
	c.t.Fatalf("no %q frame within %s", kind, waitTime)
	return nil
}

// closeCode reads until the server closes the connection and returns the
// close code (1006 when it closed without a close frame).
func (c *client) closeCode() int {
	c.t.Helper()
	deadline := time.Now().Add(waitTime)
	for time.Now().Before(deadline) {
		_, err := c.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure
	}
	c.t.Fatalf("connection not closed within %s", waitTime)
	return 0
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
