package partyline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// evictionCounter is a Metrics that counts evictions and nothing else.
type evictionCounter struct{ evicted atomic.Int64 }

func (*evictionCounter) MessageIn(string)                           {}
func (*evictionCounter) MessageOut(int, time.Duration)              {}
func (m *evictionCounter) Evicted()                                 { m.evicted.Add(1) }
func (*evictionCounter) Refused(string)                             {}
func (*evictionCounter) StoreLatency(string, time.Duration, error)  {}
func (*evictionCounter) BrokerLatency(string, time.Duration, error) {}

func (*evictionCounter) PresenceLatency(string, time.Duration, error) {}

// rawClient is a WebSocket client on a bare TCP connection that reads only
// when told to: until then the server's frames pile up in the kernel, as
// with a client that has stopped reading without closing.
type rawClient struct {
	conn net.Conn
	in   *bufio.Reader
}

// dialStuck opens a WebSocket connection to path and reads the handshake's
// answer, nothing more.
func (ts *testServer) dialStuck(t *testing.T, path string) *rawClient {
	t.Helper()
	c, _ := ts.dialBare(t, path, "")
	return c
}

// dialBare opens a WebSocket connection to path, with extra header lines,
// and returns it with the handshake's answer, having read nothing more.
func (ts *testServer) dialBare(t *testing.T, path, header string) (*rawClient, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n", path, header)
	c := &rawClient{conn: conn, in: bufio.NewReader(conn)}
	conn.SetReadDeadline(time.Now().Add(waitTime))
	var head strings.Builder
	for {
		line, err := c.in.ReadString('\n')
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if strings.HasPrefix(line, "HTTP/") && !strings.Contains(line, " 101 ") {
			t.Fatalf("handshake answered %q", line)
		}
		if line == "\r\n" {
			return c, head.String()
		}
		head.WriteString(line)
	}
}

