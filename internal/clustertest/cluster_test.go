package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
	"github.com/partyline/partyline/postgres"
	"github.com/partyline/partyline/redis"
)

// node is one in-process partyline node: its own Redis client, Broker,
// Presence and PostgreSQL Store, behind a real loopback listener.
type node struct {
	name   string
	srv    *partyline.Server
	url    string // ws://127.0.0.1:port
	api    string // http://127.0.0.1:port/api
	broker *countingBroker
}

// cluster is a few nodes on one Redis prefix and one PostgreSQL schema.
type cluster struct {
	redisURL string
	storeURL string
	prefix   string
	nodes    []*node

	presenceListMax int // Options.PresenceListMax of the nodes started next
	// wrapPresence, if set, wraps the Presence of the nodes started next.
	wrapPresence func(partyline.Presence) partyline.Presence
}

// startCluster starts n nodes named A, B, C, … and stops them when t ends.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	cl := newCluster(t)
	for i := range n {
		cl.nodes = append(cl.nodes, cl.startNode(t, string(rune('A'+i)), cl.redisURL, cl.storeURL))
	}
	return cl
}

// newCluster prepares a Redis prefix and a PostgreSQL schema for nodes.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	redisURL, postgresURL := services(t)
	return &cluster{redisURL: redisURL, storeURL: newSchema(t, postgresURL), prefix: newPrefix(t, redisURL)}
}

// startNode starts a node of the cluster that reaches Redis and PostgreSQL
// at the URLs given (the cluster's, or proxies to them).
func (cl *cluster) startNode(t *testing.T, name, redisURL, storeURL string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	rc, err := redis.Open(ctx, redisURL, redis.Options{Prefix: cl.prefix, Node: name, PresenceTTL: presenceTTL})
	if err != nil {
		t.Fatalf("node %s: redis.Open: %v", name, err)
	}
	store, err := postgres.Open(ctx, storeURL, 0)
	if err != nil {
		rc.Close()
		t.Fatalf("node %s: postgres.Open: %v", name, err)
	}
	logs := &logBuffer{}
	broker := &countingBroker{Broker: rc.Broker(), events: make(map[string]int)}
	var presence partyline.Presence = rc.Presence()
	if cl.wrapPresence != nil {
		presence = cl.wrapPresence(presence)
	}
	srv, err := partyline.New(partyline.Options{
		Store:           store,
		Broker:          broker,
		Presence:        presence,
		RateLimit:       -1,
		PresenceListMax: cl.presenceListMax,
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		rc.Close()
		store.Close()
		t.Fatalf("node %s: partyline.New: %v", name, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("/ws/{room}", srv)
	mux.Handle("/api/", httpapi.New(srv, httpapi.Options{}))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("node %s: Shutdown: %v", name, err)
		}
		hs.Close()
		rc.Close()
		store.Close()
		if t.Failed() {
			t.Logf("node %s logs:\n%s", name, logs)
		}
	})
	return &node{name: name, srv: srv, url: "ws" + strings.TrimPrefix(hs.URL, "http"), api: hs.URL + "/api", broker: broker}
}

// dial connects user to the node with the query (and path) given.
func (n *node) dial(t *testing.T, user, pathAndQuery string) *client {
	t.Helper()
	sep := "?"
	if strings.Contains(pathAndQuery, "?") {
		sep = "&"
	}
	return dial(t, user+"@"+n.name, n.url, pathAndQuery+sep+"username="+user)
}

// countingBroker counts the events the real broker hands to the node, per
// topic, to show that a node receives only what its clients need. It can
// also hold back the node's announcements that a user left, to reorder
// them as a broker may.
type countingBroker struct {
	partyline.Broker

	mu         sync.Mutex // guards the following
	events     map[string]int
	holdLeaves time.Duration
	heldLeaves int // how many announcements were held back
}

// Publish hands the event to the real broker, after holdLeaves if it
// announces that a user left.
func (b *countingBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	b.mu.Lock()
	hold := b.holdLeaves
	if hold > 0 && bytes.Contains(payload, []byte(`"type":"user_left"`)) {
		b.heldLeaves++
	} else {
		hold = 0
	}
	b.mu.Unlock()
	time.Sleep(hold)
	return b.Broker.Publish(ctx, topic, payload)
}

