package deferred

import (
	"context"
	"sync"

	"github.com/partyline/partyline"
)

// SharedPresence is what a Presence stands in for: a partyline.Presence
// shared between nodes, such as redis.Presence.
type SharedPresence interface {
	partyline.Presence
	partyline.Pinger
	partyline.PresenceExpirer
	partyline.PresenceRestorer
	partyline.RoomLister
	partyline.Counter
}

// Presence stands in for a SharedPresence until Set: before, every call
// fails with an error wrapping partyline.ErrUnavailable, but for
// StartExpiry and StartRestore, whose callbacks it passes on at Set; after,
// it goes to the real presence. It is safe for concurrent use.
type Presence struct {
	slot[SharedPresence]

	mu       sync.Mutex // guards the following; orders Set, the Starts and Close
	expired  func(room, user string)
	restored func(room, user string)
	closed   bool
}

var (
	_ partyline.Presence         = (*Presence)(nil)
	_ partyline.OrderedPresence  = (*Presence)(nil)
	_ partyline.Pinger           = (*Presence)(nil)
	_ partyline.PresenceExpirer  = (*Presence)(nil)
	_ partyline.PresenceRestorer = (*Presence)(nil)
	_ partyline.RoomLister       = (*Presence)(nil)
	_ partyline.Counter          = (*Presence)(nil)
	_ partyline.Connector        = (*Presence)(nil)
	_ StandIn                    = (*Presence)(nil)
)

// NewPresence returns a Presence waiting for Set.
func NewPresence() *Presence { return &Presence{} }

// Set hands over the real presence, which the Presence then owns, after
// passing it the callbacks of StartExpiry and StartRestore. After Close,
// Set closes real instead, if it is an io.Closer.
func (p *Presence) Set(real SharedPresence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		closeIfCloser(real)
		return
	}
	if p.expired != nil {
		real.StartExpiry(p.expired)
	}
	if p.restored != nil {
		real.StartRestore(p.restored)
	}
	p.put(real)
}

// StartExpiry implements partyline.PresenceExpirer.
func (p *Presence) StartExpiry(expired func(room, user string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expired = expired
	if real, err := p.get(); err == nil {
		real.StartExpiry(expired)
	}
}

// StartRestore implements partyline.PresenceRestorer.
func (p *Presence) StartRestore(restored func(room, user string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restored = restored
	if real, err := p.get(); err == nil {
		real.StartRestore(restored)
	}
}

// Add implements partyline.Presence.
func (p *Presence) Add(ctx context.Context, room, user string) (bool, error) {
	real, err := p.get()
	if err != nil {
		return false, err
	}
	return real.Add(ctx, room, user)
}

// AddOrdered implements partyline.OrderedPresence, numbering decisions as
// the real presence does, if it does.
func (p *Presence) AddOrdered(ctx context.Context, room, user string) (bool, uint64, error) {
	real, err := p.get()
	if err != nil {
		return false, 0, err
	}
	if o, ok := real.(partyline.OrderedPresence); ok {
		return o.AddOrdered(ctx, room, user)
	}
	first, err := real.Add(ctx, room, user)
	return first, 0, err
}

// Remove implements partyline.Presence.
func (p *Presence) Remove(ctx context.Context, room, user string) (bool, error) {
	real, err := p.get()
	if err != nil {
		return false, err
	}
	return real.Remove(ctx, room, user)
}

// RemoveOrdered implements partyline.OrderedPresence, numbering decisions
// as the real presence does, if it does.
func (p *Presence) RemoveOrdered(ctx context.Context, room, user string) (bool, uint64, error) {
	real, err := p.get()
	if err != nil {
		return false, 0, err
	}
	if o, ok := real.(partyline.OrderedPresence); ok {
		return o.RemoveOrdered(ctx, room, user)
	}
	last, err := real.Remove(ctx, room, user)
	return last, 0, err
}

// Users implements partyline.Presence.
func (p *Presence) Users(ctx context.Context, room string) ([]string, error) {
	real, err := p.get()
	if err != nil {
		return nil, err
	}
	return real.Users(ctx, room)
}

// Contains implements partyline.Presence.
func (p *Presence) Contains(ctx context.Context, room, user string) (bool, error) {
	real, err := p.get()
	if err != nil {
		return false, err
	}
	return real.Contains(ctx, room, user)
}

// Rooms implements partyline.RoomLister.
func (p *Presence) Rooms(ctx context.Context) ([]string, error) {
	real, err := p.get()
	if err != nil {
		return nil, err
	}
	return real.Rooms(ctx)
}

// Count implements partyline.Counter.
func (p *Presence) Count(ctx context.Context, room string) (int, error) {
	real, err := p.get()
	if err != nil {
		return 0, err
	}
	return real.Count(ctx, room)
}

// Ping implements partyline.Pinger: before Set it fails at once with the
// reason the presence is not open.
func (p *Presence) Ping(ctx context.Context) error {
	real, err := p.get()
	if err != nil {
		return err
	}
	return real.Ping(ctx)
}

// Close closes the real presence, if set and an io.Closer (redis.Presence
// is: its Close stops the node's heartbeat without removing its users).
func (p *Presence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if real, err := p.get(); err == nil {
		return closeIfCloser(real)
	}
	return nil
}
