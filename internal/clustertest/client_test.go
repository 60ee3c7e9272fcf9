package clustertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one decoded server frame; fields a frame type lacks stay zero.
type frame struct {
	Type      string          `json:"type"`
	Room      string          `json:"room"`
	Username  string          `json:"username"`
	Content   string          `json:"content"`
	From      string          `json:"from"`
	To        string          `json:"to"`
	Seq       uint64          `json:"seq"`
	ID        json.RawMessage `json:"id"`
	Users     []string        `json:"users"`
	Count     *int            `json:"count"` // online_users, presence_diff
	Joined    []string        `json:"joined"`
	Left      []string        `json:"left"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`

	at time.Time // when the client read it
}

func (f frame) String() string {
	b, _ := json.Marshal(f)
	return string(b)
}

// hasID reports whether the frame echoes the client message id.
func (f frame) hasID(id string) bool { return string(f.ID) == strconv.Quote(id) }

var errNoFrame = errors.New("no frame in time")

// client is a real WebSocket client of one node. A reader goroutine reads
// every frame, splits batches and queues the frames, so a client never
// slows its node down and waits never poison the connection. One goroutine
// at a time consumes the frames; every chat frame it takes is also kept in
// chats, the client's view of each room.
type client struct {
	t    testing.TB
	name string // user@node, for messages
	ws   *websocket.Conn
	done chan struct{} // closed when the reader goroutine has ended
	wake chan struct{} // signalled when frames arrive or reading ends

	mu     sync.Mutex // guards the following
	queued []frame
	err    error // why reading ended

	// Owned by the consuming goroutine.
	chats map[string][]frame // room → chat frames taken, in arrival order
}

// dialErr connects to base+path (base is ws://host:port) and reads the
// welcome frame.
func dialErr(t testing.TB, name, base, path string) (*client, error) {
	d := websocket.Dialer{HandshakeTimeout: waitTime}
	ws, resp, err := d.Dial(base+path, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s%s: %w (HTTP %s)", base, path, err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s%s: %w", base, path, err)
	}
	c := &client{
		t: t, name: name, ws: ws,
		done:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		chats: make(map[string][]frame),
	}
	go c.read()
	t.Cleanup(c.close)
	f, err := c.pop(waitTime)
	if err != nil || f.Type != "welcome" {
		return nil, fmt.Errorf("%s: first frame %v (%v), want welcome", name, f, err)
	}
	return c, nil
}

// dial is dialErr for the test goroutine.
func dial(t testing.TB, name, base, path string) *client {
	t.Helper()
	c, err := dialErr(t, name, base, path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// read is the reader goroutine.
func (c *client) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.stop(err)
			return
		}
		at := time.Now()
		var batch []frame
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			f := frame{at: at}
			if err := json.Unmarshal(line, &f); err != nil {
				c.stop(fmt.Errorf("%s: frame %q is not JSON: %w", c.name, line, err))
				c.ws.Close()
				return
			}
			batch = append(batch, f)
		}
		c.mu.Lock()
		c.queued = append(c.queued, batch...)
		c.mu.Unlock()
		signal(c.wake)
	}
}

func (c *client) stop(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	signal(c.wake)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// close drops the connection without a close handshake, as a vanished
// network would, and waits for the reader goroutine.
func (c *client) close() {
	c.ws.Close()
	<-c.done
}

// pop takes the next frame, waiting up to d. It returns the reason reading
// ended once every frame read before has been taken.
func (c *client) pop(d time.Duration) (frame, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.queued) > 0 {
			f := c.queued[0]
			c.queued = c.queued[1:]
			c.mu.Unlock()
			if f.Type == "chat" {
				c.chats[f.Room] = append(c.chats[f.Room], f)
			}
			return f, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return frame{}, err
		}
		select {
		case <-c.wake:
		case <-timer.C:
			return frame{}, errNoFrame
		}
	}
}

// awaitErr takes frames until one matches, for up to d.
func (c *client) awaitErr(d time.Duration, match func(frame) bool) (frame, error) {
	deadline := time.Now().Add(d)
	for {
		f, err := c.pop(time.Until(deadline))
		if err != nil {
			return f, err
		}
		if match(f) {
			return f, nil
		}
	}
}

// await takes frames until one matches, failing the test after waitTime.
func (c *client) await(what string, match func(frame) bool) frame {
	c.t.Helper()
	f, err := c.awaitErr(waitTime, match)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.name, what, err)
	}
	return f
}

