package partyline

import (
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// allowN calls allow n times at now and counts the messages allowed.
func allowN(l *rateLimiter, n int, now time.Time) (allowed int) {
	for range n {
		if ok, _ := l.allow(now); ok {
			allowed++
		}
	}
	return allowed
}

func TestRateLimiterBurst(t *testing.T) {
	l := newRateLimiter(1, 5, t0)
	if got := allowN(l, 10, t0); got != 5 {
		t.Errorf("rate 1, burst 5: %d of 10 messages at once allowed, want 5", got)
	}
}

func TestRateLimiterRefill(t *testing.T) {
	l := newRateLimiter(2, 4, t0) // a token every 500ms
	if got := allowN(l, 4, t0); got != 4 {
		t.Fatalf("burst: %d of 4 allowed, want 4", got)
	}
	steps := []struct {
		after time.Duration
		want  bool
	}{
		{0, false},
		{250 * time.Millisecond, false}, // half a token
		{500 * time.Millisecond, true},  // one token
		{500 * time.Millisecond, false},
		{999 * time.Millisecond, false},
		{1000 * time.Millisecond, true},
		{1500 * time.Millisecond, true},
		{1500 * time.Millisecond, false},
	}
	for _, s := range steps {
		if ok, _ := l.allow(t0.Add(s.after)); ok != s.want {
			t.Errorf("allow at t0+%v = %v, want %v", s.after, ok, s.want)
		}
	}
}

func TestRateLimiterRefillCapsAtBurst(t *testing.T) {
	l := newRateLimiter(10, 3, t0)
	allowN(l, 3, t0)
	later := t0.Add(time.Hour)
	if got := allowN(l, 10, later); got != 3 {
		t.Errorf("after an hour idle: %d of 10 allowed at once, want the burst of 3", got)
	}
}

func TestRateLimiterRefusalsBeyondBurstAreAbusive(t *testing.T) {
	const burst = 3
	l := newRateLimiter(1, burst, t0)
	allowN(l, burst, t0)
	// The first burst refusals are only refusals; the one after is abuse.
	for i := 1; i <= burst; i++ {
		ok, abusive := l.allow(t0)
		if ok || abusive {
			t.Fatalf("refusal %d of burst %d: allow = %v, abusive = %v; want false, false", i, burst, ok, abusive)
		}
	}
	if ok, abusive := l.allow(t0); ok || !abusive {
		t.Fatalf("refusal %d after a burst of %d: allow = %v, abusive = %v; want false, true", burst+1, burst, ok, abusive)
	}
}

// floodUntilAbusive sends at perSecond for up to d and returns how many
// messages were refused and when (after t0) the limiter called the client
// abusive, or -1 if it never did.
func floodUntilAbusive(l *rateLimiter, perSecond float64, d time.Duration) (refused int, abusiveAt time.Duration) {
	step := time.Duration(float64(time.Second) / perSecond)
	for at := time.Duration(0); at < d; at += step {
		ok, abusive := l.allow(t0.Add(at))
		if abusive {
			return refused + 1, at
		}
		if !ok {
			refused++
		}
	}
	return refused, -1
}

// TestRateLimiterSustainedFloodIsAbusive: five times over the limit, a
// client still gets one message in five through, which must not save it.
func TestRateLimiterSustainedFloodIsAbusive(t *testing.T) {
	l := newRateLimiter(DefaultRateLimit, DefaultRateBurst, t0)
	refused, at := floodUntilAbusive(l, 5*DefaultRateLimit, time.Minute)
	if at < 0 || at > 3*time.Second {
		t.Fatalf("100 messages/s against 20/s, burst 40: called abusive at %v after %d refusals, want within 3s", at, refused)
	}
}

// TestRateLimiterSlightlyOverIsNotAbusive: 10% over the limit, a client
// is refused now and then, more than burst times in all, but never more
// than burst times in ten seconds.
func TestRateLimiterSlightlyOverIsNotAbusive(t *testing.T) {
	l := newRateLimiter(DefaultRateLimit, DefaultRateBurst, t0)
	refused, at := floodUntilAbusive(l, 22, 2*time.Minute)
	if at >= 0 {
		t.Fatalf("22 messages/s against 20/s, burst 40: called abusive at %v", at)
	}
	if refused <= DefaultRateBurst {
		t.Fatalf("22 messages/s for 2 minutes: %d refusals, want more than the burst of %d", refused, DefaultRateBurst)
	}
}

// TestRateLimiterFloodWindowSlides: with no tokens coming back, what
// counts is how many refusals fall within any ten seconds.
func TestRateLimiterFloodWindowSlides(t *testing.T) {
	const burst = 3
	s := time.Second
	for _, tc := range []struct {
		name      string
		refusals  []time.Duration // after t0
		wantAbuse bool            // at the last one
	}{
		{"burst+1 at once", []time.Duration{0, 0, 0, 0}, true},
		{"burst+1 within 10s", []time.Duration{0, 3 * s, 6 * s, 9999 * time.Millisecond}, true},
		{"burst+1 over exactly 10s", []time.Duration{0, 3 * s, 6 * s, 10 * s}, false},
		{"spread out", []time.Duration{0, 4 * s, 8 * s, 12 * s, 16 * s, 20 * s}, false},
		{"spread out, then quicker", []time.Duration{0, 4 * s, 8 * s, 12 * s, 13 * s}, true},
		{"after a pause", []time.Duration{0, 0, 0, 11 * s, 11 * s, 11 * s}, false},
	} {
		l := newRateLimiter(0, burst, t0)
		allowN(l, burst, t0)
		for i, at := range tc.refusals {
			ok, abusive := l.allow(t0.Add(at))
			last := i == len(tc.refusals)-1
			if ok || abusive != (last && tc.wantAbuse) {
				t.Fatalf("%s: refusal %d at t0+%v: allow = %v, abusive = %v", tc.name, i+1, at, ok, abusive)
			}
		}
	}
}

func TestRateLimiterDisabled(t *testing.T) {
	l := newRateLimiter(-1, 5, t0)
	if l != nil {
		t.Fatalf("newRateLimiter(-1, 5) = %+v, want nil (disabled)", l)
	}
	for i := range 1000 {
		if ok, abusive := l.allow(t0); !ok || abusive {
			t.Fatalf("nil limiter, message %d: allow = %v, abusive = %v; want true, false", i, ok, abusive)
		}
	}
}
