package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
	"github.com/partyline/partyline/internal/pgtest"
	"github.com/partyline/partyline/postgres"
	"github.com/partyline/partyline/sqlite"
)

// post sends a POST with body and, unless key is "-", an Idempotency-Key.
// It is safe to call from any goroutine: it returns errors, never fails t.
func (ts *testServer) post(path, body, key string) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.url+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "-" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}, err
}

// postOnce posts body to path with key and fails t unless the answer is 201,
// marked as a replay exactly when replayed. It returns the body.
func (ts *testServer) postOnce(t testing.TB, path, body, key string, replayed bool) string {
	t.Helper()
	resp, err := ts.post(path, body, key)
	if err != nil {
		t.Fatalf("POST %s with key %q: %v", path, key, err)
	}
	if resp.status != http.StatusCreated {
		t.Fatalf("POST %s %s with key %q: status %d %s, want 201", path, body, key, resp.status, resp.body)
	}
	want := ""
	if replayed {
		want = "true"
	}
	if got := resp.header.Get("Idempotent-Replayed"); got != want {
		t.Errorf("POST %s with key %q: Idempotent-Replayed %q, want %q", path, key, got, want)
	}
	return strings.TrimSpace(string(resp.body))
}

// countingBroker counts the events published on each topic.
type countingBroker struct {
	partyline.Broker
	mu        sync.Mutex // guards the following
	published map[string]int
}

func newCountingBroker() *countingBroker {
	return &countingBroker{Broker: partyline.NewMemoryBroker(), published: make(map[string]int)}
}

func (b *countingBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	b.mu.Lock()
	b.published[topic]++
	b.mu.Unlock()
	return b.Broker.Publish(ctx, topic, payload)
}

// chats returns how many events were published on room's topic. In a room
// nobody joins, those are its chat messages.
func (b *countingBroker) chats(room string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.published["room:"+room]
}

// checkLastSeq fails t unless room's last_seq on ts is want.
func checkLastSeq(t testing.TB, ts *testServer, room string, want uint64) {
	t.Helper()
	if got := ts.roomInfo(t, room).LastSeq; got != want {
		t.Errorf("last_seq of %s = %d, want %d", room, got, want)
	}
}

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	broker := newCountingBroker()
	ts := startServerWith(t, partyline.Options{Broker: broker}, httpapi.Options{})
	alice := ts.dial(t, "/ws/lobby?username=alice", 1)

	first := ts.postOnce(t, "/api/rooms/lobby/messages", `{"content":"order shipped"}`, "order-7", false)
	var p published
	response{body: []byte(first)}.decode(t, &p)
	if p.Seq != 1 || p.ID == "" || p.Timestamp <= 0 {
		t.Fatalf("first answer %s, want seq 1, an id and a timestamp", first)
	}
	if f := alice.Next(); f.Str("type") != "chat" || f.Str("id") != p.ID {
		t.Fatalf("alice got %v, want the chat %s", f, p.ID)
	}
	// The key decides: another body still answers the first result.
	for _, body := range []string{`{"content":"order shipped"}`, `{"content":"other","username":"eve"}`} {
		if again := ts.postOnce(t, "/api/rooms/lobby/messages", body, "order-7", true); again != first {
			t.Errorf("repeat with %s answered %s, want the first answer %s", body, again, first)
		}
	}
	checkLastSeq(t, ts, "lobby", 1)
	after := ts.publish(t, "lobby", `{"content":"after"}`)
	if f := alice.Next(); f.Str("type") != "chat" || f.Num("seq") != 2 || f.Str("id") != after.ID {
		t.Errorf("alice's next frame after the replays = %v, want the chat after them, seq 2: a replay delivers nothing", f)
	}

	// A replay announces nothing, not even to the broker.
	ts.postOnce(t, "/api/rooms/news/messages", `{"content":"x"}`, "news-1", false)
	ts.postOnce(t, "/api/rooms/news/messages", `{"content":"x"}`, "news-1", true)
	if n := broker.chats("news"); n != 1 {
		t.Errorf("%d events published to news after a message and its replay, want 1", n)
	}
}

