package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDeliverSigned(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	rc := newReceiver(t, nil)
	log.add(rc.URL, "evt_a", "evt_b", "evt_c")
	want := `{"events":[` + string(bytes.Join(bodies(log, rc.URL), []byte(","))) + `]}`
	_, obs := startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now})

	waitFor(t, "the batch to be acknowledged", func() bool { return log.count(rc.URL) == 0 })
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if string(r.body) != want {
		t.Errorf("body = %s\nwant   %s", r.body, want)
	}
	if !json.Valid(r.body) {
		t.Errorf("body is not JSON: %s", r.body)
	}
	if err := Verify(testSecret, r.header.Get(SignatureHeader), r.body, clock.Now(), time.Minute); err != nil {
		t.Errorf("Verify(%q) = %v", r.header.Get(SignatureHeader), err)
	}
	if got, want := r.header.Get(SignatureHeader), Sign(testSecret, clock.Now(), r.body); got != want {
		t.Errorf("%s = %q, want %q", SignatureHeader, got, want)
	}
	for name, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "partyline-webhook"} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	waitFor(t, "the observer to count 3 sent and 0 pending", func() bool {
		sent, _, _ := obs.counts()
		obs.mu.Lock()
		defer obs.mu.Unlock()
		p, ok := obs.pending[rc.URL]
		return sent == 3 && ok && p == 0
	})
}

// bodies returns the bodies of url's pending events.
func bodies(log *testLog, url string) [][]byte {
	log.mu.Lock()
	defer log.mu.Unlock()
	var b [][]byte
	for _, e := range log.pending[url] {
		b = append(b, e.Body)
	}
	return b
}

func TestBatchesInOrder(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	rc := newReceiver(t, nil)
	first, later := ids("evt_", 250), ids("evt_late_", 30)
	log.add(rc.URL, first...)
	s, _ := startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now})
	waitFor(t, "a first request", func() bool { return len(rc.requests()) > 0 })
	log.add(rc.URL, later...)
	s.Notify()

	waitFor(t, "every event to be acknowledged", func() bool { return log.count(rc.URL) == 0 })
	var got []string
	for i, r := range rc.requests() {
		if len(r.ids) == 0 || len(r.ids) > MaxBatch {
			t.Errorf("request %d carries %d events, want 1 to %d", i, len(r.ids), MaxBatch)
		}
		got = append(got, r.ids...)
	}
	if n := len(rc.requests()[0].ids); n != MaxBatch {
		t.Errorf("the first request carries %d events of the 250 waiting, want %d", n, MaxBatch)
	}
	if want := append(first, later...); !slices.Equal(got, want) {
		t.Errorf("events arrived as %v,\nwant each once in the order recorded: %v", got, want)
	}
}

func TestRetryUntilAcknowledged(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	const failures = 3
	rc := newReceiver(t, func(i int, w http.ResponseWriter, _ *http.Request) {
		if i < failures {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	log.add(rc.URL, "evt_a", "evt_b")
	_, obs := startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now})

	waitFor(t, "the events to be acknowledged", func() bool { return log.count(rc.URL) == 0 })
	reqs := rc.requests()
	if len(reqs) != failures+1 {
		t.Fatalf("receiver got %d requests, want %d (%d failed, then one 200)", len(reqs), failures+1, failures)
	}
	for i, r := range reqs {
		if !slices.Equal(r.ids, []string{"evt_a", "evt_b"}) {
			t.Errorf("request %d carries %v, want the same batch [evt_a evt_b]", i, r.ids)
		}
	}
	// Each wait is at least three quarters of the doubled backoff; it may be
	// longer on a loaded machine, so there is no upper bound.
	for i := 1; i < len(reqs); i++ {
		min := testTiming.backoffMin << (i - 1) * 3 / 4
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < min {
			t.Errorf("retry %d came %v after the failure, want at least %v", i, gap, min)
		}
	}
	log.mu.Lock()
	acks := log.acks
	log.mu.Unlock()
	if acks != 1 {
		t.Errorf("AckEvents succeeded %d times, want once, after the 200", acks)
	}
	if sent, retried, gaveUp := obs.counts(); sent != 2 || retried != failures || gaveUp != 0 {
		t.Errorf("observer counted sent %d, retried %d, given up %d; want 2, %d, 0", sent, retried, gaveUp, failures)
	}
}

func TestHungReceiver(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	release := make(chan struct{})
	hang := func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	rc := newReceiver(t, hang)
	t.Cleanup(func() { close(release) }) // before rc.Close, which waits for handlers
	log.add(rc.URL, "evt_a")
	s, obs := startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now, Timeout: 50 * time.Millisecond})

	waitFor(t, "a first attempt", func() bool { return len(rc.requests()) >= 1 })
	notified := make(chan struct{})
	go func() {
		for range 10000 {
			s.Notify()
		}
		close(notified)
	}()
	select {
	case <-notified:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked while the receiver hangs")
	}
	waitFor(t, "the timed-out attempt to be retried", func() bool { return len(rc.requests()) >= 2 })
	if log.count(rc.URL) != 1 {
		t.Fatal("the event was acknowledged while the receiver never answered")
	}
	rc.setAnswer(nil)
	waitFor(t, "delivery once the receiver answers", func() bool { return log.count(rc.URL) == 0 })
	if _, retried, _ := obs.counts(); retried < 1 {
		t.Errorf("observer counted %d retries, want at least 1", retried)
	}
}

