// Package deferred lets a partyline server start while the PostgreSQL or
// Redis it needs cannot be reached (SPEC §13, "Starting before the
// backends").
//
// A Store, Broker or Presence of this package stands in for the real one
// until that is open: its calls fail with errors wrapping
// partyline.ErrUnavailable, and it is a partyline.Connector, so the Server
// refuses WebSocket clients meanwhile and /ready names it. Open tries to
// open the real backends at once and, if their service cannot be reached,
// keeps trying in the background with backoff; when an attempt succeeds it
// hands them to the stand-ins (Set), and from then on every call goes
// straight to them. The Broker starts the real broker with the handler it
// was given and tells the handler to resynchronise; the Presence passes on
// the expiry and restore callbacks likewise.
//
// A stand-in's Close closes the real backend set in it. A program that
// closes the real backends otherwise, as cmd/partyline does through what
// its open function returns to Open (Retrier.Close), need not call it.
package deferred

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline"
)

// Defaults for the zero values of Options.
const (
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultAttemptTimeout = 15 * time.Second
)

// Options configures Open. The zero value is the default for every field.
type Options struct {
	// Name names the backend in logs, e.g. "store". Zero value: "backend".
	Name string
	// Logger gets one line each time the backend's state changes: when it
	// cannot be reached, when it fails otherwise, when it is open. Zero
	// value: slog.Default().
	Logger *slog.Logger
	// MinBackoff is the wait before the first retry; each later wait is
	// twice the one before, up to MaxBackoff. Zero values: 0.5 s and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt to open. Zero value: 15 s.
	AttemptTimeout time.Duration
}

// withDefaults returns o with zero values replaced by defaults.
func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "backend"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	return o
}

// StandIn is a Store, Broker or Presence of this package, waiting to be Set.
type StandIn interface {
	// wait records why the real backend is not there yet.
	wait(cause error)
}

// Retrier opens a backend in the background; see Open.
type Retrier struct {
	opts     Options
	open     func(context.Context) (io.Closer, error)
	standIns []StandIn
	cancel   context.CancelFunc
	done     chan struct{} // closed when no attempt runs or will

	closer io.Closer // what open returned; owned by the attempts until done
}

// Open calls open once, at once. When that fails with an error wrapping
// partyline.ErrUnavailable — the service cannot be reached — the stand-ins
// are told why, and the returned Retrier calls open again in the
// background, with backoff, until it succeeds, ctx ends or Close is
// called. Any other error, such as a bad URL, is returned: waiting will not
// mend it.
//
// open hands what it opened to the stand-ins (Set) and returns what must be
// closed beyond them, or nil; Retrier.Close closes that.
func Open(ctx context.Context, opts Options, open func(context.Context) (io.Closer, error), standIns ...StandIn) (*Retrier, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Retrier{opts: opts.withDefaults(), open: open, standIns: standIns, cancel: cancel, done: make(chan struct{})}
	err := r.attempt(ctx)
	switch {
	case err == nil:
		close(r.done)
		return r, nil
	case !errors.Is(err, partyline.ErrUnavailable):
		cancel()
		return nil, err
	}
	r.opts.Logger.Warn(r.opts.Name+" unreachable; connecting in the background", "err", err)
	r.report(err)
	go r.retry(ctx, err)
	return r, nil
}

// retry makes attempts until one succeeds or ctx ends. It logs each change
// of state — unreachable, failing otherwise, open — not each attempt.
func (r *Retrier) retry(ctx context.Context, last error) {
	defer close(r.done)
	start := time.Now()
	for wait := r.opts.MinBackoff; sleep(ctx, wait); wait = min(2*wait, r.opts.MaxBackoff) {
		err := r.attempt(ctx)
		if err == nil {
			r.opts.Logger.Info(r.opts.Name+" connected", "after", time.Since(start).Round(time.Millisecond))
			return
		}
		r.report(err)
		r.logChange(last, err)
		last = err
	}
}

// logChange logs err when it puts the backend in another state than last:
// unreachable (partyline.ErrUnavailable) or failing otherwise.
func (r *Retrier) logChange(last, err error) {
	unreachable := errors.Is(err, partyline.ErrUnavailable)
	switch {
	case unreachable == errors.Is(last, partyline.ErrUnavailable):
	case unreachable:
		r.opts.Logger.Warn(r.opts.Name+" unreachable; connecting in the background", "err", err)
	default:
		r.opts.Logger.Error(r.opts.Name+" failed to open; retrying in the background", "err", err)
	}
}

// attempt calls open once, bounded by AttemptTimeout.
func (r *Retrier) attempt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.AttemptTimeout)
	defer cancel()
	closer, err := r.open(ctx)
	if err != nil {
		return err
	}
	r.closer = closer
	return nil
}

// report tells the stand-ins why the backend is not there.
func (r *Retrier) report(cause error) {
	for _, s := range r.standIns {
		s.wait(cause)
	}
}

// Close stops retrying, waits for an attempt in progress, and closes what
// open returned, if an attempt succeeded. It does not close the stand-ins.
func (r *Retrier) Close() error {
	r.cancel()
	<-r.done
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// sleep waits for d and reports true, or false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// slot holds the real backend once it is set, and until then why it is
// not: the error of the latest attempt to open it.
type slot[T any] struct {
	real  atomic.Pointer[T]
	cause atomic.Pointer[error]
}

// errNotOpen is the cause of a slot that was never told one.
var errNotOpen = errors.New("not open yet")

// get returns the real backend, or an error wrapping
// partyline.ErrUnavailable while there is none.
func (s *slot[T]) get() (T, error) {
	if p := s.real.Load(); p != nil {
		return *p, nil
	}
	var zero T
	cause := errNotOpen
	if p := s.cause.Load(); p != nil {
		cause = *p
	}
	if errors.Is(cause, partyline.ErrUnavailable) {
		return zero, fmt.Errorf("deferred: not connected yet: %w", cause)
	}
	return zero, fmt.Errorf("deferred: not connected yet: %w: %w", partyline.ErrUnavailable, cause)
}

// put makes real the backend every call goes to.
func (s *slot[T]) put(real T) { s.real.Store(&real) }

// wait implements StandIn.
func (s *slot[T]) wait(cause error) { s.cause.Store(&cause) }

// Connected implements partyline.Connector: nil once the real backend is
// set, else an error wrapping partyline.ErrUnavailable and the latest
// reason it could not be opened.
func (s *slot[T]) Connected() error {
	_, err := s.get()
	return err
}

// closeIfCloser closes v when it is an io.Closer.
func closeIfCloser(v any) error {
	if c, ok := v.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