func TestIdempotencyKeyOnPublishMany(t *testing.T) {
	broker := newCountingBroker()
	ts := startServerWith(t, partyline.Options{Broker: broker}, httpapi.Options{})
	first := ts.postOnce(t, "/api/messages", `{"rooms":["a","b"],"content":"hi"}`, "batch-1", false)
	var got publishedMany
	response{body: []byte(first)}.decode(t, &got)
	if len(got.Messages) != 2 || got.Messages[0].Room != "a" || got.Messages[1].Room != "b" ||
		got.Messages[0].Seq != 1 || got.Messages[1].Seq != 1 || got.Messages[0].ID == got.Messages[1].ID {
		t.Fatalf("first answer %s, want seq 1 in a and in b, distinct ids", first)
	}
	if again := ts.postOnce(t, "/api/messages", `{"rooms":["c"],"content":"other"}`, "batch-1", true); again != first {
		t.Errorf("repeat naming other rooms answered %s, want the first answer %s", again, first)
	}
	checkLastSeq(t, ts, "a", 1)
	checkLastSeq(t, ts, "c", 0)
	if a, b := broker.chats("a"), broker.chats("b"); a != 1 || b != 1 {
		t.Errorf("events published to a and b = %d and %d, want 1 and 1", a, b)
	}

	// The key space is shared by both endpoints.
	resp, err := ts.post("/api/rooms/a/messages", `{"content":"hi"}`, "batch-1")
	if err != nil || resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeBadRequest || !strings.Contains(resp.message(), "2 rooms") {
		t.Errorf("POST /api/rooms/a/messages with a key of 2 messages: %d %s %v, want 400 bad_request naming 2 rooms", resp.status, resp.body, err)
	}
	single := ts.postOnce(t, "/api/rooms/x/messages", `{"content":"hi"}`, "single-1", false)
	var p published
	response{body: []byte(single)}.decode(t, &p)
	ts.postOnce(t, "/api/messages", `{"rooms":["y"],"content":"hi"}`, "single-1", true)
	again, _ := ts.post("/api/messages", `{"rooms":["y"],"content":"hi"}`, "single-1")
	var many publishedMany
	again.decode(t, &many)
	if len(many.Messages) != 1 || many.Messages[0] != (publishedIn{Room: "x", Seq: p.Seq, ID: p.ID, Timestamp: p.Timestamp}) {
		t.Errorf("POST /api/messages with the key of a single message answered %s, want that message in x: %s", again.body, single)
	}
	checkLastSeq(t, ts, "y", 0)
}

func TestIdempotencyKeyRefused(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, key := range []string{"", strings.Repeat("k", 256), "tab\there", "ключ", "caf\u00e9"} {
		for _, req := range []struct{ path, body string }{
			{"/api/rooms/lobby/messages", `{"content":"hi"}`},
			{"/api/messages", `{"rooms":["lobby"],"content":"hi"}`},
		} {
			resp, err := ts.post(req.path, req.body, key)
			if err != nil {
				t.Fatalf("POST %s with key %q: %v", req.path, key, err)
			}
			if resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeBadRequest || !strings.Contains(resp.message(), "1 to 255 printable ASCII") {
				t.Errorf("POST %s with key %q: %d %s, want 400 bad_request saying 1 to 255 printable ASCII", req.path, key, resp.status, resp.body)
			}
		}
	}
	header := http.Header{"Idempotency-Key": {"one", "two"}}
	if resp := ts.doHeader(t, "POST", "/api/rooms/lobby/messages", `{"content":"hi"}`, header); resp.status != http.StatusBadRequest || !strings.Contains(resp.message(), "one Idempotency-Key") {
		t.Errorf("two Idempotency-Key headers: %d %s, want 400 asking for one", resp.status, resp.body)
	}
	checkLastSeq(t, ts, "lobby", 0)

	// A request refused for its body does not use up its key.
	resp, _ := ts.post("/api/messages", `{"rooms":["lobby","lobby"],"content":"hi"}`, "retry-me")
	if resp.status != http.StatusBadRequest {
		t.Errorf("duplicate rooms with a key: %d %s, want 400", resp.status, resp.body)
	}
	ts.postOnce(t, "/api/messages", `{"rooms":["lobby"],"content":"hi"}`, "retry-me", false)
	ts.postOnce(t, "/api/rooms/lobby/messages", `{"content":"longest key"}`, "a b"+strings.Repeat("~", 252), false)
	checkLastSeq(t, ts, "lobby", 2)
}

// plainStore is a Store that does not remember idempotency keys.
type plainStore struct{ partyline.Store }

func TestIdempotencyKeyNeedsAnIdempotentStore(t *testing.T) {
	ts := startServerWith(t, partyline.Options{Store: plainStore{partyline.NewMemoryStore(10)}}, httpapi.Options{})
	for _, req := range []struct{ path, body string }{
		{"/api/rooms/lobby/messages", `{"content":"hi"}`},
		{"/api/messages", `{"rooms":["lobby"],"content":"hi"}`},
	} {
		resp, err := ts.post(req.path, req.body, "k")
		if err != nil || resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeBadRequest || !strings.Contains(resp.message(), "does not remember idempotency keys") {
			t.Errorf("POST %s with a key to a store without them: %d %s %v, want 400 bad_request saying so", req.path, resp.status, resp.body, err)
		}
	}
	checkLastSeq(t, ts, "lobby", 0)
	ts.publish(t, "lobby", `{"content":"without a key"}`)
}

