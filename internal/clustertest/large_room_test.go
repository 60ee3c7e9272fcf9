package clustertest

import (
	"slices"
	"strings"
	"testing"
)

// TestLargeRoomAcrossNodes: above the presence list limit, each node
// announces the changes it decides in its own presence_diff, which reaches
// the members on every node with the cluster-wide count (Redis HLEN), and
// online_users on any node carries that count without names.
func TestLargeRoomAcrossNodes(t *testing.T) {
	cl := newCluster(t)
	cl.presenceListMax = 2
	a, b := cl.startNode(t, "A", cl.redisURL, cl.storeURL), cl.startNode(t, "B", cl.redisURL, cl.storeURL)
	const room = "big"
	path := "/ws/" + room

	alice := a.dial(t, "alice", path)
	alice.expectJoin(room)
	bob := b.dial(t, "bob", path)
	_, online := bob.expectJoin(room)
	checkUsers(t, "bob@B's online_users", online.Users, "alice", "bob")
	alice.await("user_joined bob", userEvent("user_joined", room, "bob"))

	// carol on A makes the room large: A announces her.
	carol := a.dial(t, "carol", path)
	_, online = carol.expectJoin(room)
	checkCount(t, "carol@A's online_users", online, 3)
	for _, c := range []*client{alice, bob} {
		checkDiff(t, c, room, []string{"carol"}, nil, 3)
	}
	// dave on B: B announces him, to A's members too.
	dave := b.dial(t, "dave", path)
	_, online = dave.expectJoin(room)
	checkCount(t, "dave@B's online_users", online, 4)
	for _, c := range []*client{alice, bob, carol} {
		checkDiff(t, c, room, []string{"dave"}, nil, 4)
	}
	// carol leaves A: B's members learn it from A.
	carol.close()
	checkDiff(t, bob, room, nil, []string{"carol"}, 3)
	bob.send(map[string]any{"type": "presence", "room": room})
	checkCount(t, "online_users on B", bob.awaitType("online_users"), 3)
}

// checkCount checks an online_users frame of a large room.
func checkCount(t *testing.T, what string, f frame, count int) {
	t.Helper()
	if f.Type != "online_users" || f.Users == nil || len(f.Users) != 0 || f.Content != "" || f.Count == nil || *f.Count != count {
		t.Fatalf("%s = %v, want no users and count %d", what, f, count)
	}
}

// checkDiff waits for c's next presence_diff of room and checks it. A
// diff that names only c's own arrival, which c may or may not receive,
// is skipped.
func checkDiff(t *testing.T, c *client, room string, joined, left []string, count int) {
	t.Helper()
	user, _, _ := strings.Cut(c.name, "@")
	f := c.await("presence_diff", func(f frame) bool {
		return f.Type == "presence_diff" && !(slices.Equal(f.Joined, []string{user}) && len(f.Left) == 0)
	})
	if f.Room != room || !slices.Equal(f.Joined, append([]string{}, joined...)) || !slices.Equal(f.Left, append([]string{}, left...)) ||
		f.Count == nil || *f.Count != count {
		t.Fatalf("%s: %v, want presence_diff of %s joined %q left %q count %d", c.name, f, room, joined, left, count)
	}
}
