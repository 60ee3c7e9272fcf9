package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/redis"
)

// Server-sent events across real partyline processes (docs/protocol.md
// §12.1): a stream is held by one node, its client POSTs to any node, and a
// stream resumes with Last-Event-ID on another node when its node dies.

// sseEvent is one event of a stream: its data, and its id line if any.
type sseEvent struct {
	frame
	id      string
	withID  bool
	session string // the welcome's
}

// sseStream is a real SSE client of one node: a goroutine parses the
// response body (text/event-stream) into events. Comments (pings) are
// dropped. Every chat event it takes is also kept in chats.
type sseStream struct {
	t       testing.TB
	name    string // user@node, for messages
	session string
	body    io.Closer
	events  chan sseEvent
	done    chan struct{} // closed when the body has ended; err is set then
	err     error
	stop    chan struct{} // closed when the test ends: the reader drops what is left

	chats map[string][]sseEvent // room → chat events taken, in order
	last  string                // the id of the last event taken that had one
	// have is, for a stream opened with a Last-Event-ID, what the client
	// holds of each of its rooms: the id's seq, then each chat's. No id
	// may claim more, or name fewer rooms, or a client that reconnects
	// with it would miss messages.
	have map[string]uint64
}

// openSSE opens GET pathAndQuery (plus the username) on n with header and
// reads the welcome.
func openSSE(t testing.TB, n *partylineNode, user, pathAndQuery string, header http.Header) *sseStream {
	t.Helper()
	sep := "?"
	if strings.Contains(pathAndQuery, "?") {
		sep = "&"
	}
	base := "http://" + n.addr
	req, err := http.NewRequest(http.MethodGet, base+pathAndQuery+sep+"username="+user, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s on node %s: %v", pathAndQuery, n.name, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s on node %s = %d %q %s, want a 200 event stream", pathAndQuery, n.name, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{
		t: t, name: user + "@" + n.name, body: resp.Body,
		events: make(chan sseEvent, 4096), done: make(chan struct{}), stop: make(chan struct{}),
		chats: make(map[string][]sseEvent),
	}
	if token := req.Header.Get("Last-Event-ID"); token != "" {
		s.have = parseToken(t, token)
	}
	go s.read(resp.Body)
	t.Cleanup(func() {
		close(s.stop)
		s.body.Close()
		<-s.done
	})
	s.session = s.expect("welcome").session
	if !strings.HasPrefix(s.session, user+"~") || len(s.session) != len(user)+1+32 {
		t.Fatalf("%s: welcome session %q, want %s~ and 32 hex digits", s.name, s.session, user)
	}
	return s
}

// read is the reader goroutine: lines up to a blank one make an event.
func (s *sseStream) read(body io.Reader) {
	defer close(s.done)
	lines := bufio.NewScanner(body)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	var e sseEvent
	var data bool
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == "":
			if data {
				select {
				case s.events <- e:
				case <-s.stop:
					return
				}
			}
			e, data = sseEvent{}, false
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			e.id, e.withID = line[len("id: "):], true
		case strings.HasPrefix(line, "data: "):
			raw := []byte(line[len("data: "):])
			var extra struct{ Session string }
			if err := json.Unmarshal(raw, &extra); err != nil {
				s.err = fmt.Errorf("%s: event data %q is not one JSON object: %w", s.name, line, err)
				return
			}
			var typeErr *json.UnmarshalTypeError // a close's code is a number, an error's a string
			if err := json.Unmarshal(raw, &e.frame); err != nil && !errors.As(err, &typeErr) {
				s.err = fmt.Errorf("%s: event data %q: %w", s.name, line, err)
				return
			}
			e.session = extra.Session
			data = true
		default:
			s.err = fmt.Errorf("%s: unexpected line %q in the stream", s.name, line)
			return
		}
	}
	s.err = lines.Err()
	if s.err == nil {
		s.err = io.EOF
	}
}

// pop takes the next event, waiting up to d; once the body has ended and
// every event is taken it returns why it ended.
func (s *sseStream) pop(d time.Duration) (sseEvent, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var e sseEvent
	select {
	case e = <-s.events:
	case <-s.done:
		select {
		case e = <-s.events:
		default:
			return sseEvent{}, s.err
		}
	case <-timer.C:
		return sseEvent{}, errNoFrame
	}
	if e.Type == "chat" {
		s.chats[e.Room] = append(s.chats[e.Room], e)
		if _, ok := s.have[e.Room]; ok {
			s.have[e.Room] = max(s.have[e.Room], e.Seq)
		}
	}
	if e.withID {
		s.last = e.id
		s.checkClaim(e)
	}
	return e, nil
}

