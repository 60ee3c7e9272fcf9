package clustertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/partyline/partyline/internal/webhooktest"
)

const webhookSecret = "cluster-webhook-secret"

// leaveDelay is the test clusters' --webhook-leave-delay: long enough for a
// reconnect on a loaded machine to beat it.
const leaveDelay = 2 * time.Second

// startWebhookNodes starts three partyline processes sharing Redis and a
// fresh PostgreSQL schema, each sending webhooks to recv.
func startWebhookNodes(t *testing.T, recv *webhooktest.Receiver, store string) []*partylineNode {
	redisURL, _ := services(t)
	return startNodes(t, []string{"A", "B", "C"},
		"--store", store, "--broker", redisURL, "--presence-ttl", presenceTTL.String(),
		"--rate-limit", "-1", "--webhook-url", recv.URL, "--webhook-secret", webhookSecret,
		"--webhook-leave-delay", leaveDelay.String())
}

// TestWebhooksOncePerCluster: publishers on three processes write to one
// room; the receiver gets every message event exactly once, in seq order.
// A user with connections on two nodes is online once, goes offline once
// when both are gone, and a user who flaps between nodes within the leave
// delay causes no event at all.
func TestWebhooksOncePerCluster(t *testing.T) {
	_, postgresURL := services(t)
	id := suffix()
	room := "hooked-" + id
	user := func(name string) string { return name + "-" + id }
	recv := webhooktest.New(t, webhookSecret)
	nodes := startWebhookNodes(t, recv, newSchema(t, postgresURL))

	const perNode = 30
	for _, n := range nodes {
		c := n.dial(t, user("pub"+n.name), "/ws/"+room)
		c.expectJoin(room)
		for i := range perNode {
			c.send(map[string]any{"type": "chat", "content": fmt.Sprint(n.name, i)})
		}
	}
	recv.WaitForSeqs(t, 3*waitTime, room, 3*perNode)
	seen := map[string]int{}
	for _, e := range recv.Matching(func(e webhooktest.Event) bool { return e.Type() == "message" }) {
		seen[e.String("id")]++
	}
	for eventID, n := range seen {
		if n != 1 {
			t.Errorf("message event %s was sent %d times, want once", eventID, n)
		}
	}

	// alice on two nodes: online once; offline once, after both are gone.
	alice := user("alice")
	isAlice := func(typ string) func(webhooktest.Event) bool {
		return func(e webhooktest.Event) bool { return e.Type() == typ && e.String("username") == alice }
	}
	a1 := nodes[0].dial(t, alice, "/ws")
	a2 := nodes[1].dial(t, alice, "/ws")
	recv.WaitFor(t, waitTime, 1, "user_online", isAlice("user_online"))
	a1.close()
	time.Sleep(leaveDelay + 500*time.Millisecond) // past the leave delay: alice is still on B
	if got := recv.Matching(isAlice("user_offline")); len(got) != 0 {
		t.Fatalf("user_offline while alice is still on node B: %v", got)
	}
	a2.close()
	recv.WaitFor(t, waitTime, 1, "user_offline", isAlice("user_offline"))

	// bob flaps from A to C within the leave delay: nothing at all.
	bob := user("bob")
	isBob := func(e webhooktest.Event) bool { return e.String("username") == bob }
	b1 := nodes[0].dial(t, bob, "/ws/"+room)
	b1.expectJoin(room)
	recv.WaitFor(t, waitTime, 2, "bob's online and joined", isBob)
	b1.close()
	b2 := nodes[2].dial(t, bob, "/ws/"+room)
	b2.expectJoin(room)
	time.Sleep(leaveDelay + time.Second) // past the leave delay and a few sweeps
	if got := recv.Matching(isBob); len(got) != 2 {
		t.Fatalf("bob's events after a flap = %v, want only the first user_online and user_joined", got)
	}
	for _, typ := range []string{"user_online", "user_offline"} {
		if got := recv.Matching(isAlice(typ)); len(got) != 1 {
			t.Errorf("alice's %s events = %d, want 1 (once per cluster)", typ, len(got))
		}
	}
}

// TestWebhooksSurviveClusterKill: with the receiver down, publishers on
// three processes have chats acked; then every process is killed with
// SIGKILL. Restarted, the cluster sends a message event for every acked
// chat, in order.
func TestWebhooksSurviveClusterKill(t *testing.T) {
	_, postgresURL := services(t)
	id := suffix()
	room := "killed-hooks-" + id
	recv := webhooktest.New(t, webhookSecret)
	recv.Down.Store(true)
	store := newSchema(t, postgresURL)
	nodes := startWebhookNodes(t, recv, store)
	const perNode = 40
	for _, n := range nodes {
		c := n.dial(t, "pub"+n.name+"-"+id, "/ws/"+room)
		c.expectJoin(room)
		for i := range perNode {
			c.send(map[string]any{"type": "chat", "content": fmt.Sprint(n.name, i), "id": fmt.Sprint(i)})
		}
		for i := range perNode {
			c.await("ack", func(f frame) bool { return f.Type == "ack" && f.hasID(fmt.Sprint(i)) })
		}
	}
	for _, n := range nodes {
		n.kill(t)
	}
	recv.Down.Store(false)
	startWebhookNodes(t, recv, store)
	recv.WaitForSeqs(t, 4*waitTime, room, 3*perNode) // a dead owner's lease runs out first
}