func TestGiveUpAfterRetryFor(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, _ *http.Request) {
		if i < 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	log.add(rc.URL, "evt_old")
	clock.Add(90 * time.Minute)
	log.add(rc.URL, "evt_young")
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	_, obs := startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now, RetryFor: time.Hour, Logger: logger})

	waitFor(t, "the events to be settled", func() bool { return log.count(rc.URL) == 0 })
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3 (two 503s, then 200)", len(reqs))
	}
	if want := []string{"evt_old", "evt_young"}; !slices.Equal(reqs[0].ids, want) {
		t.Errorf("first attempt carries %v, want %v", reqs[0].ids, want)
	}
	for i, r := range reqs[1:] {
		if !slices.Equal(r.ids, []string{"evt_young"}) {
			t.Errorf("attempt %d carries %v, want only [evt_young]: evt_old was given up", i+2, r.ids)
		}
	}
	if sent, _, gaveUp := obs.counts(); sent != 1 || gaveUp != 1 {
		t.Errorf("observer counted sent %d, given up %d; want 1, 1", sent, gaveUp)
	}
	out := logs.String()
	if !strings.Contains(out, "given up") || !strings.Contains(out, "evt_old") || strings.Contains(out, "ids=[evt_old evt_young]") {
		t.Errorf("the give-up is not logged with evt_old alone:\n%s", out)
	}
}

func TestOneSenderPerURL(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	rc := newReceiver(t, nil)
	opts := func(owner string, obs *testObserver) Options {
		return Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now, Owner: owner, Observer: obs}
	}
	a, obsA := startSender(t, opts("node-a", &testObserver{}))
	waitFor(t, "node-a to take the lease", func() bool { return log.holder(rc.URL) == "node-a" })
	b, obsB := startSender(t, opts("node-b", &testObserver{}))

	log.add(rc.URL, ids("evt_", 5)...)
	a.Notify()
	b.Notify()
	waitFor(t, "node-a to deliver", func() bool { return log.count(rc.URL) == 0 })
	if sentA, _, _ := obsA.counts(); sentA != 5 {
		t.Errorf("node-a sent %d events, want 5", sentA)
	}

	// node-a stops and releases its lease: node-b sends at once.
	a.Close()
	log.add(rc.URL, "evt_after")
	b.Notify()
	waitFor(t, "node-b to take over at once", func() bool { return log.count(rc.URL) == 0 })
	if holder := log.holder(rc.URL); holder != "node-b" {
		t.Errorf("lease held by %q, want node-b", holder)
	}
	if sentB, _, _ := obsB.counts(); sentB != 1 {
		t.Errorf("node-b sent %d events, want only evt_after", sentB)
	}

	// node-b stops unable to release it, as a node that dies: its lease
	// runs until it expires by the clock.
	log.setFailing(true)
	b.Close()
	log.setFailing(false)
	c, obsC := startSender(t, opts("node-c", &testObserver{}))
	log.add(rc.URL, "evt_late")
	c.Notify()
	callsC := func() int {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.leaseCalls["node-c"]
	}
	waitFor(t, "node-c to try the lease twice", func() bool { return callsC() >= 2 })
	if n := log.count(rc.URL); n != 1 {
		t.Fatalf("%d events pending, want evt_late waiting for node-b's lease to expire", n)
	}
	clock.Add(testTiming.lease + time.Second)
	waitFor(t, "node-c to take over", func() bool { return log.count(rc.URL) == 0 })
	if sentC, _, _ := obsC.counts(); sentC != 1 {
		t.Errorf("node-c sent %d events, want only evt_late", sentC)
	}
	var got []string
	for _, r := range rc.requests() {
		got = append(got, r.ids...)
	}
	if want := append(ids("evt_", 5), "evt_after", "evt_late"); !slices.Equal(got, want) {
		t.Errorf("receiver got %v, want each event once: %v", got, want)
	}
}

