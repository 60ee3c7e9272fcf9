package partyline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// Robustness of server-sent event streams (docs/protocol.md §12.1, §13):
// slow-consumer eviction, rate limits, the idle timeout and close reasons
// apply as on WebSocket; streams leave nothing behind; and every event id
// is a Last-Event-ID the client can resume with, losing nothing.

// stuckStream is an SSE client on a bare TCP connection that reads only
// when told to: until then the server's events pile up in the kernel, as
// with a client that has stopped reading without closing.
type stuckStream struct {
	conn net.Conn
	in   *bufio.Reader
}

// openStuckStream sends GET path and reads the response's head, nothing
// more. Its receive buffer is small, as dialSmallBuffer's.
func openStuckStream(t *testing.T, base, path string) *stuckStream {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n", path)
	s := &stuckStream{conn: conn, in: bufio.NewReader(conn)}
	conn.SetReadDeadline(time.Now().Add(waitTime))
	status, err := s.in.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		t.Fatalf("GET %s answered %q (%v), want 200", path, status, err)
	}
	for {
		line, err := s.in.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response head: %v", err)
		}
		if line == "\r\n" {
			return s
		}
	}
}

// streamEnd is what a stuck stream held once read through.
type streamEnd struct {
	seqs   []uint64 // chat seqs, in order
	joined uint64   // the seq of the last joined
	lastID string   // the last id line
	code   int      // the close event's
	reason string
	err    error // how the stream ended after its close: io.EOF when cleanly
}

