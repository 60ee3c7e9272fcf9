package partyline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// TestConcurrentPublishersSameOrderForAll has many clients publish into one
// room at once; every subscriber must see seq 1..N in order, no gap, and
// exactly the same sequence of messages.
func TestConcurrentPublishersSameOrderForAll(t *testing.T) {
	fanOutToAll(t, 5, 8, 40)
}

// fanOutToAll has publishers send perPublisher messages each, at once,
// into a room of subscribers, and checks that each subscriber gets them
// all, with seqs 1..N in order, in the same order as the others.
func fanOutToAll(t *testing.T, subscribers, publishers, perPublisher int) {
	t.Helper()
	ts := startServer(t, partyline.Options{RateLimit: -1})
	subs := make([]*wstest.Client, subscribers)
	for i := range subs {
		subs[i] = ts.dial(t, fmt.Sprintf("/ws?username=sub%d&room=lobby", i))
		subs[i].Expect("joined")
	}
	var wg sync.WaitGroup
	for p := range publishers {
		pub := ts.dial(t, fmt.Sprintf("/ws?username=pub%d&room=lobby", p))
		wg.Go(func() {
			for i := range perPublisher {
				pub.Send(map[string]any{"type": "chat", "content": fmt.Sprintf("p%d-%d", p, i)})
			}
		})
	}
	wg.Wait()
	total := publishers * perPublisher
	var first []string
	for i, c := range subs {
		got := readChats(t, c, total)
		contents := make([]string, total)
		for j, f := range got {
			if f.Num("seq") != uint64(j+1) {
				t.Fatalf("subscriber %d: message %d has seq %d, want %d", i, j, f.Num("seq"), j+1)
			}
			contents[j] = f.Str("content")
		}
		if first == nil {
			first = contents
		} else if strings.Join(contents, ",") != strings.Join(first, ",") {
			t.Fatalf("subscriber %d saw a different order than subscriber 0", i)
		}
	}
}

// readChats reads n chat frames, skipping other frames.
func readChats(t testing.TB, c *wstest.Client, n int) []wstest.Frame {
	t.Helper()
	chats := make([]wstest.Frame, 0, n)
	for len(chats) < n {
		if f := c.Next(); f.Str("type") == "chat" {
			chats = append(chats, f)
		}
	}
	return chats
}