// frame reads one whole server frame.
func (c *rawClient) frame() (first byte, payload []byte, err error) {
	var head [2]byte
	if _, err := io.ReadFull(c.in, head[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		io.ReadFull(c.in, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		io.ReadFull(c.in, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.in, payload); err != nil {
		return 0, nil, fmt.Errorf("reading a %d-byte payload: %w", n, err)
	}
	return head[0], payload, nil
}

// readAll reads the server's frames until the close frame and returns the
// chat seqs it carried, in order, the seq of the last joined, and the
// close frame's code and reason.
func (c *rawClient) readAll(t *testing.T) (seqs []uint64, joined uint64, code int, reason string) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(2 * waitTime))
	for {
		first, payload, err := c.frame()
		if err != nil {
			t.Fatalf("after %d chats: %v, want a close frame", len(seqs), err)
		}
		switch first & 0x0F {
		case 0x8:
			if len(payload) < 2 {
				t.Fatalf("close frame %q without a code", payload)
			}
			return seqs, joined, int(binary.BigEndian.Uint16(payload)), string(payload[2:])
		case 0x1:
			for line := range bytes.SplitSeq(payload, []byte("\n")) {
				var f wstest.Frame
				if err := json.Unmarshal(line, &f); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				switch f.Str("type") {
				case "chat":
					seqs = append(seqs, f.Num("seq"))
				case "joined":
					joined = f.Num("seq")
				}
			}
		}
	}
}

var retryReason = regexp.MustCompile(`^slow consumer; retry after (\d+)ms$`)

// TestLaggingSubscriberIsEvicted has one subscriber stop reading while
// messages keep coming. The kernel would buffer megabytes for it, and its
// queue holds 65,536 frames, so nothing fills up within the test; the lag
// rule evicts it all the same, within the max lag plus a ping interval of
// its socket filling up. Meanwhile a subscriber that reads gets every
// message in order; the evicted one is told when to come back, resumes
// with since and misses nothing; and no goroutine is left behind.
func TestLaggingSubscriberIsEvicted(t *testing.T) {
	const maxLag, ping = 300 * time.Millisecond, 100 * time.Millisecond
	metrics := &evictionCounter{}
	ts := startServer(t, partyline.Options{MaxLag: maxLag, PingInterval: ping, PongWait: time.Minute,
		SendQueue: 1 << 16, RateLimit: -1, Store: partyline.NewMemoryStore(0), Metrics: metrics})
	baseline := runtime.NumGoroutine()
	stuck := ts.dialStuck(t, "/ws?username=stuck&room=lobby")
	fast := ts.dial(t, "/ws?username=fast&room=lobby")
	fast.Expect("joined")
	waitUntil(t, "both in the room", func() bool {
		rooms, err := ts.Rooms(context.Background())
		return err == nil && len(rooms) == 1 && rooms[0].Connections == 2
	})

	fastSeqs := make(chan []uint64, 1)
	stop := make(chan struct{})
	go func() { // reads as fast as it can until told to stop
		var seqs []uint64
		defer func() { fastSeqs <- seqs }()
		for {
			f, err := fast.Read(waitTime)
			if err != nil {
				return
			}
			if f.Str("type") == "chat" {
				seqs = append(seqs, f.Num("seq"))
			}
			select {
			case <-stop:
				if f.Num("seq") == 0 || f.Str("type") == "chat" && f.Str("content") == "last" {
					return
				}
			default:
			}
		}
	}()

	// 1 KB every 2 ms, until the stuck subscriber is evicted.
	content := strings.Repeat("x", 1024)
	publish := func(content string) uint64 {
		m, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: content})
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		return m.Seq
	}
	start := time.Now()
	var bytesOut int
	for metrics.evicted.Load() == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not evicted after %v and %d KB", time.Since(start), bytesOut>>10)
		}
		publish(content)
		bytesOut += len(content)
		time.Sleep(2 * time.Millisecond)
	}
	evictedAfter := time.Since(start)
	t.Logf("evicted after %v, %d KB published", evictedAfter, bytesOut>>10)
	// Its socket fills within a fraction of a second at 500 KB/s; generous
	// for a loaded machine, and well short of the WriteWait of 10 s that
	// blocked writes would take.
	if limit := maxLag + ping + 3*time.Second; evictedAfter > limit {
		t.Errorf("evicted after %v, want within %v", evictedAfter, limit)
	}
	for range 20 { // live traffic goes on after the eviction
		publish("after")
	}
	last := publish("last")
	close(stop)

	got := <-fastSeqs
	checkSeqs(t, "fast subscriber", got, 1)
	if uint64(len(got)) != last {
		t.Fatalf("fast subscriber got %d messages, want %d", len(got), last)
	}

	seqs, joined, code, reason := stuck.readAll(t)
	m := retryReason.FindStringSubmatch(reason)
	if code != partyline.CloseSlowConsumer || m == nil {
		t.Fatalf("stuck subscriber closed with %d %q, want 4009 \"slow consumer; retry after …ms\"", code, reason)
	}
	if retry, _ := strconv.Atoi(m[1]); retry < int(maxLag/5/time.Millisecond) || retry > int(maxLag/2/time.Millisecond) {
		t.Errorf("retry after %d ms, want between a fifth and a half of the max lag %v", retry, maxLag)
	}
	checkSeqs(t, "stuck subscriber", seqs, joined+1)
	resumeFrom := joined
	if len(seqs) > 0 {
		resumeFrom = seqs[len(seqs)-1]
	}
	if resumeFrom >= last {
		t.Fatalf("the stuck subscriber got everything (%d of %d) before its close", resumeFrom, last)
	}

	again := ts.dial(t, "/ws?username=stuck")
	again.Send(map[string]any{"type": "join", "room": "lobby", "since": resumeFrom})
	if f := again.Expect("joined"); f["recovered"] != true {
		t.Fatalf("rejoin since %d: %v, want recovered", resumeFrom, f)
	}
	again.Expect("online_users")
	var resumed []uint64
	for _, f := range readChats(t, again, int(last-resumeFrom)) {
		resumed = append(resumed, f.Num("seq"))
	}
	checkSeqs(t, "resumed subscriber", resumed, resumeFrom+1)

	stuck.conn.Close()
	fast.Conn.Close()
	again.Conn.Close()
	waitUntil(t, "connections to close", func() bool { return ts.Stats().Connections == 0 })
	waitUntil(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline+2 })
}

// resumeMaxLag is the max lag of the servers the resume tests start.
const resumeMaxLag = 150 * time.Millisecond