// readAll reads events until the close event, then until the stream ends.
func (s *stuckStream) readAll(t *testing.T) streamEnd {
	t.Helper()
	var end streamEnd
	s.conn.SetReadDeadline(time.Now().Add(2 * waitTime))
	closed := false
	for {
		line, err := s.in.ReadString('\n')
		if err != nil {
			if !closed {
				t.Fatalf("after %d chats: %v, want a close event", len(end.seqs), err)
			}
			end.err = err
			return end
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case closed:
			t.Fatalf("%q after the close event, want the end of the stream", line)
		case line == "" || strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			end.lastID = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			var f wstest.Frame
			if err := json.Unmarshal([]byte(line[len("data: "):]), &f); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			switch f.Str("type") {
			case "chat":
				end.seqs = append(end.seqs, f.Num("seq"))
			case "joined":
				end.joined = f.Num("seq")
			case "close":
				end.code, end.reason, closed = int(f.Num("code")), f.Str("reason"), true
				// the blank line that ends the event, then nothing
				if rest, err := s.in.ReadString('\n'); rest != "\n" {
					t.Fatalf("close event followed by %q (%v), want its blank line", rest, err)
				}
			}
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

// TestStreamSlowConsumerIsEvicted has a stream's client stop reading while
// messages keep coming to its room: the stream is evicted with 4009, by the
// lag rule with a queue too long to fill, or by its queue filling. When the
// client reads at last, it gets what the kernel held, in order, then the
// close event with its "retry after", then a clean end of the stream. It
// resumes with the last id it read and misses nothing; no goroutine is left
// behind.
func TestStreamSlowConsumerIsEvicted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxLag    time.Duration
		sendQueue int
		size      int // of each message
	}{
		{"lag", 300 * time.Millisecond, 1 << 16, 1 << 10},
		{"queue", -1, 16, 16 << 10}, // large, so that the kernel's buffers fill quickly
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ping = 100 * time.Millisecond
			metrics := &evictionCounter{}
			srv, base := streamServer(t, partyline.Options{MaxLag: tc.maxLag, SendQueue: tc.sendQueue, PingInterval: ping,
				RateLimit: -1, Store: partyline.NewMemoryStore(0), Metrics: metrics})
			baseline := runtime.NumGoroutine()
			stuck := openStuckStream(t, base, "/sse?username=stuck&room=lobby")
			waitUntil(t, "the stream in the room", func() bool {
				rooms, err := srv.Rooms(context.Background())
				return err == nil && len(rooms) == 1 && rooms[0].Connections == 1
			})
			content := strings.Repeat("x", tc.size)
			publish := func(content string) uint64 {
				m, err := srv.Publish(context.Background(), "lobby", partyline.Publication{Content: content})
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				return m.Seq
			}
			start := time.Now()
			var sent int
			for metrics.evicted.Load() == 0 { // a message every 2 ms, until the eviction
				if time.Since(start) > 10*time.Second {
					t.Fatalf("not evicted after %v and %d KB", time.Since(start), sent>>10)
				}
				publish(content)
				sent += len(content)
				time.Sleep(2 * time.Millisecond)
			}
			t.Logf("evicted after %v, %d KB published", time.Since(start), sent>>10)
			if tc.maxLag > 0 {
				if limit := tc.maxLag + ping + 3*time.Second; time.Since(start) > limit {
					t.Errorf("evicted after %v, want within %v", time.Since(start), limit)
				}
			}
			for range 20 { // live traffic goes on after the eviction
				publish("after")
			}
			last := publish("last")

			end := stuck.readAll(t)
			m := retryReason.FindStringSubmatch(end.reason)
			if end.code != partyline.CloseSlowConsumer || m == nil {
				t.Fatalf("stuck stream closed with %d %q, want 4009 \"slow consumer; retry after …ms\"", end.code, end.reason)
			}
			if !errors.Is(end.err, io.EOF) {
				t.Errorf("after the close event the stream ended with %v, want its clean end (EOF), not a reset", end.err)
			}
			checkSeqs(t, "stuck stream", end.seqs, end.joined+1)
			resumeFrom := end.joined
			if len(end.seqs) > 0 {
				resumeFrom = end.seqs[len(end.seqs)-1]
			}
			if resumeFrom >= last {
				t.Fatalf("the stuck stream got everything (%d of %d) before its close", resumeFrom, last)
			}
			if want := "lobby=" + strconv.FormatUint(resumeFrom, 10); end.lastID != want {
				t.Fatalf("the last id read = %q, want %q", end.lastID, want)
			}

			again := openStream(t, base, "/sse?username=stuck", http.Header{"Last-Event-Id": {end.lastID}})
			if e := again.waitFor("joined"); e.data["recovered"] != true {
				t.Fatalf("resumed with %q: %v, want recovered", end.lastID, e.data)
			}
			var resumed []uint64
			for uint64(len(resumed)) < last-resumeFrom {
				resumed = append(resumed, again.waitFor("chat").data.Num("seq"))
			}
			checkSeqs(t, "resumed stream", resumed, resumeFrom+1)

			stuck.conn.Close()
			again.body.Close()
			waitUntil(t, "the streams to close", func() bool { return srv.Stats().Connections == 0 })
			waitUntil(t, "goroutines back to baseline", func() bool {
				http.DefaultClient.CloseIdleConnections()
				return runtime.NumGoroutine() <= baseline+2
			})
		})
	}
}

// postStream posts body to session at base without failing the test: for
// goroutines. It returns the status and the refusal's error code.
func postStream(base, session string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sse/"+session, strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var refusal struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&refusal)
	return resp.StatusCode, refusal.Error.Code, nil
}

// closeOf reads a stream to its close event and checks that the stream
// ends right after it; it returns the close's code and reason.
func closeOf(t *testing.T, s *stream) (int, string) {
	t.Helper()
	e := s.waitFor("close")
	select {
	case <-s.ended:
	case <-time.After(waitTime):
		t.Fatal("the stream did not end after its close event")
	}
	for {
		select {
		case e := <-s.events:
			if e.comment == "" {
				t.Fatalf("%v after the close event", e.data)
			}
			continue
		default:
		}
		break
	}
	return int(e.data.Num("code")), e.data.Str("reason")
}

