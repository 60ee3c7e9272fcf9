package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
)

// roomInfo returns the answer of GET /api/rooms/{room}, failing t unless
// it is 200.
func (ts *testServer) roomInfo(t testing.TB, room string) partyline.RoomInfo {
	t.Helper()
	resp := ts.do(t, "GET", "/api/rooms/"+room, "")
	if resp.status != http.StatusOK {
		t.Fatalf("GET /api/rooms/%s: status %d %s, want 200", room, resp.status, resp.body)
	}
	var info partyline.RoomInfo
	resp.decode(t, &info)
	return info
}

func TestRoomCounts(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	resp := ts.do(t, "GET", "/api/rooms/quiet", "")
	if want := `{"room":"quiet","users":0,"connections":0,"last_seq":0}`; resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != want {
		t.Fatalf("unknown room: %d %s, want 200 %s", resp.status, resp.body, want)
	}

	ts.dial(t, "/ws/lobby?username=alice", 1)
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.dial(t, "/ws?username=bob&room=lobby&room=dev", 2)
	ts.publish(t, "lobby", `{"content":"x"}`)
	ts.publish(t, "lobby", `{"content":"y"}`)
	ts.publish(t, "news", `{"content":"nobody listens"}`)
	alice.WaitFor("chat")
	alice.WaitFor("chat")

	for _, want := range []partyline.RoomInfo{
		{Room: "lobby", Users: 2, Connections: 3, LastSeq: 2},
		{Room: "dev", Users: 1, Connections: 1, LastSeq: 0},
		{Room: "news", Users: 0, Connections: 0, LastSeq: 1},
	} {
		if got := ts.roomInfo(t, want.Room); got != want {
			t.Errorf("GET /api/rooms/%s = %+v, want %+v", want.Room, got, want)
		}
	}
	for _, path := range []string{"/api/rooms/-bad", "/api/rooms/bad%20room", "/api/rooms/" + strings.Repeat("r", 65)} {
		if resp := ts.do(t, "GET", path, ""); resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeInvalidRoom {
			t.Errorf("GET %s: %d %s, want 400 invalid_room", path, resp.status, resp.body)
		}
	}
}

// listingPresence is a Presence that is not a partyline.Counter.
type listingPresence struct{ partyline.Presence }

// countingPresence counts the calls of Users and Count of its Presence.
type countingPresence struct {
	*partyline.MemoryPresence
	users, counts atomic.Int32
}

func (p *countingPresence) Users(ctx context.Context, room string) ([]string, error) {
	p.users.Add(1)
	return p.MemoryPresence.Users(ctx, room)
}

func (p *countingPresence) Count(ctx context.Context, room string) (int, error) {
	p.counts.Add(1)
	return p.MemoryPresence.Count(ctx, room)
}

func TestRoomCountsWithoutCounter(t *testing.T) {
	ts := startServerWith(t, partyline.Options{Presence: listingPresence{partyline.NewMemoryPresence()}}, httpapi.Options{})
	ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.dial(t, "/ws/lobby?username=bob", 1)
	if got, want := ts.roomInfo(t, "lobby"), (partyline.RoomInfo{Room: "lobby", Users: 2, Connections: 2}); got != want {
		t.Errorf("GET /api/rooms/lobby with a Presence that cannot count = %+v, want %+v", got, want)
	}
}

func TestRoomCountsDoNotListUsers(t *testing.T) {
	p := &countingPresence{MemoryPresence: partyline.NewMemoryPresence()}
	ts := startServerWith(t, partyline.Options{Presence: p}, httpapi.Options{})
	ts.dial(t, "/ws/lobby?username=alice", 1)
	ts.dial(t, "/ws/lobby?username=bob", 1) // alice's online_users ran Users
	users := p.users.Load()
	if got := ts.roomInfo(t, "lobby"); got.Users != 2 {
		t.Errorf("GET /api/rooms/lobby users = %d, want 2", got.Users)
	}
	if listed, counted := p.users.Load()-users, p.counts.Load(); listed != 0 || counted != 1 {
		t.Errorf("GET /api/rooms/lobby called Users %d times and Count %d times, want 0 and 1", listed, counted)
	}
}
