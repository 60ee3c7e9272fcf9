// Package wstest is a WebSocket client for tests that drive a partyline
// server over the real transport. It splits the server's batched frames
// (one JSON object per line of a message) and bounds every wait by [Wait].
//
// Only _test.go files import it.
package wstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Wait bounds every wait of a Client: each write, and each Next, Expect,
// WaitFor and CloseCode.
const Wait = 5 * time.Second

// Frame is one decoded server frame.
type Frame map[string]any

// Str returns the string field key, or "" when it is missing or not a string.
func (f Frame) Str(key string) string { s, _ := f[key].(string); return s }

// Num returns the number field key, or 0 when it is missing or not a number.
func (f Frame) Num(key string) uint64 { n, _ := f[key].(float64); return uint64(n) }

// Strings returns the list field key with its non-string items as "", or nil
// when it is missing or not a list.
func (f Frame) Strings(key string) []string {
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

// Client is a test's WebSocket connection to a server. Its methods fail the
// test they were created with, so they belong to that test's goroutine,
// except Read, which only returns errors.
type Client struct {
	// Conn is the connection itself, for tests that write raw frames,
	// install handlers or drop it. Frames are read through Read, Next,
	// Expect or WaitFor, which keep the rest of a batch for later.
	Conn *websocket.Conn

	t       testing.TB
	pending []Frame // frames of the last batch not yet returned
}

// Dial connects to url (ws://host:port/path?query) with header and reads
// nothing. It fails t when the server refuses, and closes the connection
// when the test ends.
func Dial(t testing.TB, url string, header http.Header) *Client {
	t.Helper()
	dialer := websocket.Dialer{HandshakeTimeout: Wait}
	conn, resp, err := dialer.Dial(url, header)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", url, err, resp)
	}
	return New(t, conn)
}

// New wraps a connection the test dialed itself (with its own Dialer) and
// closes it when the test ends.
func New(t testing.TB, conn *websocket.Conn) *Client {
	t.Cleanup(func() { conn.Close() })
	return &Client{Conn: conn, t: t}
}

// Send writes v as one JSON text message.
func (c *Client) Send(v any) {
	c.t.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(Wait))
	if err := c.Conn.WriteJSON(v); err != nil {
		c.t.Fatalf("send %v: %v", v, err)
	}
}

// SendText writes s as one text message, as it is.
func (c *Client) SendText(s string) {
	c.t.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(Wait))
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// Read returns the next frame, reading a message for up to timeout when no
// frame of an earlier batch is left. After a read error (a timeout too) the
// connection is unusable: gorilla/websocket returns the same error again.
func (c *Client) Read(timeout time.Duration) (Frame, error) {
	for len(c.pending) == 0 {
		c.Conn.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := c.Conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			var f Frame
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

// Next returns the next frame, failing the test if none comes within Wait.
func (c *Client) Next() Frame {
	c.t.Helper()
	f, err := c.Read(Wait)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// Expect returns the next frame and fails the test unless its type is kind.
func (c *Client) Expect(kind string) Frame {
	c.t.Helper()
	f, err := c.Read(Wait)
	if err != nil {
		c.t.Fatalf("waiting for %q: %v", kind, err)
	}
	if f.Str("type") != kind {
		c.t.Fatalf("got frame %v, want type %q", f, kind)
	}
	return f
}

// WaitFor skips frames until one of type kind arrives and returns it,
// failing the test if none comes within Wait.
func (c *Client) WaitFor(kind string) Frame {
	c.t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		f, err := c.Read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", kind, err)
		}
		if f.Str("type") == kind {
			return f
		}
	}
}

// CloseCode skips frames until the server ends the connection and returns
// its close code: 1006 (websocket.CloseAbnormalClosure) when it ended
// without a close frame. It fails the test if the connection is still open
// after Wait.
func (c *Client) CloseCode() int {
	c.t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		_, err := c.Read(time.Until(deadline))
		if err == nil {
			continue
		}
		var closed *websocket.CloseError
		if errors.As(err, &closed) {
			return closed.Code
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.t.Fatalf("connection not closed within %s", Wait)
		}
		return websocket.CloseAbnormalClosure
	}
}