// TestStreamRateLimit: on a frozen clock, the burst's POSTs are handled,
// the next ones answered rate_limited on the stream, each echoing its id,
// and one refusal more than the burst closes the stream with 4008. Every
// POST is answered 202, the refused ones too; once the stream is closed,
// its session is gone.
func TestStreamRateLimit(t *testing.T) {
	clock := newFakeClock() // frozen: no tokens come back
	_, base := streamServer(t, partyline.Options{Now: clock.Now, RateLimit: 1, RateBurst: 3})
	s := openStream(t, base, "/sse?username=alice", nil)
	for i := range 3 {
		s.send(map[string]any{"type": "ping", "id": i})
		if e := s.next(); e.data.Str("type") != "pong" {
			t.Fatalf("ping %d within the burst: %v, want pong", i, e.data)
		}
		if e := s.next(); e.data.Str("type") != "ack" || e.data.Num("id") != uint64(i) {
			t.Fatalf("ping %d within the burst: %v, want its ack", i, e.data)
		}
	}
	for i := range 3 {
		s.send(map[string]any{"type": "ping", "id": 10 + i})
		if e := s.next(); e.data.Str("type") != "error" || e.data.Str("code") != "rate_limited" || e.data.Num("id") != uint64(10+i) {
			t.Fatalf("ping beyond the burst: %v, want rate_limited echoing id %d", e.data, 10+i)
		}
	}
	s.send(map[string]any{"type": "ping", "id": 99})
	if code, reason := closeOf(t, s); code != partyline.CloseRateLimit || reason == "" {
		t.Fatalf("after a burst of refusals: close %d %q, want 4008 with a reason", code, reason)
	}
	if status, code := s.post(s.session, `{"type":"ping"}`, nil); status != http.StatusNotFound || code != "not_found" {
		t.Fatalf("POST to the closed stream: %d %s, want 404 not_found", status, code)
	}
}