// resumeHistory is how many 4 KB messages lobby holds when a resume test's
// client joins it: 400 KB, more than the client's socket holds.
const resumeHistory = 100

// resumeLate starts a server whose room lobby holds resumeHistory
// messages, and joins it with since 0 from a client with a small receive
// buffer. publish(i) posts the i-th 4 KB message to lobby.
func resumeLate(t *testing.T) (ts *testServer, c *wstest.Client, metrics *evictionCounter, publish func(i int)) {
	t.Helper()
	metrics = &evictionCounter{}
	ts = startServer(t, partyline.Options{MaxLag: resumeMaxLag, PingInterval: 100 * time.Millisecond, SendQueue: 16,
		RateLimit: -1, Store: partyline.NewMemoryStore(0), Metrics: metrics})
	content := strings.Repeat("z", 4<<10)
	publish = func(i int) {
		if _, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: fmt.Sprint(i, content)}); err != nil {
			t.Errorf("Publish: %v", err)
		}
	}
	for i := range resumeHistory {
		publish(i)
	}
	c = ts.dialSmallBuffer(t, "/ws?username=late")
	c.Expect("welcome")
	c.Send(map[string]any{"type": "join", "room": "lobby", "since": 0})
	if f := c.Expect("joined"); f["recovered"] != true {
		t.Fatalf("join since 0: %v, want recovered", f)
	}
	c.Expect("online_users")
	return ts, c, metrics, publish
}

