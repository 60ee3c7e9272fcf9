package deferred

import (
	"context"
	"sync"
	"time"

	"github.com/partyline/partyline"
)

// SharedStore is what a Store stands in for: a partyline.Store that can be
// pinged, keeps webhook events and idempotency keys, such as
// postgres.Store.
type SharedStore interface {
	partyline.Store
	partyline.Pinger
	partyline.EventLog
	partyline.IdempotentStore
}

// Store stands in for a SharedStore until Set: before, every call fails
// with an error wrapping partyline.ErrUnavailable, but for
// SetWebhookRoutes, whose routes it passes on at Set; after, it goes to the
// real store. It is safe for concurrent use.
type Store struct {
	slot[SharedStore]

	mu     sync.Mutex // guards the following; orders Set, SetWebhookRoutes and Close
	routes []partyline.WebhookRoute
	closed bool
}

var (
	_ partyline.Store           = (*Store)(nil)
	_ partyline.Pinger          = (*Store)(nil)
	_ partyline.EventLog        = (*Store)(nil)
	_ partyline.IdempotentStore = (*Store)(nil)
	_ partyline.Connector       = (*Store)(nil)
	_ StandIn                   = (*Store)(nil)
)

// NewStore returns a Store waiting for Set.
func NewStore() *Store { return &Store{} }

// Set hands over the real store, which the Store then owns, after passing
// it the routes of SetWebhookRoutes. After Close, Set closes real instead.
func (s *Store) Set(real SharedStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		real.Close()
		return
	}
	if s.routes != nil {
		real.SetWebhookRoutes(s.routes)
	}
	s.put(real)
}

// SetWebhookRoutes implements partyline.EventLog.
func (s *Store) SetWebhookRoutes(routes []partyline.WebhookRoute) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = routes
	if real, err := s.get(); err == nil {
		real.SetWebhookRoutes(routes)
	}
}

// Append implements partyline.Store.
func (s *Store) Append(ctx context.Context, msg partyline.Message) (partyline.Message, error) {
	real, err := s.get()
	if err != nil {
		return partyline.Message{}, err
	}
	return real.Append(ctx, msg)
}

// History implements partyline.Store.
func (s *Store) History(ctx context.Context, room string, q partyline.HistoryQuery) ([]partyline.Message, error) {
	real, err := s.get()
	if err != nil {
		return nil, err
	}
	return real.History(ctx, room, q)
}

// LastSeq implements partyline.Store.
func (s *Store) LastSeq(ctx context.Context, room string) (uint64, error) {
	real, err := s.get()
	if err != nil {
		return 0, err
	}
	return real.LastSeq(ctx, room)
}

// AppendOnce implements partyline.IdempotentStore.
func (s *Store) AppendOnce(ctx context.Context, key string, messages []partyline.Message, now time.Time) ([]partyline.Message, bool, error) {
	real, err := s.get()
	if err != nil {
		return nil, false, err
	}
	return real.AppendOnce(ctx, key, messages, now)
}

// Recall implements partyline.IdempotentStore.
func (s *Store) Recall(ctx context.Context, key string, now time.Time) ([]partyline.Message, bool, error) {
	real, err := s.get()
	if err != nil {
		return nil, false, err
	}
	return real.Recall(ctx, key, now)
}

// RecordEvent implements partyline.EventLog.
func (s *Store) RecordEvent(ctx context.Context, e partyline.WebhookEvent) error {
	real, err := s.get()
	if err != nil {
		return err
	}
	return real.RecordEvent(ctx, e)
}

// PresenceJoined implements partyline.EventLog.
func (s *Store) PresenceJoined(ctx context.Context, room, user string, now time.Time) error {
	real, err := s.get()
	if err != nil {
		return err
	}
	return real.PresenceJoined(ctx, room, user, now)
}

// PresenceLeft implements partyline.EventLog.
func (s *Store) PresenceLeft(ctx context.Context, room, user string, due time.Time) error {
	real, err := s.get()
	if err != nil {
		return err
	}
	return real.PresenceLeft(ctx, room, user, due)
}

// SweepPresence implements partyline.EventLog.
func (s *Store) SweepPresence(ctx context.Context, now time.Time) error {
	real, err := s.get()
	if err != nil {
		return err
	}
	return real.SweepPresence(ctx, now)
}

// DueLeaves implements partyline.EventLog.
func (s *Store) DueLeaves(ctx context.Context, now time.Time) ([]partyline.RoomUser, error) {
	real, err := s.get()
	if err != nil {
		return nil, err
	}
	return real.DueLeaves(ctx, now)
}

// PresentUsers implements partyline.EventLog.
func (s *Store) PresentUsers(ctx context.Context) ([]partyline.RoomUser, error) {
	real, err := s.get()
	if err != nil {
		return nil, err
	}
	return real.PresentUsers(ctx)
}

// PendingEvents implements partyline.EventLog.
func (s *Store) PendingEvents(ctx context.Context, url string, limit int) ([]partyline.PendingEvent, error) {
	real, err := s.get()
	if err != nil {
		return nil, err
	}
	return real.PendingEvents(ctx, url, limit)
}

// AckEvents implements partyline.EventLog.
func (s *Store) AckEvents(ctx context.Context, url string, pos []int64) error {
	real, err := s.get()
	if err != nil {
		return err
	}
	return real.AckEvents(ctx, url, pos)
}

// CountPending implements partyline.EventLog.
func (s *Store) CountPending(ctx context.Context, url string) (int, error) {
	real, err := s.get()
	if err != nil {
		return 0, err
	}
	return real.CountPending(ctx, url)
}

// LeaseSender implements partyline.EventLog.
func (s *Store) LeaseSender(ctx context.Context, url, owner string, now, until time.Time) (bool, error) {
	real, err := s.get()
	if err != nil {
		return false, err
	}
	return real.LeaseSender(ctx, url, owner, now, until)
}

// Ping implements partyline.Pinger: before Set it fails at once with the
// reason the store is not open.
func (s *Store) Ping(ctx context.Context) error {
	real, err := s.get()
	if err != nil {
		return err
	}
	return real.Ping(ctx)
}

// Close implements partyline.Store: it closes the real store, if set.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if real, err := s.get(); err == nil {
		return real.Close()
	}
	return nil
}