// checkConcurrentKey sends 20 requests with one key at once, spread over
// nodes, and fails t unless all answer the same, exactly one of them
// first, and room holds one message.
func checkConcurrentKey(t *testing.T, nodes []*testServer, room, key string) {
	t.Helper()
	const requests = 20
	answers := make([]response, requests)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			var err error
			answers[i], err = nodes[i%len(nodes)].post("/api/rooms/"+room+"/messages", fmt.Sprintf(`{"content":"try %d"}`, i), key)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	firsts := 0
	for i, a := range answers {
		if a.status != http.StatusCreated || string(a.body) != string(answers[0].body) {
			t.Errorf("request %d: %d %s, want 201 %s like request 0", i, a.status, a.body, answers[0].body)
		}
		if a.header.Get("Idempotent-Replayed") == "" {
			firsts++
		}
	}
	if firsts != 1 {
		t.Errorf("%d of %d answers not marked Idempotent-Replayed, want 1", firsts, requests)
	}
	for _, ts := range nodes {
		checkLastSeq(t, ts, room, 1)
	}
}

func TestIdempotencyKeyConcurrent(t *testing.T) {
	broker := newCountingBroker()
	ts := startServerWith(t, partyline.Options{Broker: broker}, httpapi.Options{})
	checkConcurrentKey(t, []*testServer{ts}, "burst", "same-key")
	if n := broker.chats("burst"); n != 1 {
		t.Errorf("%d events published for 20 requests with one key, want 1", n)
	}
}

func TestIdempotencyKeyAcrossRestartSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "partyline.db")
	openStore := func() *sqlite.Store {
		store, err := sqlite.Open(t.Context(), path, sqlite.Options{})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		return store
	}
	store := openStore()
	before := startServerWith(t, partyline.Options{Store: store}, httpapi.Options{})
	first := before.postOnce(t, "/api/rooms/lobby/messages", `{"content":"once"}`, "restart-1", false)
	before.stop()
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	store = openStore()
	t.Cleanup(func() { store.Close() })
	after := startServerWith(t, partyline.Options{Store: store}, httpapi.Options{})
	alice := after.dial(t, "/ws/lobby?username=alice", 1)
	if again := after.postOnce(t, "/api/rooms/lobby/messages", `{"content":"once"}`, "restart-1", true); again != first {
		t.Errorf("after a restart the key answered %s, want the first answer %s", again, first)
	}
	checkLastSeq(t, after, "lobby", 1)
	next := after.publish(t, "lobby", `{"content":"next"}`)
	if f := alice.Next(); f.Str("type") != "chat" || f.Str("id") != next.ID {
		t.Errorf("alice's next frame after the replay = %v, want the next chat %s", f, next.ID)
	}
	checkConcurrentKey(t, []*testServer{after}, "burst", "restart-2")
}

func TestIdempotencyKeyAcrossNodesPostgres(t *testing.T) {
	schema := pgtest.Schema(t)
	var nodes []*testServer
	var brokers []*countingBroker
	for range 2 {
		store, err := postgres.Open(t.Context(), schema, 0)
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(func() { store.Close() })
		broker := newCountingBroker()
		brokers = append(brokers, broker)
		// Each node has a broker of its own: what node 2 delivers, it
		// learnt from the shared store or its own requests.
		nodes = append(nodes, startServerWith(t, partyline.Options{Store: store, Broker: broker}, httpapi.Options{}))
	}
	alice := nodes[1].dial(t, "/ws/lobby?username=alice", 1)

	first := nodes[0].postOnce(t, "/api/rooms/lobby/messages", `{"content":"once","data":{"n":1}}`, "node-1", false)
	if again := nodes[1].postOnce(t, "/api/rooms/lobby/messages", `{"content":"once","data":{"n":1}}`, "node-1", true); again != first {
		t.Errorf("node 2 answered %s, want node 1's answer %s", again, first)
	}
	checkLastSeq(t, nodes[1], "lobby", 1)
	next := nodes[1].publish(t, "lobby", `{"content":"next"}`)
	if next.Seq != 2 {
		t.Errorf("next message on node 2 has seq %d, want 2", next.Seq)
	}
	for {
		// alice joined after node 1's message or before it; either way she
		// must see no replay, only the next message (after a gap fill of
		// seq 1 at most, which carries node 1's id).
		f := alice.Next()
		if f.Str("type") != "chat" {
			t.Fatalf("alice got %v, want chat", f)
		}
		if f.Num("seq") == 2 {
			break
		}
		var p published
		response{body: []byte(first)}.decode(t, &p)
		if f.Num("seq") != 1 || f.Str("id") != p.ID {
			t.Fatalf("alice got %v before the next message, want nothing but seq 1 %s", f, p.ID)
		}
	}

	nodes[0].postOnce(t, "/api/messages", `{"rooms":["news"],"content":"x"}`, "node-2", false)
	nodes[1].postOnce(t, "/api/messages", `{"rooms":["news"],"content":"x"}`, "node-2", true)
	if n := brokers[1].chats("news"); n != 0 {
		t.Errorf("node 2 published %d events for a replay, want 0", n)
	}
	checkLastSeq(t, nodes[1], "news", 1)
	checkConcurrentKey(t, nodes, "burst", "node-3")
}