// TestSlowConsumerIsEvictedAndResumes fills one client's queue while it does
// not read: it is closed with 4009, the other subscriber keeps receiving
// without a stall, and the slow client, reading what reached it, resumes
// with since, losing nothing.
func TestSlowConsumerIsEvictedAndResumes(t *testing.T) {
	const total = 400
	ts := startServer(t, partyline.Options{SendQueue: 16, Store: partyline.NewMemoryStore(0)})
	slow := ts.dialSmallBuffer(t, "/ws?username=slow&room=lobby")
	slow.Expect("welcome")
	slow.Expect("joined") // before anything is published
	type outcome struct {
		last uint64
		err  error
	}
	slowDone := make(chan outcome, 1)
	fastDone := make(chan struct{})
	go func() { // reads nothing until the others have everything, then slowly
		<-fastDone
		var last uint64
		for {
			f, err := slow.Read(waitTime)
			if err != nil {
				slowDone <- outcome{last, err}
				return
			}
			switch f.Str("type") {
			case "joined": // the join may complete after publishing began
				last = f.Num("seq")
			case "chat":
				if f.Num("seq") != last+1 {
					slowDone <- outcome{last, fmt.Errorf("seq %d after %d", f.Num("seq"), last)}
					return
				}
				last = f.Num("seq")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	fast := ts.dial(t, "/ws?username=fast&room=lobby")
	fast.Expect("joined")
	payload := strings.Repeat("x", 16<<10) // large, so kernel buffers fill quickly
	var received atomic.Int64              // by the fast subscriber
	go func() {
		for i := range total {
			for received.Load() < int64(i-8) { // stay within the fast client's queue
				time.Sleep(100 * time.Microsecond)
			}
			if _, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: fmt.Sprint(i, payload)}); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	}()
	for i := range total {
		if f := readChats(t, fast, 1)[0]; f.Num("seq") != uint64(i+1) {
			t.Fatalf("fast subscriber: message %d has seq %d", i, f.Num("seq"))
		}
		received.Add(1)
	}
	close(fastDone) // 400 × 16 KiB is more than the socket buffers hold
	got := <-slowDone
	var ce *websocket.CloseError
	if !errors.As(got.err, &ce) || ce.Code != partyline.CloseSlowConsumer {
		t.Fatalf("slow client ended with %v after seq %d, want close 4009", got.err, got.last)
	}
	last := got.last
	if last >= total {
		t.Fatalf("slow client received all %d messages; it was never evicted", total)
	}
	again := ts.dial(t, "/ws?username=slow")
	again.Send(map[string]any{"type": "join", "room": "lobby", "since": last})
	if f := again.Expect("joined"); f["recovered"] != true {
		t.Fatalf("rejoin since %d: %v, want recovered true", last, f)
	}
	again.Expect("online_users")
	for _, f := range readChats(t, again, int(total-last)) {
		if f.Num("seq") != last+1 {
			t.Fatalf("resumed client: seq %d after %d", f.Num("seq"), last)
		}
		last++
	}
}

// dialSmallBuffer connects with a small socket receive buffer, so the
// server's writes to a client that reads slowly back up quickly.
func (ts *testServer) dialSmallBuffer(t testing.TB, path string) *wstest.Client {
	t.Helper()
	dialer := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tcp, ok := conn.(*net.TCPConn); ok {
				tcp.SetReadBuffer(64 << 10)
			}
			return conn, err
		},
		ReadBufferSize: 1024,
	}
	ws, _, err := dialer.Dial(ts.url+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	return wstest.New(t, ws)
}

// TestRecoveryWhilePublishersRun rejoins with since while other clients keep
// publishing: the replay and the live stream meet with no gap and no
// duplicate.
func TestRecoveryWhilePublishersRun(t *testing.T) {
	ts := startServer(t, partyline.Options{RateLimit: -1, Store: partyline.NewMemoryStore(0)})
	for i := range 300 {
		ts.Publish(t.Context(), "lobby", partyline.Publication{Content: fmt.Sprint("before ", i)})
	}
	stop := make(chan struct{})
	var published atomic.Uint64
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: fmt.Sprint("live ", p, i)})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				published.Store(max(published.Load(), m.Seq))
				time.Sleep(time.Millisecond)
			}
		})
	}
	c := ts.dial(t, "/ws?username=alice")
	c.Send(map[string]any{"type": "join", "room": "lobby", "since": 10})
	if f := c.Expect("joined"); f["recovered"] != true {
		t.Fatalf("joined = %v, want recovered", f)
	}
	c.Expect("online_users")
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	want := published.Load()
	next := uint64(11)
	for next <= want {
		f := c.Next()
		if f.Str("type") != "chat" {
			continue
		}
		if f.Num("seq") != next {
			t.Fatalf("got seq %d, want %d (replay %d..%d then live)", f.Num("seq"), next, 11, want)
		}
		next++
	}
}

// gatedStore holds the first page a replay asks for, not the one message
// the recovery point is checked with, until release is closed.
type gatedStore struct {
	*partyline.MemoryStore
	held, release chan struct{}
	once          sync.Once
}

func (s *gatedStore) History(ctx context.Context, room string, q partyline.HistoryQuery) ([]partyline.Message, error) {
	if q.Forward && q.Limit > 1 {
		s.once.Do(func() {
			close(s.held)
			<-s.release
		})
	}
	return s.MemoryStore.History(ctx, room, q)
}

// TestReplayOutrunByRetention: a replay that falls behind what the store
// keeps ends as a slow consumer's, with 4009, never with a gap.
func TestReplayOutrunByRetention(t *testing.T) {
	store := &gatedStore{MemoryStore: partyline.NewMemoryStore(10), held: make(chan struct{}), release: make(chan struct{})}
	ts := startServer(t, partyline.Options{RateLimit: -1, Store: store})
	for i := range 10 {
		ts.Publish(t.Context(), "lobby", partyline.Publication{Content: fmt.Sprint(i)})
	}
	c := ts.dial(t, "/ws?username=alice")
	c.Send(map[string]any{"type": "join", "room": "lobby", "since": 5})
	if f := c.Expect("joined"); f["recovered"] != true {
		t.Fatalf("joined = %v, want recovered", f)
	}
	select {
	case <-store.held:
	case <-time.After(waitTime):
		t.Fatal("the replay did not ask for its first page")
	}
	for i := range 20 { // seqs 11 to 30: the store keeps 21 to 30
		ts.Publish(t.Context(), "lobby", partyline.Publication{Content: fmt.Sprint(i)})
	}
	close(store.release)
	for {
		f, err := c.Read(waitTime)
		if err != nil {
			if ce, ok := errors.AsType[*websocket.CloseError](err); !ok || ce.Code != partyline.CloseSlowConsumer {
				t.Fatalf("the replay ended with %v, want close %d", err, partyline.CloseSlowConsumer)
			}
			return
		}
		if f.Str("type") == "chat" {
			t.Fatalf("got %v: seqs 6 to 20 are gone, so nothing may follow seq 5", f)
		}
	}
}

