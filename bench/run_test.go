package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// shortConfig returns a few-connection, about two-second run of scenario.
func shortConfig(url, scenario string) Config {
	return Config{
		URL: url, Scenario: scenario,
		Connections: 6, Subscribers: 5, Rooms: 3, Payload: 64,
		Warmup: 300 * time.Millisecond, Duration: 1500 * time.Millisecond,
		Drain: 3 * time.Second, Timeout: 30 * time.Second,
		PID: os.Getpid(), Sources: 3, DialConcurrency: 4,
	}
}

func runOK(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg, testWriter{t})
	if err != nil {
		t.Fatalf("Run(%s): %v", cfg.Scenario, err)
	}
	var buf bytes.Buffer
	writeTable(&buf, res)
	t.Logf("result:\n%s", buf.String())
	return res
}

// checkDelivery asserts a loss-free run with sane figures: every member of
// the room got every message sent in the window.
func checkDelivery(t *testing.T, res *Result, members int) {
	t.Helper()
	if res.Connected != res.Connections || res.NotReady != 0 || res.DialFailures != 0 {
		t.Errorf("connected %d of %d, not ready %d, dial failures %d (%s)",
			res.Connected, res.Connections, res.NotReady, res.DialFailures, res.FirstDialError)
	}
	if res.Sent == 0 || res.Expected != res.Sent*uint64(members) {
		t.Errorf("sent %d, expected %d: want sent > 0 and expected = sent × %d", res.Sent, res.Expected, members)
	}
	if res.Delivered != res.Expected || res.DeliveryRatio != 1 {
		t.Errorf("delivered %d of %d (ratio %v), want all", res.Delivered, res.Expected, res.DeliveryRatio)
	}
	l := res.Latency
	if l.Count != res.Delivered || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || l.Max > 10_000 {
		t.Errorf("latency %+v: want count = delivered, 0 < p50 <= p90 <= p99 <= max < 10s", l)
	}
	if len(res.Closed) != 0 || res.ErrorFrames != 0 || res.SendErrors != 0 {
		t.Errorf("closed %v, error frames %d (%s), send errors %d (%s): want none",
			res.Closed, res.ErrorFrames, res.FirstError, res.SendErrors, res.FirstSendError)
	}
	if res.Server == nil || res.Server.RSSAfter <= 0 || res.Server.CPUSeconds < 0 || res.Bench.CPUSeconds <= 0 {
		t.Errorf("server %+v bench %+v: want readings", res.Server, res.Bench)
	}
}

func TestRunFanoutAgainstFake(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{}), Fanout)
	cfg.Publishers, cfg.Rate = 2, 40
	res := runOK(t, cfg)
	checkDelivery(t, res, 5)
	if res.Publishers != 2 || res.Rooms != 1 || res.Sources != 3 {
		t.Errorf("publishers %d rooms %d sources %d, want 2, 1, 3", res.Publishers, res.Rooms, res.Sources)
	}
	// 40 msg/s for 1.5 s; allow for timer slack on a busy machine.
	if res.Sent < 30 || res.Sent > 70 {
		t.Errorf("sent %d in the window, want about 60", res.Sent)
	}
}

func TestRunRoomsAgainstFake(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{}), Rooms)
	cfg.Rate = 4
	res := runOK(t, cfg)
	checkDelivery(t, res, 2) // 6 connections over 3 rooms
	if res.Publishers != 6 || res.Rooms != 3 {
		t.Errorf("publishers %d rooms %d, want 6 and 3", res.Publishers, res.Rooms)
	}
}

func TestRunCountsLoss(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{dropEvery: 4}), Fanout)
	cfg.Publishers, cfg.Rate, cfg.Drain = 1, 20, 500*time.Millisecond
	res := runOK(t, cfg)
	if res.Expected == 0 || res.Delivered >= res.Expected || res.DeliveryRatio < 0.6 || res.DeliveryRatio > 0.9 {
		t.Errorf("a server dropping 1 in 4: delivered %d of %d (ratio %v), want about 0.75",
			res.Delivered, res.Expected, res.DeliveryRatio)
	}
}

