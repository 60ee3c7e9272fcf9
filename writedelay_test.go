package partyline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// TestWriteDelayMergesWhatWaits: with a write delay, the messages
// published within it reach a subscriber together, in one WebSocket
// message and in order, and not before the delay is over. Over a plain
// socket the connection waits on the flush list; over TLS its writer
// goroutine starts after the delay.
func TestWriteDelayMergesWhatWaits(t *testing.T) {
	opts := partyline.Options{WriteDelay: 300 * time.Millisecond, RateLimit: -1}
	t.Run("socket", func(t *testing.T) {
		ts := startServer(t, opts)
		checkDelayedTogether(t, ts.Server, ts.dial(t, "/ws?username=sub&room=lobby"), opts.WriteDelay)
	})
	t.Run("tls", func(t *testing.T) {
		srv, url, dialer := startTLSServer(t, opts)
		conn, _, err := dialer.Dial(url+"/ws?username=sub&room=lobby", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c := wstest.New(t, conn)
		c.Expect("welcome")
		checkDelayedTogether(t, srv, c, opts.WriteDelay)
	})
}

// checkDelayedTogether publishes three chats to the room of sub, which has
// read its welcome, and checks that they arrive in one message, no sooner
// than delay after the first was published.
func checkDelayedTogether(t *testing.T, srv *partyline.Server, sub *wstest.Client, delay time.Duration) {
	t.Helper()
	sub.Expect("joined")
	sub.Expect("online_users")
	// The writer that sent those may still hold the connection for a
	// moment, to find its queue empty; a chat queued before then would
	// join its write at once.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	for i := range 3 {
		if _, err := srv.Publish(context.Background(), "lobby", partyline.Publication{Content: fmt.Sprint(i)}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	sub.Conn.SetReadDeadline(time.Now().Add(waitTime))
	_, data, err := sub.Conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if waited := time.Since(start); waited < delay {
		t.Errorf("the chats arrived %v after the first was published; want no sooner than the write delay, %v", waited, delay)
	}
	var contents []string
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var f wstest.Frame
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		contents = append(contents, f.Str("content"))
	}
	if got := strings.Join(contents, ","); got != "0,1,2" {
		t.Errorf("one WebSocket message carried the contents %q; want all three chats, in order: 0,1,2", got)
	}
}

// TestWriteDelayNeverEvicts: a stream that would fill the send queue
// within the write delay, though a server without one writes it as it
// comes, reaches the subscriber whole and in order: the queue, half full,
// urges the held write instead of overflowing.
func TestWriteDelayNeverEvicts(t *testing.T) {
	opts := partyline.Options{WriteDelay: time.Second, SendQueue: 8, RateLimit: -1}
	ts := startServer(t, opts)
	sub := ts.dial(t, "/ws?username=sub&room=lobby")
	sub.Expect("joined")
	sub.Expect("online_users")
	const n = 40
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint(i))
		if _, err := ts.Server.Publish(context.Background(), "lobby", partyline.Publication{Content: want[i]}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // 8 within 40 ms, against a delay of 1 s
	}
	var got []string
	for len(got) < n {
		sub.Conn.SetReadDeadline(time.Now().Add(waitTime))
		_, data, err := sub.Conn.ReadMessage()
		if err != nil {
			t.Fatalf("read after %d of %d chats: %v", len(got), n, err)
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			var f wstest.Frame
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			got = append(got, f.Str("content"))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the subscriber read %q; want the %d chats in order", got, n)
	}
}

// startTLSServer serves opts over HTTPS on loopback until the test ends,
// and returns the wss:// address and a dialer that trusts it.
func startTLSServer(t *testing.T, opts partyline.Options) (*partyline.Server, string, *websocket.Dialer) {
	t.Helper()
	srv, err := partyline.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewTLSServer(srv)
	shutDownAtEnd(t, srv, hs)
	dialer := &websocket.Dialer{TLSClientConfig: hs.Client().Transport.(*http.Transport).TLSClientConfig}
	return srv, "wss" + strings.TrimPrefix(hs.URL, "https"), dialer
}

// TestWriteDelayBounds: a write delay is between none and MaxWriteDelay.
func TestWriteDelayBounds(t *testing.T) {
	for delay, ok := range map[time.Duration]bool{
		-time.Millisecond:       false,
		0:                       true,
		10 * time.Millisecond:   true,
		partyline.MaxWriteDelay: true,
		partyline.MaxWriteDelay + time.Nanosecond: false,
	} {
		srv, err := partyline.New(partyline.Options{WriteDelay: delay})
		if ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "write-delay") {
			t.Errorf("write delay %v: error %v; want ok %v, or an error naming write-delay", delay, err, ok)
		}
		if srv != nil {
			srv.Shutdown(context.Background())
		}
	}
}
