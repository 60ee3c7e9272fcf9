package bench

import (
	"bytes"
	"errors"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// The overload scenario is fanout driven past what the server can deliver.
// What it measures is how the server sheds: the subscribers that keep up
// should get fresh messages (lat: the lag of what arrived live), the others
// are closed with 4009 (evicted) and, like partyline.js, come back after
// the wait the close reason asks for and resume with since (replayLat:
// what their replays delivered, late by design). Every message of the
// window that reached a subscriber by the end of the drain, live or
// replayed, counts as delivered; the drain lasts --drain at most, not
// until deliveries stop, so what is late beyond it is not.
//
// To resume, each connection keeps the seq of the last chat it received,
// which the overload scenario reads from every chat object (fanout and
// rooms read only the stamps).

// closeSlowConsumer is the close code of an evicted slow consumer.
const closeSlowConsumer = 4009

// defaultRetry is the wait before resuming when a 4009 says none.
const defaultRetry = time.Second

var retryAfter = regexp.MustCompile(`retry after (\d+)\s*ms`)

// retryWait returns the wait a close reason asks for, or defaultRetry.
func retryWait(reason string) time.Duration {
	if m := retryAfter.FindStringSubmatch(reason); m != nil {
		if ms, err := strconv.Atoi(m[1]); err == nil {
			return time.Duration(ms) * time.Millisecond
		}
	}
	return defaultRetry
}

// ended notes that c's connection is over, err saying how. In the overload
// scenario a connection evicted with 4009 resumes.
func (r *run) ended(c *client, err error) {
	r.noteClosed(err)
	var ce *closeError
	if r.cfg.Scenario != Overload || !errors.As(err, &ce) || ce.code != closeSlowConsumer || r.closing.Load() {
		return
	}
	r.evicted.Add(1)
	if r.cfg.NoResume {
		return
	}
	r.mu.Lock() // closeAll sets closing, then waits for resumes under no lock
	if !r.closing.Load() {
		r.resumes.Add(1)
		go r.resume(c, c.lastSeq, retryWait(ce.reason))
	}
	r.mu.Unlock()
}

// resume waits as the server asked, then opens a new connection for c's
// user, joins c's room with since, and reads it as c's successor.
func (r *run) resume(c *client, since uint64, wait time.Duration) {
	defer r.resumes.Done()
	ctx := r.ctx
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if r.closing.Load() {
			return
		}
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
	id := int(r.nextID.Add(1) - 1)
	conn, err := r.dialer.dial(ctx, id, r.dialer.url(c.user, ""))
	if err != nil {
		r.noteDialError(err)
		return
	}
	if c.slow {
		conn.slowDown()
	}
	join := []byte(`{"type":"join","room":` + strconv.Quote(r.rooms[c.room]) + `,"since":` + strconv.FormatUint(since, 10) + `}`)
	if err := conn.writeFrame(ws.OpText, join, chatWriteTimeout); err != nil {
		conn.closeConn()
		r.noteSendError(err)
		return
	}
	next := r.newClient(id, c.user, connSpec{room: c.room, publisher: c.publisher, slow: c.slow}, conn)
	next.ready.Store(true) // counted once, as c
	next.lastSeq, next.resuming = since, true
	r.mu.Lock()
	r.replacements = append(r.replacements, next)
	r.mu.Unlock()
	c.successor.Store(next)
	r.resumed.Add(1)
	r.startReading(next)
}

var (
	seqKey     = []byte(`"seq":`)
	joinedLine = []byte(`"type":"joined"`)
)

// recordOverload records the chats of msg, a server message or a batch of
// them, as forEachStamp does for the other scenarios, telling what came
// live from what a resume replayed, and keeps c's last seq.
func (r *run) recordOverload(c *client, msg []byte, now int64) {
	from, to := r.winStart.Load(), r.winEnd.Load()
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		if c.resuming && bytes.Contains(line, joinedLine) {
			c.replayUntil, c.resuming = parseSeq(line), false // what the replay brings ends here
			continue
		}
		stamp, _, status := nextStamp(line)
		if status != scanField || stamp < 0 {
			continue
		}
		seq := parseSeq(line)
		if seq > c.lastSeq {
			c.lastSeq = seq
		}
		switch {
		case stamp < from || stamp >= to:
			c.outside.Add(1)
		case seq != 0 && seq <= c.replayUntil:
			c.replayLat.Record(now - stamp)
		default:
			c.lat.Record(now - stamp)
		}
	}
}

// parseSeq returns the "seq" field of a server object, or 0.
func parseSeq(line []byte) uint64 {
	i := bytes.Index(line, seqKey)
	if i < 0 {
		return 0
	}
	var seq uint64
	for _, b := range line[i+len(seqKey):] {
		if b < '0' || b > '9' {
			break
		}
		seq = seq*10 + uint64(b-'0')
	}
	return seq
}

// slowReadBuffer is a slow subscriber's socket receive buffer: small, so
// that what it has not read backs up into the server soon.
const slowReadBuffer = 16 << 10

// slowDown shrinks the socket's receive buffer to slowReadBuffer.
func (c *wsConn) slowDown() {
	if tcp, ok := c.conn.(*net.TCPConn); ok {
		tcp.SetReadBuffer(slowReadBuffer)
	}
}

// slowReadLoop reads c at no more than SlowRate bytes a second until the
// connection ends: a subscriber that cannot keep up.
func (r *run) slowReadLoop(c *client) {
	defer r.readers.Done()
	buf := make([]byte, min(readBufferSize, max(r.cfg.SlowRate/10, 64))) // about ten reads a second
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			if err := r.receive(c, buf[:n]); err != nil {
				r.ended(c, err)
				return
			}
			time.Sleep(time.Duration(n) * time.Second / time.Duration(r.cfg.SlowRate))
		}
		if err != nil {
			r.ended(c, err)
			return
		}
	}
}