func TestRunIdleCountsHeartbeats(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{pingEvery: 100 * time.Millisecond}), Idle)
	cfg.Connections, cfg.Rooms, cfg.PingInterval = 4, 0, 100*time.Millisecond
	res := runOK(t, cfg)
	if res.Connected != 4 || res.NotReady != 0 || res.Sent != 0 || res.Delivered != 0 {
		t.Errorf("connected %d not ready %d sent %d delivered %d: want 4 ready quiet connections",
			res.Connected, res.NotReady, res.Sent, res.Delivered)
	}
	// 4 connections × 1.5 s / 100 ms = 60 pings; allow for a busy machine.
	if res.Heartbeats < 20 || res.Heartbeats > 80 || res.HeartbeatsExpected < 55 || res.HeartbeatsExpected > 65 {
		t.Errorf("heartbeats %d (expected %.0f), want about 60", res.Heartbeats, res.HeartbeatsExpected)
	}
	// /proc counts CPU in 10 ms ticks, so a quiet fake may show none; the
	// figure must follow from what was measured.
	if res.Server == nil {
		t.Fatal("no server figures for the fake's own PID")
	}
	if want := res.Server.CPUSeconds / float64(res.Heartbeats) * 1e6; math.Abs(res.Server.CPUPerHeartbeatUS-want) > 1e-6 {
		t.Errorf("CPU per heartbeat %.3f µs, want %.3f (%.3f s over %d heartbeats)",
			res.Server.CPUPerHeartbeatUS, want, res.Server.CPUSeconds, res.Heartbeats)
	}
}

