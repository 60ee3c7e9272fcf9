package partyline

import "time"

// floodWindow is the span in which more than a burst's worth of refusals
// closes a connection with 4008 (docs/protocol.md §13, sustained floods).
const floodWindow = 10 * time.Second

// rateLimiter is a token bucket: rate tokens a second, at most burst. It
// also remembers its latest refusals, which tell a client that keeps
// flooding from one that strays over the limit now and then. It is owned by
// one connection's reader and needs no lock.
type rateLimiter struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time

	// refusals is a ring of the times (Unix nanoseconds) of the latest
	// burst+1 refusals; once it is full, the oldest is at next. It is made
	// at the first refusal, so a client within the limit pays nothing for it.
	refusals []int64
	next     int
}

func newRateLimiter(rate float64, burst int, now time.Time) *rateLimiter {
	if rate < 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// allow takes a token if there is one. When it refuses, abusive reports that
// the client has now been refused more than burst times within floodWindow,
// however many of its messages got through in between, and should be
// disconnected.
func (l *rateLimiter) allow(now time.Time) (ok, abusive bool) {
	if l == nil {
		return true, false
	}
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true, false
	}
	return false, l.refuse(now)
}

// refuse records a refusal at now. It reports whether the burst+1 latest
// refusals, this one included, all fall within floodWindow.
func (l *rateLimiter) refuse(now time.Time) (abusive bool) {
	if l.refusals == nil {
		l.refusals = make([]int64, 0, int(l.burst)+1)
	}
	at := now.UnixNano()
	if len(l.refusals) < cap(l.refusals) {
		l.refusals = append(l.refusals, at)
	} else {
		l.refusals[l.next] = at // over the oldest
		l.next = (l.next + 1) % len(l.refusals)
	}
	full := len(l.refusals) == cap(l.refusals)
	return full && at-l.refusals[l.next] < floodWindow.Nanoseconds()
}
