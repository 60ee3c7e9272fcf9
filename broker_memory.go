package partyline

import (
	"context"
	"sync"
)

// MemoryBroker is the single-node broker: it hands each published event
// straight back to this node's handler when the topic is subscribed.
type MemoryBroker struct {
	mu      sync.RWMutex // guards the following
	handler BrokerHandler
	topics  map[string]bool
	closed  bool
}

var (
	_ Broker         = (*MemoryBroker)(nil)
	_ PublishCounter = (*MemoryBroker)(nil)
)

// NewMemoryBroker returns a broker for a server that runs alone.
func NewMemoryBroker() *MemoryBroker {
	return &MemoryBroker{topics: make(map[string]bool)}
}

// Start implements Broker.
func (b *MemoryBroker) Start(h BrokerHandler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler = h
	return nil
}

// Publish implements Broker. It delivers synchronously, on the caller's
// goroutine, which the hub's non-blocking fan-out makes safe.
func (b *MemoryBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	_, err := b.PublishCount(ctx, topic, payload)
	return err
}

// PublishCount implements PublishCounter: it reports 1 when this node is
// subscribed to topic, and delivers as Publish does; 0 when it is not.
func (b *MemoryBroker) PublishCount(ctx context.Context, topic string, payload []byte) (int, error) {
	b.mu.RLock()
	h, ok := b.handler, b.topics[topic] && !b.closed
	b.mu.RUnlock()
	if !ok || h == nil {
		return 0, nil
	}
	h.HandleEvent(topic, payload)
	return 1, nil
}

// Subscribe implements Broker.
func (b *MemoryBroker) Subscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.topics[topic] = true
	return nil
}

// Unsubscribe implements Broker.
func (b *MemoryBroker) Unsubscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.topics, topic)
	return nil
}

// Close implements Broker.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}
