package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// testLog is an in-memory partyline.EventLog with only what a Sender uses:
// a map of pending events by URL and one of leases, under a mutex. It can
// be made to fail like an unreachable database.
type testLog struct {
	clock *testClock

	mu         sync.Mutex // guards the following
	routes     []partyline.WebhookRoute
	lastPos    int64
	pending    map[string][]partyline.PendingEvent // by URL, oldest first
	leases     map[string]testLease                // by URL
	leaseCalls map[string]int                      // by owner
	acks       int                                 // AckEvents calls that succeeded
	failing    bool
	failed     int // calls refused while failing
}

type testLease struct {
	owner string
	until time.Time
}

var _ partyline.EventLog = (*testLog)(nil)

func newTestLog(clock *testClock) *testLog {
	return &testLog{
		clock:      clock,
		pending:    make(map[string][]partyline.PendingEvent),
		leases:     make(map[string]testLease),
		leaseCalls: make(map[string]int),
	}
}

// add records an event with each id for url, at the clock's time.
func (l *testLog) add(url string, ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		e := partyline.NewWebhookEvent(partyline.EventUserOnline, l.clock.Now())
		e.ID, e.Username = id, "alice"
		l.addLocked(url, e)
	}
}

func (l *testLog) addLocked(url string, e partyline.WebhookEvent) {
	body, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	l.lastPos++
	l.pending[url] = append(l.pending[url], partyline.PendingEvent{Pos: l.lastPos, Recorded: l.clock.Now(), Body: body})
}

// count returns how many events wait for url.
func (l *testLog) count(url string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending[url])
}

func (l *testLog) setFailing(failing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = failing
}

// failLocked returns the error of an unreachable store while failing.
func (l *testLog) failLocked() error {
	if !l.failing {
		return nil
	}
	l.failed++
	return fmt.Errorf("testlog: connection refused: %w", partyline.ErrUnavailable)
}

func (l *testLog) SetWebhookRoutes(routes []partyline.WebhookRoute) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.routes = routes
}

func (l *testLog) RecordEvent(_ context.Context, e partyline.WebhookEvent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failLocked(); err != nil {
		return err
	}
	for _, r := range l.routes {
		if r.Wants(e.Type) {
			l.addLocked(r.URL, e)
		}
	}
	return nil
}

func (l *testLog) PresenceJoined(context.Context, string, string, time.Time) error { return nil }
func (l *testLog) PresenceLeft(context.Context, string, string, time.Time) error   { return nil }
func (l *testLog) SweepPresence(context.Context, time.Time) error                  { return nil }
func (l *testLog) PresentUsers(context.Context) ([]partyline.RoomUser, error)      { return nil, nil }
func (l *testLog) DueLeaves(context.Context, time.Time) ([]partyline.RoomUser, error) {
	return nil, nil
}

func (l *testLog) PendingEvents(_ context.Context, url string, limit int) ([]partyline.PendingEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failLocked(); err != nil {
		return nil, err
	}
	p := l.pending[url]
	return slices.Clone(p[:min(len(p), limit)]), nil
}

func (l *testLog) AckEvents(_ context.Context, url string, pos []int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failLocked(); err != nil {
		return err
	}
	l.pending[url] = slices.DeleteFunc(l.pending[url], func(e partyline.PendingEvent) bool {
		return slices.Contains(pos, e.Pos)
	})
	l.acks++
	return nil
}

func (l *testLog) CountPending(_ context.Context, url string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failLocked(); err != nil {
		return 0, err
	}
	return len(l.pending[url]), nil
}

func (l *testLog) LeaseSender(_ context.Context, url, owner string, now, until time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failLocked(); err != nil {
		return false, err
	}
	l.leaseCalls[owner]++
	if cur, ok := l.leases[url]; ok && cur.owner != owner && now.Before(cur.until) {
		return false, nil
	}
	l.leases[url] = testLease{owner, until}
	return true, nil
}

// holder returns the owner of url's lease.
func (l *testLog) holder(url string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leases[url].owner
}

// testClock is a clock that moves only when told.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1767225600, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testObserver counts what a Sender reports, summed over URLs but pending.
type testObserver struct {
	mu      sync.Mutex
	sent    int
	retried int
	gaveUp  int
	pending map[string]int
}

func (o *testObserver) Sent(_ string, n int)   { o.mu.Lock(); o.sent += n; o.mu.Unlock() }
func (o *testObserver) Retried(string)         { o.mu.Lock(); o.retried++; o.mu.Unlock() }
func (o *testObserver) GaveUp(_ string, n int) { o.mu.Lock(); o.gaveUp += n; o.mu.Unlock() }
func (o *testObserver) Pending(url string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending == nil {
		o.pending = make(map[string]int)
	}
	o.pending[url] = n
}

func (o *testObserver) counts() (sent, retried, gaveUp int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent, o.retried, o.gaveUp
}

// request is one request a receiver got.
type request struct {
	at     time.Time
	header http.Header
	body   []byte
	ids    []string
}

// receiver is a webhook endpoint over loopback that records every request
// and answers what answer says (204 when answer is nil).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex // guards the following
	reqs   []request
	answer func(i int, w http.ResponseWriter, r *http.Request) // i counts requests from 0
}

func newReceiver(t *testing.T, answer func(i int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var batch struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	json.Unmarshal(body, &batch)
	req := request{at: time.Now(), header: r.Header.Clone(), body: body}
	for _, e := range batch.Events {
		req.ids = append(req.ids, e.ID)
	}
	rc.mu.Lock()
	i := len(rc.reqs)
	rc.reqs = append(rc.reqs, req)
	answer := rc.answer
	rc.mu.Unlock()
	if answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	answer(i, w, r)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func (rc *receiver) setAnswer(answer func(i int, w http.ResponseWriter, r *http.Request)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = answer
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// testTiming shortens a Sender's intervals so tests take milliseconds.
var testTiming = timing{
	backoffMin:   20 * time.Millisecond,
	backoffMax:   200 * time.Millisecond,
	poll:         20 * time.Millisecond,
	lease:        15 * time.Second, // expires only when a test moves the clock
	renew:        20 * time.Millisecond,
	pendingEvery: 20 * time.Millisecond,
}

var testSecret = []byte("whsec_test")

// startSender runs a Sender for opts, with the test's timing, a clock and
// an observer when opts has none, and logs to t. It is closed when the
// test ends, and Run must then return promptly.
func startSender(t *testing.T, opts Options) (*Sender, *testObserver) {
	t.Helper()
	obs, _ := opts.Observer.(*testObserver)
	if opts.Observer == nil {
		obs = &testObserver{}
		opts.Observer = obs
	}
	if opts.Secret == nil {
		opts.Secret = testSecret
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.timing = testTiming
	ran := make(chan error, 1)
	go func() { ran <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-ran:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after Close")
		}
	})
	return s, obs
}

// tWriter writes logs to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// waitFor waits, up to a bound generous for a loaded machine, for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkGoroutines fails the test if, once its other cleanups have run,
// goroutines remain beyond those running when it was called.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// ids returns "<prefix>0" … "<prefix>n-1".
func ids(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return s
}
