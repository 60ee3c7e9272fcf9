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

func TestRateLimiterStrikes(t *testing.T) {
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

func TestRateLimiterAllowedMessageResetsStrikes(t *testing.T) {
	const burst = 3
	l := newRateLimiter(1, burst, t0)
	allowN(l, burst, t0)
	allowN(l, burst, t0) // burst refusals: one short of abuse
	now := t0.Add(time.Second)
	if ok, _ := l.allow(now); !ok {
		t.Fatal("a second later, a token should have been allowed")
	}
	for i := 1; i <= burst; i++ {
		if _, abusive := l.allow(now); abusive {
			t.Fatalf("refusal %d after an allowed message was abusive; strikes were not reset", i)
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
