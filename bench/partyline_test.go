package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// startPartyline serves a real hub over loopback and returns its ws:// URL.
func startPartyline(t *testing.T) string {
	t.Helper()
	return startPartylineWith(t, partyline.Options{})
}

// startPartylineWith is startPartyline with opts.
func startPartylineWith(t *testing.T, opts partyline.Options) string {
	t.Helper()
	srv, err := partyline.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("/ws/{room}", srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

func TestSmokeFanoutAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartyline(t), Fanout)
	cfg.Subscribers, cfg.Publishers, cfg.Rate = 20, 2, 20
	res := runOK(t, cfg)
	checkDelivery(t, res, 20)
}

func TestSmokeRoomsAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartyline(t), Rooms)
	cfg.Connections, cfg.Rooms, cfg.Rate = 12, 4, 2
	res := runOK(t, cfg)
	checkDelivery(t, res, 3)
}

func TestSmokeIdleAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartyline(t), Idle)
	cfg.Connections, cfg.Rooms = 10, 2
	res := runOK(t, cfg)
	if res.Connected != 10 || res.NotReady != 0 || len(res.Closed) != 0 || res.ErrorFrames != 0 {
		t.Errorf("connected %d not ready %d closed %v error frames %d: want 10 quiet ready connections",
			res.Connected, res.NotReady, res.Closed, res.ErrorFrames)
	}
}

// TestSmokeOverloadAgainstPartyline runs the overload scenario against a
// partyline with a short max lag and two subscribers that read at a third
// of what the room sends: they are evicted, learn it once they have read
// their backlog (the close frame waits behind it), and resume, while the
// others keep receiving fresh messages.
func TestSmokeOverloadAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartylineWith(t, partyline.Options{MaxLag: 300 * time.Millisecond,
		PingInterval: 100 * time.Millisecond, RateLimit: -1}), Overload)
	// The room sends about 110 KB/s: the slow subscribers' first window
	// (64 KB) fills within a second.
	cfg.Subscribers, cfg.Publishers, cfg.Rate, cfg.Payload = 12, 2, 100, 1000
	cfg.Slow, cfg.SlowRate = 2, 40<<10
	res := runOK(t, cfg)
	if res.Evicted < 1 || res.Resumed < 1 {
		t.Errorf("evicted %d, resumed %d: want the slow subscribers shed and resumed", res.Evicted, res.Resumed)
	}
	if res.Sent == 0 || res.Latency.Count == 0 || res.ErrorFrames != 0 || res.DialFailures != 0 {
		t.Errorf("sent %d, live deliveries %d, error frames %d (%s), dial failures %d",
			res.Sent, res.Latency.Count, res.ErrorFrames, res.FirstError, res.DialFailures)
	}
	// The ten who keep up get what they get live within the max lag and a
	// little; generous, for a loaded machine and the race detector.
	if p99 := res.Latency.P99; p99 > 3000 {
		t.Errorf("live lag p99 %.0f ms, want well under the max lag plus a little", p99)
	}
}

// TestSmokeJoinsAgainstPartyline runs the join storm twice: against a
// partyline that lists every room, where N users joining cost exactly
// N(N-1)/2 user_joined and one online_users each, and against one whose
// room turns large after a few users, where the later joins arrive in a
// few presence_diff frames instead.
func TestSmokeJoinsAgainstPartyline(t *testing.T) {
	const n = 24
	for _, tt := range []struct {
		name    string
		listMax int
	}{{"listed", -1}, {"large", 4}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := shortConfig(startPartylineWith(t, partyline.Options{PresenceListMax: tt.listMax}), Joins)
			cfg.Connections, cfg.Drain = n, 1500*time.Millisecond
			res := runOK(t, cfg)
			j := res.Joins
			if res.Connected != n || res.NotReady != 0 || len(res.Closed) != 0 || res.ErrorFrames != 0 || j == nil || !j.Quiet {
				t.Fatalf("connected %d not ready %d closed %v error frames %d, joins %+v: want %d joined and quiet",
					res.Connected, res.NotReady, res.Closed, res.ErrorFrames, j, n)
			}
			online, joined, diffs := j.Frames["online_users"], j.Frames["user_joined"], j.Frames["presence_diff"]
			if online.Objects != n || j.Frames["user_left"].Objects != 0 || j.Frames["other"].Objects != 2*n { // welcome and joined
				t.Errorf("frames %+v: want %d online_users and %d others, no user_left", j.Frames, n, 2*n)
			}
			if j.PresenceObjects != online.Objects+joined.Objects+diffs.Objects || j.JoinedSeconds <= 0 || j.QuietSeconds < j.JoinedSeconds {
				t.Errorf("joins %+v: totals or times do not add up", j)
			}
			// Of two users, the later joiner's arrival reaches the earlier,
			// and the earlier's may reach the later too when its delivery
			// waited for a pass (fanout.go).
			switch tt.name {
			case "listed":
				if joined.Objects < n*(n-1)/2 || joined.Objects > n*(n-1) || diffs.Objects != 0 {
					t.Errorf("%d user_joined and %d presence_diff, want %d to %d and none", joined.Objects, diffs.Objects, n*(n-1)/2, n*(n-1))
				}
			case "large":
				// Only the first 4 users' arrivals are announced alone, the
				// others in a few diffs to all.
				if joined.Objects > 4*(n-1) || diffs.Objects == 0 || diffs.Objects > 4*n {
					t.Errorf("%d user_joined and %d presence_diff, want at most %d and a few per member", joined.Objects, diffs.Objects, 4*(n-1))
				}
			}
		})
	}
}
