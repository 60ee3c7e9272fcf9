package deferred

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/partyline/partyline"
)

// SharedBroker is what a Broker stands in for: a partyline.Broker that can
// be pinged and count its receivers, such as redis.Broker.
type SharedBroker interface {
	partyline.Broker
	partyline.Pinger
	partyline.PublishCounter
}

// Broker stands in for a SharedBroker until Set: before, every call but
// Start fails with an error wrapping partyline.ErrUnavailable; after, it
// goes to the real broker. It is safe for concurrent use.
type Broker struct {
	slot[SharedBroker]

	mu      sync.Mutex              // guards the following; orders Set, Start and Close
	handler partyline.BrokerHandler // given to Start
	pending SharedBroker            // Set before Start, to be started by it
	closed  bool
}

var (
	_ partyline.Broker         = (*Broker)(nil)
	_ partyline.Pinger         = (*Broker)(nil)
	_ partyline.PublishCounter = (*Broker)(nil)
	_ partyline.Connector      = (*Broker)(nil)
	_ StandIn                  = (*Broker)(nil)
)

// NewBroker returns a Broker waiting for Set.
func NewBroker() *Broker { return &Broker{} }

// Start implements partyline.Broker. It remembers h; the real broker is
// started with it once set.
func (b *Broker) Start(h partyline.BrokerHandler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handler != nil {
		return errors.New("deferred: start: broker already started")
	}
	b.handler = h
	if b.pending == nil {
		return nil
	}
	real := b.pending
	b.pending = nil
	return b.startLocked(real)
}

// Set hands over the real broker, which the Broker then owns. Once Start
// has been called, Set starts real with its handler, and then calls the
// handler's HandleReconnect, as after a reconnection, so that whatever the
// handler missed meanwhile is resynchronised. After Close, Set closes real
// instead.
func (b *Broker) Set(real SharedBroker) error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return real.Close()
	case b.handler == nil:
		b.pending = real
		b.mu.Unlock()
		return nil
	}
	err := b.startLocked(real)
	h := b.handler
	b.mu.Unlock()
	if err != nil {
		return err
	}
	h.HandleReconnect()
	return nil
}

// startLocked starts real with the handler and makes it the broker every
// call goes to.
func (b *Broker) startLocked(real SharedBroker) error {
	if err := real.Start(b.handler); err != nil {
		return fmt.Errorf("deferred: start broker: %w", err)
	}
	b.put(real)
	return nil
}

// Publish implements partyline.Broker.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte) error {
	real, err := b.get()
	if err != nil {
		return err
	}
	return real.Publish(ctx, topic, payload)
}

// PublishCount implements partyline.PublishCounter.
func (b *Broker) PublishCount(ctx context.Context, topic string, payload []byte) (int, error) {
	real, err := b.get()
	if err != nil {
		return 0, err
	}
	return real.PublishCount(ctx, topic, payload)
}

// Subscribe implements partyline.Broker.
func (b *Broker) Subscribe(ctx context.Context, topic string) error {
	real, err := b.get()
	if err != nil {
		return err
	}
	return real.Subscribe(ctx, topic)
}

// Unsubscribe implements partyline.Broker.
func (b *Broker) Unsubscribe(ctx context.Context, topic string) error {
	real, err := b.get()
	if err != nil {
		return err
	}
	return real.Unsubscribe(ctx, topic)
}

// Ping implements partyline.Pinger: before Set it fails at once with the
// reason the broker is not open.
func (b *Broker) Ping(ctx context.Context) error {
	real, err := b.get()
	if err != nil {
		return err
	}
	return real.Ping(ctx)
}

// Close implements partyline.Broker: it closes the real broker, if set.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.pending != nil {
		return b.pending.Close()
	}
	if real, err := b.get(); err == nil {
		return real.Close()
	}
	return nil
}
