package partyline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// The lag rule (docs/protocol.md §5.4). A connection is a slow consumer
// when the oldest byte not yet delivered to it has waited longer than
// Options.MaxLag, whether it waits in the connection's queue or in the
// kernel: a full queue is only the last sign of it, since the kernel's
// socket buffers, autotuned to megabytes, can hold minutes of messages
// before the queue fills. Both places are checked without a system call
// per delivery:
//
//   - The queue stamps the moment its oldest frame was pushed (one int64,
//     from the coarse clock below); every push and take compares it with
//     the max lag (queue.go).
//   - The kernel is asked how much of what was written the client has not
//     acknowledged (SIOCOUTQ) by the writer, at each ping turn and at most
//     every max lag / 4 while the connection is being written to. The
//     writer counts the bytes it has written and keeps a mark: how much it
//     had written at some earlier moment. Once the unacknowledged bytes
//     reach below the mark, everything written up to that moment has left,
//     and the mark moves to now; while they do not, the oldest byte still
//     in the kernel is at least as old as the mark.
//
// A replay is exempt (§5.3): it is paced to the client however slow, and
// the lag counts from the moment the client has caught up (queue.go's
// draining, and catchingUp below), so a resumed client is not evicted for
// the replay's own backlog, again and again.

// coarseClock is the monotonic clock (reader.go's monotonic) as last read
// by a fan-out pass or a heartbeat tick: the lag rule's clock, read with a
// load instead of a clock call per delivery. It lags the real one by at
// most a pass or a heartbeat tick, well under any sensible max lag.
var coarseClock atomic.Int64

// tick reads the monotonic clock and publishes it as the coarse clock.
func tick() int64 {
	now := monotonic()
	coarseClock.Store(now)
	return now
}

// coarseNow returns the coarse clock.
func coarseNow() int64 { return coarseClock.Load() }

// queueClock stamps a send queue's oldest message: the monotonic clock,
// never behind the coarse one that the stamp is compared with at each
// push; or, when set, the queue tests' clock (drivenClock).
func queueClock() int64 {
	if now := drivenClock.Load(); now != 0 {
		return now
	}
	return monotonic()
}

// drivenClock, when not zero, is the time the queue's tests have set both
// of its clocks to.
var drivenClock atomic.Int64

// lagState is a connection's record of what the kernel may still hold. It
// belongs to whoever holds the writer role.
type lagState struct {
	written   int64 // bytes written to the socket
	markAt    int64 // the mark: when written was markBytes
	markBytes int64
	askedAt   int64 // when the kernel was last asked
	replayed  int64 // written when the last replay ended, then at the start of each catch-up round
	roundAt   int64 // when the current catch-up round began
	busy      bool  // the kernel held unacknowledged bytes when last asked
	// replayTaken: the last take was a replay's, whose frames were written
	// after it set replayed; the first take after the replay counts them.
	replayTaken bool
	// lastRound is how long the previous catch-up round took, in
	// milliseconds, at least 1; 0 in the first. (Not an int64 of
	// nanoseconds: here it fits the padding, and a Conn stays 512 bytes.)
	lastRound int32
}

// lagging reports whether the connection has fallen more than the max lag
// behind: w says whether the frames just taken had; otherwise, when a
// check is due, the kernel is asked. The writer calls it after each take.
func (c *Conn) lagging(w work) bool {
	maxLag := int64(c.srv.opts.MaxLag)
	switch {
	case maxLag <= 0:
		return false
	case w.lagging:
		return true
	}
	l, now := &c.lag, monotonic() // once per write, unlike the coarse clock's pushes
	if w.replaying {
		l.markAt, l.markBytes, l.replayed, l.busy = now, l.written, l.written, true
		l.replayTaken = true
		return false
	}
	if l.replayTaken { // what the replay's last takes wrote is written by now
		l.replayed, l.replayTaken = l.written, false
		l.roundAt, l.lastRound = now, 0
	}
	if c.rawConn == nil { // the kernel is not asked: the queue alone counts
		if w.draining {
			c.drained()
		}
		return false
	}
	if !l.busy && !w.draining && l.written-l.markBytes <= int64(len(ws.PingFrame())) {
		// The kernel had sent everything when last asked, and nothing but
		// a ping was written since: an idle connection, not asked again.
		l.markAt, l.markBytes = now, l.written
		return false
	}
	if !w.ping && now-l.askedAt < maxLag/4 {
		return false
	}
	l.askedAt = now
	unacked, ok := unackedBytes(c.rawConn)
	if !ok {
		if w.draining {
			c.drained()
		}
		return false
	}
	delivered := l.written - int64(unacked)
	l.busy = unacked > 0
	if w.draining && l.catchingUp(delivered, now, maxLag) {
		l.markAt, l.markBytes = now, l.written
		return false
	}
	if w.draining {
		c.drained()
	}
	if delivered >= l.markBytes {
		l.markAt, l.markBytes = now, l.written
		return false
	}
	return now-l.markAt > maxLag
}

// drained ends the draining after a replay: the lag counts from now on.
func (c *Conn) drained() {
	c.queue.drained()
	c.lag.roundAt = 0
}

// catchingUp reports whether a client that has delivered bytes is still
// catching up after a replay, in rounds: the first reads what the replay
// wrote, and each next one what the live stream wrote while the last took
// longer than the max lag. A client that reads faster than the room
// shortens each round, and is caught up when one takes less than the max
// lag. One whose round lasts as long as the last, and longer than the max
// lag, is not catching up: the lag counts from that round's start. A
// replay that wrote nothing (its frames were all taken before it began)
// leaves nothing to catch up with.
func (l *lagState) catchingUp(delivered, now, maxLag int64) bool {
	if l.roundAt == 0 {
		return false
	}
	round := now - l.roundAt
	if delivered < l.replayed {
		if l.lastRound == 0 || round < max(int64(l.lastRound)*int64(time.Millisecond), maxLag) {
			return true
		}
		l.markAt, l.markBytes = l.roundAt, l.replayed
		return false
	}
	if round > maxLag && l.written > l.replayed {
		l.replayed, l.roundAt = l.written, now
		l.lastRound = int32(min(max(round/int64(time.Millisecond), 1), math.MaxInt32))
		return true
	}
	return false
}

// slowConsumerReason is the reason of a 4009 close: it tells the client how
// long to wait before it resumes, a random time between a fifth and a half
// of the max lag, so that clients evicted together come back spread out
// rather than in one storm (partyline.js honours it).
func slowConsumerReason(maxLag time.Duration) string {
	if maxLag <= 0 {
		maxLag = DefaultMaxLag
	}
	retry := maxLag/5 + rand.N(maxLag*3/10+1)
	return fmt.Sprintf("slow consumer; retry after %dms", retry.Milliseconds())
}