// checkClaim fails the test if e's id, as a Last-Event-ID, would skip
// messages of a resumed room the client has not received, or forget one.
func (s *sseStream) checkClaim(e sseEvent) {
	s.t.Helper()
	claim := parseToken(s.t, e.id)
	for room, have := range s.have {
		seq, ok := claim[room]
		if !ok {
			s.t.Errorf("%s: %s event %s has id %q without %s: a client reconnecting with it would no longer be in %s",
				s.name, e.Type, e.frame, e.id, room, room)
		} else if seq > have {
			s.t.Errorf("%s: %s event %s has id %q while the client has %s up to seq %d: one reconnecting with it would miss %d..%d",
				s.name, e.Type, e.frame, e.id, room, have, have+1, seq)
		}
	}
}

// parseToken reads a resume token, room=seq,room=seq.
func parseToken(t testing.TB, token string) map[string]uint64 {
	t.Helper()
	points := make(map[string]uint64)
	for part := range strings.SplitSeq(token, ",") {
		room, seq, ok := strings.Cut(part, "=")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || err != nil {
			t.Fatalf("id %q is not a list of room=seq", token)
		}
		points[room] = n
	}
	return points
}

// await takes events until one matches, failing the test after waitTime.
func (s *sseStream) await(what string, match func(sseEvent) bool) sseEvent {
	s.t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		e, err := s.pop(time.Until(deadline))
		if err != nil {
			s.t.Fatalf("%s: waiting for %s: %v (chats so far %v)", s.name, what, err, s.chats)
		}
		if match(e) {
			return e
		}
	}
}

// expect takes the next event and checks its type.
func (s *sseStream) expect(kind string) sseEvent {
	s.t.Helper()
	e, err := s.pop(waitTime)
	if err != nil {
		s.t.Fatalf("%s: waiting for %s: %v", s.name, kind, err)
	}
	if e.Type != kind {
		s.t.Fatalf("%s: got %v, want a %s event", s.name, e.frame, kind)
	}
	return e
}

// untilSeq takes events until the stream has taken a chat of room with a
// seq of at least seq.
func (s *sseStream) untilSeq(room string, seq uint64) {
	s.t.Helper()
	if chats := s.chats[room]; len(chats) > 0 && chats[len(chats)-1].Seq >= seq {
		return
	}
	s.await(fmt.Sprintf("seq %d of %s", seq, room), func(e sseEvent) bool {
		return e.Type == "chat" && e.Room == room && e.Seq >= seq
	})
}

// postSSE posts body, one client message, to session on node n, and
// returns the status, the error code of a refusal and how long it took.
func postSSE(t testing.TB, n *partylineNode, session, body string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.addr+"/sse/"+session, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("POST /sse/%s on node %s: %v", session, n.name, err)
	}
	defer resp.Body.Close()
	var refusal struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&refusal)
	return resp.StatusCode, refusal.Error.Code, took
}

// chatEvents is the seqs and contents of chat events, for messages.
func chatEvents(events []sseEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.Content))
	}
	return out
}

// checkChats checks that events carry exactly the seqs from..to, each once,
// in order, with the contents of canon.
func checkChats(t testing.TB, who string, events []sseEvent, from, to uint64, canon map[uint64]string) {
	t.Helper()
	if len(events) != int(to-from+1) {
		t.Fatalf("%s: chats %v, want seqs %d..%d exactly once", who, chatEvents(events), from, to)
	}
	for i, e := range events {
		if e.Seq != from+uint64(i) || e.Content != canon[e.Seq] {
			t.Fatalf("%s: chats %v, want seqs %d..%d in order with %v", who, chatEvents(events), from, to, canon)
		}
	}
}