// TestRejoinWithSince: a join with since of a room the connection is in
// already replays from there, as a first join with since would, and the
// live stream goes on after it, with no gap and no duplicate.
func TestRejoinWithSince(t *testing.T) {
	ts := startServer(t, partyline.Options{Store: partyline.NewMemoryStore(5)})
	c := ts.dial(t, "/ws?username=alice&room=rj")
	c.Expect("joined")
	c.Expect("online_users")
	for i := range 8 {
		ts.Publish(t.Context(), "rj", partyline.Publication{Content: fmt.Sprint(i)})
		c.Expect("chat")
	}
	c.Send(map[string]any{"type": "join", "room": "rj", "since": 5, "id": "again"})
	if f := c.Expect("joined"); f["recovered"] != true || f.Num("seq") != 8 {
		t.Fatalf("joined = %v, want recovered, the room at seq 8", f)
	}
	c.Expect("online_users")
	ts.Publish(t.Context(), "rj", partyline.Publication{Content: "live"})
	for want := uint64(6); want <= 9; want++ {
		if f := c.WaitFor("chat"); f.Num("seq") != want {
			t.Fatalf("after the rejoin: chat %v, want seq %d (replay 6 to 8, then live)", f, want)
		}
	}
	c.Send(map[string]any{"type": "join", "room": "rj", "since": 1})
	if f := c.Expect("joined"); f["recovered"] != false || f.Num("seq") != 9 {
		t.Fatalf("rejoin beyond retention: joined = %v, want recovered false at seq 9", f)
	}
	c.Expect("online_users")
	ts.Publish(t.Context(), "rj", partyline.Publication{Content: "live again"})
	if f := c.WaitFor("chat"); f.Num("seq") != 10 {
		t.Fatalf("after an unrecoverable rejoin: %v, want live from seq 10", f)
	}
	if users := ts.Stats().Connections; users != 1 {
		t.Errorf("%d connections, want 1", users)
	}
}

func TestRecoveryBeyondRetentionSaysNotRecovered(t *testing.T) {
	ts := startServer(t, partyline.Options{Store: partyline.NewMemoryStore(5)})
	for i := range 20 {
		ts.Publish(t.Context(), "lobby", partyline.Publication{Content: fmt.Sprint(i)})
	}
	c := ts.dial(t, "/ws?username=alice")
	c.Send(map[string]any{"type": "join", "room": "lobby", "since": 2})
	if f := c.Expect("joined"); f["recovered"] != false || f.Num("seq") != 20 {
		t.Fatalf("joined = %v, want recovered false at seq 20", f)
	}
	c.Expect("online_users")
	ts.Publish(t.Context(), "lobby", partyline.Publication{Content: "live"})
	if f := c.Expect("chat"); f.Num("seq") != 21 {
		t.Fatalf("after an unrecoverable join: %v, want live from seq 21", f)
	}
	c.Send(map[string]any{"type": "join", "room": "other", "since": 0})
	if f := c.Expect("joined"); f["recovered"] != true {
		t.Fatalf("join of an empty room since 0 = %v, want recovered true", f)
	}
}

func TestHeartbeats(t *testing.T) {
	// The pong wait leaves the answering client room for a stall of the
	// race detector on a busy machine; the silent one is dropped after it.
	const pongWait = 600 * time.Millisecond
	ts := startServer(t, partyline.Options{PingInterval: 40 * time.Millisecond, PongWait: pongWait})
	silent := ts.dial(t, "/ws?username=silent")
	silent.Conn.SetPingHandler(func(string) error { return nil }) // never answers
	alive := ts.dial(t, "/ws?username=alive")
	aliveErr := make(chan error, 1)
	go func() { // gorilla answers pings while it reads
		for {
			if _, _, err := alive.Conn.ReadMessage(); err != nil {
				aliveErr <- err
				return
			}
		}
	}()
	start := time.Now()
	if code := silent.CloseCode(); code != websocket.CloseAbnormalClosure {
		t.Fatalf("a client that never pongs: close %d, want the connection dropped", code)
	}
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Fatalf("a client that never pongs was dropped after %s, want about the pong wait", elapsed)
	}
	time.Sleep(2 * pongWait) // more pong waits for the answering client
	select {
	case err := <-aliveErr:
		t.Fatalf("a client that pongs was dropped: %v", err)
	default:
	}
	alive.Conn.Close()
	<-aliveErr
}

