package partyline

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// DefaultLeaveDelay is how long user_left, user_offline and room_vacated
// wait for the user (or a member) to come back (--webhook-leave-delay).
const DefaultLeaveDelay = 3 * time.Second

// WebhookOptions configures the webhook events a Server records. Sending
// them is the webhook package's job: it reads what the Store recorded.
type WebhookOptions struct {
	// Routes lists the URLs and the event types each gets. With none, no
	// event is recorded and the Store need not be an EventLog.
	Routes []WebhookRoute
	// LeaveDelay: see DefaultLeaveDelay, which a zero value means.
	LeaveDelay time.Duration
	// Recorded, if set, is called after the Server recorded events, so the
	// sender can send them at once. It must not block.
	Recorded func()
}

// reconcileEvery is how often the recorder compares who the event log
// thinks is online with the Presence, so that users of a process that died
// with the whole cluster, or whose leave was never recorded, go offline.
const reconcileEvery = time.Minute

// maxUnrecorded bounds the presence changes kept for a retry while the
// store cannot take them.
const maxUnrecorded = 100_000

// recorder records the webhook events the hub decides: presence changes
// and undelivered direct messages. Message events are recorded by the
// Store in the commit of each message. A change the store cannot take is
// retried in order, behind any earlier one still waiting.
type recorder struct {
	hub      *hub
	log      EventLog
	opts     WebhookOptions
	sweep    time.Duration // how often due leaves are decided
	messages bool          // a route wants message events

	mu       sync.Mutex // guards the following
	retrying []func(context.Context) error
	draining bool
}

// newRecorder returns the recorder for opts, or nil when no route is set.
func newRecorder(h *hub, store Store, opts WebhookOptions) (*recorder, error) {
	if len(opts.Routes) == 0 {
		return nil, nil
	}
	log, ok := store.(EventLog)
	if !ok {
		return nil, errNoEventLog
	}
	if opts.LeaveDelay <= 0 {
		opts.LeaveDelay = DefaultLeaveDelay
	}
	log.SetWebhookRoutes(opts.Routes)
	r := &recorder{hub: h, log: log, opts: opts, sweep: min(max(opts.LeaveDelay/4, 100*time.Millisecond), time.Second)}
	r.messages = slices.ContainsFunc(opts.Routes, func(route WebhookRoute) bool { return route.Wants(EventMessage) })
	return r, nil
}

var errNoEventLog = errors.New("webhooks need a store that records events (memory, sqlite or postgres)")

// joined records that user came online in room ("" for the server), as
// Presence.Add decided cluster-wide.
func (r *recorder) joined(room, user string) {
	if r == nil {
		return
	}
	now := r.hub.srv.opts.Now()
	r.record(func(ctx context.Context) error { return r.log.PresenceJoined(ctx, room, user, now) })
}

// left records that user's last connection left room, decided once the
// leave delay has passed.
func (r *recorder) left(room, user string) {
	if r == nil {
		return
	}
	due := r.hub.srv.opts.Now().Add(r.opts.LeaveDelay)
	r.record(func(ctx context.Context) error { return r.log.PresenceLeft(ctx, room, user, due) })
}

// committed tells the sender that the Store recorded a message event with
// the message it committed, if a route wants those.
func (r *recorder) committed() {
	if r != nil && r.messages {
		r.recorded()
	}
}

// undelivered records a direct message whose recipient was offline.
func (r *recorder) undelivered(d DirectMessage) {
	if r == nil {
		return
	}
	e := NewWebhookEvent(EventDirectUndelivered, r.hub.srv.opts.Now())
	e.From, e.To, e.Content, e.Data = d.From, d.To, d.Content, d.Data
	r.record(func(ctx context.Context) error { return r.log.RecordEvent(ctx, e) })
}