// TestStreamPostsReachTheirNode: alice's stream is on node A; she POSTs her
// chats alternately to nodes B and C, as a client behind a load balancer
// without sticky sessions would. Each POST is answered 202 once node A has
// handled it, so the chats arrive in the order she sent them, each with
// its ack and an id naming its seq, and a WebSocket client on node C sees
// them. A session no node holds is answered 404 without waiting out the
// cluster command's bound, whether its user is online elsewhere or not;
// once the stream has ended, its session is unknown everywhere.
func TestStreamPostsReachTheirNode(t *testing.T) {
	redisURL, postgresURL := services(t)
	id := suffix()
	room := "sse-" + id
	user := func(name string) string { return name + "-" + id } // channels are global in Redis
	nodes := startNodes(t, []string{"A", "B", "C"},
		"--store", newSchema(t, postgresURL), "--broker", redisURL,
		"--presence-ttl", presenceTTL.String(), "--rate-limit", "-1", "--history-size", "0")
	a, b, c := nodes[0], nodes[1], nodes[2]

	alice := openSSE(t, a, user("alice"), "/sse/"+room, nil)
	if joined := alice.expect("joined"); joined.Room != room || joined.id != room+"=0" {
		t.Fatalf("alice joined %v with id %q, want %s with id %s=0", joined.frame, joined.id, room, room)
	}
	alice.expect("online_users")
	bob := c.dial(t, user("bob"), "/ws/"+room)
	bob.expectJoin(room)
	alice.await("user_joined bob", func(e sseEvent) bool { return e.Type == "user_joined" && e.Username == user("bob") })

	const total = 10
	canon := make(map[uint64]string)
	for i := range total {
		via := []*partylineNode{b, c}[i%2]
		content := fmt.Sprintf("via %s #%d", via.name, i)
		canon[uint64(i+1)] = content
		body, _ := json.Marshal(map[string]any{"type": "chat", "room": room, "content": content, "id": content})
		if status, code, took := postSSE(t, via, alice.session, string(body)); status != http.StatusAccepted {
			t.Fatalf("POST of chat %d to node %s = %d %s after %s, want 202", i, via.name, status, code, took)
		}
	}

	// The stream: every chat once, in order, with its id; every ack with
	// the seq of its chat. Over Redis, a chat may come before or after its
	// ack, but acks come in the order of the POSTs.
	acks := make(map[string]uint64)
	var ackOrder []string
	for len(alice.chats[room]) < total || len(acks) < total {
		e := alice.await("chats and acks", func(e sseEvent) bool { return e.Type == "chat" || e.Type == "ack" || e.Type == "error" })
		switch e.Type {
		case "error":
			t.Fatalf("alice got %v on her stream", e.frame)
		case "chat":
			if want := fmt.Sprintf("%s=%d", room, e.Seq); e.id != want {
				t.Fatalf("chat %v with id %q, want %q", e.frame, e.id, want)
			}
			if e.Username != user("alice") {
				t.Fatalf("chat %v, want from %s", e.frame, user("alice"))
			}
		case "ack":
			var content string
			if err := json.Unmarshal(e.ID, &content); err != nil {
				t.Fatalf("ack %v: id is not the chat's string id", e.frame)
			}
			if _, dup := acks[content]; dup {
				t.Fatalf("a second ack for %q", content)
			}
			acks[content] = e.Seq
			ackOrder = append(ackOrder, content)
		}
	}
	checkChats(t, alice.name, alice.chats[room], 1, total, canon)
	for i := range total {
		seq := uint64(i + 1)
		if ackOrder[i] != canon[seq] || acks[canon[seq]] != seq {
			t.Fatalf("acks %v (in that order) = %v, want %q acked as seq %d at place %d", ackOrder, acks, canon[seq], seq, i)
		}
	}
	bob.untilSeq(room, total)
	checkStream(t, bob.name, bob.chats[room], 1, total, canon)
	for _, f := range bob.chats[room] {
		if f.Username != user("alice") {
			t.Fatalf("bob got %v, want alice's chat", f)
		}
	}

	// Sessions nobody holds: of a user online on node A, and of a user
	// online nowhere. Node A answers at once that it has no such stream.
	for _, session := range []string{user("alice") + "~" + strings.Repeat("0", 32), user("nobody") + "~" + strings.Repeat("ab", 16)} {
		status, code, took := postSSE(t, b, session, `{"type":"ping"}`)
		if status != http.StatusNotFound || code != "not_found" || took >= commandWait {
			t.Fatalf("POST to the unknown session %s on node B = %d %s after %s, want 404 not_found within %s", session, status, code, took, commandWait)
		}
	}
	// The stream still works after the refusals, through node C.
	if status, code, _ := postSSE(t, c, alice.session, `{"type":"ping","id":"after"}`); status != http.StatusAccepted {
		t.Fatalf("POST of a ping to node C = %d %s, want 202", status, code)
	}
	alice.await("the ack of the ping", func(e sseEvent) bool { return e.Type == "ack" && e.hasID("after") })

	// Once the stream is gone, so is its session, on every node. (Until
	// node A has unsubscribed from alice's channel, a POST may wait out
	// the command's bound for a reply node A no longer sends; see
	// partyline's command.go.)
	alice.body.Close()
	bob.await("user_left alice", userEvent("user_left", room, user("alice")))
	rdb := newRedisClient(t, redisURL)
	defer rdb.Close()
	waitUntil(t, waitTime, "node A to unsubscribe from alice's channel", func() bool {
		counts, err := rdb.PubSubNumSub(t.Context(), redis.DefaultPrefix+"user:"+user("alice")).Result()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB: %v", err)
		}
		return counts[redis.DefaultPrefix+"user:"+user("alice")] == 0
	})
	for _, n := range nodes {
		status, code, took := postSSE(t, n, alice.session, `{"type":"ping"}`)
		if status != http.StatusNotFound || code != "not_found" || took >= commandWait {
			t.Fatalf("POST to the ended stream's session on node %s = %d %s after %s, want 404 not_found within %s", n.name, status, code, took, commandWait)
		}
	}
}