// TestStreamConcurrentFloodIsClosed: a client POSTs 60 messages at once to
// its stream, far over a burst of 3 on a frozen clock. The stream handles
// them one at a time: exactly the burst is answered, exactly the burst is
// refused rate_limited, then the close 4008 and the end of the stream.
// Every POST is answered 202 or, once the stream is closing, 404.
func TestStreamConcurrentFloodIsClosed(t *testing.T) {
	clock := newFakeClock()
	_, base := streamServer(t, partyline.Options{Now: clock.Now, RateLimit: 1, RateBurst: 3})
	s := openStream(t, base, "/sse?username=flood&room=lobby", nil)
	s.waitFor("online_users")
	const posts = 60
	answers := make(chan string, posts)
	var wg sync.WaitGroup
	for i := range posts {
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"type":"chat","room":"lobby","content":"flood %d","id":%d}`, i, i)
			status, code, err := postStream(base, s.session, body)
			if err != nil {
				answers <- err.Error()
				return
			}
			answers <- fmt.Sprint(status, code)
		})
	}
	wg.Wait()
	close(answers)
	accepted := 0
	for a := range answers {
		switch a {
		case "202":
			accepted++
		case "404not_found":
		default:
			t.Errorf("a POST of the flood was answered %s, want 202 or 404 not_found", a)
		}
	}
	if accepted < 7 {
		t.Errorf("%d POSTs accepted, want at least the 7 the stream handled before its close", accepted)
	}
	count := map[string]int{}
	for {
		e := s.next()
		kind := e.data.Str("type")
		if kind == "error" {
			kind += " " + e.data.Str("code")
		}
		if kind == "close" {
			if code := e.data.Num("code"); code != partyline.CloseRateLimit {
				t.Fatalf("the flooded stream closed with %d, want 4008", code)
			}
			break
		}
		count[kind]++
	}
	if count["chat"] != 3 || count["ack"] != 3 || count["error rate_limited"] != 3 || len(count) != 3 {
		t.Fatalf("the flooded stream got %v before its close, want 3 chats, 3 acks and 3 rate_limited", count)
	}
	select {
	case <-s.ended:
	case <-time.After(waitTime):
		t.Fatal("the stream did not end after its close event")
	}
}

// TestStreamIdleTimeout: a stream whose client POSTs nothing is closed
// with 1000 "idle timeout", not before the timeout; one whose client POSTs
// more often than that stays open meanwhile, and long after.
func TestStreamIdleTimeout(t *testing.T) {
	const idle = time.Second // the busy client's rounds stay well within it on a busy machine
	_, base := streamServer(t, partyline.Options{IdleTimeout: idle})
	opened := time.Now()
	quiet := openStream(t, base, "/sse?username=quiet", nil)
	busy := openStream(t, base, "/sse?username=busy", nil)
	var quietEnded time.Duration
	for i := 0; quietEnded == 0 || time.Since(opened) < 3*idle; i++ {
		if time.Since(opened) > waitTime {
			t.Fatalf("the quiet stream is still open after %v, with an idle timeout of %v", waitTime, idle)
		}
		busy.send(map[string]any{"type": "ping", "id": i})
		if e := busy.next(); e.data.Str("type") != "pong" {
			t.Fatalf("the busy stream got %v after %v, want pong", e.data, time.Since(opened))
		}
		if e := busy.next(); e.data.Str("type") != "ack" {
			t.Fatalf("the busy stream got %v after %v, want ack", e.data, time.Since(opened))
		}
		select {
		case <-quiet.ended:
			if quietEnded == 0 {
				quietEnded = time.Since(opened)
			}
		default:
		}
		time.Sleep(idle / 8) // the client's pace, well within the timeout
	}
	if quietEnded < idle {
		t.Errorf("the quiet stream ended %v after it opened, before the idle timeout of %v", quietEnded, idle)
	}
	if code, reason := closeOf(t, quiet); code != partyline.CloseNormal || reason != "idle timeout" {
		t.Fatalf("the quiet stream closed with %d %q, want 1000 \"idle timeout\"", code, reason)
	}
	select {
	case <-busy.ended:
		t.Fatal("the busy stream ended")
	default:
	}
}

// TestStreamsLeakNothing opens streams and has them close every way: the
// client drops the connection (right away, or after POSTing), the server
// kicks (4003) or refuses what was POSTed (1007). Connections, rooms,
// goroutines and descriptors all return to where they were.
func TestStreamsLeakNothing(t *testing.T) {
	srv, base := streamServer(t, partyline.Options{RateLimit: -1})
	http.DefaultClient.CloseIdleConnections()
	baseGoroutines, baseFDs := runtime.NumGoroutine(), openFDs(t)
	const n = 120
	streams := make([]*stream, n)
	for i := range n {
		streams[i] = openStream(t, base, fmt.Sprintf("/sse?username=u%d&room=r%d", i, i%7), nil)
		streams[i].waitFor("online_users")
	}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			switch i % 4 {
			case 0: // the client drops the connection
				s.body.Close()
			case 1: // kicked
				if closed, err := srv.Disconnect(context.Background(), fmt.Sprint("u", i)); closed != 1 || err != nil {
					errs <- fmt.Errorf("Disconnect u%d: %d, %v; want 1", i, closed, err)
				}
			case 2: // invalid UTF-8: closed with 1007
				if status, code, err := postStream(base, s.session, []byte("\xff\xfe")); status != http.StatusAccepted {
					errs <- fmt.Errorf("POST of invalid UTF-8: %d %s %v, want 202", status, code, err)
				}
			case 3: // a chat, then the client drops the connection
				if status, code, err := postStream(base, s.session, []byte("bye")); status != http.StatusAccepted {
					errs <- fmt.Errorf("POST of a chat: %d %s %v, want 202", status, code, err)
				}
				s.body.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, s := range streams {
		switch i % 4 {
		case 1:
			if code, _ := closeOf(t, s); code != partyline.CloseKicked {
				t.Errorf("u%d kicked: close %d, want 4003", i, code)
			}
		case 2:
			if code, _ := closeOf(t, s); code != partyline.CloseInvalidData {
				t.Errorf("u%d after invalid UTF-8: close %d, want 1007", i, code)
			}
		}
		s.body.Close()
	}
	waitUntil(t, "streams to close", func() bool { return srv.Stats().Connections == 0 && srv.Stats().Rooms == 0 })
	waitUntil(t, "goroutines back to baseline", func() bool {
		http.DefaultClient.CloseIdleConnections()
		return runtime.NumGoroutine() <= baseGoroutines+2
	})
	waitUntil(t, "descriptors back to baseline", func() bool { return openFDs(t) <= baseFDs+2 })
}

// resumePoints reads a resume token, room=seq,room=seq.
func resumePoints(t *testing.T, token string) map[string]uint64 {
	t.Helper()
	points := map[string]uint64{}
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

// TestStreamIDsAreResumable: every id of a resumed stream is a
// Last-Event-ID the client could reconnect with, should the stream break
// right after that event, without losing a message: it names every room
// of the stream, with no seq beyond what the client has received. So the
// joined of a room resumed with since carries the since, not the room's
// latest seq, whatever of the replay follows; and the first rooms joined
// do not make the id forget the rooms still to join.
func TestStreamIDsAreResumable(t *testing.T) {
	srv, base := streamServer(t, partyline.Options{RateLimit: -1, Store: partyline.NewMemoryStore(0)})
	for i := range 5 {
		srv.Publish(context.Background(), "lobby", partyline.Publication{Content: fmt.Sprint("lobby ", i)})
	}
	for i := range 3 {
		srv.Publish(context.Background(), "design", partyline.Publication{Content: fmt.Sprint("design ", i)})
	}
	const token = "design=1,lobby=2"
	s := openStream(t, base, "/sse?username=alice", http.Header{"Last-Event-Id": {token}})
	have := resumePoints(t, token)
	var first string // the first id of the stream
	for have["lobby"] < 5 || have["design"] < 3 {
		e := s.next()
		if e.data.Str("type") == "chat" {
			room, seq := e.data.Str("room"), e.data.Num("seq")
			if seq != have[room]+1 {
				t.Fatalf("chat %v after seq %d of %s, want the next", e.data, have[room], room)
			}
			have[room] = seq
		}
		if !e.hasID {
			continue
		}
		if first == "" {
			first = e.id
		}
		claim := resumePoints(t, e.id)
		for room, seq := range have {
			if got, ok := claim[room]; !ok || got > seq {
				t.Errorf("%s event %v has id %q while the client has %s up to seq %d: resuming with it would lose messages",
					e.data.Str("type"), e.data, e.id, room, seq)
			}
		}
	}
	s.body.Close()

	// The stream breaks right after its first event with an id: the client
	// resumes with it, and gets everything it had not received.
	again := openStream(t, base, "/sse?username=alice", http.Header{"Last-Event-Id": {first}})
	got := map[string][]uint64{}
	for len(got["lobby"]) < 3 || len(got["design"]) < 2 {
		e := again.next()
		switch e.data.Str("type") {
		case "joined":
			if e.data["recovered"] != true {
				t.Fatalf("resumed with the first id %q: %v, want recovered", first, e.data)
			}
		case "chat":
			room := e.data.Str("room")
			got[room] = append(got[room], e.data.Num("seq"))
		}
	}
	if fmt.Sprint(got["lobby"], got["design"]) != "[3 4 5] [2 3]" {
		t.Fatalf("resumed with the first id %q: lobby %v and design %v, want lobby 3..5 and design 2..3", first, got["lobby"], got["design"])
	}
}

// lockedLog is an io.Writer for a test's logger, safe for the server's
// goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStreamSessionNotLogged: a stream's session, a secret handle for
// sending, is never logged whole, even at debug level; enough of it is
// to tell streams apart.
func TestStreamSessionNotLogged(t *testing.T) {
	var log lockedLog
	srv, base := streamServer(t, partyline.Options{Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s := openStream(t, base, "/sse?username=alice", nil)
	s.body.Close()
	waitUntil(t, "the stream to close", func() bool { return srv.Stats().Connections == 0 })
	logged := log.String()
	if strings.Contains(logged, s.session) {
		t.Fatalf("the log holds the whole session %s:\n%s", s.session, logged)
	}
	if !strings.Contains(logged, s.session[:len("alice~")+8]) {
		t.Fatalf("the log names no part of the session %s:\n%s", s.session, logged)
	}
}