// readSlowly reads frames from c at about 200 KB/s of 4 KB messages, until
// it has n chats, and returns their seqs.
func readSlowly(t *testing.T, c *wstest.Client, n int, metrics *evictionCounter) []uint64 {
	t.Helper()
	var seqs []uint64
	for len(seqs) < n {
		f, err := c.Read(waitTime)
		if err != nil {
			t.Fatalf("after %d chats (evictions %d): %v", len(seqs), metrics.evicted.Load(), err)
		}
		if f.Str("type") == "chat" {
			seqs = append(seqs, f.Num("seq"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return seqs
}

// TestSlowResumeIsPacedNotEvicted resumes a subscriber that reads far more
// slowly than the replay could go: what waits for it in the kernel is
// several times the max lag old all along. The replay is paced to it, and
// it is not evicted, during the replay nor for the replay's backlog once
// live; it gets every message, then live ones.
func TestSlowResumeIsPacedNotEvicted(t *testing.T) {
	ts, c, metrics, _ := resumeLate(t)
	start := time.Now()
	seqs := readSlowly(t, c, resumeHistory, metrics) // the kernel's 64 KB wait 300 ms
	t.Logf("replay read in %v", time.Since(start))
	checkSeqs(t, "resumed subscriber", seqs, 1)
	// Live again: a message still arrives, and the client is still there.
	time.Sleep(2 * resumeMaxLag)
	if _, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: "live"}); err != nil {
		t.Fatal(err)
	}
	if f := c.WaitFor("chat"); f.Num("seq") != resumeHistory+1 {
		t.Fatalf("live message %v, want seq %d", f, resumeHistory+1)
	}
	if n := metrics.evicted.Load(); n != 0 {
		t.Fatalf("%d evictions during and after a paced replay, want none", n)
	}
}

// TestCatchingUpIsNotEvicted resumes a subscriber that reads three times
// faster than the room publishes, but whose replay takes it seconds to
// read: meanwhile the live stream writes a backlog several times the max
// lag behind it. It is catching up, in ever shorter rounds, and is not
// evicted for it; once caught up, it gets every message.
func TestCatchingUpIsNotEvicted(t *testing.T) {
	_, c, metrics, publish := resumeLate(t)
	const live = 40
	go func() { // 4 KB every 60 ms, a third of what the client reads
		for i := resumeHistory; i < resumeHistory+live; i++ {
			publish(i)
			time.Sleep(60 * time.Millisecond)
		}
	}()
	checkSeqs(t, "resumed subscriber", readSlowly(t, c, resumeHistory+live, metrics), 1)
	if n := metrics.evicted.Load(); n != 0 {
		t.Fatalf("%d evictions of a subscriber catching up, want none", n)
	}
}

// TestFallingBehindAfterResumeIsEvicted resumes a subscriber that reads
// more slowly than the room publishes: after its replay, each round of
// catching up takes longer than the last, so it is not catching up, and it
// is evicted rather than left ever further behind.
func TestFallingBehindAfterResumeIsEvicted(t *testing.T) {
	_, c, metrics, publish := resumeLate(t)
	done := make(chan struct{})
	var publishing sync.WaitGroup
	defer publishing.Wait() // after done is closed: no publish outlives the test
	defer close(done)
	publishing.Go(func() { // 4 KB every 10 ms, twice what the client reads
		for i := resumeHistory; i < resumeHistory+2000; i++ {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			publish(i)
		}
	})
	start := time.Now()
	for metrics.evicted.Load() == 0 { // its close frame is behind megabytes in the kernel
		if _, err := c.Read(waitTime); err != nil {
			t.Fatalf("the subscriber falling behind ended with %v, not evicted", err)
		}
		time.Sleep(20 * time.Millisecond) // 200 KB/s
	}
	t.Logf("evicted %v after the resume", time.Since(start).Round(time.Millisecond))
}

// TestStuckAfterABurstIsEvicted sends a subscriber that has stopped reading
// one burst, then nothing: the heartbeat's turn finds what still waits in
// the kernel and evicts it.
func TestStuckAfterABurstIsEvicted(t *testing.T) {
	const maxLag, ping = 300 * time.Millisecond, 100 * time.Millisecond
	metrics := &evictionCounter{}
	ts := startServer(t, partyline.Options{MaxLag: maxLag, PingInterval: ping, PongWait: time.Minute,
		SendQueue: 1 << 16, RateLimit: -1, Store: partyline.NewMemoryStore(0), Metrics: metrics})
	stuck := ts.dialStuck(t, "/ws?username=stuck&room=lobby")
	waitUntil(t, "the subscriber in the room", func() bool {
		rooms, err := ts.Rooms(context.Background())
		return err == nil && len(rooms) == 1 && rooms[0].Connections == 1
	})
	content := strings.Repeat("x", 1024)
	for range 400 { // 400 KB, more than the client's receive buffer
		if _, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: content}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	waitUntil(t, "the eviction", func() bool { return metrics.evicted.Load() > 0 })
	t.Logf("evicted %v after the burst", time.Since(start))
	if limit := maxLag + ping + 3*time.Second; time.Since(start) > limit {
		t.Errorf("evicted %v after the burst, want within %v", time.Since(start), limit)
	}
	if _, _, code, _ := stuck.readAll(t); code != partyline.CloseSlowConsumer {
		t.Fatalf("closed with %d, want 4009", code)
	}
}

// TestSlowReaderGetsItsClose has a subscriber read, and answer pings, at a
// fraction of what the room sends: once evicted, it reads through the
// backlog the kernel holds for it to the 4009 and its "retry after",
// rather than a reset that would discard them.
func TestSlowReaderGetsItsClose(t *testing.T) {
	const maxLag = 200 * time.Millisecond
	metrics := &evictionCounter{}
	ts := startServer(t, partyline.Options{MaxLag: maxLag, PingInterval: 50 * time.Millisecond,
		RateLimit: -1, Store: partyline.NewMemoryStore(0), Metrics: metrics})
	slow := ts.dialSmallBuffer(t, "/ws?username=slow&room=lobby")
	slow.Expect("welcome")
	slow.Expect("joined")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // 2 KB every 5 ms, 400 KB/s, until the test ends
		content := strings.Repeat("x", 2<<10)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			ts.Publish(context.Background(), "lobby", partyline.Publication{Content: content})
		}
	}()
	deadline := time.Now().Add(4 * waitTime)
	for {
		slow.Conn.SetReadDeadline(deadline)
		_, _, err := slow.Conn.ReadMessage() // pings are answered meanwhile
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != partyline.CloseSlowConsumer || !retryReason.MatchString(ce.Text) {
				t.Fatalf("slow reader ended with %v (evictions %d), want close 4009 with its retry after", err, metrics.evicted.Load())
			}
			return
		}
		time.Sleep(20 * time.Millisecond) // about 100 KB/s: more than a second to reach the close
	}
}
