package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/partyline/partyline"
)

// scrape fetches h over HTTP and returns each sample's value keyed by its
// series as printed, e.g. `partyline_messages_in_total{type="chat"}`.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	samples := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return samples
}

// expect asserts that each series in want was scraped with its value.
func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		g, ok := got[series]
		if !ok {
			t.Errorf("%s missing from the scrape", series)
		} else if math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", series, g, v)
		}
	}
}

// promhttpFor serves g as promhttp does by default.
func promhttpFor(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

func fixedStats(s partyline.Stats) func() partyline.Stats {
	return func() partyline.Stats { return s }
}

func TestCountersMove(t *testing.T) {
	m := New(prometheus.NewRegistry(), fixedStats(partyline.Stats{}))
	boom := errors.New("boom")
	m.MessageIn("chat")
	m.MessageIn("chat")
	m.MessageIn("join")
	m.MessageIn("no-such-type")
	m.MessageIn("")
	m.MessageOut(3, 2*time.Millisecond)
	m.MessageOut(2, 4*time.Millisecond)
	m.MessageOut(0, time.Millisecond)
	m.Evicted()
	m.Refused(partyline.CodeUnauthorized)
	m.Refused(partyline.CodeRateLimited)
	m.Refused(partyline.CodeRateLimited)
	m.Refused("made_up")
	m.StoreLatency("append", 3*time.Millisecond, nil)
	m.StoreLatency("append", 5*time.Millisecond, boom)
	m.BrokerLatency("publish", time.Millisecond, boom)
	m.PresenceLatency("add", 2*time.Millisecond, nil)
	m.PresenceLatency("count", time.Millisecond, boom)

	expect(t, scrape(t, m.Handler()), map[string]float64{
		`partyline_messages_in_total{type="chat"}`:                      2,
		`partyline_messages_in_total{type="join"}`:                      1,
		`partyline_messages_in_total{type="leave"}`:                     0,
		`partyline_messages_in_total{type="other"}`:                     2,
		`partyline_messages_out_total`:                                  3,
		`partyline_deliveries_total`:                                    5,
		`partyline_evictions_total`:                                     1,
		`partyline_refusals_total{code="unauthorized"}`:                 1,
		`partyline_refusals_total{code="rate_limited"}`:                 2,
		`partyline_refusals_total{code="other"}`:                        1,
		`partyline_refusals_total{code="forbidden_room"}`:               0,
		`partyline_fanout_latency_seconds_count`:                        3,
		`partyline_fanout_latency_seconds_sum`:                          0.007,
		`partyline_fanout_latency_seconds_bucket{le="0.001"}`:           1,
		`partyline_fanout_latency_seconds_bucket{le="0.0025"}`:          2,
		`partyline_fanout_latency_seconds_bucket{le="+Inf"}`:            3,
		`partyline_store_latency_seconds_count{op="append"}`:            2,
		`partyline_store_latency_seconds_sum{op="append"}`:              0.008,
		`partyline_store_errors_total{op="append"}`:                     1,
		`partyline_store_latency_seconds_count{op="history"}`:           0,
		`partyline_store_errors_total{op="last_seq"}`:                   0,
		`partyline_broker_latency_seconds_count{op="publish"}`:          1,
		`partyline_broker_errors_total{op="publish"}`:                   1,
		`partyline_broker_latency_seconds_count{op="subscribe"}`:        0,
		`partyline_presence_latency_seconds_count{op="add"}`:            1,
		`partyline_presence_errors_total{op="add"}`:                     0,
		`partyline_presence_latency_seconds_count{op="count"}`:          1,
		`partyline_presence_errors_total{op="count"}`:                   1,
		`partyline_presence_latency_seconds_count{op="users"}`:          0,
		`partyline_connections`:                                         0,
		`partyline_store_latency_seconds_bucket{op="append",le="+Inf"}`: 2,
	})
}

func TestNoUnknownLabelValues(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	m.MessageIn("evil\xff")
	m.MessageIn(strings.Repeat("x", 1000))
	m.Refused("evil\"}")
	got := scrape(t, m.Handler())
	for series := range got {
		if strings.Contains(series, "evil") || strings.Contains(series, "xxx") {
			t.Errorf("client-chosen label value exported: %s", series)
		}
	}
	expect(t, got, map[string]float64{
		`partyline_messages_in_total{type="other"}`: 2,
		`partyline_refusals_total{code="other"}`:    1,
	})
}

func TestGaugesReadAtScrape(t *testing.T) {
	var mu sync.Mutex
	stats := partyline.Stats{Connections: 3, Rooms: 2, Users: 1}
	m := New(prometheus.NewRegistry(), func() partyline.Stats {
		mu.Lock()
		defer mu.Unlock()
		return stats
	})
	expect(t, scrape(t, m.Handler()), map[string]float64{
		"partyline_connections": 3,
		"partyline_rooms":       2,
		"partyline_users":       1,
	})
	mu.Lock()
	stats = partyline.Stats{Connections: 10, Rooms: 4, Users: 7}
	mu.Unlock()
	expect(t, scrape(t, m.Handler()), map[string]float64{
		"partyline_connections": 10,
		"partyline_rooms":       4,
		"partyline_users":       7,
	})
}

func TestNilStatsLeavesGaugesOut(t *testing.T) {
	got := scrape(t, New(prometheus.NewRegistry(), nil).Handler())
	for _, name := range []string{"partyline_connections", "partyline_rooms", "partyline_users"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s exported with nil stats", name)
		}
	}
	if _, ok := got["partyline_evictions_total"]; !ok {
		t.Errorf("partyline_evictions_total missing with nil stats")
	}
}