// record runs one change now, or queues it behind those waiting for the
// store to come back.
func (r *recorder) record(change func(context.Context) error) {
	r.mu.Lock()
	waiting := r.draining
	r.mu.Unlock()
	if !waiting {
		ctx, cancel := r.hub.backendContext()
		err := change(ctx)
		cancel()
		if err == nil {
			r.recorded()
			return
		}
		r.hub.srv.log.Warn("recording a webhook event failed; retrying", "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.retrying) >= maxUnrecorded {
		r.hub.srv.log.Error("dropping a webhook event: too many wait for the store")
		return
	}
	r.retrying = append(r.retrying, change)
	if !r.draining && r.hub.startTask() {
		r.draining = true
		go r.drain()
	}
}

// drain retries the queued changes in order until none is left.
func (r *recorder) drain() {
	defer r.hub.tasks.Done()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		if !r.retry() {
			return
		}
		select {
		case <-r.hub.quit:
			r.mu.Lock()
			r.draining = false
			r.mu.Unlock()
			return
		case <-time.After(wait):
		}
	}
}

// retry runs the queued changes until one fails; it reports whether any is
// left.
func (r *recorder) retry() (left bool) {
	for {
		r.mu.Lock()
		if len(r.retrying) == 0 {
			r.draining = false
			r.mu.Unlock()
			return false
		}
		change := r.retrying[0]
		r.mu.Unlock()
		ctx, cancel := r.hub.backendContext()
		err := change(ctx)
		cancel()
		if err != nil {
			return true
		}
		r.mu.Lock()
		r.retrying = r.retrying[1:]
		r.mu.Unlock()
		r.recorded()
	}
}

func (r *recorder) recorded() {
	if r.opts.Recorded != nil {
		r.opts.Recorded()
	}
}

// run decides due leaves and reconciles with the Presence until the hub
// stops. Every node runs it; the EventLog decides each leave once.
func (r *recorder) run() {
	defer r.hub.tasks.Done()
	sweep := time.NewTicker(r.sweep)
	defer sweep.Stop()
	reconcile := time.NewTimer(r.hub.srv.opts.PongWait) // clients of a restart are back by then
	defer reconcile.Stop()
	for {
		select {
		case <-r.hub.quit:
			return
		case <-sweep.C:
			r.sweepDue()
		case <-reconcile.C:
			r.reconcile()
			reconcile.Reset(reconcileEvery)
		}
	}
}

// sweepDue decides the leaves that are due. A user the Presence has back
// in the room keeps it: a rejoin on another node may have been recorded
// before the leave it follows (each node records what the Presence told it,
// in its own time), and the Presence is what says who is there.
func (r *recorder) sweepDue() {
	ctx, cancel := r.hub.backendContext()
	defer cancel()
	now := r.hub.srv.opts.Now()
	due, err := r.log.DueLeaves(ctx, now)
	if err != nil || len(due) == 0 {
		return
	}
	for _, ru := range due {
		back, err := presenceCall(r.hub, ctx, "contains", func(ctx context.Context, p Presence) (bool, error) {
			return p.Contains(ctx, ru.Room, ru.User)
		})
		if err != nil {
			return // decide nothing the Presence cannot confirm
		}
		if back {
			r.log.PresenceJoined(ctx, ru.Room, ru.User, now) // calls the leave off, silently
		}
	}
	if r.log.SweepPresence(ctx, now) == nil {
		r.recorded()
	}
}

// reconcile marks as leaving every user the event log has online but the
// Presence does not: a user of a node that died with the whole cluster, or
// whose leave could not be recorded.
func (r *recorder) reconcile() {
	ctx, cancel := r.hub.backendContext()
	present, err := r.log.PresentUsers(ctx)
	cancel()
	if err != nil {
		r.hub.srv.log.Warn("webhook presence reconcile failed", "err", err)
		return
	}
	for _, ru := range present {
		online, err := presenceCall(r.hub, r.hub.inFlight, "contains", func(ctx context.Context, p Presence) (bool, error) {
			return p.Contains(ctx, ru.Room, ru.User)
		})
		if err == nil && !online {
			r.left(ru.Room, ru.User)
		}
	}
}
