package clustertest

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostOf returns the host:port of a service URL.
func hostOf(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// withHost returns the service URL raw pointing at host instead.
func withHost(t testing.TB, raw, host string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = host
	return u.String()
}

// chat sends a chat with content as its id and returns the answer.
func (c *client) chat(room, content string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": "chat", "room": room, "content": content, "id": content})
	return c.await("the answer to "+content, func(f frame) bool {
		return (f.Type == "ack" || f.Type == "error") && f.hasID(content)
	})
}

// TestPostgresOutage: node A loses PostgreSQL while node B keeps it. A's
// chats fail with unavailable, promptly, and nobody sees them; B's chats
// still reach A's clients; once PostgreSQL is back A works again, by
// itself, and the seqs have no gap.
func TestPostgresOutage(t *testing.T) {
	cl := newCluster(t)
	px := startProxy(t, hostOf(t, cl.storeURL))
	a := cl.startNode(t, "A", cl.redisURL, withHost(t, cl.storeURL, px.addr()))
	b := cl.startNode(t, "B", cl.redisURL, cl.storeURL)
	const room = "pg"
	subA := a.dial(t, "suba", "/ws/"+room)
	subA.expectJoin(room)
	subB := b.dial(t, "subb", "/ws/"+room)
	subB.expectJoin(room)
	pubA := a.dial(t, "puba", "/ws/"+room)
	pubA.expectJoin(room)
	pubB := b.dial(t, "pubb", "/ws/"+room)
	pubB.expectJoin(room)

	if f := pubA.chat(room, "one"); f.Type != "ack" || f.Seq != 1 {
		t.Fatalf("first chat answered %v, want ack with seq 1", f)
	}

	px.setCut(true)
	start := time.Now()
	if f := pubA.chat(room, "lost"); f.Type != "error" || f.Code != "unavailable" {
		t.Fatalf("chat on node A without PostgreSQL answered %v, want error unavailable", f)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("chat on node A without PostgreSQL took %s to fail, want an answer within the store's 5s bound", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTime)
	defer cancel()
	if err := a.srv.Ready(ctx); err == nil || !strings.HasPrefix(err.Error(), "store") {
		t.Fatalf("node A Ready without PostgreSQL = %v, want an error naming the store", err)
	}
	// Node B still stores, and its chats reach node A's clients live.
	if f := pubB.chat(room, "two"); f.Type != "ack" || f.Seq != 2 {
		t.Fatalf("chat on node B answered %v, want ack with seq 2", f)
	}
	subA.untilSeq(room, 2)
	// Joining a room needs its last seq: node A answers unavailable.
	late := a.dial(t, "late", "/ws/other")
	if f := late.expect("error"); f.Code != "unavailable" {
		t.Fatalf("join on node A without PostgreSQL answered %v, want error unavailable", f)
	}

	px.setCut(false)
	var content string
	for i := 0; ; i++ {
		content = fmt.Sprint("three-", i)
		f := pubA.chat(room, content)
		if f.Type == "ack" {
			break
		}
		if i == 20 {
			t.Fatalf("node A still answers %v after PostgreSQL came back", f)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []*client{subA, subB} {
		c.untilSeq(room, 3)
		var got []string
		for _, f := range c.chats[room] {
			got = append(got, f.Content)
		}
		checkStream(t, c.name, c.chats[room], 1, 3, nil)
		if want := []string{"one", "two", content}; !slices.Equal(got, want) {
			t.Fatalf("%s saw %q, want %q", c.name, got, want)
		}
	}
}

// startCutOffPair starts nodes A and B of a new cluster, A reaching Redis
// through a proxy that the test can cut.
func startCutOffPair(t *testing.T) (px *proxy, a, b *node) {
	t.Helper()
	cl := newCluster(t)
	px = startProxy(t, hostOf(t, cl.redisURL))
	a = cl.startNode(t, "A", withHost(t, cl.redisURL, px.addr()), cl.storeURL)
	b = cl.startNode(t, "B", cl.redisURL, cl.storeURL)
	return px, a, b
}

// TestNodeCutOffFromRedis: node A loses Redis while node B keeps it. A
// still acks its clients' chats (stored, delivered on A). When Redis is
// back, B's clients must get them too, even if the room stays quiet (the
// hub re-announces the room's latest message until a publish goes through).
func TestNodeCutOffFromRedis(t *testing.T) {
	px, a, b := startCutOffPair(t)
	const room = "cut"
	subA := a.dial(t, "suba", "/ws/"+room)
	subA.expectJoin(room)
	subB := b.dial(t, "subb", "/ws/"+room)
	subB.expectJoin(room)
	pub := a.dial(t, "pub", "/ws/"+room)
	pub.expectJoin(room)

	if f := pub.chat(room, "before"); f.Type != "ack" {
		t.Fatalf("chat answered %v, want ack", f)
	}
	subB.untilSeq(room, 1)

	px.setCut(true)
	for i := range 3 {
		start := time.Now()
		f := pub.chat(room, fmt.Sprint("during-", i))
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("chat on node A without Redis took %s to answer, want no hang", took)
		}
		if f.Type != "ack" {
			t.Fatalf("chat on node A without Redis answered %v, want ack (stored, delivered on A)", f)
		}
	}
	subA.untilSeq(room, 4)

	px.setCut(false)
	waitUntil(t, waitTime, "node A to reach Redis again", func() bool { return a.srv.Ready(t.Context()) == nil })
	if err := subB.untilSeqErr(room, 4, waitTime); err != nil {
		t.Fatalf("node B's client never got the chats node A acked while it was cut off from Redis "+
			"(the room stayed quiet, so nothing made node B look in the store): %v", err)
	}
	checkStream(t, subB.name, subB.chats[room], 1, 4, canonOf(subA.chats[room]))
}

// TestNodeBackAfterPresenceTTL: node A is cut off from Redis for longer
// than the presence TTL, so the other nodes reap its users and announce
// user_left. When A is back its users are online again, and the others must
// hear user_joined, or their clients' lists stay wrong.
func TestNodeBackAfterPresenceTTL(t *testing.T) {
	px, a, b := startCutOffPair(t)
	const room = "partition"
	alice := a.dial(t, "alice", "/ws/"+room)
	alice.expectJoin(room)
	bob := b.dial(t, "bob", "/ws/"+room)
	bob.expectJoin(room)

	px.setCut(true)
	bob.await("user_left alice, reaped", userEvent("user_left", room, "alice"))
	px.setCut(false)
	waitUntil(t, waitTime, "alice to be listed again", func() bool {
		users, err := b.srv.RoomUsers(t.Context(), room)
		return err == nil && contains(users, "alice")
	})
	if _, err := bob.awaitErr(presenceTTL, userEvent("user_joined", room, "alice")); err != nil {
		t.Fatalf("alice is online again (node A re-registered her) but bob got no user_joined: %v", err)
	}
}

// TestPresenceAfterCutOff: while node A is cut off from Redis, a user of
// node B leaves and another arrives; their announcements never reach A.
// Once A is back, its clients are told who is online anew.
func TestPresenceAfterCutOff(t *testing.T) {
	px, a, b := startCutOffPair(t)
	const room = "refresh"
	alice := a.dial(t, "alice", "/ws/"+room)
	alice.expectJoin(room)
	leaver := b.dial(t, "leaver", "/ws/"+room)
	leaver.expectJoin(room)
	alice.await("user_joined leaver", userEvent("user_joined", room, "leaver"))

	px.setCut(true)
	leaver.close()
	b.dial(t, "comer", "/ws/"+room).expectJoin(room)
	px.setCut(false)
	f := alice.await("online_users after the cut", func(f frame) bool { return f.Type == "online_users" })
	checkUsers(t, "alice's online_users after the cut", f.Users, "alice", "comer")
}

// TestShutdownWithHungBackends: a node whose Redis and PostgreSQL both stop
// answering is stopped with SIGTERM while a room of users leaves: it exits
// soon after its shutdown grace, not after a second per user leaving
// presence, nor after the database pool's own wait to cancel its queries.
func TestShutdownWithHungBackends(t *testing.T) {
	redisURL, postgresURL := services(t)
	store := newSchema(t, postgresURL)
	pg, rd := startProxy(t, hostOf(t, store)), startProxy(t, hostOf(t, redisURL))
	const grace = time.Second
	n := startNodes(t, []string{"A"}, "--store", withHost(t, store, pg.addr()), "--broker", withHost(t, redisURL, rd.addr()),
		"--presence-ttl", presenceTTL.String(), "--shutdown-grace", grace.String())[0]
	room := "hung-" + suffix()
	var clients []*client
	for i := range 40 { // in 4 rooms, chatting when the backends hang
		r := fmt.Sprint(room, i%4)
		c := n.dial(t, fmt.Sprintf("u%d-%s", i, room), "/ws/"+r)
		c.expectJoin(r)
		clients = append(clients, c)
	}
	clients[0].chat(room+"0", "stored") // PostgreSQL has a connection in the pool
	for i, c := range clients {
		c.send(map[string]any{"type": "chat", "room": fmt.Sprint(room, i%4), "content": "in flight"})
	}
	pg.setHung(true)
	rd.setHung(true)
	time.Sleep(time.Second) // the Redis client notices, and reconnects to a Redis that hangs
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The grace; the 5 s bound of a commit under way (a connection closes
	// once its chat has its answer); a second for the backends to close.
	const bound = grace + 6*time.Second
	select {
	case <-n.exited:
		t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("node A still running %v after SIGTERM with a grace of %v", bound, grace)
	}
}