// TestStreamPostSlowToAllow: a chat POSTed to another node than its
// stream's, which the publish hook takes longer than the cluster command
// wait to allow, is answered 202 once allowed, not 404 as if no node held
// the session.
func TestStreamPostSlowToAllow(t *testing.T) {
	redisURL, postgresURL := services(t)
	const slow = commandWait + 500*time.Millisecond
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(slow)
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	id := suffix()
	room := "slow-" + id
	nodes := startNodes(t, []string{"A", "B"},
		"--store", newSchema(t, postgresURL), "--broker", redisURL, "--presence-ttl", presenceTTL.String(),
		"--hook-publish", hook.URL, "--hook-timeout", (2 * slow).String(), "--webhook-secret", "test-secret")
	a, b := nodes[0], nodes[1]
	alice := openSSE(t, a, "alice-"+id, "/sse/"+room, nil)
	alice.expect("joined")
	status, code, took := postSSE(t, b, alice.session, `{"type":"chat","room":"`+room+`","content":"slow","id":"slow"}`)
	if status != http.StatusAccepted || took < slow {
		t.Fatalf("POST to node B = %d %s after %s, want 202 once the hook allowed it, after %s", status, code, took, slow)
	}
	if ack := alice.await("the ack", func(e sseEvent) bool { return e.Type == "ack" || e.Type == "error" }); ack.Type != "ack" {
		t.Fatalf("alice got %v, want the ack of her chat", ack.frame)
	}
}

