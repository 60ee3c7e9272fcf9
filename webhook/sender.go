package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/partyline/partyline"
)

// MaxBatch is the most events one request carries.
const MaxBatch = 100

// maxResponseBody is how much of a receiver's answer is read (and
// discarded) so that its connection can be reused.
const maxResponseBody = 64 << 10

// Observer is told what a Sender does, for metrics. Its methods are called
// from the Sender's goroutines, one per URL, so they must be safe for
// concurrent use; they should be quick, as they run between deliveries.
type Observer interface {
	// Sent counts n events of url delivered: their request got a 2xx.
	Sent(url string, n int)
	// Retried counts one failed attempt to deliver a batch to url: an
	// answer other than 2xx, a network error or a timeout. The batch is
	// tried again.
	Retried(url string)
	// GaveUp counts n events of url dropped because they were still
	// undelivered Options.RetryFor after they were recorded.
	GaveUp(url string, n int)
	// Pending reports how many events wait for url in the log, every few
	// seconds. In a cluster every node reports the same, shared, count.
	Pending(url string, n int)
}

// Options configure a Sender. The zero value of each optional field is
// its default.
type Options struct {
	// Log is the outbox events are read from and acknowledged in. Required.
	Log partyline.EventLog
	// URLs are the http or https URLs events are sent to; at least one,
	// each once. Which events each gets was decided when they were
	// recorded (partyline.EventLog.SetWebhookRoutes).
	URLs []string
	// Secret signs every request (Sign). Required.
	Secret []byte
	// Timeout bounds one delivery attempt, answer included. Zero means 5 s.
	Timeout time.Duration
	// RetryFor is how long after it was recorded an event is still retried;
	// after a failed attempt, events older than this are given up. Zero
	// means 24 h.
	RetryFor time.Duration
	// Owner names this node in the leases that make one node of a cluster
	// the sender of each URL, and must be the node's alone: two Senders
	// of one name would both send every event. Zero means a name of its
	// own, random. A stable one (the node's id) lets a restarted node take
	// its leases back at once instead of waiting for them to expire; a
	// Sender that stops releases its leases either way.
	Owner string
	// Client sends the requests; nil means a client of the Sender's own.
	// The Sender uses a copy that does not follow redirects.
	Client *http.Client
	// Logger receives the Sender's logs; nil discards them.
	Logger *slog.Logger
	// Observer is told what the Sender does, for metrics; nil means no one.
	Observer Observer
	// Now is the clock used for leases, signatures and giving up; nil
	// means time.Now.
	Now func() time.Time
}

// timing holds the Sender's fixed intervals; tests shorten them.
type timing struct {
	backoffMin, backoffMax time.Duration // a failed attempt waits from about min, doubling, to about max
	poll                   time.Duration // idle, look for events recorded elsewhere this often
	lease, renew           time.Duration // a lease lasts lease and is renewed (or sought) every renew
	pendingEvery           time.Duration // how often Observer.Pending is refreshed
}

func defaultTiming(timeout time.Duration) timing {
	return timing{
		backoffMin: time.Second,
		backoffMax: time.Minute,
		poll:       500 * time.Millisecond,
		// A lease outlives a renewal skipped by an attempt that takes the
		// whole timeout, so a slow receiver does not hand the URL over.
		lease:        max(15*time.Second, timeout+10*time.Second),
		renew:        5 * time.Second,
		pendingEvery: 5 * time.Second,
	}
}

// backoff returns how long to wait after the n-th failure in a row (n ≥ 1):
// backoffMin doubled n-1 times, at most backoffMax, less a random part of
// up to a quarter so that senders that failed together do not retry
// together.
func (t timing) backoff(n int) time.Duration {
	d := t.backoffMax
	if b := t.backoffMin << min(max(n-1, 0), 20); b < d {
		d = b
	}
	return d - rand.N(d/4+1)
}