func TestNilRegistererServesRuntimeMetrics(t *testing.T) {
	m := New(nil, fixedStats(partyline.Stats{Users: 5}))
	got := scrape(t, m.Handler())
	expect(t, got, map[string]float64{"partyline_users": 5})
	if _, ok := got["go_goroutines"]; !ok {
		t.Errorf("go_goroutines missing from a New(nil, …) scrape")
	}
}

func TestHandlerServesTheWholeRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_extra_total", Help: "An application metric."})
	reg.MustRegister(extra)
	extra.Add(4)
	m := New(reg, nil)
	m.Evicted()
	expect(t, scrape(t, m.Handler()), map[string]float64{
		"app_extra_total":           4,
		"partyline_evictions_total": 1,
	})
}

func TestWrappedRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(prometheus.WrapRegistererWith(prometheus.Labels{"node": "a"}, reg), nil)
	m.Evicted()
	// Handler cannot gather a wrapping Registerer, so it serves its own.
	expect(t, scrape(t, m.Handler()), map[string]float64{"partyline_evictions_total": 1})
	// The wrapped registry got the metrics with the extra label.
	expect(t, scrape(t, promhttpFor(reg)), map[string]float64{`partyline_evictions_total{node="a"}`: 1})
}

func TestNewTwicePanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, nil)
	defer func() {
		if recover() == nil {
			t.Errorf("second New on the same registry did not panic")
		}
	}()
	New(reg, nil)
}

func TestOpsAreBounded(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	for i := range 3 * maxOps {
		m.StoreLatency(fmt.Sprintf("op%d", i), time.Millisecond, nil)
	}
	m.StoreLatency("Not An Op", time.Millisecond, nil)
	m.BrokerLatency("presence_add", time.Millisecond, nil)
	got := scrape(t, m.Handler())
	series := 0
	for s := range got {
		if strings.HasPrefix(s, "partyline_store_latency_seconds_count{") {
			series++
		}
		if strings.Contains(s, "Not An Op") {
			t.Errorf("invalid op exported: %s", s)
		}
	}
	if series != maxOps {
		t.Errorf("store latency series = %d, want the cap %d", series, maxOps)
	}
	known := len(storeOps) + 1
	wantOther := float64(3*maxOps-(maxOps-known)) + 1
	expect(t, got, map[string]float64{
		`partyline_store_latency_seconds_count{op="op0"}`:           1,
		`partyline_store_latency_seconds_count{op="other"}`:         wantOther,
		`partyline_broker_latency_seconds_count{op="presence_add"}`: 1,
	})
}

func TestConcurrentNewOps(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	const workers, calls = 8, 50
	var wg sync.WaitGroup
	var errs atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				err := error(nil)
				if i%2 == 0 {
					err = errors.New("boom")
					errs.Add(1)
				}
				m.BrokerLatency(fmt.Sprintf("op%d", (w+i)%4), time.Microsecond, err)
			}
		})
	}
	wg.Wait()
	got := scrape(t, m.Handler())
	var total, failed float64
	for s, v := range got {
		if strings.HasPrefix(s, "partyline_broker_latency_seconds_count{") {
			total += v
		}
		if strings.HasPrefix(s, "partyline_broker_errors_total{") {
			failed += v
		}
	}
	if total != workers*calls || failed != float64(errs.Load()) {
		t.Errorf("broker calls = %v, errors = %v; want %d and %d", total, failed, workers*calls, errs.Load())
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	boom := errors.New("boom")
	m.StoreLatency("learned_op", time.Millisecond, nil) // learned once, then cached
	tests := map[string]func(){
		"MessageIn known":      func() { m.MessageIn("chat") },
		"MessageIn unknown":    func() { m.MessageIn("bogus") },
		"MessageOut":           func() { m.MessageOut(100, time.Millisecond) },
		"Evicted":              func() { m.Evicted() },
		"Refused known":        func() { m.Refused(partyline.CodeRateLimited) },
		"Refused unknown":      func() { m.Refused("bogus") },
		"StoreLatency":         func() { m.StoreLatency("append", time.Millisecond, nil) },
		"StoreLatency error":   func() { m.StoreLatency("append", time.Millisecond, boom) },
		"StoreLatency learned": func() { m.StoreLatency("learned_op", time.Millisecond, nil) },
		"BrokerLatency":        func() { m.BrokerLatency("publish", time.Millisecond, boom) },
		"PresenceLatency":      func() { m.PresenceLatency("contains", time.Millisecond, boom) },
	}
	for name, f := range tests {
		if allocs := testing.AllocsPerRun(100, f); allocs != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, allocs)
		}
	}
}

func BenchmarkMessageOut(b *testing.B) {
	m := New(prometheus.NewRegistry(), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.MessageIn("chat")
			m.MessageOut(100, time.Millisecond)
		}
	})
}
