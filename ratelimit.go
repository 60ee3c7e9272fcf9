package partyline

import "time"

// rateLimiter is a token bucket: rate tokens a second, at most burst. It is
// owned by one connection's reader and needs no lock.
type rateLimiter struct {
	rate    float64
	burst   float64
	tokens  float64
	last    time.Time
	strikes int // messages refused since the last one allowed
}

func newRateLimiter(rate float64, burst int, now time.Time) *rateLimiter {
	if rate < 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// allow takes a token if there is one. When it refuses, abusive reports that
// the client went on sending through a whole burst's worth of refusals and
// should be disconnected.
func (l *rateLimiter) allow(now time.Time) (ok, abusive bool) {
	if l == nil {
		return true, false
	}
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		l.strikes = 0
		return true, false
	}
	l.strikes++
	return false, float64(l.strikes) > l.burst
}