func (b *countingBroker) Start(h partyline.BrokerHandler) error {
	return b.Broker.Start(countingHandler{h, b})
}

// PublishCount passes partyline.PublishCounter through, which embedding
// the interface would hide, so that cluster commands count their nodes.
func (b *countingBroker) PublishCount(ctx context.Context, topic string, payload []byte) (int, error) {
	return b.Broker.(partyline.PublishCounter).PublishCount(ctx, topic, payload)
}

func (b *countingBroker) received(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events[topic]
}

type countingHandler struct {
	partyline.BrokerHandler
	b *countingBroker
}

func (h countingHandler) HandleEvent(topic string, payload []byte) {
	h.b.mu.Lock()
	h.b.events[topic]++
	h.b.mu.Unlock()
	h.BrokerHandler.HandleEvent(topic, payload)
}

// TestOrderAcrossNodes: publishers on all three nodes write to one room at
// once; every subscriber on every node sees seq 1..N with no gap, the same
// contents in the same order, and every ack matches it.
func TestOrderAcrossNodes(t *testing.T) {
	cl := startCluster(t, 3)
	const room, perPublisher = "order", 100
	var subs []*client
	for _, n := range cl.nodes {
		for i := range 2 {
			c := n.dial(t, fmt.Sprintf("sub%s%d", n.name, i), "/ws/"+room)
			c.expectJoin(room)
			subs = append(subs, c)
		}
	}
	var pubs []*publisher
	for _, n := range cl.nodes {
		c := n.dial(t, "pub"+n.name, "/ws/"+room)
		c.expectJoin(room)
		pubs = append(pubs, startPublisher(c, "pub"+n.name, room, 0, perPublisher, nil))
	}
	for _, p := range pubs {
		p.wait(t)
	}
	const total = 3 * perPublisher
	for _, c := range subs {
		c.untilSeq(room, total)
	}
	canon := canonOf(subs[0].chats[room])
	for _, c := range subs {
		checkStream(t, c.name, c.chats[room], 1, total, canon)
	}
	for _, p := range pubs {
		p.checkAcks(t, canon)
	}
	// The publishers' writes interleaved, so the order was contended.
	if n := interleavings(subs[0].chats[room]); n < 10 {
		t.Fatalf("consecutive chats changed publisher only %d times in %d; the publishers did not run at once", n, total)
	}
}

// interleavings counts how often consecutive chats come from different
// publishers.
func interleavings(chats []frame) int {
	n := 0
	for i := 1; i < len(chats); i++ {
		if chats[i].Username != chats[i-1].Username {
			n++
		}
	}
	return n
}

// TestPresenceAcrossNodes: online_users lists the users of every node,
// user_joined and user_left cross nodes, and a user connected to two nodes
// leaves only when both connections are gone.
func TestPresenceAcrossNodes(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	const room = "lobby"
	path := "/ws/" + room

	alice := a.dial(t, "alice", path)
	_, online := alice.expectJoin(room)
	checkUsers(t, "alice's online_users", online.Users, "alice")

	bobB := b.dial(t, "bob", path)
	_, online = bobB.expectJoin(room)
	checkUsers(t, "bob@B's online_users", online.Users, "alice", "bob")
	alice.await("user_joined bob", userEvent("user_joined", room, "bob"))

	carol := c.dial(t, "carol", path)
	_, online = carol.expectJoin(room)
	checkUsers(t, "carol's online_users", online.Users, "alice", "bob", "carol")
	alice.await("user_joined carol", userEvent("user_joined", room, "carol"))
	bobB.await("user_joined carol", userEvent("user_joined", room, "carol"))

	// bob's second connection, on another node, is not a new arrival.
	bobC := c.dial(t, "bob", path)
	_, online = bobC.expectJoin(room)
	checkUsers(t, "bob@C's online_users", online.Users, "alice", "bob", "carol")

	// bob leaves node B but is still on node C: nobody sees him leave.
	bobB.close()
	waitUntil(t, waitTime, "node B to let bob's connection go", func() bool { return b.srv.Stats().Connections == 0 })
	carol.send(map[string]any{"type": "chat", "room": room, "content": "marker"})
	f := alice.await("carol's marker", func(f frame) bool {
		return f.Type == "chat" || f.Type == "user_joined" || f.Type == "user_left"
	})
	if f.Type != "chat" {
		t.Fatalf("alice got %v while bob still had a connection on node C, want no presence change", f)
	}
	alice.send(map[string]any{"type": "presence", "room": room})
	checkUsers(t, "online_users with bob on node C only", alice.awaitType("online_users").Users, "alice", "bob", "carol")

	// bob's last connection goes: everyone else sees him leave.
	bobC.close()
	alice.await("user_left bob", userEvent("user_left", room, "bob"))
	carol.await("user_left bob", userEvent("user_left", room, "bob"))
	alice.send(map[string]any{"type": "presence", "room": room})
	checkUsers(t, "online_users after bob left", alice.awaitType("online_users").Users, "alice", "carol")
	for _, n := range cl.nodes {
		users, err := n.srv.RoomUsers(t.Context(), room)
		if err != nil {
			t.Fatalf("node %s: RoomUsers: %v", n.name, err)
		}
		checkUsers(t, "RoomUsers on node "+n.name, users, "alice", "carol")
	}
}

