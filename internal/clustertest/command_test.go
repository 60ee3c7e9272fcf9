package clustertest

import (
	"net/http"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// commandWait is how long a cluster command waits for the nodes' replies
// (partyline's command.go).
const commandWait = 2 * time.Second

// kick calls DELETE /api/users/{user}/connections on n and returns the
// count it answered and how long it took.
func (n *node) kick(t *testing.T, user string) (int, time.Duration) {
	t.Helper()
	var answer struct{ Closed *int }
	start := time.Now()
	status := n.call(t, "DELETE", "/users/"+user+"/connections", "", &answer)
	took := time.Since(start)
	if status != http.StatusOK || answer.Closed == nil {
		t.Fatalf("DELETE /api/users/%s/connections on node %s = %d %+v, want 200 {closed: N}", user, n.name, status, answer)
	}
	return *answer.Closed, took
}

// checkClosedWith fails t unless every client was closed with code.
func checkClosedWith(t *testing.T, code int, clients ...*client) {
	t.Helper()
	for _, c := range clients {
		if got := c.closeCode(); got != code {
			t.Fatalf("%s closed with %d, want %d", c.name, got, code)
		}
	}
}

// TestKickCountsEveryNode: DELETE /api/users/{user}/connections answers
// the number of connections closed on every node, whichever node it
// reaches and wherever the user is connected, without waiting for replies
// that will not come: each node the user is on answers at once.
func TestKickCountsEveryNode(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	alice := a.dial(t, "alice", "/ws/lobby")
	bobs := []*client{b.dial(t, "bob", "/ws/lobby"), b.dial(t, "bob", "/ws"), c.dial(t, "bob", "/ws")}
	for _, who := range append(bobs, alice) {
		who.sync()
	}

	if n, took := a.kick(t, "bob"); n != 3 || took >= commandWait {
		t.Fatalf("kick of bob (2 connections on node B, 1 on C) from node A = %d after %s, want 3 within %s", n, took, commandWait)
	}
	checkClosedWith(t, partyline.CloseKicked, bobs...)

	// Again, with the user on the requesting node too.
	carols := []*client{a.dial(t, "carol", "/ws"), b.dial(t, "carol", "/ws")}
	for _, who := range carols {
		who.sync()
	}
	if n, took := a.kick(t, "carol"); n != 2 || took >= commandWait {
		t.Fatalf("kick of carol (on nodes A and B) from node A = %d after %s, want 2 within %s", n, took, commandWait)
	}
	checkClosedWith(t, partyline.CloseKicked, carols...)

	// Offline users: nobody is subscribed, so nobody is waited for.
	waitUntil(t, waitTime, "bob and carol to be gone from every node", func() bool {
		return b.srv.Stats().Users == 0 && c.srv.Stats().Users == 0 && a.srv.Stats().Users == 1
	})
	for _, user := range []string{"bob", "nobody"} {
		if n, took := c.kick(t, user); n != 0 || took >= commandWait {
			t.Fatalf("kick of offline %s from node C = %d after %s, want 0 within %s", user, n, took, commandWait)
		}
	}
	alice.send(map[string]any{"type": "ping", "id": "still-open"})
	alice.await("alice's pong", func(f frame) bool { return f.Type == "ack" && f.hasID("still-open") })
}

// TestKickCountWithAStrayListener: a Redis client that is no node listens
// to the user's channel, so Redis counts one receiver more than there are
// nodes to reply. The kick still closes everything and counts every node's
// connections; it answers once the wait for the missing reply is over.
func TestKickCountWithAStrayListener(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	bobs := []*client{b.dial(t, "bob", "/ws"), c.dial(t, "bob", "/ws")}
	for _, who := range bobs {
		who.sync()
	}
	rdb := newRedisClient(t, cl.redisURL)
	defer rdb.Close()
	stray := rdb.Subscribe(t.Context(), cl.prefix+"user:bob")
	defer stray.Close()
	if _, err := stray.Receive(t.Context()); err != nil { // the subscription's confirmation
		t.Fatalf("SUBSCRIBE %suser:bob: %v", cl.prefix, err)
	}

	n, took := a.kick(t, "bob")
	if n != 2 || took < commandWait-100*time.Millisecond || took > commandWait+time.Second {
		t.Fatalf("kick of bob (nodes B and C, plus a stray listener) = %d after %s, want 2 after about %s", n, took, commandWait)
	}
	checkClosedWith(t, partyline.CloseKicked, bobs...)
	t.Logf("answered %d after %s", n, took.Round(time.Millisecond))
}

// moveUser calls PUT or DELETE /api/users/{user}/rooms/{room} on n and
// returns the count of connections it answered.
func (n *node) moveUser(t *testing.T, method, user, room string) int {
	t.Helper()
	var answer struct{ Connections *int }
	status := n.call(t, method, "/users/"+user+"/rooms/"+room, "", &answer)
	if status != http.StatusOK || answer.Connections == nil {
		t.Fatalf("%s /api/users/%s/rooms/%s on node %s = %d %+v, want 200 {connections: N}", method, user, room, n.name, status, answer)
	}
	return *answer.Connections
}

// TestServerSideSubscriptionsAcrossNodes: PUT /api/users/{user}/rooms/{room}
// on node A joins the user's connections on B and C to the room, which
// they then hear; DELETE makes them leave. Each answers the count over
// every node.
func TestServerSideSubscriptionsAcrossNodes(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	alice := a.dial(t, "alice", "/ws/news")
	alice.expectJoin("news")
	bobs := []*client{b.dial(t, "bob", "/ws"), b.dial(t, "bob", "/ws/news"), c.dial(t, "bob", "/ws")}
	for _, who := range bobs {
		who.sync()
	}
	if n := a.moveUser(t, "PUT", "bob", "news"); n != 2 {
		t.Fatalf("PUT bob into news (3 connections, 1 already in) = %d, want 2", n)
	}
	for _, who := range []*client{bobs[0], bobs[2]} {
		who.expectJoin("news")
	}
	alice.send(map[string]any{"type": "chat", "room": "news", "content": "extra!"})
	for _, who := range bobs {
		who.await("the chat in news", func(f frame) bool { return f.Type == "chat" && f.Content == "extra!" })
	}
	if n := a.moveUser(t, "DELETE", "bob", "news"); n != 3 {
		t.Fatalf("DELETE bob from news = %d, want 3", n)
	}
	for _, who := range bobs {
		who.await("left", func(f frame) bool { return f.Type == "left" && f.Room == "news" })
	}
	if n := c.moveUser(t, "PUT", "nobody", "news"); n != 0 {
		t.Fatalf("PUT of an offline user = %d, want 0", n)
	}
}
