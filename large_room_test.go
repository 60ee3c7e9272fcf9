package partyline_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// diffInterval is the server's least time between two presence_diff
// frames of a room from one node.
const diffInterval = time.Second

// joinRoom dials user into room and returns the connection and its
// online_users.
func joinRoom(t *testing.T, ts *testServer, user, room string) (*wstest.Client, wstest.Frame) {
	t.Helper()
	c := ts.dial(t, "/ws?username="+user+"&room="+room)
	c.Expect("joined")
	return c, c.Expect("online_users")
}

// checkCountOnly checks an online_users frame of a large room: no names,
// and count.
func checkCountOnly(t *testing.T, what string, f wstest.Frame, count uint64) {
	t.Helper()
	if users := f.Strings("users"); users == nil || len(users) != 0 || f.Str("content") != "" || f.Num("count") != count {
		t.Fatalf("%s: %v, want users [], content \"\" and count %d", what, f, count)
	}
}

// checkDiff checks a presence_diff frame.
func checkDiff(t *testing.T, what string, f wstest.Frame, room string, joined, left []string, count uint64) {
	t.Helper()
	if f.Str("type") != "presence_diff" || f.Str("room") != room ||
		!slices.Equal(f.Strings("joined"), joined) || !slices.Equal(f.Strings("left"), left) ||
		f.Num("count") != count || f["joined_more"] != float64(0) || f["left_more"] != float64(0) ||
		f.Num("timestamp") == 0 {
		t.Fatalf("%s: %v, want presence_diff of %s joined %q left %q count %d", what, f, room, joined, left, count)
	}
}

// TestLargeRoomGetsCountsAndDiffs: up to PresenceListMax users a room is
// told its list and every change at once (§5.5); above it, online_users
// carries only the count and the changes come batched in presence_diff
// frames, one per interval, each with the right count; small again, the
// room is back to user_joined and user_left.
func TestLargeRoomGetsCountsAndDiffs(t *testing.T) {
	ts := startServer(t, partyline.Options{PresenceListMax: 3})
	alice, online := joinRoom(t, ts, "alice", "big")
	if online.Str("content") != "alice" || online.Num("count") != 1 {
		t.Fatalf("alice's online_users = %v, want alice, count 1", online)
	}
	bob, online := joinRoom(t, ts, "bob", "big")
	if online.Str("content") != "alice,bob" || online.Num("count") != 2 {
		t.Fatalf("bob's online_users = %v, want alice,bob, count 2", online)
	}
	alice.Expect("user_joined")
	carol, online := joinRoom(t, ts, "carol", "big")
	if online.Str("content") != "alice,bob,carol" || online.Num("count") != 3 {
		t.Fatalf("carol's online_users = %v, want the three, count 3 (at the limit: listed)", online)
	}
	for _, c := range []*wstest.Client{alice, bob} {
		if f := c.Expect("user_joined"); f.Str("username") != "carol" {
			t.Fatalf("got %v, want user_joined carol", f)
		}
	}

	// The fourth makes the room large: dave gets the count, the others a
	// presence_diff at once, the room's first. (Timed from before the
	// join, the gap to the second can only come out longer than it is, not
	// shorter on a busy machine.)
	first := time.Now()
	_, online = joinRoom(t, ts, "dave", "big")
	checkCountOnly(t, "dave's online_users", online, 4)
	members := []*wstest.Client{alice, bob, carol}
	for _, c := range members {
		checkDiff(t, "after dave joined", c.Expect("presence_diff"), "big", []string{"dave"}, []string{}, 4)
	}

	// Two more within the interval: one presence_diff names both, in the
	// order they came, and comes an interval after the first.
	joinRoom(t, ts, "erin", "big")
	frank, online := joinRoom(t, ts, "frank", "big")
	checkCountOnly(t, "frank's online_users", online, 6)
	for _, c := range members {
		checkDiff(t, "after erin and frank joined", c.Expect("presence_diff"), "big", []string{"erin", "frank"}, []string{}, 6)
	}
	if gap := time.Since(first); gap < diffInterval*8/10 {
		t.Fatalf("second presence_diff %v after the first, want about %v", gap, diffInterval)
	}

	alice.Send(map[string]any{"type": "presence", "room": "big", "id": "p"})
	checkCountOnly(t, "online_users answering presence", alice.Expect("online_users"), 6)
	alice.Expect("ack")

	frank.Send(map[string]any{"type": "leave", "room": "big"})
	for _, c := range members {
		checkDiff(t, "after frank left", c.Expect("presence_diff"), "big", []string{}, []string{"frank"}, 5)
	}

	// Small again once the diffs have stopped: back to §5.5 exactly.
	carol.Conn.Close()
	for _, c := range []*wstest.Client{alice, bob} {
		checkDiff(t, "after carol left", c.Expect("presence_diff"), "big", []string{}, []string{"carol"}, 4)
	}
	alice.Send(map[string]any{"type": "presence", "room": "big"})
	checkCountOnly(t, "online_users of 4", alice.Expect("online_users"), 4)
	time.Sleep(2 * diffInterval) // the room's diff goroutine ends after a quiet interval
	bob.Conn.Close()
	if f := alice.Expect("user_left"); f.Str("username") != "bob" {
		t.Fatalf("after bob left a room of 3: %v, want user_left bob", f)
	}
	alice.Send(map[string]any{"type": "presence", "room": "big"})
	if f := alice.Expect("online_users"); f.Str("content") != "alice,dave,erin" || f.Num("count") != 3 {
		t.Fatalf("online_users of 3 = %v, want alice,dave,erin, count 3", f)
	}
}