// awaitType takes frames until one of type kind arrives.
func (c *client) awaitType(kind string) frame {
	c.t.Helper()
	return c.await(kind, func(f frame) bool { return f.Type == kind })
}

// expect takes the next frame and checks its type.
func (c *client) expect(kind string) frame {
	c.t.Helper()
	f, err := c.pop(waitTime)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.name, kind, err)
	}
	if f.Type != kind {
		c.t.Fatalf("%s: got %v, want a %s frame", c.name, f, kind)
	}
	return f
}

// sync waits until the server has handled everything up to a ping: past
// welcome, the connection is registered and online, which the client cannot
// otherwise tell when its URL names no room.
func (c *client) sync() {
	c.t.Helper()
	c.send(map[string]any{"type": "ping", "id": "sync"})
	c.await("the answer to ping", func(f frame) bool { return f.Type == "ack" && f.hasID("sync") })
}

// writeErr sends one client message.
func (c *client) writeErr(v any) error {
	c.ws.SetWriteDeadline(time.Now().Add(waitTime))
	return c.ws.WriteJSON(v)
}

// send sends one client message from the test goroutine.
func (c *client) send(v any) {
	c.t.Helper()
	if err := c.writeErr(v); err != nil {
		c.t.Fatalf("%s: send %v: %v", c.name, v, err)
	}
}

// expectJoin checks the joined and online_users frames that answer a join
// of room (or a room in the URL), and returns them.
func (c *client) expectJoin(room string) (joined, online frame) {
	c.t.Helper()
	joined = c.expect("joined")
	online = c.expect("online_users")
	if joined.Room != room || online.Room != room {
		c.t.Fatalf("%s: joined %v, online_users %v, want both for room %s", c.name, joined, online, room)
	}
	return joined, online
}

// joinSince joins room with since and checks that it recovered.
func (c *client) joinSince(room string, since uint64) {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room, "since": since})
	joined, _ := c.expectJoin(room)
	if joined.Recovered == nil || !*joined.Recovered {
		c.t.Fatalf("%s: join %s since %d answered %v, want recovered: true", c.name, room, since, joined)
	}
}