// TestPresenceHandoverOrder: a user's last connection on node A leaves as
// their first on node B arrives, and A's user_left reaches the broker after
// B's user_joined. A member on node C must end with the user online: the
// stale user_left is dropped.
func TestPresenceHandoverOrder(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	const room = "lobby"
	path := "/ws/" + room
	carol := c.dial(t, "carol", path)
	carol.expectJoin(room)
	bobA := a.dial(t, "bob", path)
	bobA.expectJoin(room)
	carol.await("user_joined bob", userEvent("user_joined", room, "bob"))

	const hold = 500 * time.Millisecond
	a.broker.mu.Lock()
	a.broker.holdLeaves = hold
	a.broker.mu.Unlock()
	bobA.close()
	waitUntil(t, waitTime, "node A to decide that bob left", func() bool {
		a.broker.mu.Lock()
		defer a.broker.mu.Unlock()
		return a.broker.heldLeaves == 1
	})
	bobB := b.dial(t, "bob", path)
	bobB.expectJoin(room)
	carol.await("bob's user_joined from node B", userEvent("user_joined", room, "bob"))

	// Past the hold, node A's user_left has reached the broker; a chat sent
	// after it marks where carol must have seen it if it were delivered.
	time.Sleep(hold + 100*time.Millisecond)
	bobB.send(map[string]any{"type": "chat", "room": room, "content": "marker"})
	f := carol.await("bob's marker", func(f frame) bool { return f.Type == "chat" || f.Type == "user_left" })
	if f.Type != "chat" {
		t.Fatalf("carol got %v after bob's user_joined from node B, want the stale user_left dropped", f)
	}
	carol.send(map[string]any{"type": "presence", "room": room})
	checkUsers(t, "carol's online_users", carol.awaitType("online_users").Users, "bob", "carol")
}

// stalePresence is a Presence whose next Users call, once armed, answers
// what it found and then waits for release: the list of a joiner that
// another node's presence change overtakes.
type stalePresence struct {
	partyline.Presence
	armed          atomic.Bool
	asked, release chan struct{}
}

func (p *stalePresence) Users(ctx context.Context, room string) ([]string, error) {
	users, err := p.Presence.Users(ctx, room)
	if p.armed.CompareAndSwap(true, false) {
		close(p.asked)
		<-p.release
	}
	return users, err
}

// TestJoinerGetsWhatOvertookItsList: carol's user_joined, from node B,
// reaches node A's members while bob's online_users is being asked for on
// node A; bob gets it too, after his list.
func TestJoinerGetsWhatOvertookItsList(t *testing.T) {
	cl := newCluster(t)
	stale := &stalePresence{asked: make(chan struct{}), release: make(chan struct{})}
	cl.wrapPresence = func(p partyline.Presence) partyline.Presence { stale.Presence = p; return stale }
	a := cl.startNode(t, "A", cl.redisURL, cl.storeURL)
	cl.wrapPresence = nil
	b := cl.startNode(t, "B", cl.redisURL, cl.storeURL)
	const room = "overtaken"
	alice := a.dial(t, "alice", "/ws/"+room)
	alice.expectJoin(room)
	stale.armed.Store(true)
	bobJoined := make(chan *client, 1)
	go func() { bobJoined <- a.dial(t, "bob", "/ws/"+room) }()
	<-stale.asked // bob's list is alice and bob
	b.dial(t, "carol", "/ws/"+room).expectJoin(room)
	alice.await("user_joined carol", userEvent("user_joined", room, "carol"))
	close(stale.release)
	bob := <-bobJoined
	_, online := bob.expectJoin(room)
	checkUsers(t, "bob's online_users", online.Users, "alice", "bob")
	bob.await("user_joined carol", userEvent("user_joined", room, "carol"))
}