// A Sender delivers the events of a partyline.EventLog to their webhook
// URLs (docs/protocol.md §11.1), at least once and in the order recorded.
//
// Run starts one goroutine per URL. Each takes the URL's lease in the log
// and, while it holds it, reads up to MaxBatch pending events, POSTs them as
// {"events":[…]} signed with Sign, and acknowledges them in the log when
// the answer is a 2xx; otherwise it retries the same batch with exponential
// backoff and gives up the events older than Options.RetryFor. Without the
// lease it only tries again every few seconds, so in a cluster sharing the
// log each URL's events are sent by one node. A URL's goroutine holds at
// most one batch, and a failing URL delays only its own events.
//
// Notify wakes the goroutines when events were recorded; without it they
// look for events every half second, which also picks up those recorded by
// other nodes. The methods of a Sender are safe for concurrent use.
type Sender struct {
	log      partyline.EventLog
	secret   []byte
	timeout  time.Duration
	retryFor time.Duration
	owner    string
	client   *http.Client
	ownIdle  bool // the client's idle connections are the Sender's to close
	observer Observer
	now      func() time.Time
	timing   timing
	loops    []*loop

	mu      sync.Mutex // guards the following
	running bool
	closed  bool
	closing chan struct{} // closed by Close
	stopped chan struct{} // closed when Run returns; nil until Run starts
}

// New returns a Sender for opts, or an error naming the first bad field.
func New(opts Options) (*Sender, error) {
	switch {
	case opts.Log == nil:
		return nil, errors.New("webhook: Options.Log is required")
	case len(opts.URLs) == 0:
		return nil, errors.New("webhook: Options.URLs is empty")
	case len(opts.Secret) == 0:
		return nil, errors.New("webhook: Options.Secret is required")
	case opts.Timeout < 0:
		return nil, fmt.Errorf("webhook: Options.Timeout %v is negative", opts.Timeout)
	case opts.RetryFor < 0:
		return nil, fmt.Errorf("webhook: Options.RetryFor %v is negative", opts.RetryFor)
	}
	for i, raw := range opts.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook: Options.URLs[%d] %q is not an http or https URL", i, Redact(raw))
		}
		if slices.Contains(opts.URLs[:i], raw) {
			return nil, fmt.Errorf("webhook: Options.URLs[%d] %q is listed twice", i, Redact(raw))
		}
	}
	s := &Sender{
		log:      opts.Log,
		secret:   bytes.Clone(opts.Secret),
		timeout:  orDefault(opts.Timeout, 5*time.Second),
		retryFor: orDefault(opts.RetryFor, 24*time.Hour),
		owner:    opts.Owner,
		observer: opts.Observer,
		now:      opts.Now,
		closing:  make(chan struct{}),
	}
	if s.owner == "" {
		s.owner = randomOwner()
	}
	if s.observer == nil {
		s.observer = nopObserver{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		s.ownIdle = true
	} else {
		c := *opts.Client
		s.client = &c
	}
	s.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.timing = defaultTiming(s.timeout)
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, u := range opts.URLs {
		s.loops = append(s.loops, &loop{
			s:    s,
			url:  u,
			log:  logger.With("url", Redact(u)),
			wake: make(chan struct{}, 1),
		})
	}
	return s, nil
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// randomOwner names a Sender that was given no owner: the host and a
// random suffix, so that logs and lease tables show where it runs.
func randomOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%012x", host, rand.Uint64()>>16)
}

// Redact returns a URL without its password, query and fragment, which
// may hold credentials, for logs and metrics.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid URL"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.Redacted()
}

// Run sends events until ctx ends or Close is called, then returns nil
// once every goroutine it started has ended. It returns an error at once if
// the Sender already ran.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("webhook: Sender.Run called twice")
	}
	s.running = true
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.stopped = make(chan struct{})
	s.mu.Unlock()
	defer close(s.stopped)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	})
	for _, l := range s.loops {
		wg.Go(func() { l.run(ctx) })
	}
	wg.Wait()
	if s.ownIdle {
		s.client.CloseIdleConnections()
	}
	return nil
}

// Close stops Run and waits for it to return. Events not yet acknowledged
// stay in the log, to be sent by the next Sender. Close is idempotent.
func (s *Sender) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	stopped := s.stopped
	s.mu.Unlock()
	if stopped != nil {
		<-stopped
	}
	return nil
}