// closeCode waits for the server to close the connection and returns the
// close code, 1006 when it closed without a close frame.
func (c *client) closeCode() int {
	c.t.Helper()
	for {
		_, err := c.pop(waitTime)
		switch {
		case err == nil:
			continue
		case errors.Is(err, errNoFrame):
			c.t.Fatalf("%s: still open after %s, want it closed", c.name, waitTime)
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure
	}
}

// untilSeqErr takes frames until the client has seen a chat of room with a
// seq of at least seq.
func (c *client) untilSeqErr(room string, seq uint64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for c.lastSeq(room) < seq {
		if _, err := c.pop(time.Until(deadline)); err != nil {
			return fmt.Errorf("%s: waiting for seq %d of %s (last seen %d): %w", c.name, seq, room, c.lastSeq(room), err)
		}
	}
	return nil
}

// untilSeq is untilSeqErr for the test goroutine, bounded by waitTime.
func (c *client) untilSeq(room string, seq uint64) {
	c.t.Helper()
	if err := c.untilSeqErr(room, seq, waitTime); err != nil {
		c.t.Fatal(err)
	}
}

// lastSeq is the seq of the last chat of room the client has taken.
func (c *client) lastSeq(room string) uint64 {
	chats := c.chats[room]
	if len(chats) == 0 {
		return 0
	}
	return chats[len(chats)-1].Seq
}

// checkStream checks that chats carry exactly the seqs from..to, each once,
// in order, with the contents of canon (seq → content) when given.
func checkStream(t testing.TB, who string, chats []frame, from, to uint64, canon map[uint64]string) {
	t.Helper()
	want := from
	for i, f := range chats {
		if f.Seq != want {
			t.Fatalf("%s: chat #%d has seq %d, want %d (no gap, no duplicate); seqs around it: %v",
				who, i, f.Seq, want, seqsAround(chats, i))
		}
		if canon != nil && canon[f.Seq] != f.Content {
			t.Fatalf("%s: seq %d has content %q, other clients saw %q", who, f.Seq, f.Content, canon[f.Seq])
		}
		want++
	}
	if want != to+1 {
		t.Fatalf("%s: saw seqs %d..%d, want %d..%d", who, from, want-1, from, to)
	}
}

// seqsAround lists the seqs of chats near index i, for failure messages.
func seqsAround(chats []frame, i int) []uint64 {
	var seqs []uint64
	for _, f := range chats[max(0, i-5):min(len(chats), i+5)] {
		seqs = append(seqs, f.Seq)
	}
	return seqs
}

// canonOf maps each seq of chats to its content.
func canonOf(chats []frame) map[uint64]string {
	canon := make(map[uint64]string, len(chats))
	for _, f := range chats {
		canon[f.Seq] = f.Content
	}
	return canon
}

// publisher sends chats to a room from one connection, one at a time, each
// after the previous one was answered, until it is stopped or has sent max.
// A publisher whose connection breaks may reconnect (to another node).
type publisher struct {
	name      string
	room      string
	pause     time.Duration
	max       int
	reconnect func() (*client, error) // nil: stop when the connection breaks

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex        // guards the following
	acked    map[string]uint64 // content → seq
	order    []string          // contents in the order they were acked
	failures map[string]int    // error code → count
	slowest  time.Duration     // the longest wait for an answer
	slow     int               // answers that took over slowAnswer
	err      error             // why it stopped early
}

// slowAnswer is the wait for an ack or error that a publisher counts as slow.
const slowAnswer = 500 * time.Millisecond

// startPublisher starts publishing with c; contents are name-0, name-1, ….
func startPublisher(c *client, name, room string, pause time.Duration, max int, reconnect func() (*client, error)) *publisher {
	p := &publisher{
		name: name, room: room, pause: pause, max: max, reconnect: reconnect,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		acked:    make(map[string]uint64),
		failures: make(map[string]int),
	}
	go p.run(c)
	return p
}

func (p *publisher) run(c *client) {
	defer close(p.done)
	for i := 0; i < p.max; i++ {
		select {
		case <-p.stop:
			return
		default:
		}
		content := fmt.Sprintf("%s-%d", p.name, i)
		start := time.Now()
		err := c.writeErr(map[string]any{"type": "chat", "room": p.room, "content": content, "id": content})
		var answer frame
		if err == nil {
			answer, err = c.awaitErr(waitTime, func(f frame) bool {
				return (f.Type == "ack" || f.Type == "error") && f.hasID(content)
			})
		}
		if errors.Is(err, errNoFrame) {
			p.fail(fmt.Errorf("%s: no answer to %s within %s", p.name, content, waitTime))
			return
		}
		if err != nil {
			if p.reconnect == nil {
				p.fail(fmt.Errorf("%s: connection lost: %w", p.name, err))
				return
			}
			if c, err = p.reconnect(); err != nil {
				p.fail(fmt.Errorf("%s: reconnect: %w", p.name, err))
				return
			}
			continue
		}
		p.record(content, answer, time.Since(start))
		if p.pause > 0 {
			time.Sleep(p.pause)
		}
	}
}

func (p *publisher) record(content string, answer frame, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slowest = max(p.slowest, took)
	if took > slowAnswer {
		p.slow++
	}
	if answer.Type == "error" {
		p.failures[answer.Code]++
		return
	}
	p.acked[content] = answer.Seq
	p.order = append(p.order, content)
}

func (p *publisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// ackedCount returns how many chats were acked so far.
func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.order)
}

// finish stops the publisher, waits for it and fails t if it stopped early.
func (p *publisher) finish(t testing.TB) {
	t.Helper()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	select {
	case <-p.done:
	case <-time.After(2 * waitTime):
		t.Fatalf("%s did not stop", p.name)
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// wait waits until the publisher has sent all it was asked to.
func (p *publisher) wait(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(4 * waitTime):
		t.Fatalf("%s did not finish", p.name)
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// maxSeq is the highest acked seq.
func (p *publisher) maxSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var top uint64
	for _, seq := range p.acked {
		top = max(top, seq)
	}
	return top
}

// checkAcks checks that every acked chat is in canon under its acked seq,
// and that one publisher's chats got increasing seqs.
func (p *publisher) checkAcks(t testing.TB, canon map[uint64]string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var prev uint64
	for _, content := range p.order {
		seq := p.acked[content]
		if got, ok := canon[seq]; !ok || got != content {
			t.Fatalf("%s: %s was acked with seq %d, but subscribers saw %q there (lost or misplaced)", p.name, content, seq, got)
		}
		if seq <= prev {
			t.Fatalf("%s: %s acked with seq %d after seq %d", p.name, content, seq, prev)
		}
		prev = seq
	}
}

// failureSummary lists the error codes the publisher got, for logs.
func (p *publisher) failureSummary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for code, n := range p.failures {
		parts = append(parts, fmt.Sprintf("%s×%d", code, n))
	}
	return strings.Join(parts, " ")
}