// TestLargeRoomJoinAndLeaveWithinAnInterval: a user who joins and leaves
// between two presence_diff frames is named in neither list, and the
// count is right.
func TestLargeRoomJoinAndLeaveWithinAnInterval(t *testing.T) {
	ts := startServer(t, partyline.Options{PresenceListMax: 1})
	alice, _ := joinRoom(t, ts, "alice", "big")
	_, online := joinRoom(t, ts, "bob", "big")
	checkCountOnly(t, "bob's online_users", online, 2)
	checkDiff(t, "after bob joined", alice.Expect("presence_diff"), "big", []string{"bob"}, []string{}, 2)

	// The room's next diff is an interval away: gus comes and goes, carol
	// comes.
	gus, _ := joinRoom(t, ts, "gus", "big")
	gus.Send(map[string]any{"type": "leave", "room": "big"})
	gus.WaitFor("left") // gus's presence is gone before left is sent
	carol, _ := joinRoom(t, ts, "carol", "big")
	checkDiff(t, "after gus came and went and carol came", alice.Expect("presence_diff"), "big", []string{"carol"}, []string{}, 3)

	// And a leave and a return of the same user cancel out as well.
	carol.Conn.Close()
	checkDiff(t, "after carol left", alice.Expect("presence_diff"), "big", []string{}, []string{"carol"}, 2)
	gus.Send(map[string]any{"type": "join", "room": "big"})
	gus.Expect("joined")
	gus.Expect("online_users")
	gus.Send(map[string]any{"type": "leave", "room": "big"})
	gus.WaitFor("left")
	dave, _ := joinRoom(t, ts, "dave", "big")
	dave.Send(map[string]any{"type": "leave", "room": "big"})
	dave.WaitFor("left")
	dave.Send(map[string]any{"type": "join", "room": "big"})
	dave.Expect("joined")
	checkCountOnly(t, "dave's online_users on his return", dave.Expect("online_users"), 3)
	checkDiff(t, "after gus came and went, and dave came, went and came back", alice.Expect("presence_diff"),
		"big", []string{"dave"}, []string{}, 3)
}

// TestLargeRoomWebhooksStayPerUser: batching changes only what members
// are sent; the webhook events of a large room are still one per user.
func TestLargeRoomWebhooksStayPerUser(t *testing.T) {
	const hook = "http://backend/hooks"
	store := partyline.NewMemoryStore(0)
	ts := startServer(t, partyline.Options{Store: store, PresenceListMax: 1, Webhooks: partyline.WebhookOptions{
		Routes: []partyline.WebhookRoute{{URL: hook}}, LeaveDelay: 50 * time.Millisecond,
	}})
	alice, _ := joinRoom(t, ts, "alice", "big")
	bob, _ := joinRoom(t, ts, "bob", "big")
	carol, _ := joinRoom(t, ts, "carol", "big")
	bob.Conn.Close()
	carol.Conn.Close()
	alice.Expect("presence_diff") // bob's
	want := []string{"user_joined alice", "user_joined bob", "user_joined carol", "user_left bob", "user_left carol"}
	// bob and carol leave together: their events may come in either order.
	var got []string
	waitUntil(t, "the webhook events of every arrival and departure", func() bool {
		pending, err := store.PendingEvents(context.Background(), hook, 100)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, p := range pending {
			var e struct{ Type, Room, Username string }
			if err := json.Unmarshal(p.Body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Room == "big" && (e.Type == "user_joined" || e.Type == "user_left") {
				got = append(got, e.Type+" "+e.Username)
			}
		}
		return len(got) >= len(want)
	})
	if slices.Sort(got[3:]); !slices.Equal(got, want) {
		t.Fatalf("webhook events %q, want %q", got, want)
	}
}

// listCountingPresence counts the calls of Users of its Presence, which is
// a Counter.
type listCountingPresence struct {
	*partyline.MemoryPresence
	lists atomic.Int32
}

func (p *listCountingPresence) Users(ctx context.Context, room string) ([]string, error) {
	p.lists.Add(1)
	return p.MemoryPresence.Users(ctx, room)
}

// TestLargeRoomIsNotListed: once a node has seen a room large, joins and
// presence requests only count it, however many users it has: the
// Presence is not asked for a list of thousands per join.
func TestLargeRoomIsNotListed(t *testing.T) {
	p := &listCountingPresence{MemoryPresence: partyline.NewMemoryPresence()}
	ts := startServer(t, partyline.Options{Presence: p, PresenceListMax: 2})
	alice, _ := joinRoom(t, ts, "alice", "big")
	joinRoom(t, ts, "bob", "big")
	_, online := joinRoom(t, ts, "carol", "big") // listed, found large
	checkCountOnly(t, "carol's online_users", online, 3)
	lists := p.lists.Load()
	for i, user := range []string{"dave", "erin", "frank"} {
		_, online := joinRoom(t, ts, user, "big")
		checkCountOnly(t, user+"'s online_users", online, uint64(4+i))
	}
	alice.Send(map[string]any{"type": "presence", "room": "big"})
	checkCountOnly(t, "online_users answering presence", alice.WaitFor("online_users"), 6)
	if n := p.lists.Load() - lists; n != 0 {
		t.Fatalf("3 joins and a presence request of a large room listed it %d times, want 0", n)
	}
}