// Notify tells the Sender that events were recorded, so that it sends them
// now rather than at its next look. It never blocks: a URL busy with a
// delivery or waiting to retry one picks the news up when it is done.
func (s *Sender) Notify() {
	for _, l := range s.loops {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

type nopObserver struct{}

func (nopObserver) Sent(string, int)    {}
func (nopObserver) Retried(string)      {}
func (nopObserver) GaveUp(string, int)  {}
func (nopObserver) Pending(string, int) {}

// loop sends one URL's events. Its fields after wake belong to its
// goroutine.
type loop struct {
	s    *Sender
	url  string
	log  *slog.Logger
	wake chan struct{} // Notify's signal; holds at most one

	leased  bool
	renewAt time.Time // when the lease is due for renewal, by the real clock

	batch     []partyline.PendingEvent // the events being delivered, oldest first; nil between batches
	delivered bool                     // the receiver took batch; the log has not acknowledged it yet
	failures  int                      // failed attempts in a row
	retryAt   time.Time                // when batch may be tried again

	storeFailures int       // failed store calls in a row
	pendingAt     time.Time // when Observer.Pending is next refreshed
	body          bytes.Buffer
}

func (l *loop) run(ctx context.Context) {
	for ctx.Err() == nil {
		l.step(ctx)
	}
	l.release()
}

// releaseWait bounds the release of a lease as a Sender stops.
const releaseWait = 2 * time.Second

// release ends the URL's lease, if held, so that another node sends its
// events at once rather than once the lease has expired: it is renewed
// to expire now.
func (l *loop) release() {
	if !l.leased {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseWait)
	defer cancel()
	now := l.s.now()
	if _, err := l.s.log.LeaseSender(ctx, l.url, l.s.owner, now, now); err != nil {
		l.log.Warn("webhook lease not released: another node sends once it expires", "err", err)
	}
	l.forget()
}

// step does the next thing to do, or waits until there is something.
func (l *loop) step(ctx context.Context) {
	if !time.Now().Before(l.pendingAt) {
		l.reportPending(ctx)
	}
	if (!l.leased || !time.Now().Before(l.renewAt)) && !l.lease(ctx) {
		return
	}
	switch {
	case l.delivered:
		l.ack(ctx)
	case l.batch == nil:
		l.read(ctx)
	case time.Now().Before(l.retryAt):
		l.sleep(ctx, time.Until(l.retryAt), nil)
	default:
		l.send(ctx)
	}
}

// lease takes or renews the URL's lease and reports whether it is held;
// when it is not, it has waited before returning.
func (l *loop) lease(ctx context.Context) bool {
	now := l.s.now()
	held, err := l.s.log.LeaseSender(ctx, l.url, l.s.owner, now, now.Add(l.s.timing.lease))
	if err != nil {
		l.storeFailed(ctx, "lease", err)
		l.forget()
		l.sleep(ctx, l.s.timing.backoff(l.storeFailures), nil)
		return false
	}
	l.storeAnswered()
	if !held {
		if l.leased {
			l.log.Info("webhook lease taken by another node", "owner", l.s.owner)
		}
		l.forget()
		l.sleep(ctx, l.s.timing.renew, nil)
		return false
	}
	if !l.leased {
		l.log.Debug("webhook lease taken", "owner", l.s.owner)
	}
	l.leased = true
	l.renewAt = time.Now().Add(l.s.timing.renew)
	return true
}

// forget drops the lease and the batch: whoever holds the lease next
// reads the events from the log.
func (l *loop) forget() {
	l.leased = false
	l.batch, l.delivered, l.failures, l.retryAt = nil, false, 0, time.Time{}
}

// read fetches the next batch, or waits for events when there is none.
func (l *loop) read(ctx context.Context) {
	batch, err := l.s.log.PendingEvents(ctx, l.url, MaxBatch)
	if err != nil {
		l.storeFailed(ctx, "read", err)
		l.sleep(ctx, l.s.timing.backoff(l.storeFailures), nil)
		return
	}
	l.storeAnswered()
	if len(batch) == 0 {
		l.sleep(ctx, l.s.timing.poll, l.wake)
		return
	}
	l.batch = batch[:min(len(batch), MaxBatch)]
}

// send makes one delivery attempt of the batch.
func (l *loop) send(ctx context.Context) {
	err := l.post(ctx)
	if ctx.Err() != nil {
		return // stopping: the batch stays in the log
	}
	if err == nil {
		if l.failures > 0 {
			l.log.Info("webhook delivered again", "failed_attempts", l.failures)
		}
		l.failures, l.retryAt, l.delivered = 0, time.Time{}, true
		l.s.observer.Sent(l.url, len(l.batch))
		l.ack(ctx)
		return
	}
	l.failures++
	l.s.observer.Retried(l.url)
	if l.failures == 1 {
		l.log.Warn("webhook delivery failed; retrying", "events", len(l.batch), "err", err)
	} else {
		l.log.Debug("webhook delivery failed again", "events", len(l.batch), "attempt", l.failures, "err", err)
	}
	l.giveUp(ctx)
	if l.batch != nil {
		l.retryAt = time.Now().Add(l.s.timing.backoff(l.failures))
	}
}

// post sends the batch once and returns nil if the answer was a 2xx.
func (l *loop) post(ctx context.Context) error {
	l.body.Reset()
	l.body.WriteString(`{"events":[`)
	for i, e := range l.batch {
		if i > 0 {
			l.body.WriteByte(',')
		}
		l.body.Write(e.Body)
	}
	l.body.WriteString(`]}`)
	body := l.body.Bytes()

	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "partyline-webhook")
	req.Header.Set(SignatureHeader, Sign(l.s.secret, l.s.now(), body))
	resp, err := l.s.client.Do(req)
	if err != nil {
		// The URL, which may hold credentials, is in the logger already.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return err
	}
	io.CopyN(io.Discard, resp.Body, maxResponseBody)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// ack acknowledges a delivered batch in the log.
func (l *loop) ack(ctx context.Context) {
	if err := l.s.log.AckEvents(ctx, l.url, positions(l.batch)); err != nil {
		l.storeFailed(ctx, "ack", err)
		l.sleep(ctx, l.s.timing.backoff(l.storeFailures), nil)
		return
	}
	l.storeAnswered()
	l.batch, l.delivered = nil, false
}

// giveUp drops, after a failed attempt, the events of the batch recorded
// more than RetryFor ago. When none is left, the next batch is tried at
// once: a long outage's expired backlog drains at the pace of attempts.
func (l *loop) giveUp(ctx context.Context) {
	cutoff := l.s.now().Add(-l.s.retryFor)
	expired := func(e partyline.PendingEvent) bool { return e.Recorded.Before(cutoff) }
	var old []partyline.PendingEvent
	for _, e := range l.batch {
		if expired(e) {
			old = append(old, e)
		}
	}
	if len(old) == 0 {
		return
	}
	if err := l.s.log.AckEvents(ctx, l.url, positions(old)); err != nil {
		l.storeFailed(ctx, "give up", err) // they are given up after the next failure
		return
	}
	l.storeAnswered()
	l.s.observer.GaveUp(l.url, len(old))
	l.log.Warn("webhook events given up", "events", len(old), "retry_for", l.s.retryFor, "ids", eventIDs(old))
	if l.batch = slices.DeleteFunc(l.batch, expired); len(l.batch) == 0 {
		l.batch, l.retryAt = nil, time.Time{}
	}
}

// reportPending refreshes Observer.Pending.
func (l *loop) reportPending(ctx context.Context) {
	l.pendingAt = time.Now().Add(l.s.timing.pendingEvery)
	n, err := l.s.log.CountPending(ctx, l.url)
	if err != nil {
		l.storeFailed(ctx, "count", err)
		return
	}
	l.s.observer.Pending(l.url, n)
}

// storeFailed notes a failed store call, logging only the first of a run.
func (l *loop) storeFailed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return // stopping, not failing
	}
	if l.storeFailures == 0 {
		l.log.Warn("webhook store call failed; retrying", "op", op, "err", err)
	}
	l.storeFailures++
}

// storeAnswered notes a store call that succeeded, logging the end of a
// run of failures.
func (l *loop) storeAnswered() {
	if l.storeFailures > 0 {
		l.log.Info("webhook store answers again", "failed_calls", l.storeFailures)
		l.storeFailures = 0
	}
}

// sleep waits d, or until wake (when not nil) is signalled or ctx ends.
// While the lease is held it returns by the time the lease is due for
// renewal.
func (l *loop) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	if l.leased {
		d = min(d, time.Until(l.renewAt))
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
	}
}

func positions(events []partyline.PendingEvent) []int64 {
	pos := make([]int64, len(events))
	for i, e := range events {
		pos[i] = e.Pos
	}
	return pos
}

// eventIDs returns the ids of events, for logs.
func eventIDs(events []partyline.PendingEvent) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(e.Body, &v) != nil || v.ID == "" {
			v.ID = fmt.Sprintf("pos:%d", e.Pos)
		}
		ids[i] = v.ID
	}
	return ids
}