func TestMainPrintsJSONAndTable(t *testing.T) {
	url := startFake(t, &fakeServer{})
	var stdout, stderr bytes.Buffer
	err := Main(context.Background(), []string{"--url", url, "--scenario", "rooms", "--connections", "4",
		"--rooms", "2", "--rate", "5", "--warmup", "200ms", "--duration", "1200ms", "--sources", "2"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Main: %v\nstderr: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res Result
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &res) != nil {
		t.Fatalf("stdout = %q, want one JSON line", stdout.String())
	}
	if res.Scenario != Rooms || res.Connected != 4 || res.DeliveryRatio != 1 {
		t.Errorf("result scenario %q connected %d ratio %v, want rooms, 4, 1", res.Scenario, res.Connected, res.DeliveryRatio)
	}
	for _, want := range []string{"bench:", "conns 4", "delivered", "latency ms", "p99"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestMainHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"-h"}, &stdout, &stderr); err != nil {
		t.Fatalf("Main -h: %v", err)
	}
	for _, want := range []string{"usage: partyline bench", "-scenario", "-pid", "-ping-interval", "fanout"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("-h wrote %q to stdout, want nothing", stdout.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "chaos"}, "--scenario"},
		{[]string{"--url", "http://127.0.0.1:1"}, "--url"},
		{[]string{"--payload", "10"}, "--payload"},
		{[]string{"--scenario", "fanout", "--subscribers", "2", "--publishers", "3"}, "--publishers"},
		{[]string{"--scenario", "rooms", "--rooms", "0"}, "--rooms"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--sources", "0"}, "--sources"},
		{[]string{"extra"}, "extra"},
		{[]string{"--connections", "many"}, "connections"},
	} {
		err := Main(context.Background(), tc.args, new(bytes.Buffer), new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Main(%q) = %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := parseFlags([]string{"--scenario", "fanout", "--rate", "100"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Publishers != 10 || cfg.Subscribers != 1000 || cfg.Payload != 64 || cfg.Timeout <= cfg.Duration {
		t.Errorf("fanout defaults: publishers %d subscribers %d payload %d timeout %v",
			cfg.Publishers, cfg.Subscribers, cfg.Payload, cfg.Timeout)
	}
	cfg, _ = parseFlags([]string{"--scenario", "rooms"}, new(bytes.Buffer))
	if cfg.Rate != 1 || cfg.Rooms != 1000 || cfg.Connections != 10000 {
		t.Errorf("rooms defaults: rate %v rooms %d connections %d", cfg.Rate, cfg.Rooms, cfg.Connections)
	}
}

func TestConnectionURL(t *testing.T) {
	for _, tc := range []struct{ base, user, room, want string }{
		{"ws://127.0.0.1:8080", "b1", "r", "ws://127.0.0.1:8080/ws?username=b1&room=r"},
		{"ws://127.0.0.1:8080/", "b1", "", "ws://127.0.0.1:8080/ws?username=b1"},
		{"ws://h:1/chat?token=x&username=z", "b2", "a:b", "ws://h:1/chat?token=x&username=b2&room=a%3Ab"},
	} {
		d, err := newDialer(tc.base, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.url(tc.user, tc.room); got != tc.want {
			t.Errorf("url(%q, %q, %q) = %q, want %q", tc.base, tc.user, tc.room, got, tc.want)
		}
	}
	if d, _ := newDialer("ws://10.1.2.3:80", 4, false); d.sources != nil {
		t.Error("a non-loopback server: want the kernel's source address")
	}
	if d, _ := newDialer("ws://localhost:80", 4, false); len(d.sources) != 4 {
		t.Error("localhost: want 4 loopback sources")
	}
}

func TestRunFailsWithoutServer(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	cfg := shortConfig("ws"+strings.TrimPrefix(ts.URL, "http"), Fanout)
	_, err := Run(context.Background(), cfg, testWriter{t})
	if err == nil || !strings.Contains(err.Error(), "no connection succeeded") || !strings.Contains(err.Error(), "404") {
		t.Errorf("Run against a 404: %v, want no connection succeeded, naming the 404", err)
	}
}

func TestRunStopsAtTimeout(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{silent: true}), Fanout)
	cfg.Timeout = time.Second
	start := time.Now()
	_, err := Run(context.Background(), cfg, testWriter{t})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run against a server that never says joined: %v after %v, want the deadline", err, time.Since(start))
	}
}

// TestRunOverloadResumesTheEvicted has the fake evict two subscribers with
// 4009 partway through: each comes back after the wait its close reason
// asks for, resumes with since, and by the end of the drain every member
// has every message of the window, the replayed ones counted apart.
func TestRunOverloadResumesTheEvicted(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{evict: []string{"b3", "b4"}, evictAfter: 30}), Overload)
	cfg.Subscribers, cfg.Publishers, cfg.Rate = 6, 1, 40
	res := runOK(t, cfg)
	if res.Evicted != 2 || res.Resumed != 2 || res.Closed["4009"] != 2 {
		t.Errorf("evicted %d, resumed %d, closes %v: want 2 evicted with 4009, both resumed", res.Evicted, res.Resumed, res.Closed)
	}
	if res.Sent == 0 || res.Expected != res.Sent*6 || res.Delivered != res.Expected {
		t.Errorf("sent %d, delivered %d of %d: want every message to all 6 by the drain's end", res.Sent, res.Delivered, res.Expected)
	}
	r := res.ReplayLatency
	if r == nil || res.Replayed == 0 || r.Count != res.Replayed || res.Latency.Count+res.Replayed != res.Delivered {
		t.Errorf("replayed %d (latency %+v), live %d, delivered %d: want the resumes' replays counted apart",
			res.Replayed, r, res.Latency.Count, res.Delivered)
	}
	if l := res.Latency; l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
		t.Errorf("live lag %+v: want 0 < p50 <= p99 <= max", l)
	}
	if res.ErrorFrames != 0 || res.DialFailures != 0 {
		t.Errorf("error frames %d (%s), dial failures %d: want none", res.ErrorFrames, res.FirstError, res.DialFailures)
	}
	var buf bytes.Buffer
	writeTable(&buf, res)
	for _, want := range []string{"evicted", "resumed 2", "lag ms (live)", "lag ms (replayed)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestOverloadDefaults(t *testing.T) {
	cfg, err := parseFlags([]string{"--scenario", "overload"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Subscribers != 10000 || cfg.Rate != 100 || cfg.Publishers != 10 ||
		cfg.Warmup != 5*time.Second || cfg.Duration != 20*time.Second || cfg.Drain != 10*time.Second {
		t.Errorf("overload defaults: subscribers %d rate %v publishers %d warmup %v duration %v drain %v",
			cfg.Subscribers, cfg.Rate, cfg.Publishers, cfg.Warmup, cfg.Duration, cfg.Drain)
	}
	cfg, err = parseFlags([]string{"--scenario", "overload", "--subscribers", "2000", "--duration", "5s"}, new(bytes.Buffer))
	if err != nil || cfg.Subscribers != 2000 || cfg.Duration != 5*time.Second {
		t.Errorf("overload with flags: %v, subscribers %d duration %v: want the flags to win", err, cfg.Subscribers, cfg.Duration)
	}
	if _, err := parseFlags([]string{"--scenario", "overload", "--subscribers", "20", "--slow", "15"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--slow") {
		t.Errorf("15 slow of 20 subscribers with 2 publishers: %v, want an error naming --slow", err)
	}
}

func TestRetryWait(t *testing.T) {
	for reason, want := range map[string]time.Duration{
		"slow consumer; retry after 1500ms": 1500 * time.Millisecond,
		"retry after 20 ms":                 20 * time.Millisecond,
		"slow consumer":                     defaultRetry,
		"":                                  defaultRetry,
	} {
		if got := retryWait(reason); got != want {
			t.Errorf("retryWait(%q) = %v, want %v", reason, got, want)
		}
	}
}