// userEvent matches a user_joined or user_left frame.
func userEvent(kind, room, user string) func(frame) bool {
	return func(f frame) bool { return f.Type == kind && f.Room == room && f.Username == user }
}

func checkUsers(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

// TestDirectKickAndPublishAcrossNodes: direct messages reach every
// connection of a user on any node, kicks close them all, and Publish on
// one node reaches clients of another.
func TestDirectKickAndPublishAcrossNodes(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	alice := a.dial(t, "alice", "/ws")
	bobB := b.dial(t, "bob", "/ws")
	bobC := c.dial(t, "bob", "/ws")
	for _, who := range []*client{alice, bobB, bobC} {
		who.sync() // online everywhere
	}

	alice.send(map[string]any{"type": "direct", "to": "bob", "content": "hi bob", "id": "d1"})
	if f := alice.await("ack d1", func(f frame) bool { return f.hasID("d1") }); f.Type != "ack" {
		t.Fatalf("alice's direct to bob (on nodes B and C) answered %v, want ack", f)
	}
	for _, bob := range []*client{bobB, bobC} {
		f := bob.awaitType("direct")
		if f.From != "alice" || f.To != "bob" || f.Content != "hi bob" {
			t.Fatalf("%s got %v, want alice's direct", bob.name, f)
		}
	}

	// bob answers from node B: alice gets it, and so does bob's other
	// connection (on node C), but not the one that sent it.
	bobB.send(map[string]any{"type": "direct", "to": "alice", "content": "hi alice", "id": "d2"})
	bobB.await("ack d2", func(f frame) bool { return f.Type == "ack" && f.hasID("d2") })
	if f := alice.awaitType("direct"); f.From != "bob" || f.Content != "hi alice" {
		t.Fatalf("alice got %v, want bob's direct", f)
	}
	if f := bobC.awaitType("direct"); f.From != "bob" || f.Content != "hi alice" {
		t.Fatalf("bob@C got %v, want the copy of bob's own direct", f)
	}
	alice.send(map[string]any{"type": "direct", "to": "bob", "content": "marker"})
	if f := bobB.awaitType("direct"); f.Content != "marker" {
		t.Fatalf("bob@B got %v, want alice's marker: the sending connection must not get its own direct", f)
	}

	alice.send(map[string]any{"type": "direct", "to": "nobody", "content": "hello?", "id": "d3"})
	if f := alice.await("answer to d3", func(f frame) bool { return f.hasID("d3") }); f.Type != "error" || f.Code != "user_offline" {
		t.Fatalf("direct to a user on no node answered %v, want error user_offline", f)
	}

	// The Go API on node C reaches alice on node A.
	if err := c.srv.SendDirect(t.Context(), partyline.DirectMessage{From: "ops", To: "alice", Content: "from ops"}); err != nil {
		t.Fatalf("node C: SendDirect to alice (on node A): %v", err)
	}
	if f := alice.awaitType("direct"); f.From != "ops" || f.Content != "from ops" {
		t.Fatalf("alice got %v, want the direct sent from node C", f)
	}

	// Publish on node A reaches a client on node C, stored once for all.
	carol := c.dial(t, "carol", "/ws/news")
	carol.expectJoin("news")
	m, err := a.srv.Publish(t.Context(), "news", partyline.Publication{Content: "extra"})
	if err != nil {
		t.Fatalf("node A: Publish: %v", err)
	}
	if f := carol.awaitType("chat"); f.Seq != m.Seq || f.Content != "extra" || f.Username != "system" {
		t.Fatalf("carol on node C got %v, want the chat published on node A with seq %d", f, m.Seq)
	}
	history, err := b.srv.History(t.Context(), "news", partyline.HistoryQuery{Limit: 10})
	if err != nil || len(history) != 1 || history[0].ID != m.ID {
		t.Fatalf("node B: History(news) = %v, %v; want the one message published on node A", history, err)
	}

	// Kick bob from node A, which holds none of his connections.
	n, err := a.srv.Disconnect(t.Context(), "bob")
	if err != nil || n != 2 {
		t.Fatalf("node A: Disconnect(bob) = %d, %v; want 2 (one on node B, one on C), nil", n, err)
	}
	for _, bob := range []*client{bobB, bobC} {
		if code := bob.closeCode(); code != partyline.CloseKicked {
			t.Fatalf("%s closed with %d, want %d (kicked)", bob.name, code, partyline.CloseKicked)
		}
	}
	waitUntil(t, waitTime, "bob to be offline everywhere", func() bool {
		err := a.srv.SendDirect(t.Context(), partyline.DirectMessage{To: "bob", Content: "still there?"})
		return partyline.ErrorCode(err) == partyline.CodeUserOffline
	})
	alice.send(map[string]any{"type": "ping", "id": "still-open"})
	alice.await("alice's pong", func(f frame) bool { return f.Type == "ack" && f.hasID("still-open") })
}

// TestRecoverOnAnotherNode: a client reads part of a room on node A, drops,
// and while publishers keep going rejoins on node B with since: it gets
// every message after since exactly once, then the live ones.
func TestRecoverOnAnotherNode(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	const room = "resume"
	reader := a.dial(t, "reader", "/ws/"+room)
	reader.expectJoin(room)
	pubConn := c.dial(t, "pub", "/ws/"+room)
	pubConn.expectJoin(room)
	pub := startPublisher(pubConn, "pub", room, 2*time.Millisecond, 3000, nil)
	defer pub.finish(t)

	reader.untilSeq(room, 30)
	before := reader.chats[room]
	last := before[len(before)-1].Seq
	reader.close()

	// It is away while 20 more are acked.
	waitUntil(t, waitTime, "20 more chats", func() bool { return pub.maxSeq() >= last+20 })
	back := b.dial(t, "reader", "/ws")
	back.joinSince(room, last)
	back.untilSeq(room, pub.maxSeq()+20) // live again, on node B
	pub.finish(t)
	top := pub.maxSeq()
	back.untilSeq(room, top)
	if f, err := back.awaitErr(300*time.Millisecond, func(f frame) bool { return f.Type == "chat" }); err == nil {
		t.Fatalf("reader got %v after the last seq %d, want nothing more", f, top)
	}

	canon := canonOf(back.chats[room])
	checkStream(t, "reader@A", before, 1, last, nil)
	checkStream(t, "reader@B after since", back.chats[room], last+1, top, nil)
	for _, f := range before {
		canon[f.Seq] = f.Content
	}
	pub.checkAcks(t, canon)
}

// TestOnlyWhereNeeded: a node subscribes to a room's channel only while it
// has a client there, so it never receives the events of other rooms.
func TestOnlyWhereNeeded(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	rdb := newRedisClient(t, cl.redisURL)
	defer rdb.Close()
	subscribers := func(channel string) int64 {
		t.Helper()
		counts, err := rdb.PubSubNumSub(t.Context(), cl.prefix+channel).Result()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB: %v", err)
		}
		return counts[cl.prefix+channel]
	}

	x1 := a.dial(t, "xa", "/ws/x")
	x1.expectJoin("x")
	x2 := b.dial(t, "xb", "/ws/x")
	x2.expectJoin("x")
	y := c.dial(t, "yc", "/ws/y")
	y.expectJoin("y")
	if got := subscribers("room:x"); got != 2 {
		t.Fatalf("nodes subscribed to room x = %d, want 2 (A and B; C has no client there)", got)
	}
	if got := subscribers("user:xa"); got != 1 {
		t.Fatalf("nodes subscribed to user xa = %d, want 1", got)
	}

	const n = 20
	for i := range n {
		if _, err := a.srv.Publish(t.Context(), "x", partyline.Publication{Content: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A marker in room y, published after x's events: once node C has it,
	// it would have had x's events too (one publisher, one order).
	if _, err := a.srv.Publish(t.Context(), "y", partyline.Publication{Content: "marker"}); err != nil {
		t.Fatal(err)
	}
	x2.untilSeq("x", n)
	y.untilSeq("y", 1)
	if got := c.broker.received("room:x"); got != 0 {
		t.Fatalf("node C received %d events of room x, where it has no client; want 0", got)
	}
	if got := b.broker.received("room:x"); got < n {
		t.Fatalf("node B received %d events of room x, want at least %d", got, n)
	}

	// When the room's last clients leave, its channel has no subscriber.
	x1.close()
	x2.close()
	waitUntil(t, waitTime, "nodes A and B to unsubscribe from room x", func() bool { return subscribers("room:x") == 0 })
}

// call makes an HTTP API request to the node and decodes the JSON answer
// into out (when not nil); it returns the status.
func (n *node) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, n.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on node %s: %v", method, path, n.name, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s on node %s: answer is not JSON: %v", method, path, n.name, err)
		}
	}
	return resp.StatusCode
}

