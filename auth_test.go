package partyline_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/jwtauth"
)

var testSecret = []byte("correct horse battery staple")

// token signs an HS256 token for sub that expires after ttl, with extra
// claims.
func token(t testing.TB, sub string, ttl time.Duration, extra jwt.MapClaims) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startJWTServer(t testing.TB) *testServer {
	t.Helper()
	v, err := jwtauth.New(jwtauth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, partyline.Options{Authenticator: v})
}

func TestJWTConnect(t *testing.T) {
	ts := startJWTServer(t)
	c := ts.dialRaw(t, "/ws?username=ignored&room=lobby&token="+token(t, "alice", time.Hour, nil), nil)
	if w := c.Expect("welcome"); w.Str("username") != "alice" {
		t.Fatalf("welcome = %v, want the token's sub alice, not the username parameter", w)
	}
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} { // case-insensitive (RFC 7235)
		bearer := http.Header{"Authorization": {scheme + " " + token(t, "bob", time.Hour, nil)}}
		if w := ts.dialRaw(t, "/ws", bearer).Expect("welcome"); w.Str("username") != "bob" {
			t.Fatalf("welcome = %v, want bob from the Authorization header %q", w, scheme)
		}
	}
	other, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "eve"}).SignedString([]byte("wrong key"))
	for name, path := range map[string]string{
		"no token":      "/ws?username=alice",
		"expired token": "/ws?token=" + token(t, "alice", -time.Minute, nil),
		"wrong key":     "/ws?token=" + other,
		"garbage":       "/ws?token=not.a.jwt",
	} {
		if status, code := ts.refusal(t, path, nil); status != 401 || code != "unauthorized" {
			t.Errorf("%s: got %d %s, want 401 unauthorized", name, status, code)
		}
	}
}

func TestJWTRoomsClaim(t *testing.T) {
	ts := startJWTServer(t)
	tok := token(t, "alice", time.Hour, jwt.MapClaims{"rooms": []string{"lobby", "team:*"}})
	if status, code := ts.refusal(t, "/ws?room=secret&token="+tok, nil); status != 403 || code != "forbidden_room" {
		t.Fatalf("connect to a room outside the claim: %d %s, want 403 forbidden_room", status, code)
	}
	c := ts.dial(t, "/ws?room=team:red&token="+tok)
	c.Expect("joined")
	c.Expect("online_users")
	c.Send(map[string]any{"type": "join", "room": "secret", "id": 1})
	if f := c.Expect("error"); f.Str("code") != "forbidden" {
		t.Fatalf("join outside the claim = %v, want forbidden", f)
	}
	c.Send(map[string]any{"type": "join", "room": "lobby"})
	c.Expect("joined")
}

func TestJWTExpiryClosesUnlessRefreshed(t *testing.T) {
	ts := startJWTServer(t)
	short := token(t, "alice", 2500*time.Millisecond, nil) // exp has second precision: 1.5–2.5 s left
	refreshed := ts.dial(t, "/ws?token="+short)
	expiring := ts.dial(t, "/ws?token="+short)
	refreshed.Send(map[string]any{"type": "refresh", "token": token(t, "alice", time.Hour, nil), "id": "r"})
	refreshed.Expect("ack")
	refreshed.Send(map[string]any{"type": "refresh", "token": token(t, "mallory", time.Hour, nil), "id": "m"})
	if f := refreshed.Expect("error"); f.Str("code") != "forbidden" {
		t.Fatalf("refresh with another user's token = %v, want forbidden", f)
	}
	if code := expiring.CloseCode(); code != partyline.CloseTokenExpired {
		t.Fatalf("expired connection closed with %d, want 4001", code)
	}
	refreshed.Send(map[string]any{"type": "ping"})
	if f := refreshed.Expect("pong"); f == nil {
		t.Fatal("refreshed connection was closed")
	}
}
