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
	overSocketAndTLS(t, opts, func(t *testing.T, srv *partyline.Server, sub *wstest.Client) {
		checkDelayedTogether(t, srv, sub, opts.WriteDelay)
	})
}

// overSocketAndTLS runs check in a subtest for each way a connection is
// written: a server serving opts over plain loopback, and one over TLS,
// each with a subscriber who joined the room lobby and read its welcome.
func overSocketAndTLS(t *testing.T, opts partyline.Options, check func(t *testing.T, srv *partyline.Server, sub *wstest.Client)) {
	t.Run("socket", func(t *testing.T) {
		ts := startServer(t, opts)
		check(t, ts.Server, ts.dial(t, "/ws?username=sub&room=lobby"))
	})
	t.Run("tls", func(t *testing.T) {
		srv, url, dialer := startTLSServer(t, opts)
		conn, _, err := dialer.Dial(url+"/ws?username=sub&room=lobby", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c := wstest.New(t, conn)
		c.Expect("welcome")
		check(t, srv, c)
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
		publishChat(t, srv, fmt.Sprint(i))
	}
	contents, err := chatsOfOneMessage(sub)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if waited := time.Since(start); waited < delay {
		t.Errorf("the chats arrived %v after the first was published; want no sooner than the write delay, %v", waited, delay)
	}
	if got := strings.Join(contents, ","); got != "0,1,2" {
		t.Errorf("one WebSocket message carried the contents %q; want all three chats, in order: 0,1,2", got)
	}
}

// TestWriteDelayNeverEvicts: a stream that would fill the send queue
// within the write delay, though a server without one writes it as it
// comes, reaches the subscriber whole and in order: the queue, half full,
// urges the held write instead of overflowing, on the flush list or on a
// writer goroutine.
func TestWriteDelayNeverEvicts(t *testing.T) {
	opts := partyline.Options{WriteDelay: time.Second, SendQueue: 8, RateLimit: -1}
	overSocketAndTLS(t, opts, func(t *testing.T, srv *partyline.Server, sub *wstest.Client) {
		sub.Expect("joined")
		sub.Expect("online_users")
		const n = 40
		var want []string
		for i := range n {
			want = append(want, fmt.Sprint(i))
			publishChat(t, srv, want[i])
			time.Sleep(5 * time.Millisecond) // 8 within 40 ms, against a delay of 1 s
		}
		var got []string
		for len(got) < n {
			contents, err := chatsOfOneMessage(sub)
			if err != nil {
				t.Fatalf("read after %d of %d chats: %v", len(got), n, err)
			}
			got = append(got, contents...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("the subscriber read %q; want the %d chats in order", got, n)
		}
	})
}

// publishChat publishes a chat with content to the room lobby of srv.
func publishChat(t *testing.T, srv *partyline.Server, content string) {
	t.Helper()
	if _, err := srv.Publish(context.Background(), "lobby", partyline.Publication{Content: content}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// chatsOfOneMessage reads one WebSocket message from sub and returns the
// contents of the chats it carries, in order.
func chatsOfOneMessage(sub *wstest.Client) ([]string, error) {
	sub.Conn.SetReadDeadline(time.Now().Add(waitTime))
	_, data, err := sub.Conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	var contents []string
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var f wstest.Frame
		if err := json.Unmarshal(line, &f); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		contents = append(contents, f.Str("content"))
	}
	return contents, nil
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