// TestHTTPAPIAcrossNodes: every /api/ call answers for the whole cluster,
// whichever node receives it.
func TestHTTPAPIAcrossNodes(t *testing.T) {
	cl := startCluster(t, 3)
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	const room = "api"
	alice := a.dial(t, "alice", "/ws/"+room)
	alice.expectJoin(room)
	bob := b.dial(t, "bob", "/ws/"+room)
	bob.expectJoin(room)

	var posted struct{ Seq uint64 }
	if status := c.call(t, "POST", "/rooms/"+room+"/messages", `{"content":"from the backend"}`, &posted); status != http.StatusCreated || posted.Seq != 1 {
		t.Fatalf("POST /api/rooms/%s/messages on node C = %d, seq %d; want 201, seq 1", room, status, posted.Seq)
	}
	for _, who := range []*client{alice, bob} {
		if f := who.awaitType("chat"); f.Content != "from the backend" || f.Seq != 1 {
			t.Fatalf("%s got %v, want the chat posted on node C", who.name, f)
		}
	}

	var rooms struct{ Rooms []partyline.RoomInfo }
	c.call(t, "GET", "/rooms", "", &rooms)
	if want := []partyline.RoomInfo{{Room: room, Users: 2, Connections: 0, LastSeq: 1}}; !slices.Equal(rooms.Rooms, want) {
		t.Fatalf("GET /api/rooms on node C (no client of its own) = %+v, want %+v", rooms.Rooms, want)
	}
	var users struct{ Users []string }
	c.call(t, "GET", "/rooms/"+room+"/users", "", &users)
	checkUsers(t, "GET /api/rooms/"+room+"/users on node C", users.Users, "alice", "bob")
	var history struct{ Messages []struct{ Seq uint64 } }
	b.call(t, "GET", "/rooms/"+room+"/messages", "", &history)
	if len(history.Messages) != 1 || history.Messages[0].Seq != 1 {
		t.Fatalf("GET /api/rooms/%s/messages on node B = %+v, want the one message", room, history.Messages)
	}

	if status := c.call(t, "POST", "/users/alice/messages", `{"content":"psst","from":"ops"}`, nil); status != http.StatusAccepted {
		t.Fatalf("POST /api/users/alice/messages on node C = %d, want 202", status)
	}
	if f := alice.awaitType("direct"); f.From != "ops" || f.Content != "psst" {
		t.Fatalf("alice got %v, want the direct posted on node C", f)
	}
	var refusal struct{ Error struct{ Code string } }
	if status := c.call(t, "POST", "/users/nobody/messages", `{"content":"psst"}`, &refusal); status != http.StatusNotFound || refusal.Error.Code != "user_offline" {
		t.Fatalf("POST /api/users/nobody/messages = %d %q, want 404 user_offline", status, refusal.Error.Code)
	}

	var closed struct{ Closed int }
	if status := a.call(t, "DELETE", "/users/bob/connections", "", &closed); status != http.StatusOK {
		t.Fatalf("DELETE /api/users/bob/connections on node A = %d, want 200", status)
	}
	if closed.Closed != 1 {
		t.Fatalf("DELETE /api/users/bob/connections on node A = {closed: %d}, want 1 (bob's connection on node B)", closed.Closed)
	}
	if code := bob.closeCode(); code != partyline.CloseKicked {
		t.Fatalf("bob (on node B) closed with %d after the DELETE on node A, want %d", code, partyline.CloseKicked)
	}
}
