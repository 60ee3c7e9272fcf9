package deferred

import (
	"context"
	"sync"

	"github.com/partyline/partyline"
)

// SharedStore is what a Store stands in for: a partyline.Store that can be
// pinged, such as postgres.Store.
type SharedStore interface {
	partyline.Store
	partyline.Pinger
}

// Store stands in for a SharedStore until Set: before, every call fails
// with an error wrapping partyline.ErrUnavailable; after, it goes to the
// real store. It is safe for concurrent use.
type Store struct {
	slot[SharedStore]

	mu     sync.Mutex // orders Set against Close; guards closed
	closed bool
}

var (
	_ partyline.Store     = (*Store)(nil)
	_ partyline.Pinger    = (*Store)(nil)
	_ partyline.Connector = (*Store)(nil)
	_ StandIn             = (*Store)(nil)
)

// NewStore returns a Store waiting for Set.
func NewStore() *Store { return &Store{} }

// Set hands over the real store, which the Store then owns. After Close,
// Set closes real instead.
func (s *Store) Set(real SharedStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		real.Close()
		return
	}
	s.put(real)
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