func TestFailingURLDoesNotDelayOthers(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	stuck := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	fine := newReceiver(t, nil)
	log.add(stuck.URL, "evt_stuck")
	startSender(t, Options{Log: log, URLs: []string{stuck.URL, fine.URL}, Now: clock.Now, Timeout: time.Minute})

	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt reached the stuck receiver")
	}
	log.add(fine.URL, "evt_fine")
	waitFor(t, "delivery to the working URL while the other hangs", func() bool { return log.count(fine.URL) == 0 })
	if n := len(stuck.requests()); n != 1 {
		t.Errorf("stuck receiver got %d requests, want its first still hanging", n)
	}
}

func TestStoreUnavailable(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	rc := newReceiver(t, nil)
	log.add(rc.URL, "evt_a")
	log.setFailing(true)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now, Logger: logger})

	waitFor(t, "several failed store calls", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.failed >= 5
	})
	log.setFailing(false)
	waitFor(t, "delivery once the store answers", func() bool { return log.count(rc.URL) == 0 })
	out := logs.String()
	if n := strings.Count(out, "store call failed"); n != 1 {
		t.Errorf("store failure logged %d times, want once per outage:\n%s", n, out)
	}
	if n := strings.Count(out, "store answers again"); n != 1 {
		t.Errorf("store recovery logged %d times, want once:\n%s", n, out)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	checkGoroutines(t)
	clock := newTestClock()
	log := newTestLog(clock)
	elsewhere := newReceiver(t, nil)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		}
	})
	log.add(rc.URL, "evt_a")
	_, obs := startSender(t, Options{Log: log, URLs: []string{rc.URL}, Now: clock.Now})

	waitFor(t, "delivery", func() bool { return log.count(rc.URL) == 0 })
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("the redirect was followed: its target got %d requests", n)
	}
	if _, retried, _ := obs.counts(); retried != 1 {
		t.Errorf("observer counted %d retries, want 1 (the 307)", retried)
	}
}

func TestBackoff(t *testing.T) {
	tm := defaultTiming(5 * time.Second)
	for n, max := range []time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 8: time.Minute, 100: time.Minute} {
		if max == 0 {
			continue
		}
		for range 100 {
			if d := tm.backoff(n); d < max*3/4 || d > max {
				t.Fatalf("backoff(%d) = %v, want between %v and %v", n, d, max*3/4, max)
			}
		}
	}
	if tm.lease <= tm.renew*2 {
		t.Errorf("lease %v does not outlive two renewals every %v", tm.lease, tm.renew)
	}
	if long := defaultTiming(time.Minute); long.lease <= time.Minute+long.renew {
		t.Errorf("with a 1m timeout the lease is %v: an attempt could outlive it", long.lease)
	}
}

func TestNewValidates(t *testing.T) {
	log := newTestLog(newTestClock())
	good := Options{Log: log, URLs: []string{"https://example.com/hook"}, Secret: testSecret}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no log", func(o *Options) { o.Log = nil }, "Options.Log"},
		{"no URLs", func(o *Options) { o.URLs = nil }, "Options.URLs"},
		{"no secret", func(o *Options) { o.Secret = nil }, "Options.Secret"},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "Options.Timeout"},
		{"negative retry", func(o *Options) { o.RetryFor = -time.Second }, "Options.RetryFor"},
		{"not http", func(o *Options) { o.URLs = []string{"ftp://example.com/"} }, "Options.URLs[0]"},
		{"no host", func(o *Options) { o.URLs = []string{"http:///hook"} }, "Options.URLs[0]"},
		{"twice", func(o *Options) { o.URLs = []string{"http://a/", "http://b/", "http://a/"} }, "Options.URLs[2]"},
		{"secret in a bad URL is not echoed", func(o *Options) { o.URLs = []string{"ftp://u:hunter2@h/?token=hunter2"} }, "Options.URLs[0]"},
	}
	for _, tt := range tests {
		o := good
		tt.change(&o)
		_, err := New(o)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: New = %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
	s, err := New(good)
	if err != nil {
		t.Fatalf("New(%+v) = %v", good, err)
	}
	if s.timeout != 5*time.Second || s.retryFor != 24*time.Hour || s.owner == "" {
		t.Errorf("defaults: timeout %v, retry for %v, owner %q; want 5s, 24h, a name", s.timeout, s.retryFor, s.owner)
	}
	s.Close()
	if err := s.Run(t.Context()); err != nil {
		t.Errorf("Run after Close = %v, want nil at once", err)
	}
}

// syncBuffer is a bytes.Buffer for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.example.com/partyline":                 "https://hooks.example.com/partyline",
		"https://user:hunter2@example.com/hook?token=hunter2": "https://user:xxxxx@example.com/hook",
		"http://example.com/hook#frag":                        "http://example.com/hook",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
