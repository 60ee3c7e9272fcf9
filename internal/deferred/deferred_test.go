package deferred_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/brokertest"
	"github.com/partyline/partyline/internal/deferred"
)

// waitTime bounds every wait of these tests.
const waitTime = 10 * time.Second

// logRecorder is a slog.Handler that keeps each record's level and message.
type logRecorder struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, rec.Level.String()+" "+rec.Message)
	return nil
}

// got returns the lines logged so far.
func (r *logRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// unreachable is an error as a backend's Open returns when its service
// cannot be reached.
func unreachable(attempt int) error {
	return fmt.Errorf("test: open: %w: connection refused (attempt %d)", partyline.ErrUnavailable, attempt)
}

// closer counts its Close calls.
type closer struct{ closed atomic.Int32 }

func (c *closer) Close() error { c.closed.Add(1); return nil }

// script is an open function that answers with the errors of its list in
// turn, then succeeds, handing a memory store to the stand-in; it records
// when each call came.
type script struct {
	errs   []error
	store  *deferred.Store
	closer closer

	mu    sync.Mutex // guards calls
	calls []time.Time
}

func (s *script) open(ctx context.Context) (io.Closer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if n := len(s.calls); n <= len(s.errs) {
		return nil, s.errs[n-1]
	}
	s.store.Set(memoryStore{partyline.NewMemoryStore(10)})
	return &s.closer, nil
}

// callTimes returns when open was called.
func (s *script) callTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// waitConnected waits until c reports it has connected.
func waitConnected(t *testing.T, c partyline.Connector) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for c.Connected() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not connected after %s: %v", waitTime, c.Connected())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOpenAtOnce: when the first attempt succeeds, Open returns with the
// stand-in set and logs nothing; Close closes what open returned.
func TestOpenAtOnce(t *testing.T) {
	logs := &logRecorder{}
	s := &script{store: deferred.NewStore()}
	r, err := deferred.Open(t.Context(), deferred.Options{Name: "store", Logger: slog.New(logs)}, s.open, s.store)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.store.Connected(); err != nil {
		t.Fatalf("Connected after Open succeeded at once: %v", err)
	}
	if _, err := s.store.Append(t.Context(), partyline.Message{Room: "lobby", Content: "hi"}); err != nil {
		t.Fatalf("Append to the set store: %v", err)
	}
	if err := r.Close(); err != nil || s.closer.closed.Load() != 1 {
		t.Fatalf("Close = %v, and closed what open returned %d times; want nil, once", err, s.closer.closed.Load())
	}
	if got := logs.got(); len(got) != 0 {
		t.Fatalf("logged %q, want nothing", got)
	}
}

// TestOpenRefusesOtherErrors: an error that does not wrap ErrUnavailable,
// such as a bad URL, is returned by Open and never retried.
func TestOpenRefusesOtherErrors(t *testing.T) {
	bad := errors.New("test: open: bad url")
	s := &script{errs: []error{bad, bad}, store: deferred.NewStore()}
	r, err := deferred.Open(t.Context(), deferred.Options{MinBackoff: time.Millisecond}, s.open, s.store)
	if !errors.Is(err, bad) || r != nil {
		t.Fatalf("Open with a bad URL = %v, %v; want nil and the error", r, err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(s.callTimes()); n != 1 {
		t.Fatalf("open was called %d times, want once", n)
	}
}

// TestOpenRetriesUntilReachable: while open fails, the stand-in answers
// unavailable with the latest cause; attempts back off, doubling up to the
// maximum; the log has one line per change of state, not per attempt; the
// stand-in is set when an attempt succeeds.
func TestOpenRetriesUntilReachable(t *testing.T) {
	logs := &logRecorder{}
	other := errors.New("test: open: schema is newer than this partyline knows")
	s := &script{
		errs:  []error{unreachable(1), unreachable(2), unreachable(3), other, other, unreachable(6)},
		store: deferred.NewStore(),
	}
	const minBackoff, maxBackoff = 20 * time.Millisecond, 60 * time.Millisecond
	opts := deferred.Options{Name: "store", Logger: slog.New(logs), MinBackoff: minBackoff, MaxBackoff: maxBackoff}
	r, err := deferred.Open(t.Context(), opts, s.open, s.store)
	if err != nil {
		t.Fatalf("Open with the service unreachable: %v, want a Retrier", err)
	}
	defer r.Close()
	if err := s.store.Connected(); !errors.Is(err, partyline.ErrUnavailable) {
		t.Fatalf("Connected before any attempt succeeded = %v, want an error wrapping ErrUnavailable", err)
	}
	if _, err := s.store.LastSeq(t.Context(), "lobby"); !errors.Is(err, partyline.ErrUnavailable) {
		t.Fatalf("LastSeq before the store is open = %v, want an error wrapping ErrUnavailable", err)
	}
	waitConnected(t, s.store)
	if _, err := s.store.Append(t.Context(), partyline.Message{Room: "lobby", Content: "hi"}); err != nil {
		t.Fatalf("Append once open: %v", err)
	}

	calls := s.callTimes()
	if len(calls) != len(s.errs)+1 {
		t.Fatalf("open was called %d times, want %d", len(calls), len(s.errs)+1)
	}
	wait := minBackoff
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < wait {
			t.Errorf("attempt %d came %s after the one before, want at least %s", i+1, gap, wait)
		}
		wait = min(2*wait, maxBackoff)
	}
	want := []string{
		"WARN store unreachable; connecting in the background",
		"ERROR store failed to open; retrying in the background",
		"WARN store unreachable; connecting in the background",
		"INFO store connected",
	}
	if got := logs.got(); !slices.Equal(got, want) {
		t.Fatalf("logs for %d attempts:\n%q\nwant one line per change of state:\n%q", len(calls), got, want)
	}
}

// TestConnectedCarriesTheLatestCause: until it is open, the stand-in's
// error is the latest attempt's.
func TestConnectedCarriesTheLatestCause(t *testing.T) {
	other := errors.New("test: open: password authentication failed")
	errs := []error{unreachable(1), other}
	for range 1000 {
		errs = append(errs, other)
	}
	s := &script{errs: errs, store: deferred.NewStore()}
	r, err := deferred.Open(t.Context(), deferred.Options{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Logger: slog.New(&logRecorder{})}, s.open, s.store)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	deadline := time.Now().Add(waitTime)
	for err := s.store.Connected(); !errors.Is(err, other); err = s.store.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("Connected = %v, want the latest attempt's error %v", err, other)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.store.Ping(t.Context()); !errors.Is(err, partyline.ErrUnavailable) || !errors.Is(err, other) {
		t.Fatalf("Ping = %v, want an error wrapping ErrUnavailable and the latest cause", err)
	}
}

// TestCloseStopsRetrying: Close ends the attempts at once, and the stand-in
// stays unset.
func TestCloseStopsRetrying(t *testing.T) {
	errs := make([]error, 1000)
	for i := range errs {
		errs[i] = unreachable(i + 1)
	}
	s := &script{errs: errs, store: deferred.NewStore()}
	r, err := deferred.Open(t.Context(), deferred.Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Logger: slog.New(&logRecorder{})}, s.open, s.store)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	after := len(s.callTimes())
	time.Sleep(20 * time.Millisecond)
	if n := len(s.callTimes()); n != after {
		t.Fatalf("open was called %d more times after Close, want none", n-after)
	}
	if err := s.store.Connected(); err == nil {
		t.Fatal("the stand-in is connected, though no attempt succeeded")
	}
}

// TestBrokerStartedWhenSet: a Broker started before the real one is set
// refuses subscriptions; Set starts the real broker with the handler and
// has it resynchronise; then events flow.
func TestBrokerStartedWhenSet(t *testing.T) {
	b := deferred.NewBroker()
	rec := brokertest.NewRecorder()
	if err := b.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	if err := b.Subscribe(t.Context(), "room:lobby"); !errors.Is(err, partyline.ErrUnavailable) {
		t.Fatalf("Subscribe before Set = %v, want an error wrapping ErrUnavailable", err)
	}
	if err := b.Set(memoryBroker{partyline.NewMemoryBroker()}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if n := rec.Reconnects(); n != 1 {
		t.Fatalf("HandleReconnect was called %d times by Set, want once", n)
	}
	if err := b.Subscribe(t.Context(), "room:lobby"); err != nil {
		t.Fatalf("Subscribe after Set: %v", err)
	}
	if n, err := b.PublishCount(t.Context(), "room:lobby", []byte("hi")); n != 1 || err != nil {
		t.Fatalf("PublishCount after Set = %d, %v; want 1, nil", n, err)
	}
	rec.Expect(t, "room:lobby", []byte("hi"))
}

// closedBroker is a memory broker that records being closed.
type closedBroker struct {
	memoryBroker
	closed atomic.Bool
}

func (b *closedBroker) Close() error { b.closed.Store(true); return b.memoryBroker.Close() }

// TestSetAfterClose: a backend set after its stand-in was closed is closed
// at once.
func TestSetAfterClose(t *testing.T) {
	b := deferred.NewBroker()
	b.Close()
	real := &closedBroker{memoryBroker: memoryBroker{partyline.NewMemoryBroker()}}
	b.Set(real)
	if !real.closed.Load() {
		t.Fatal("a broker set after Close was left open")
	}
	pending := &closedBroker{memoryBroker: memoryBroker{partyline.NewMemoryBroker()}}
	b = deferred.NewBroker()
	b.Set(pending) // not started yet
	b.Close()
	if !pending.closed.Load() {
		t.Fatal("a broker set before Start was left open by Close")
	}
}

// TestPresenceCallbacksPassedOnAtSet: StartExpiry and StartRestore before
// Set reach the real presence when it is set, and calls go to it.
func TestPresenceCallbacksPassedOnAtSet(t *testing.T) {
	p := deferred.NewPresence()
	var expired, restored atomic.Int32
	p.StartExpiry(func(room, user string) { expired.Add(1) })
	p.StartRestore(func(room, user string) { restored.Add(1) })
	if _, err := p.Add(t.Context(), "lobby", "ann"); !errors.Is(err, partyline.ErrUnavailable) {
		t.Fatalf("Add before Set = %v, want an error wrapping ErrUnavailable", err)
	}
	real := &memoryPresence{MemoryPresence: partyline.NewMemoryPresence()}
	p.Set(real)
	if real.expired == nil || real.restored == nil {
		t.Fatal("Set did not pass on the callbacks of StartExpiry and StartRestore")
	}
	real.expired("lobby", "ann")
	real.restored("lobby", "ann")
	if expired.Load() != 1 || restored.Load() != 1 {
		t.Fatalf("callbacks called %d and %d times, want once each", expired.Load(), restored.Load())
	}
	if first, err := p.Add(t.Context(), "lobby", "ann"); !first || err != nil {
		t.Fatalf("Add after Set = %v, %v; want true, nil", first, err)
	}
	if rooms, err := p.Rooms(t.Context()); !slices.Equal(rooms, []string{"lobby"}) || err != nil {
		t.Fatalf("Rooms after Set = %q, %v; want [lobby]", rooms, err)
	}
}

// TestStoreRoutesPassedOnAtSet: webhook routes set before the real store
// is there reach it at Set, before anything can be appended, so the first
// message records its event.
func TestStoreRoutesPassedOnAtSet(t *testing.T) {
	s := deferred.NewStore()
	const url = "https://example.test/hook"
	s.SetWebhookRoutes([]partyline.WebhookRoute{{URL: url}})
	if _, err := s.Append(t.Context(), partyline.Message{Room: "lobby", Content: "early"}); !errors.Is(err, partyline.ErrUnavailable) {
		t.Fatalf("Append before Set = %v, want an error wrapping ErrUnavailable", err)
	}
	s.Set(memoryStore{partyline.NewMemoryStore(10)})
	if _, err := s.Append(t.Context(), partyline.Message{Room: "lobby", Content: "hi"}); err != nil {
		t.Fatalf("Append after Set: %v", err)
	}
	if n, err := s.CountPending(t.Context(), url); n != 1 || err != nil {
		t.Fatalf("CountPending(%s) after one message = %d, %v; want 1, nil: the routes did not reach the store", url, n, err)
	}
}