// TestStreamResumesOnAnotherNode: alice's stream on node A, in two rooms,
// has read some chats when node A is killed with SIGKILL. More chats are
// published through node B, by WebSocket in one room and by the HTTP API in
// the other. Her client opens a new stream on node C with the last event id
// it saw: both rooms are rejoined recovered, every chat she missed arrives
// exactly once and in order, then live ones, and her new session works
// through node B, while her old session is answered 404 at once. Every id of the new stream is one she could resume with
// again without loss: it names both rooms and no seq she has not had.
func TestStreamResumesOnAnotherNode(t *testing.T) {
	redisURL, postgresURL := services(t)
	id := suffix()
	r1, r2 := "ssea-"+id, "sseb-"+id // r1 sorts first in a resume token
	user := func(name string) string { return name + "-" + id }
	nodes := startNodes(t, []string{"A", "B", "C"},
		"--store", newSchema(t, postgresURL), "--broker", redisURL,
		"--presence-ttl", presenceTTL.String(), "--rate-limit", "-1", "--history-size", "0")
	a, b, c := nodes[0], nodes[1], nodes[2]

	first := openSSE(t, a, user("alice"), "/sse?room="+r1+"&room="+r2, nil)
	for _, room := range []string{r1, r2} { // joined after the welcome
		first.await("joined "+room, func(e sseEvent) bool { return e.Type == "joined" && e.Room == room })
	}
	pub := b.dial(t, user("pub"), "/ws?room="+r1+"&room="+r2)
	for _, room := range []string{r1, r2} {
		pub.expectJoin(room)
	}
	canon := map[string]map[uint64]string{r1: {}, r2: {}}
	chatWS := func(room, content string) {
		t.Helper()
		pub.send(map[string]any{"type": "chat", "room": room, "content": content, "id": content})
		ack := pub.await("the ack of "+content, func(f frame) bool {
			return (f.Type == "ack" || f.Type == "error") && f.hasID(content)
		})
		if ack.Type != "ack" {
			t.Fatalf("chat %q through node B: %v", content, ack)
		}
		canon[room][ack.Seq] = content
	}
	chatAPI := func(room, content string) {
		t.Helper()
		status, seq := publishAPI(t, b, room, content)
		if status != http.StatusCreated {
			t.Fatalf("POST /api/rooms/%s/messages on node B = %d, want 201", room, status)
		}
		canon[room][seq] = content
	}

	for i := range 3 {
		chatWS(r1, fmt.Sprint("before ", i))
	}
	for i := range 2 {
		chatAPI(r2, fmt.Sprint("before ", i))
	}
	first.untilSeq(r1, 3)
	first.untilSeq(r2, 2)
	lastID := first.last
	if want := fmt.Sprintf("%s=3,%s=2", r1, r2); lastID != want {
		t.Fatalf("the last event id on node A = %q, want %q", lastID, want)
	}
	checkChats(t, first.name+" before the kill", first.chats[r1], 1, 3, canon[r1])
	checkChats(t, first.name+" before the kill", first.chats[r2], 1, 2, canon[r2])

	a.kill(t)
	for {
		e, err := first.pop(waitTime)
		if errors.Is(err, errNoFrame) {
			t.Fatal("the stream on the killed node A is still open")
		}
		if err != nil {
			break
		}
		if e.Type == "chat" {
			t.Fatalf("the stream on node A got %v after the last chat published", e.frame)
		}
	}

	// The dead node's session is nobody's: node B says so without waiting
	// out the command's bound for a reply from node A.
	status, code, took := postSSE(t, b, first.session, `{"type":"ping"}`)
	if status != http.StatusNotFound || code != "not_found" || took >= commandWait {
		t.Fatalf("POST to the killed node's session on node B = %d %s after %s, want 404 not_found within %s", status, code, took, commandWait)
	}

	for i := range 4 {
		chatWS(r1, fmt.Sprint("missed ", i))
		if i < 3 {
			chatAPI(r2, fmt.Sprint("missed ", i))
		}
	}

	again := openSSE(t, c, user("alice"), "/sse", http.Header{"Last-Event-Id": {lastID}})
	rejoined := map[string]bool{}
	for len(rejoined) < 2 {
		e := again.await("joined", func(e sseEvent) bool { return e.Type == "joined" || e.Type == "chat" })
		if e.Type == "chat" {
			continue // a room's replay may start before the other is joined
		}
		if e.Recovered == nil || !*e.Recovered || rejoined[e.Room] || e.Room != r1 && e.Room != r2 {
			t.Fatalf("resumed on node C: %v, want one joined with recovered: true for each of %s and %s", e.frame, r1, r2)
		}
		rejoined[e.Room] = true
	}
	// Live chats after the replay: one published through node B, one that
	// alice POSTs to node B for her stream on node C.
	again.untilSeq(r1, 7)
	again.untilSeq(r2, 5)
	chatWS(r2, "live")
	body, _ := json.Marshal(map[string]any{"type": "chat", "room": r1, "content": "alice live", "id": "alice live"})
	if status, code, _ := postSSE(t, b, again.session, string(body)); status != http.StatusAccepted {
		t.Fatalf("POST to the resumed stream's session on node B = %d %s, want 202", status, code)
	}
	ack := again.await("the ack of alice's chat", func(e sseEvent) bool { return e.Type == "ack" && e.hasID("alice live") })
	canon[r1][ack.Seq] = "alice live"
	again.untilSeq(r1, 8)
	again.untilSeq(r2, 6)
	checkChats(t, again.name+" resumed", again.chats[r1], 4, 8, canon[r1])
	checkChats(t, again.name+" resumed", again.chats[r2], 3, 6, canon[r2])
	if want := fmt.Sprintf("%s=8,%s=6", r1, r2); again.last != want {
		t.Fatalf("the last event id on node C = %q, want %q", again.last, want)
	}
	// Nothing more: a ping's ack is the next event but pings and presence.
	if status, code, _ := postSSE(t, c, again.session, `{"type":"ping","id":"end"}`); status != http.StatusAccepted {
		t.Fatalf("POST of a ping to node C = %d %s, want 202", status, code)
	}
	e := again.await("the ack of the last ping", func(e sseEvent) bool { return e.Type == "ack" || e.Type == "chat" })
	if e.Type != "ack" || !e.hasID("end") {
		t.Fatalf("after every chat: %v, want only the ping's ack", e.frame)
	}
}

// publishAPI posts content to room through n's HTTP API and returns the
// status and the message's seq.
func publishAPI(t testing.TB, n *partylineNode, room, content string) (int, uint64) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"content": content})
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.addr+"/api/rooms/"+room+"/messages", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /api/rooms/%s/messages on node %s: %v", room, n.name, err)
	}
	defer resp.Body.Close()
	var posted struct{ Seq uint64 }
	json.NewDecoder(resp.Body).Decode(&posted)
	return resp.StatusCode, posted.Seq
}