// TestHeartbeatsDropATricklingFrame: bytes of a frame are not a sign of
// life, only frames are, so a client cannot keep a connection by sending a
// large frame a byte at a time.
func TestHeartbeatsDropATricklingFrame(t *testing.T) {
	const pongWait = 600 * time.Millisecond
	ts := startServer(t, partyline.Options{PingInterval: 40 * time.Millisecond, PongWait: pongWait})
	conn, br := ts.dialUpgraded(t, "/ws?username=trickler")
	conn.SetDeadline(time.Now().Add(20 * pongWait)) // past the loop below
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		io.Copy(io.Discard, br)
	}()
	const size = 16000                                                    // within the message limit
	frame := []byte{0x81, 0x80 | 126, size >> 8, size & 0xff, 0, 0, 0, 0} // FIN, text, masked with 0
	frame = append(frame, strings.Repeat("x", size)...)
	start := time.Now()
	for i := 0; time.Since(start) < 10*pongWait; i++ {
		select {
		case <-ended:
			return // dropped while it trickled
		case <-time.After(20 * time.Millisecond):
		}
		conn.Write(frame[i : i+1])
	}
	t.Fatalf("a client sending a frame a byte every 20 ms was not dropped in %s (pong wait %s)", time.Since(start), pongWait)
}

func TestIdleTimeout(t *testing.T) {
	const idle = 600 * time.Millisecond // room for a stall between two rounds
	ts := startServer(t, partyline.Options{IdleTimeout: idle})
	c := ts.dial(t, "/ws?username=alice")
	for range 4 { // messages keep it open past the timeout
		time.Sleep(idle / 3)
		c.Send(map[string]any{"type": "ping"})
		c.Expect("pong")
	}
	if code := c.CloseCode(); code != partyline.CloseNormal {
		t.Fatalf("idle connection closed with %d, want 1000", code)
	}
}

// flakyStore is a memory store whose appends fail while failing is set.
type flakyStore struct {
	*partyline.MemoryStore
	failing atomic.Bool
}

func (s *flakyStore) Append(ctx context.Context, m partyline.Message) (partyline.Message, error) {
	if s.failing.Load() {
		return partyline.Message{}, fmt.Errorf("flaky: disk on fire: %w", partyline.ErrUnavailable)
	}
	return s.MemoryStore.Append(ctx, m)
}

func TestStoreFailureMeansUnavailableAndNothingDelivered(t *testing.T) {
	store := &flakyStore{MemoryStore: partyline.NewMemoryStore(0)}
	ts := startServer(t, partyline.Options{Store: store})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
	alice.Expect("online_users")
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.Expect("joined")
	bob.Expect("online_users")
	store.failing.Store(true)
	alice.Send(map[string]any{"type": "chat", "content": "lost?", "id": "a"})
	if f := alice.WaitFor("error"); f.Str("code") != "unavailable" || f.Str("id") != "a" {
		t.Fatalf("chat while the store fails = %v, want unavailable", f)
	}
	store.failing.Store(false)
	alice.Send(map[string]any{"type": "chat", "content": "back", "id": "b"})
	if f := bob.WaitFor("chat"); f.Str("content") != "back" || f.Num("seq") != 1 {
		t.Fatalf("bob got %v, want only the message sent after recovery, as seq 1", f)
	}
}

// TestNothingLeaks opens and closes 1,000 connections in several ways and
// checks goroutines and descriptors return to their baseline.
func TestNothingLeaks(t *testing.T) {
	ts := startServer(t, partyline.Options{RateLimit: -1})
	baseGoroutines, baseFDs := runtime.NumGoroutine(), openFDs(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range 1000 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("%s/ws?username=u%d&room=r%d", ts.url, i, i%7), nil)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer ws.Close()
			ws.WriteJSON(map[string]any{"type": "chat", "content": "hi"})
			switch i % 3 {
			case 0: // clean close handshake
				ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
				ws.SetReadDeadline(time.Now().Add(waitTime))
				for ws.NextReader(); ; {
					if _, _, err := ws.NextReader(); err != nil {
						break
					}
				}
			case 1: // the server closes it
				ws.WriteMessage(websocket.BinaryMessage, []byte{0})
			}
			// case 2: the client just drops the TCP connection
		})
	}
	wg.Wait()
	waitUntil(t, "connections to close", func() bool { return ts.Stats().Connections == 0 && ts.Stats().Rooms == 0 })
	waitUntil(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseGoroutines+2 })
	waitUntil(t, "descriptors back to baseline", func() bool { return openFDs(t) <= baseFDs+2 })
}

