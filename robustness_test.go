package partyline_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// chatAtRate sends chats on c at perSecond of clock's time, each once the
// previous one is answered, for d of that time or until the server closes
// the connection. It returns how many were refused with rate_limited, and
// the close code and when it came (0 and d when it did not).
func chatAtRate(t *testing.T, clock *fakeClock, c *wstest.Client, perSecond int, d time.Duration) (refused, code int, at time.Duration) {
	t.Helper()
	step := time.Second / time.Duration(perSecond)
	for at = 0; at < d; at += step {
		clock.Advance(step)
		c.Send(map[string]any{"type": "chat", "content": "flood", "id": at.String()})
		for answered := false; !answered; {
			f, err := c.Read(waitTime)
			var closed *websocket.CloseError
			switch {
			case errors.As(err, &closed):
				return refused, closed.Code, at
			case err != nil:
				t.Fatalf("at %v of %d chats/s: %v", at, perSecond, err)
			case f.Str("type") == "ack":
				answered = true
			case f.Str("type") == "error" && f.Str("code") == "rate_limited":
				refused++
				answered = true
			case f.Str("type") == "error":
				t.Fatalf("at %v of %d chats/s: %v, want ack or rate_limited", at, perSecond, f)
			}
		}
	}
	return refused, 0, d
}

// TestSustainedFloodIsClosed: a client five times over the limit is
// closed with 4008 within seconds, although one chat in five gets through.
func TestSustainedFloodIsClosed(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	c := ts.dial(t, "/ws?username=flood&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	refused, code, at := chatAtRate(t, clock, c, 5*partyline.DefaultRateLimit, time.Minute)
	if code != partyline.CloseRateLimit || at > 3*time.Second {
		t.Fatalf("100 chats/s against 20/s: closed with %d after %v and %d refusals, want 4008 within 3s", code, at, refused)
	}
}

// TestSlightlyOverTheLimitIsNotClosed: a client 10% over the limit gets
// rate_limited now and then, more than the burst in all, and stays open.
func TestSlightlyOverTheLimitIsNotClosed(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	c := ts.dial(t, "/ws?username=eager&room=lobby")
	c.Expect("joined")
	c.Expect("online_users")
	refused, code, _ := chatAtRate(t, clock, c, 22, time.Minute)
	if code != 0 {
		t.Fatalf("22 chats/s against 20/s: closed with %d after %d refusals, want open", code, refused)
	}
	if refused <= partyline.DefaultRateBurst {
		t.Fatalf("22 chats/s for a minute: %d refusals, want more than the burst of %d", refused, partyline.DefaultRateBurst)
	}
}