// openFDs counts the process's descriptors, but for the io_uring rings
// the flush goroutines keep for the next burst.
func openFDs(t testing.TB) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(entries) - partyline.OpenRings()
}

// downStore is a memory store whose backend can be taken away: appends and
// pings fail while down is set.
type downStore struct {
	*partyline.MemoryStore
	down atomic.Bool
}

func (s *downStore) Ping(ctx context.Context) error {
	if s.down.Load() {
		return fmt.Errorf("down: %w", partyline.ErrUnavailable)
	}
	return nil
}

// downBroker is a memory broker whose Ping fails while down is set.
type downBroker struct {
	*partyline.MemoryBroker
	down atomic.Bool
}

func (b *downBroker) Ping(ctx context.Context) error {
	if b.down.Load() {
		return fmt.Errorf("down: %w", partyline.ErrUnavailable)
	}
	return ctx.Err()
}

// hungStore is a memory store whose Ping hangs until its context ends, as
// on a database that stopped answering.
type hungStore struct{ *partyline.MemoryStore }

func (hungStore) Ping(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestReadyNamesTheFailingBackends(t *testing.T) {
	store := &downStore{MemoryStore: partyline.NewMemoryStore(0)}
	broker := &downBroker{MemoryBroker: partyline.NewMemoryBroker()}
	ts := startServer(t, partyline.Options{Store: store, Broker: broker})
	if err := ts.Ready(t.Context()); err != nil {
		t.Fatalf("Ready with a healthy store: %v", err)
	}
	store.down.Store(true)
	if err := ts.Ready(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "store:") {
		t.Fatalf("Ready with the store down = %v, want an error naming the store", err)
	}
	broker.down.Store(true)
	if err := ts.Ready(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "store: ") || !strings.Contains(err.Error(), "\nbroker: ") {
		t.Fatalf("Ready with the store and the broker down = %q, want an error naming both", err)
	}
	broker.down.Store(false)
	store.down.Store(false)
	hung := startServer(t, partyline.Options{Store: hungStore{partyline.NewMemoryStore(0)}, Broker: &downBroker{MemoryBroker: partyline.NewMemoryBroker()}})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := hung.Ready(ctx); err == nil || !strings.HasPrefix(err.Error(), "store: ") || strings.Contains(err.Error(), "broker") {
		t.Fatalf("Ready with the store hung = %q, want an error naming the store alone", err)
	}
	if err := ts.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after the store came back: %v", err)
	}
}

// TestLeaveStopsReplay leaves a room while its replay is still running:
// nothing of the room may follow left, and a new join does not get the old
// replay's messages twice.
func TestLeaveStopsReplay(t *testing.T) {
	ts := startServer(t, partyline.Options{SendQueue: 8, RateLimit: -1, Store: partyline.NewMemoryStore(0)})
	for i := range 300 {
		ts.Publish(t.Context(), "lobby", partyline.Publication{Content: fmt.Sprint(i)})
	}
	c := ts.dial(t, "/ws?username=alice")
	c.Send(map[string]any{"type": "join", "room": "lobby", "since": 0})
	c.Send(map[string]any{"type": "leave", "room": "lobby"})
	c.WaitFor("left")
	c.Send(map[string]any{"type": "join", "room": "lobby", "since": 290})
	c.Expect("joined")
	c.Expect("online_users")
	for want := uint64(291); want <= 300; want++ {
		if f := c.Expect("chat"); f.Num("seq") != want {
			t.Fatalf("after leave and join since 290: seq %d, want %d (the old replay leaked)", f.Num("seq"), want)
		}
	}
	c.Send(map[string]any{"type": "ping"})
	c.Expect("pong")
}

// TestMalformedFrameClosesWithProtocolError sends an unmasked client frame.
func TestMalformedFrameClosesWithProtocolError(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	c := ts.dial(t, "/ws?username=alice")
	c.Conn.NetConn().Write([]byte{0x81, 0x02, 'h', 'i'}) // a client frame must be masked
	if code := c.CloseCode(); code != websocket.CloseProtocolError {
		t.Fatalf("close code %d, want 1002", code)
	}
}
